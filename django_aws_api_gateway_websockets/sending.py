"""Outbound calls to connections: send, close and probe, with a delivery report for each.

This module streams recipients from the database, groups them by gateway endpoint, hands them to
the configured transport (:mod:`.transports`) and writes back what AWS said: connections that are
gone are marked disconnected with one UPDATE per batch. It never needs to know which transport is
active, and the models never need to know how sending works.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from itertools import islice
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import SynchronousOnlyOperation
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connections, router
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from . import contract, signals
from .conf import ws_settings
from .gateways import gateway_cache
from .pending import NOT_OPENED_REASON, PendingItem, pending_deliveries
from .transports import DELETE, GET, POST, BaseTransport, Outcome, Result, Target, get_transport

if TYPE_CHECKING:
    from .models import WebSocketSession

logger = logging.getLogger("django_aws_api_gateway_websockets.sending")

#: Gone connections are marked disconnected in UPDATEs of at most this many ids.
GONE_BATCH = 1000

#: What is read for each recipient: a 410 means "gone" only outside the connect window, which
#: ``state`` and ``connected_at`` tell, so they come with the row at no extra query.
RECIPIENT_FIELDS = ("connection_id", "gateway_id", "state", "connected_at")
Recipient = tuple[str, int, str, "datetime | None"]
CONNECTING = "connecting"


class SendFromEventLoop(SynchronousOnlyOperation):
    """A blocking send, close or probe was called from a running event loop; nothing was done."""


def refuse_in_event_loop(call: str, alternative: str) -> None:
    """Raise :class:`SendFromEventLoop` before any side effect when an event loop is running.

    The blocking calls wait for every recipient's answer; in async code that would stall the
    loop (and the ORM would refuse the write-back after the requests were already sent).
    Honours ``DJANGO_ALLOW_ASYNC_UNSAFE`` as Django's own check does.
    """
    if os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE"):
        return
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise SendFromEventLoop(
        f"{call}() blocks until every recipient has answered, so it cannot be called from a "
        f"running event loop (async view, consumer or task); use 'await {alternative}(...)'."
    )


class MessageTooLarge(ValueError):
    """The serialised message exceeds API Gateway's 128 KB limit; nothing was sent."""

    def __init__(self, size: int) -> None:
        super().__init__(
            f"The message is {size} bytes; API Gateway accepts at most "
            f"{contract.MAX_MESSAGE_BYTES} bytes (128 KB)."
        )
        self.size = size


class ConnectionProbeFailed(RuntimeError):
    """GetConnection neither confirmed nor denied the connection (throttled, forbidden, …)."""


@dataclass
class DeliveryReport:
    """What happened to every recipient of one send, close or probe."""

    operation: str
    sent: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    #: Recipients still in their connect window that answered 410: retried in the background
    #: (sends and closes) until the socket opens, never marked gone for it.
    pending: list[str] = field(default_factory=list)
    #: Of ``pending``: delivered once the socket opened (filled in as it happens).
    pending_delivered: list[str] = field(default_factory=list)
    #: Of ``pending``: not delivered by the deadline or refused; also listed in ``failed``.
    pending_undelivered: list[str] = field(default_factory=list)
    #: Recipients that needed more than one attempt (throttled or transient errors).
    retried: int = 0
    duration: float = 0.0
    _lock: Any = field(default_factory=threading.Lock, repr=False, compare=False)
    #: Created only when recipients go pending (most reports never need one); ``None`` means
    #: resolved.
    _resolved: threading.Event | None = field(default=None, repr=False, compare=False)
    _left: int = field(default=0, repr=False, compare=False)
    _sender: type = field(default=object, repr=False, compare=False)

    @property
    def counts(self) -> dict[str, int]:
        return {
            "sent": len(self.sent),
            "gone": len(self.gone),
            "failed": len(self.failed),
            "pending": len(self.pending),
        }

    @property
    def total(self) -> int:
        """Recipients, each counted once (an undelivered pending one is in ``failed`` too)."""
        return (
            len(self.sent)
            + len(self.gone)
            + len(self.failed)
            + len(self.pending)
            - len(self.pending_undelivered)
        )

    @property
    def ok(self) -> bool:
        return not self.failed

    def wait_pending(self, timeout: float | None = None) -> bool:
        """Block until every pending recipient is delivered or given up; ``True`` if done."""
        resolved = self._resolved
        return True if resolved is None else resolved.wait(timeout)

    async def await_pending(self, timeout: float | None = None) -> bool:
        """:meth:`wait_pending` for async code (waits in a thread, not on the loop)."""
        resolved = self._resolved
        if resolved is None:
            return True
        return await asyncio.to_thread(resolved.wait, timeout)

    def __str__(self) -> str:
        pending = f", {len(self.pending)} pending" if self.pending else ""
        return (
            f"{self.operation}: {len(self.sent)} ok, {len(self.gone)} gone, "
            f"{len(self.failed)} failed{pending}, {self.retried} retried in {self.duration:.3f}s"
        )

    # pending bookkeeping (called by the pending worker)

    def _expect_pending(self, count: int) -> None:
        with self._lock:
            self._left += count
            if self._left:
                if self._resolved is None:
                    self._resolved = threading.Event()
                self._resolved.clear()

    def _resolve_pending(self, connection_id: str, delivered: bool, reason: str) -> Any:
        """Record one pending outcome; returns ``self`` when it was the last one."""
        with self._lock:
            if delivered:
                self.pending_delivered.append(connection_id)
            else:
                self.pending_undelivered.append(connection_id)
                self.failed[connection_id] = reason
            self._left -= 1
            return self if self._left <= 0 else None

    def _finish_pending(self) -> None:
        """Log and signal the pending recipients that were not delivered, then release
        :meth:`wait_pending` (called by the pending worker's thread)."""
        try:
            if self.pending_undelivered:
                sample = ", ".join(
                    f"{cid}: {self.failed.get(cid, '')}" for cid in self.pending_undelivered[:5]
                )
                logger.warning("%s (not delivered after the connect window: %s)", self, sample)
                signals.delivery_failed.send(sender=self._sender, report=self)
        finally:
            if self._resolved is not None:
                self._resolved.set()


