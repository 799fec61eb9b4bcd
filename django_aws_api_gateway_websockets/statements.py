"""The event pipeline's session statements, built once per database and run with new values, and
the transaction ``$connect`` runs in.

Building a query with the ORM (filters, joins, compilation, model instances) cost more CPU than
running it: a message spent most of its time in ``select_related("user").get(...)``. The three
statements every event runs on ``WebSocketSession`` are therefore built once per database alias
from model metadata and the connection's own operations (quoting, parameter adaptation, the
backend's upsert clause, ``RETURNING`` support), then executed with fresh parameters. The
statements are the same as the ORM's, one per event, so query counts do not change.

Vendor differences are left to Django: the upsert is compiled by Django's own ``InsertQuery``
(``ON CONFLICT … DO UPDATE`` on PostgreSQL and SQLite, ``ON DUPLICATE KEY UPDATE`` on MySQL and
MariaDB) and checked against the parameters this module computes; should a backend compile it
differently, the upsert falls back to ``bulk_create`` instead of guessing. A backend that needs
its own form of a statement gets a branch in the matching ``_build_*`` function.

Nothing here caches data: only SQL text and the list of columns, keyed by alias, vendor and user
model.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.signals import setting_changed
from django.db import connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import (
    AutoField,
    BigAutoField,
    BigIntegerField,
    BooleanField,
    CharField,
    Field,
    ForeignKey,
    IntegerField,
    Model,
    SmallAutoField,
)
from django.db.models.constants import OnConflict
from django.db.models.sql import InsertQuery
from django.dispatch import receiver
from django.utils import timezone

from .exceptions import WebSocketRefusal
from .models import WebSocketSession

#: Session columns a repeated ``$connect`` for the same connection id overwrites.
SESSION_UPSERT_FIELDS = (
    "gateway",
    "channel_name",
    "state",
    "connected",
    "user",
    "source_ip",
    "user_agent",
    "connected_at",
    "last_seen_at",
    "disconnected_at",
)

if TYPE_CHECKING:  # django-stubs makes Field generic; Django's own class is not subscriptable
    AnyField = Field[Any, Any]
else:
    AnyField = Field

_USER_FIELD = WebSocketSession._meta.get_field("user")


def _column(field: Any) -> str:
    """The column name of a concrete field."""
    name = getattr(field, "column", None)
    if not isinstance(name, str):
        raise TypeError(f"{field!r} has no column")
    return name


Converter = Callable[[Any, Any, BaseDatabaseWrapper], Any]


def _converters(
    fields: list[AnyField], db: BaseDatabaseWrapper
) -> list[tuple[int, list[Converter], Any]]:
    """What the ORM's compiler would apply to each column read back (only non-empty ones)."""
    found = []
    for index, field in enumerate(fields):
        column = field.get_col(field.model._meta.db_table)
        converters = db.ops.get_db_converters(column) + column.get_db_converters(db)
        if converters:
            found.append((index, converters, column))
    return found


# The message's session (and its user) -----------------------------------------------------------


@dataclass(frozen=True)
class _SessionLookup:
    sql: str
    session_names: list[str]
    user_names: list[str]
    user_model: type[Model]
    user_pk_index: int
    converters: list[tuple[int, list[Converter], Any]]


def _build_lookup(db: BaseDatabaseWrapper) -> _SessionLookup | None:
    """``SELECT session.*, user.* … LEFT OUTER JOIN user … WHERE …``: what
    ``select_related("user").get(...)`` runs, without building it on every message. ``None`` for
    a user model with multi-table inheritance (its columns span several tables): the ORM then
    builds the joins."""
    qn = db.ops.quote_name
    meta = WebSocketSession._meta
    user_model = get_user_model()
    user_meta = user_model._meta
    if user_meta.parents:
        return None
    session_fields = list(meta.concrete_fields)
    user_fields = list(user_meta.concrete_fields)
    table, user_table = qn(meta.db_table), qn(user_meta.db_table)

    def column(field: AnyField) -> str:
        return f"{qn(field.model._meta.db_table)}.{qn(_column(field))}"

    columns = ", ".join(column(f) for f in session_fields + user_fields)
    user_fk = meta.get_field("user")
    sql = (
        f"SELECT {columns} FROM {table} LEFT OUTER JOIN {user_table} "  # noqa: S608
        f"ON ({column(user_fk)} = {column(user_meta.pk)}) "
        f"WHERE {column(meta.get_field('connection_id'))} = %s "
        f"AND {column(meta.get_field('gateway'))} = %s "
        f"AND {column(meta.get_field('connected'))} = %s"
    )
    return _SessionLookup(
        sql=sql,
        session_names=[f.attname for f in session_fields],
        user_names=[f.attname for f in user_fields],
        user_model=user_model,
        user_pk_index=user_fields.index(user_meta.pk),
        converters=_converters(session_fields + user_fields, db),
    )


