"""Fixed-window rate limits, counted with one atomic upsert per check.

A check increments the counters of all its keys in a single ``INSERT … ON CONFLICT DO UPDATE …
RETURNING`` statement, so parallel requests cannot slip past the limit (the database serialises
the increments on the unique key) and a ``$connect`` pays one query for its IP and user limits
together. MySQL/MariaDB have no ``RETURNING`` on upserts; there ``INSERT … ON DUPLICATE KEY
UPDATE`` increments and a ``SELECT`` in the same transaction reads the counts back (the upsert
holds the rows' exclusive locks until commit, so no one else's increment can come in between).
InnoDB may pick a concurrent upsert of a brand-new key as a deadlock victim; that statement is
retried (it changed nothing). The counters live on the router's write database for
:class:`~.models.RateLimitWindow`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import OperationalError, connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone
from django.utils.translation import gettext as _

from .exceptions import RateLimited
from .models import RateLimitWindow
from .tokens import column, has_update_returning


@dataclass(frozen=True)
class Limit:
    """At most ``limit`` hits of ``key`` per ``window`` seconds (``limit`` 0 disables it)."""

    key: str
    limit: int
    window: int


def window_bounds(now: datetime, window: int) -> tuple[datetime, datetime]:
    epoch = now.timestamp()
    start = math.floor(epoch / window) * window
    start_dt = datetime.fromtimestamp(start, tz=now.tzinfo)  # naive in, naive out (USE_TZ=False)
    return start_dt, start_dt + timedelta(seconds=window)


#: MySQL/MariaDB error codes for "deadlock found" and "lock wait timeout": the statement was
#: rolled back and may simply run again.
_MYSQL_RETRYABLE = frozenset({1213, 1205})
_MYSQL_ATTEMPTS = 5


def _increment(rows: Sequence[tuple[str, datetime, datetime]]) -> dict[str, int]:
    """Add one to each row's counter (creating it at 1); return the new counts by key."""
    connection = connections[router.db_for_write(RateLimitWindow)]
    if connection.vendor != "mysql" or connection.in_atomic_block:
        # Inside the caller's transaction a deadlock has rolled all of it back: not ours to retry.
        return _increment_on(connection, rows)
    for attempt in range(_MYSQL_ATTEMPTS):
        try:
            return _increment_on(connection, rows)
        except OperationalError as exc:
            code = exc.args[0] if exc.args else None
            if code not in _MYSQL_RETRYABLE or attempt == _MYSQL_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _increment_on(
    connection: BaseDatabaseWrapper, rows: Sequence[tuple[str, datetime, datetime]]
) -> dict[str, int]:
    meta = RateLimitWindow._meta
    qn = connection.ops.quote_name
    table = qn(meta.db_table)
    key, start, end, count = (
        qn(column(RateLimitWindow, name)) for name in ("key", "window_start", "window_end", "count")
    )
    adapt = connection.ops.adapt_datetimefield_value
    values = ", ".join(["(%s, %s, %s, 1)"] * len(rows))
    params: list[Any] = []
    for row_key, row_start, row_end in rows:
        params += [row_key, adapt(row_start), adapt(row_end)]
    insert = f"INSERT INTO {table} ({key}, {start}, {end}, {count}) VALUES {values} "  # noqa: S608
    with connection.cursor() as cursor:
        if connection.vendor == "mysql":
            # No savepoint inside a caller's transaction: a failure here fails the caller anyway.
            with transaction.atomic(using=connection.alias, savepoint=False):
                cursor.execute(insert + f"ON DUPLICATE KEY UPDATE {count} = {count} + 1", params)
                fetched = _read_counts(connection, cursor, rows, table, key, start, count)
        elif has_update_returning(connection):
            cursor.execute(
                insert
                + f"ON CONFLICT ({key}, {start}) DO UPDATE SET {count} = {table}.{count} + 1 "
                f"RETURNING {key}, {count}",
                params,
            )
            fetched = cursor.fetchall()
        else:  # SQLite before 3.35: the same upsert, then the counts read back
            with transaction.atomic(using=connection.alias):
                cursor.execute(
                    insert
                    + f"ON CONFLICT ({key}, {start}) DO UPDATE SET {count} = {table}.{count} + 1",
                    params,
                )
                fetched = _read_counts(connection, cursor, rows, table, key, start, count)
    return dict(fetched)


def _read_counts(
    connection: BaseDatabaseWrapper,
    cursor: Any,
    rows: Sequence[tuple[str, datetime, datetime]],
    *names: str,
) -> list[tuple[str, int]]:
    """Read back the counters just incremented (for databases without upsert RETURNING)."""
    table, key, start, count = names
    adapt = connection.ops.adapt_datetimefield_value
    where = " OR ".join([f"({key} = %s AND {start} = %s)"] * len(rows))
    lookup: list[Any] = []
    for row_key, row_start, _end in rows:
        lookup += [row_key, adapt(row_start)]
    cursor.execute(f"SELECT {key}, {count} FROM {table} WHERE {where}", lookup)  # noqa: S608
    counts: list[tuple[str, int]] = cursor.fetchall()
    return counts


def hit(limits: Sequence[Limit], now: datetime | None = None) -> None:
    """Count one attempt against every limit; raise :class:`RateLimited` if any is exceeded.

    The attempt is counted even when refused, so hammering a closed door keeps it closed.
    """
    active = [limit for limit in limits if limit.limit > 0]
    if not active:
        return
    now = now or timezone.now()
    rows = []
    for limit in active:
        start, end = window_bounds(now, limit.window)
        rows.append((limit.key, start, end))
    counts = _increment(rows)
    for limit, (row_key, _start, end) in zip(active, rows, strict=False):
        if counts[row_key] > limit.limit:
            retry_after = max(1, math.ceil((end - now).total_seconds()))
            raise RateLimited(_("Too many attempts; try again later."), retry_after=retry_after)
