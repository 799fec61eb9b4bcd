"""Single-use WebSocket tokens: minted behind a CSRF-protected endpoint, consumed on ``$connect``.

Only a SHA-256 hash of each token is stored, so a database leak reveals no usable token. A token
is consumed by one conditional ``UPDATE … WHERE used_at IS NULL AND expires_at > now`` on its hash:
the database lets exactly one of any number of concurrent connects win. Nothing depends on the
site's session cookie reaching the WebSocket host.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist
from django.db import connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Q
from django.utils import timezone

from .conf import ws_settings
from .models import WebSocketToken

#: 32 random bytes: 256 bits, 43 URL-safe characters.
TOKEN_BYTES = 32
MAX_TOKEN_LENGTH = 128

_NO_OWNER = object()


@dataclass(frozen=True)
class MintedToken:
    token: str
    expires_in: int
    record: WebSocketToken


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True)
class Audience:
    """Where a token may be used. Empty parts accept anything, except ``view``: a token minted
    for one view's ``token_audience`` opens only that view, and one minted for none opens only
    views that declare none."""

    view: str = ""
    gateway_id: int | None = None
    channel_name: str = ""


ANY_AUDIENCE = Audience()


def mint_token(user: Any | None, audience: Audience = ANY_AUDIENCE) -> MintedToken:
    """Create a token for ``user`` (``None`` for an anonymous connection) and store its hash."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    lifetime = int(ws_settings.TOKEN_LIFETIME)
    now = timezone.now()
    record = WebSocketToken.objects.create(
        token_hash=hash_token(token),
        user=user,
        audience=audience.view,
        gateway_id=audience.gateway_id,
        channel_name=audience.channel_name,
        created_at=now,
        expires_at=now + timedelta(seconds=lifetime),
    )
    return MintedToken(token=token, expires_in=lifetime, record=record)


class TokenRejected(Exception):
    """The token is unknown, used, expired or minted for another view, API or channel."""


def consume_token(
    token: str,
    now: datetime | None = None,
    *,
    view: str = "",
    gateway_id: int | None = None,
    channel_name: str = "",
) -> int | None:
    """Mark the token used and return its owner's primary key (``None``: anonymous token).

    Raises :class:`TokenRejected` unless this call is the one that used it. A token whose owner
    has been deactivated since it was minted, or whose audience is another view, API or channel,
    is rejected by the same statement and stays unused.
    """
    used_for = Audience(view=view, gateway_id=gateway_id, channel_name=channel_name)
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise TokenRejected
    now = now or timezone.now()
    token_hash = hash_token(token)
    db = connections[router.db_for_write(WebSocketToken)]
    if has_update_returning(db):
        owner = _consume_returning(db, token_hash, now, used_for)
    else:
        owner = _consume_locked(db, token_hash, now, used_for)
    if owner is _NO_OWNER:
        raise TokenRejected
    return owner  # type: ignore[return-value]


def has_update_returning(db: BaseDatabaseWrapper) -> bool:
    """``UPDATE … RETURNING``: PostgreSQL, and SQLite from 3.35 (Django's feature flag)."""
    if db.vendor == "postgresql":
        return True
    return db.vendor == "sqlite" and bool(db.features.can_return_columns_from_insert)


def _active_field() -> Field | None:
    """The user model's ``is_active`` column, if it has one (custom users may not)."""
    try:
        field = get_user_model()._meta.get_field("is_active")
    except FieldDoesNotExist:
        return None
    return field if getattr(field, "concrete", False) else None


def _consume_returning(
    db: BaseDatabaseWrapper, token_hash: str, now: datetime, used_for: Audience
) -> object:
    meta = WebSocketToken._meta
    qn = db.ops.quote_name
    col = {
        name: qn(meta.get_field(name).column)
        for name in (
            "token_hash",
            "used_at",
            "expires_at",
            "user",
            "audience",
            "gateway",
            "channel_name",
        )
    }
    stamp = db.ops.adapt_datetimefield_value(now)
    where = (
        f"{col['token_hash']} = %s AND {col['used_at']} IS NULL AND {col['expires_at']} > %s"
        f" AND {col['audience']} = %s"
        f" AND ({col['gateway']} IS NULL OR {col['gateway']} = %s)"
        f" AND ({col['channel_name']} = '' OR {col['channel_name']} = %s)"
    )
    params: list[object] = [
        stamp,
        token_hash,
        stamp,
        used_for.view,
        used_for.gateway_id,
        used_for.channel_name,
    ]
    active = _active_field()
    if active is not None:
        user_meta = get_user_model()._meta
        user_table = qn(user_meta.db_table)
        # Identifiers come from model metadata and are quoted; values are parameters. EXISTS on
        # the owner's primary key: one index lookup (``IN (SELECT … WHERE is_active)`` read
        # every active user on each $connect).
        where += (
            f" AND ({col['user']} IS NULL OR EXISTS (SELECT 1 FROM {user_table} "  # noqa: S608
            f"WHERE {user_table}.{qn(user_meta.pk.column)} = {qn(meta.db_table)}.{col['user']} "
            f"AND {user_table}.{qn(active.column)} = %s))"
        )
        params.append(True)
    sql = (
        f"UPDATE {qn(meta.db_table)} SET {col['used_at']} = %s "  # noqa: S608
        f"WHERE {where} RETURNING {col['user']}"
    )
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return _NO_OWNER if row is None else row[0]


def _consume_locked(
    db: BaseDatabaseWrapper, token_hash: str, now: datetime, used_for: Audience
) -> object:
    """Fallback for databases without ``UPDATE … RETURNING``: lock, then update."""
    tokens = WebSocketToken.objects.using(db.alias)
    usable = Q(user=None)
    if _active_field() is not None:
        usable |= Q(user__is_active=True)
    usable &= Q(audience=used_for.view)
    usable &= Q(gateway=None) | Q(gateway_id=used_for.gateway_id)
    usable &= Q(channel_name="") | Q(channel_name=used_for.channel_name)
    with transaction.atomic(using=db.alias):
        row = (
            tokens.select_for_update(of=("self",))
            .filter(usable, token_hash=token_hash, used_at=None, expires_at__gt=now)
            .values_list("pk", "user_id")
            .first()
        )
        if row is None:
            return _NO_OWNER
        tokens.filter(pk=row[0]).update(used_at=now)
        return row[1]
