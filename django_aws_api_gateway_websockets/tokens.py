r"""Single-use WebSocket tokens: minted behind a CSRF-protected endpoint, consumed on ``$connect``.

Only a SHA-256 hash of each token is stored, so a database leak reveals no usable token. A token
is consumed by one conditional ``UPDATE … WHERE used_at IS NULL AND expires_at > now`` on its hash:
the database lets exactly one of any number of concurrent connects win. Nothing depends on the
site's session cookie reaching the WebSocket host.

PostgreSQL and SQLite 3.35+ return the owner from that ``UPDATE`` (``RETURNING``: one query).
MySQL and MariaDB have no ``UPDATE … RETURNING``: there the same conditional ``UPDATE`` runs alone
and only the connection whose statement changed the row (row count 1) reads the owner back, a
second query on the unique hash. InnoDB's row lock makes concurrent ``UPDATE``\ s wait and then
re-check ``used_at IS NULL``, so the guarantee is the same. Older SQLite locks, then updates.
The database is the router's write database for :class:`~.models.WebSocketToken`.
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
from django.db.models import Field, Model, Q
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
    elif db.vendor == "mysql":
        owner = _consume_update_then_read(db, token_hash, now, used_for)
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


def _active_field() -> Field[Any, Any] | None:
    """The user model's ``is_active`` column, if it has one (custom users may not)."""
    try:
        field = get_user_model()._meta.get_field("is_active")
    except FieldDoesNotExist:
        return None
    return field if isinstance(field, Field) and field.concrete else None


def column(model: type[Model], name: str) -> str:
    """The database column of ``model``'s concrete field ``name`` (or ``"pk"``)."""
    field = model._meta.pk if name == "pk" else model._meta.get_field(name)
    if not isinstance(field, Field) or field.column is None:
        raise TypeError(f"{model.__name__}.{name} is not a concrete field")
    return field.column


def _conditional_update(
    db: BaseDatabaseWrapper, token_hash: str, now: datetime, used_for: Audience
) -> tuple[str, list[Any], dict[str, str]]:
    """``UPDATE … SET used_at = now`` on the token's hash, only while it is usable: unused,
    unexpired, for this audience and (with an ``is_active`` column) an active or no owner."""
    meta = WebSocketToken._meta
    qn = db.ops.quote_name
    col = {
        name: qn(column(WebSocketToken, name))
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
    params: list[Any] = [
        stamp,
        token_hash,
        stamp,
        used_for.view,
        used_for.gateway_id,
        used_for.channel_name,
    ]
    active = _active_field()
    if active is not None:
        user_model = get_user_model()
        user_meta = user_model._meta
        token_table = qn(WebSocketToken._meta.db_table)
        user_table = qn(user_meta.db_table)
        # Identifiers come from model metadata and are quoted; values are parameters. EXISTS on
        # the owner's primary key: one index lookup (``IN (SELECT … WHERE is_active)`` read
        # every active user on each $connect).
        where += (
            f" AND ({col['user']} IS NULL OR EXISTS (SELECT 1 FROM {user_table} "  # noqa: S608
            f"WHERE {user_table}.{qn(column(user_model, 'pk'))} = {token_table}.{col['user']} "
            f"AND {user_table}.{qn(column(user_model, active.name))} = %s))"
        )
        params.append(True)
    sql = f"UPDATE {qn(meta.db_table)} SET {col['used_at']} = %s WHERE {where}"  # noqa: S608
    return sql, params, col


def _consume_returning(
    db: BaseDatabaseWrapper, token_hash: str, now: datetime, used_for: Audience
) -> object:
    sql, params, col = _conditional_update(db, token_hash, now, used_for)
    with db.cursor() as cursor:
        cursor.execute(f"{sql} RETURNING {col['user']}", params)
        row = cursor.fetchone()
    return _NO_OWNER if row is None else row[0]


def _consume_update_then_read(
    db: BaseDatabaseWrapper, token_hash: str, now: datetime, used_for: Audience
) -> object:
    """MySQL/MariaDB: the conditional ``UPDATE``; its winner (row count 1) reads the owner.

    Django connects to MySQL with ``CLIENT.FOUND_ROWS``, so the row count is the rows matched;
    ``used_at`` goes from NULL to a time, so matched and changed are the same here anyway.
    """
    sql, params, col = _conditional_update(db, token_hash, now, used_for)
    table = db.ops.quote_name(WebSocketToken._meta.db_table)
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        if cursor.rowcount != 1:
            return _NO_OWNER
        # The hash is unique and this connection just used the token: the row is ours.
        cursor.execute(
            f"SELECT {col['user']} FROM {table} WHERE {col['token_hash']} = %s",  # noqa: S608
            [token_hash],
        )
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


# Why a handshake failed ----------------------------------------------------------------------
#
# A browser sees only "the socket closed" when ``$connect`` is refused: the HTTP status of the
# handshake is hidden from JavaScript. The page still holds the token it connected with, so
# ``$connect`` writes its refusal onto that token's row and the page asks for it afterwards.

#: Stored refusal reasons are cut to the column's length.
REFUSAL_REASON_LENGTH = 200


def record_refusal(token: str, status: int, reason: str, *, spent: bool) -> None:
    """Remember why the connection that presented ``token`` was refused.

    ``spent``: the token was consumed by this attempt (a later check refused). Otherwise the
    token was rejected unused, and only an unused token's row is marked: a replayed, used
    token must not overwrite the answer its first connection got.
    """
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return
    rows = WebSocketToken.objects.filter(token_hash=hash_token(token), refusal_status=None)
    if not spent:
        # An expired token heals by minting a new one: only a rejection that retrying cannot
        # cure (another audience, a deactivated owner) is worth reporting.
        rows = rows.filter(used_at=None, expires_at__gt=timezone.now())
    rows.update(refusal_status=status, refusal_reason=reason[:REFUSAL_REASON_LENGTH])


@dataclass(frozen=True)
class TokenStatus:
    """What became of a token: ``unused``, ``expired``, ``accepted``, ``refused`` or
    ``unknown`` (no such token, or not the asker's)."""

    state: str
    status: int | None = None
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"state": self.state}
        if self.state == "refused":
            data.update(status=self.status, reason=self.reason)
        return data


def token_status(token: str, user: Any | None, now: datetime | None = None) -> TokenStatus:
    """The status of ``token`` for its owner; ``user`` is ``None`` for an anonymous asker.

    A token minted for a signed-in user is reported only to that user; an anonymous token to
    whoever holds it (holding its 256 random bits is the proof).
    """
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return TokenStatus("unknown")
    record = WebSocketToken.objects.filter(token_hash=hash_token(token)).first()
    owner_id = getattr(user, "pk", None)
    if record is None or record.user_id != owner_id:
        return TokenStatus("unknown")
    if record.refusal_status is not None:
        return TokenStatus("refused", record.refusal_status, record.refusal_reason)
    if record.used_at is not None:
        return TokenStatus("accepted")
    if record.expires_at <= (now or timezone.now()):
        return TokenStatus("expired")
    return TokenStatus("unused")