def encode(data: Any) -> bytes:
    """``data`` as one WebSocket message: JSON (Django's encoder) unless already ``str``/``bytes``.

    Raises :class:`MessageTooLarge` before any request is made.
    """
    if isinstance(data, bytes):
        payload = data
    elif isinstance(data, str):
        payload = data.encode("utf-8")
    else:
        payload = json.dumps(data, cls=DjangoJSONEncoder, separators=(",", ":")).encode("utf-8")
    if len(payload) > contract.MAX_MESSAGE_BYTES:
        raise MessageTooLarge(len(payload))
    return payload


def _multivalued(query: Any) -> bool:
    """Does ``query`` join a many-to-many or reverse foreign key (so a row can repeat)?"""
    for join in query.alias_map.values():
        join_field = getattr(join, "join_field", None)
        if join_field is not None and (join_field.one_to_many or join_field.many_to_many):
            return True
    return False


def _recipient_rows(sessions: QuerySet[Any], fields: tuple[str, ...]) -> tuple[QuerySet[Any], bool]:
    """The ``values_list`` to stream, and whether rows must still be filtered and deduplicated
    in Python (a slice or a union can be neither filtered nor made distinct in SQL)."""
    if sessions.query.is_sliced or sessions.query.combinator:
        return sessions.values_list(*fields, "connected"), True
    rows = sessions.filter(connected=True).order_by().values_list(*fields)
    if _multivalued(rows.query):
        # e.g. user__groups__name__in=[...]: one row per matching group, one socket.
        rows = rows.distinct()
    return rows, False