def find_connected_session(connection_id: str, gateway_id: int) -> WebSocketSession | None:
    """The connected session with this id on this gateway, its user loaded; one query.

    Same statement, same rows and the same instances (``session.user`` cached, no query) as
    ``WebSocketSession.objects.select_related("user").get(..., connected=True)``.
    """
    alias = router.db_for_read(WebSocketSession)
    db = connections[alias]
    lookup = _lookup(alias, db)
    if lookup is None:
        return (
            WebSocketSession.objects.using(alias)
            .select_related("user")
            .filter(connection_id=connection_id, gateway_id=gateway_id, connected=True)
            .first()
        )
    with db.cursor() as cursor:
        cursor.execute(lookup.sql, [connection_id, gateway_id, True])
        row = cursor.fetchone()
    if row is None:
        return None
    values = list(row)
    for index, converters, column in lookup.converters:
        value = values[index]
        for converter in converters:
            value = converter(value, column, db)
        values[index] = value
    split = len(lookup.session_names)
    session = WebSocketSession.from_db(alias, lookup.session_names, values[:split])
    user_values = values[split:]
    user = None
    if user_values[lookup.user_pk_index] is not None:  # LEFT JOIN: NULLs for no user
        user = lookup.user_model.from_db(alias, lookup.user_names, user_values)
    _USER_FIELD.set_cached_value(session, user)
    return session


# $disconnect --------------------------------------------------------------------------------------


def _build_close(db: BaseDatabaseWrapper) -> str:
    qn = db.ops.quote_name
    meta = WebSocketSession._meta
    col = {name: qn(_column(meta.get_field(name))) for name in _CLOSE_COLUMNS}
    return (
        f"UPDATE {qn(meta.db_table)} SET {col['connected']} = %s, {col['state']} = %s, "  # noqa: S608
        f"{col['disconnected_at']} = %s WHERE {col['connection_id']} = %s "
        f"AND {col['gateway']} = %s AND {col['connected']} = %s"
    )


_CLOSE_COLUMNS = ("connected", "state", "disconnected_at", "connection_id", "gateway")


def close_session(connection_id: str, gateway_id: int, when: datetime) -> int:
    """Mark the connected session with this id on this gateway closed; one UPDATE.

    The statement ``WebSocketSession.objects.filter(...).mark_closed(when)`` runs; returns the
    number of rows changed (0 when it was unknown or already closed).
    """
    alias = router.db_for_write(WebSocketSession)
    db = connections[alias]
    sql = _statement("close", alias, db, _build_close)
    stamp = WebSocketSession._meta.get_field("disconnected_at").get_db_prep_save(when, db)
    with db.cursor() as cursor:
        cursor.execute(
            sql,
            [False, WebSocketSession.State.CLOSED.value, stamp, connection_id, gateway_id, True],
        )
        return int(cursor.rowcount)


# $connect ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Upsert:
    sql: str
    #: Per column: attribute name, field, and the Python types whose value is already what the
    #: driver gets (``get_db_prep_save`` would return it unchanged).
    columns: list[tuple[str, AnyField, tuple[type, ...]]]
    #: The primary key comes back (``RETURNING``) on backends that can return it from an upsert.
    returns_pk: bool


def _upsert_fields() -> list[AnyField]:
    meta = WebSocketSession._meta
    return [f for f in meta.concrete_fields if not f.generated and f is not meta.pk]


_INTEGER_KEYS = (AutoField, BigAutoField, SmallAutoField, IntegerField, BigIntegerField)


def _unchanged_types(field: AnyField) -> tuple[type, ...]:
    """Types ``field.get_db_prep_save`` passes through as they are; exact classes only (a
    subclass may prepare values its own way). Everything else goes through the field."""
    if type(field) is CharField:
        return (str,)
    if type(field) is BooleanField:
        return (bool,)
    if type(field) is ForeignKey and type(field.target_field) in _INTEGER_KEYS:
        return (int,)
    return ()


def _upsert_columns(
    fields: list[AnyField],
) -> list[tuple[str, AnyField, tuple[type, ...]]]:
    return [(field.attname, field, _unchanged_types(field)) for field in fields]


def _upsert_params(
    session: WebSocketSession,
    columns: list[tuple[str, AnyField, tuple[type, ...]]],
    db: BaseDatabaseWrapper,
) -> list[Any]:
    params = []
    for attname, field, unchanged in columns:
        value = getattr(session, attname)
        if value is not None and type(value) not in unchanged:
            value = field.get_db_prep_save(value, db)
        params.append(value)
    return params