def _unique_connected(rows: Iterable[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
    seen: set[Any] = set()
    for row in rows:
        if row[-1] and row[0] not in seen:
            seen.add(row[0])
            yield row[:-1]


def connected_values(sessions: QuerySet[Any], *fields: str) -> Iterator[tuple[Any, ...]]:
    """``fields`` of the connected sessions in ``sessions``, streamed in chunks, once per
    distinct first field (a join through a many-to-many would repeat rows otherwise)."""
    rows, in_python = _recipient_rows(sessions, fields)
    stream = rows.iterator(chunk_size=int(ws_settings.SEND_CHUNK_SIZE))
    yield from (_unique_connected(stream) if in_python else stream)


async def aconnected_values(
    sessions: QuerySet[Any], *fields: str
) -> AsyncIterator[tuple[Any, ...]]:
    """:func:`connected_values` for async code: each chunk is read in Django's thread for
    sync database work. (``QuerySet.aiterator()`` cannot be used: for ``values_list`` it runs
    the query on the event loop's thread.)"""
    rows, in_python = _recipient_rows(sessions, fields)
    chunk_size = int(ws_settings.SEND_CHUNK_SIZE)
    stream = rows.iterator(chunk_size=chunk_size)  # a generator: nothing runs until next()
    take = sync_to_async(lambda: list(islice(stream, chunk_size)))
    seen: set[Any] = set()
    while True:
        chunk = await take()
        for row in chunk:
            if in_python:
                if not row[-1] or row[0] in seen:
                    continue
                seen.add(row[0])
                row = row[:-1]
            yield row
        if len(chunk) < chunk_size:
            return


def _instance_rows(sessions: Iterable[WebSocketSession]) -> Iterator[Recipient]:
    seen: set[str] = set()
    for session in sessions:
        if session.connected and session.connection_id not in seen:
            seen.add(session.connection_id)
            yield session.connection_id, session.gateway_id, session.state, session.connected_at


def _rows(recipients: Any) -> Iterator[Recipient]:
    """The connected recipients, once per connection, streamed from the database."""
    if isinstance(recipients, QuerySet):
        yield from connected_values(recipients, *RECIPIENT_FIELDS)
    else:
        yield from _instance_rows(recipients)


async def _arows(recipients: Any) -> AsyncIterator[Recipient]:
    if isinstance(recipients, QuerySet):
        async for row in aconnected_values(recipients, *RECIPIENT_FIELDS):
            yield row
    else:
        for row in _instance_rows(recipients):
            yield row


def _chunks(rows: Iterator[Recipient], size: int) -> Iterator[list[Recipient]]:
    chunk: list[Recipient] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class _Run:
    """One operation over many recipients: submit by gateway, collect, write back."""

    def __init__(self, operation: str, payload: bytes, db_alias: str) -> None:
        self.operation = operation
        self.payload = payload
        self.transport: BaseTransport = get_transport()
        self.batch = self.transport.open(operation, payload)
        self.report = DeliveryReport(operation, _sender=type(self.transport))
        self.db_alias = db_alias
        self.data: dict[str, dict[str, Any] | None] = {}
        self._to_mark: list[str] = []
        self._to_open: list[str] = []
        #: Recipients connecting or in their connect window: connection id -> (state, target);
        #: the target only for those in the window (a 410 from them is not "gone").
        self._fresh: dict[str, tuple[str, Target | None]] = {}
        self._pending: list[tuple[str, Target]] = []
        self._grace_cutoff = timezone.now() - timedelta(
            seconds=float(ws_settings.CONNECT_GRACE_SECONDS)
        )
        self._started = time.perf_counter()
        # SQLite cannot safely update rows of a table it is still reading on the same connection.
        self._defer_writes = connections[db_alias].vendor == "sqlite"

    # the steps

    def _plan(self, chunk: list[Recipient]) -> list[tuple[Target, list[str]]]:
        """Group a chunk by gateway endpoint; note the recipients still in their connect window."""
        by_gateway: dict[int, list[str]] = {}
        fresh: list[tuple[str, int, str, bool]] = []
        cutoff = self._grace_cutoff
        for connection_id, gateway_id, state, connected_at in chunk:
            by_gateway.setdefault(gateway_id, []).append(connection_id)
            # $connect takes at most 29 s, so the window is judged by age; the state only says
            # whether a delivered message is news (the socket is now known to be open).
            in_window = connected_at is not None and connected_at >= cutoff
            if in_window or state == CONNECTING:
                fresh.append((connection_id, gateway_id, state, in_window))
        targets = {gateway_id: gateway_cache.target(gateway_id) for gateway_id in by_gateway}
        for connection_id, gateway_id, state, in_window in fresh:
            self._fresh[connection_id] = (state, targets[gateway_id] if in_window else None)
        plan = []
        for gateway_id, connection_ids in by_gateway.items():
            target = targets[gateway_id]
            if target is None:
                for connection_id in connection_ids:
                    self._record(
                        Result(connection_id, Outcome.FAILED, "UnknownGateway", attempts=0)
                    )
                continue
            plan.append((target, connection_ids))
        return plan

    def _record(self, result: Result) -> None:
        report = self.report
        connection_id = result.connection_id
        if result.attempts > 1:
            report.retried += 1
        fresh = self._fresh.get(connection_id)
        if result.outcome is Outcome.OK:
            report.sent.append(connection_id)
            if self.operation == GET:
                self.data[connection_id] = result.data
            if self.operation == DELETE:
                self._to_mark.append(connection_id)
            elif fresh is not None and fresh[0] == CONNECTING:
                self._to_open.append(connection_id)  # answered, so the socket is open
        elif result.outcome is Outcome.GONE and fresh is not None and fresh[1] is not None:
            # AWS cannot tell "not open yet" from "closed": in the connect window it is the former.
            report.pending.append(connection_id)
            self._pending.append((connection_id, fresh[1]))
            if self.operation == DELETE:
                self._to_mark.append(connection_id)  # closing it is decided; the socket follows
        elif result.outcome is Outcome.GONE:
            report.gone.append(connection_id)
            self._to_mark.append(connection_id)
        else:
            report.failed[connection_id] = result.reason or "unknown error"

    def _collect(self, results: list[Result]) -> None:
        for result in results:
            self._record(result)

    def _writes_due(self, final: bool = False) -> bool:
        if not (self._to_mark or self._to_open):
            return False
        return final or (
            not self._defer_writes and len(self._to_mark) + len(self._to_open) >= GONE_BATCH
        )

    def _write(self) -> None:
        """Mark gone sessions closed and answered connecting ones open, in batched UPDATEs."""
        from .models import WebSocketSession

        sessions = WebSocketSession.objects.using(self.db_alias)
        now = timezone.now()
        while self._to_mark:
            batch, self._to_mark = self._to_mark[:GONE_BATCH], self._to_mark[GONE_BATCH:]
            sessions.filter(connection_id__in=batch).mark_closed(now)
        while self._to_open:
            batch, self._to_open = self._to_open[:GONE_BATCH], self._to_open[GONE_BATCH:]
            sessions.filter(connection_id__in=batch).mark_open()

    def _settle(self) -> None:
        """Hand pending recipients to the background worker (sends and closes only)."""
        report = self.report
        report.duration = time.perf_counter() - self._started
        if not self._pending:
            return
        timeout = float(ws_settings.PENDING_DELIVERY_TIMEOUT)
        if self.operation == GET:
            return  # a probe has its answer: "not open yet"; nothing to deliver
        if timeout <= 0:
            for connection_id, _target in self._pending:
                report.pending_undelivered.append(connection_id)
                report.failed[connection_id] = NOT_OPENED_REASON
            return
        deadline = time.monotonic() + timeout
        report._expect_pending(len(self._pending))
        pending_deliveries.add(
            PendingItem(
                report,
                self.transport,
                self.operation,
                self.payload,
                target,
                connection_id,
                self.db_alias,
                deadline,
            )
            for connection_id, target in self._pending
        )

    def _failure_summary(self) -> str:
        sample = ", ".join(f"{cid}: {why}" for cid, why in list(self.report.failed.items())[:5])
        return f"{self.report} (first failures: {sample})"

    # sync

    def run(self, rows: Iterator[Recipient]) -> DeliveryReport:
        for chunk in _chunks(rows, int(ws_settings.SEND_CHUNK_SIZE)):
            for target, connection_ids in self._plan(chunk):
                self.batch.submit(target, connection_ids)
            self._collect(self.batch.completed())
            if self._writes_due():
                self._write()
        self._collect(self.batch.finish())
        if self._writes_due(final=True):
            self._write()
        self._settle()
        if self.report.failed:
            logger.warning("%s", self._failure_summary())
            signals.delivery_failed.send(sender=type(self.transport), report=self.report)
        return self.report

    # async: the same steps, with the database reached through threads and the transport's
    # batch awaited from the caller's loop

    async def arun(self, rows: AsyncIterator[Recipient]) -> DeliveryReport:
        size = int(ws_settings.SEND_CHUNK_SIZE)
        chunk: list[Recipient] = []
        async for row in rows:
            chunk.append(row)
            if len(chunk) >= size:
                await self._asubmit(chunk)
                chunk = []
        if chunk:
            await self._asubmit(chunk)
        self._collect(await self.batch.afinish())
        if self._writes_due(final=True):
            await sync_to_async(self._write)()
        self._settle()
        if self.report.failed:
            logger.warning("%s", self._failure_summary())
            await signals.delivery_failed.asend(sender=type(self.transport), report=self.report)
        return self.report

    async def _asubmit(self, chunk: list[Recipient]) -> None:
        for target, connection_ids in await sync_to_async(self._plan)(chunk):
            await self.batch.asubmit(target, connection_ids)
        self._collect(self.batch.completed())
        if self._writes_due():
            await sync_to_async(self._write)()


def _db_alias(recipients: Any) -> str:
    if isinstance(recipients, QuerySet):
        return recipients.db
    from .models import WebSocketSession

    return router.db_for_write(WebSocketSession)


def send_message(recipients: Any, data: Any) -> DeliveryReport:
    """Post ``data`` to every connected recipient; the report says what happened to each."""
    refuse_in_event_loop("send_message", "asend_message")
    payload = encode(data)
    return _Run(POST, payload, _db_alias(recipients)).run(_rows(recipients))


async def asend_message(recipients: Any, data: Any) -> DeliveryReport:
    """:func:`send_message` for async code: awaits the answers without blocking the loop."""
    payload = encode(data)
    run = await sync_to_async(_Run)(POST, payload, _db_alias(recipients))
    return await run.arun(_arows(recipients))


def close_connections(recipients: Any) -> DeliveryReport:
    """DeleteConnection for every connected recipient, then mark them disconnected."""
    refuse_in_event_loop("close", "aclose")
    return _Run(DELETE, b"", _db_alias(recipients)).run(_rows(recipients))


async def aclose_connections(recipients: Any) -> DeliveryReport:
    """:func:`close_connections` for async code."""
    run = await sync_to_async(_Run)(DELETE, b"", _db_alias(recipients))
    return await run.arun(_arows(recipients))


def probe_connections(recipients: Any) -> tuple[DeliveryReport, dict[str, dict[str, Any] | None]]:
    """GetConnection for every connected recipient; gone ones are marked disconnected.

    Returns the report and GetConnection's answer for each live connection.
    """
    refuse_in_event_loop("probe_connections", "aprobe_connections")
    run = _Run(GET, b"", _db_alias(recipients))
    report = run.run(_rows(recipients))
    return report, run.data


async def aprobe_connections(
    recipients: Any,
) -> tuple[DeliveryReport, dict[str, dict[str, Any] | None]]:
    """:func:`probe_connections` for async code."""
    run = await sync_to_async(_Run)(GET, b"", _db_alias(recipients))
    report = await run.arun(_arows(recipients))
    return report, run.data


def is_connected(session: WebSocketSession) -> bool:
    """Ask API Gateway whether ``session`` is still open, and record its answer.

    A live connection refreshes ``last_seen_at`` from ``lastActiveAt``; a gone one is marked
    disconnected. A connection still in its connect window counts as connected: API Gateway
    answers 410 until the socket opens. Raises :class:`ConnectionProbeFailed` when AWS gives no
    answer either way.
    """
    refuse_in_event_loop("is_connected", "ais_connected")
    if not session.connected:
        return False
    report, data = probe_connections([session])
    return _probe_answer(session, report, record_last_active(data))


async def ais_connected(session: WebSocketSession) -> bool:
    """:func:`is_connected` for async code."""
    if not session.connected:
        return False
    report, data = await aprobe_connections([session])
    return _probe_answer(session, report, await sync_to_async(record_last_active)(data))


def _probe_answer(
    session: WebSocketSession, report: DeliveryReport, seen: dict[str, datetime]
) -> bool:
    if session.connection_id in report.gone:
        session._closed_locally()
        return False
    if session.connection_id in report.failed:
        raise ConnectionProbeFailed(report.failed[session.connection_id])
    if session.connection_id in seen:
        session.last_seen_at = max(session.last_seen_at, seen[session.connection_id])
    return True


def record_last_active(answers: dict[str, dict[str, Any] | None]) -> dict[str, datetime]:
    """Move ``last_seen_at`` forward to GetConnection's ``lastActiveAt`` for each answer."""
    from .models import WebSocketSession

    seen = {}
    for connection_id, answer in answers.items():
        last_active = _parse_time((answer or {}).get("lastActiveAt"))
        if last_active is not None:
            seen[connection_id] = last_active
    ids = list(seen)
    for start in range(0, len(ids), GONE_BATCH):
        sessions = WebSocketSession.objects.filter(
            connection_id__in=ids[start : start + GONE_BATCH]
        ).only("pk", "connection_id", "last_seen_at")
        changed = []
        for session in sessions:
            if seen[session.connection_id] > session.last_seen_at:
                session.last_seen_at = seen[session.connection_id]
                changed.append(session)
        WebSocketSession.objects.bulk_update(changed, ["last_seen_at"])
    return seen


def _parse_time(value: Any) -> datetime | None:
    """A GetConnection timestamp (ISO 8601 or epoch seconds, UTC) as this project stores
    datetimes: aware with ``USE_TZ = True``, naive local time (``TIME_ZONE``) without."""
    parsed: datetime | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        parsed = datetime.fromtimestamp(value, tz=dt_timezone.utc)
    elif isinstance(value, str):
        parsed = parse_datetime(value)
        if parsed is not None and timezone.is_naive(parsed):
            parsed = timezone.make_aware(parsed, dt_timezone.utc)
    if parsed is not None and not settings.USE_TZ:
        parsed = timezone.make_naive(parsed, timezone.get_default_timezone())
    return parsed