def _build_upsert(db: BaseDatabaseWrapper, alias: str) -> _Upsert | None:
    """The INSERT ``bulk_create([session], update_conflicts=True, …)`` runs, compiled by Django
    for this backend; ``None`` when its parameters are not the plain column values (the caller
    then uses ``bulk_create``)."""
    meta = WebSocketSession._meta
    features = db.features
    # MySQL/MariaDB infer the conflict target and refuse an explicit one.
    unique = (
        [meta.get_field("connection_id")] if features.supports_update_conflicts_with_target else []
    )
    fields = _upsert_fields()
    query = InsertQuery(
        WebSocketSession,
        on_conflict=OnConflict.UPDATE,
        update_fields=[meta.get_field(name) for name in SESSION_UPSERT_FIELDS],
        unique_fields=unique,
    )
    now = timezone.now()
    probe = WebSocketSession(
        connection_id="\x00probe",
        gateway_id=-1,
        channel_name="\x00channel",
        state=WebSocketSession.State.CONNECTING,
        connected=True,
        user_id=-2,
        source_ip="192.0.2.1",
        user_agent="\x00agent",
        connected_at=now,
        last_seen_at=now,
        disconnected_at=None,
    )
    query.insert_values(fields, [probe])
    compiler = query.get_compiler(using=alias)
    returns_pk = bool(features.can_return_rows_from_bulk_insert)
    compiler.returning_fields = meta.db_returning_fields if returns_pk else None
    statements = compiler.as_sql()
    if len(statements) != 1:
        return None
    sql, params = statements[0]
    columns = _upsert_columns(fields)
    # The check that makes reusing the SQL safe: Django's parameters for a sample session must
    # be exactly what upsert_session() computes.
    if list(params) != _upsert_params(probe, columns, db):
        return None
    return _Upsert(sql=sql, columns=columns, returns_pk=returns_pk)


def upsert_session(session: WebSocketSession) -> None:
    """Insert the new session, or overwrite the row of a repeated ``$connect`` for the same
    connection id; one statement. Sets ``session.pk`` where the backend returns it, as
    ``bulk_create`` does."""
    alias = router.db_for_write(WebSocketSession)
    db = connections[alias]
    upsert = _statement("upsert", alias, db, lambda db: _build_upsert(db, alias))
    if upsert is None:
        WebSocketSession.objects.using(alias).bulk_create(
            [session],
            update_conflicts=True,
            unique_fields=(
                ["connection_id"] if db.features.supports_update_conflicts_with_target else None
            ),
            update_fields=list(SESSION_UPSERT_FIELDS),
        )
        return
    with db.cursor() as cursor:
        cursor.execute(upsert.sql, _upsert_params(session, upsert.columns, db))
        if upsert.returns_pk:
            row = cursor.fetchone()
            session.pk = row[0]
    session._state.adding = False
    session._state.db = alias


# One transaction for $connect -------------------------------------------------------------------

#: Backends whose ``$connect`` statements share one transaction (measured: one commit, one WAL
#: flush on PostgreSQL, instead of one per statement). MySQL/MariaDB keep a transaction per
#: statement, as before: there the rate-limit upsert may have to be retried after an InnoDB
#: deadlock, which it can only do outside a transaction.
ONE_COMMIT_VENDORS = frozenset({"postgresql", "sqlite"})


@contextmanager
def connect_transaction(using: str) -> Iterator[None]:
    """The ``$connect`` statements in one transaction where :data:`ONE_COMMIT_VENDORS` says so.

    A refusal raised inside still commits what ran before it (the spent token, the counted
    attempt), exactly as when each statement committed on its own; any other error rolls the
    whole ``$connect`` back (no session, the token unspent). Inside an outer transaction
    (``ATOMIC_REQUESTS``) it adds no savepoint: the outer one decides.
    """
    if connections[using].vendor not in ONE_COMMIT_VENDORS:
        yield
        return
    refusal: WebSocketRefusal | None = None
    with transaction.atomic(using=using, savepoint=False):
        try:
            yield
        except WebSocketRefusal as exc:
            refusal = exc
    if refusal is not None:
        raise refusal


# The cache of built statements -------------------------------------------------------------------

_built: dict[tuple[str, str, str, str], Any] = {}
_lock = threading.Lock()


def _statement(name: str, alias: str, db: BaseDatabaseWrapper, build: Callable[[Any], Any]) -> Any:
    key = (name, alias, db.vendor, "")
    try:
        return _built[key]
    except KeyError:
        pass
    with _lock:
        if key not in _built:
            _built[key] = build(db)
        return _built[key]


def _lookup(alias: str, db: BaseDatabaseWrapper) -> _SessionLookup | None:
    key = ("lookup", alias, db.vendor, settings.AUTH_USER_MODEL)
    try:
        return _built[key]  # type: ignore[no-any-return]
    except KeyError:
        pass
    with _lock:
        if key not in _built:
            _built[key] = _build_lookup(db)
        return _built[key]  # type: ignore[no-any-return]


@receiver(setting_changed)
def _reset(*, setting: str, **kwargs: Any) -> None:
    if setting in ("DATABASES", "AUTH_USER_MODEL", "DATABASE_ROUTERS"):
        with _lock:
            _built.clear()
