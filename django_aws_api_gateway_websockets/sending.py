"""Outbound calls to connections: send, close and probe, with a delivery report for each.

This module streams recipients from the database, groups them by gateway endpoint, hands them to
the configured transport (:mod:`.transports`) and writes back what AWS said: connections that are
gone are marked disconnected with one UPDATE per batch. It never needs to know which transport is
active, and the models never need to know how sending works.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from datetime import timezone as dt_timezone
from typing import TYPE_CHECKING, Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connections
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from . import contract, signals
from .conf import ws_settings
from .gateways import gateway_cache
from .transports import DELETE, GET, POST, Outcome, Result, get_transport

if TYPE_CHECKING:
    from .models import WebSocketSession

logger = logging.getLogger("django_aws_api_gateway_websockets.sending")

#: Gone connections are marked disconnected in UPDATEs of at most this many ids.
GONE_BATCH = 1000

#: Connection ids whose ``$connect`` this context is still handling. API Gateway answers 410 for
#: them (the socket opens only after ``$connect`` returns), which must not mark them disconnected.
_connecting: ContextVar[frozenset[str]] = ContextVar("dagw_connecting", default=frozenset())
IN_CONNECT_REASON = "GoneException: still in $connect; send after it returns"


@contextmanager
def connect_in_progress(connection_id: str) -> Iterator[None]:
    token = _connecting.set(_connecting.get() | {connection_id})
    try:
        yield
    finally:
        _connecting.reset(token)


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
    #: Recipients that needed more than one attempt (throttled or transient errors).
    retried: int = 0
    duration: float = 0.0

    @property
    def counts(self) -> dict[str, int]:
        return {"sent": len(self.sent), "gone": len(self.gone), "failed": len(self.failed)}

    @property
    def total(self) -> int:
        return len(self.sent) + len(self.gone) + len(self.failed)

    @property
    def ok(self) -> bool:
        return not self.failed

    def __str__(self) -> str:
        return (
            f"{self.operation}: {len(self.sent)} ok, {len(self.gone)} gone, "
            f"{len(self.failed)} failed, {self.retried} retried in {self.duration:.3f}s"
        )


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


def connected_values(sessions: QuerySet[Any], *fields: str) -> Iterator[tuple[Any, ...]]:
    """``fields`` of the connected sessions in ``sessions``, streamed in chunks."""
    chunk_size = int(ws_settings.SEND_CHUNK_SIZE)
    if sessions.query.is_sliced or sessions.query.combinator:
        # A slice or union cannot be filtered further: skip disconnected rows here.
        rows = sessions.values_list(*fields, "connected").iterator(chunk_size=chunk_size)
        yield from (row[:-1] for row in rows if row[-1])
    else:
        rows = sessions.filter(connected=True).order_by().values_list(*fields)
        yield from rows.iterator(chunk_size=chunk_size)


def _rows(recipients: Any) -> Iterator[tuple[str, int]]:
    """``(connection_id, gateway_id)`` of connected recipients, streamed from the database."""
    if isinstance(recipients, QuerySet):
        yield from connected_values(recipients, "connection_id", "gateway_id")  # type: ignore[misc]
    else:
        for session in recipients:
            if session.connected:
                yield session.connection_id, session.gateway_id


def _chunks(rows: Iterator[tuple[str, int]], size: int) -> Iterator[list[tuple[str, int]]]:
    chunk: list[tuple[str, int]] = []
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
        self.transport = get_transport()
        self.batch = self.transport.open(operation, payload)
        self.report = DeliveryReport(operation)
        self.db_alias = db_alias
        self.data: dict[str, dict[str, Any] | None] = {}
        self._to_mark: list[str] = []
        # SQLite cannot safely update rows of a table it is still reading on the same connection.
        self._defer_writes = connections[db_alias].vendor == "sqlite"

    def run(self, rows: Iterator[tuple[str, int]]) -> DeliveryReport:
        started = time.perf_counter()
        for chunk in _chunks(rows, int(ws_settings.SEND_CHUNK_SIZE)):
            by_gateway: dict[int, list[str]] = {}
            for connection_id, gateway_id in chunk:
                by_gateway.setdefault(gateway_id, []).append(connection_id)
            for gateway_id, connection_ids in by_gateway.items():
                target = gateway_cache.target(gateway_id)
                if target is None:
                    for connection_id in connection_ids:
                        self._record(
                            Result(connection_id, Outcome.FAILED, "UnknownGateway", attempts=0)
                        )
                    continue
                self.batch.submit(target, connection_ids)
            self._collect(self.batch.completed())
        self._collect(self.batch.finish(), final=True)
        self.report.duration = time.perf_counter() - started
        self._announce()
        return self.report

    def _record(self, result: Result) -> None:
        report = self.report
        if result.attempts > 1:
            report.retried += 1
        if result.outcome is Outcome.OK:
            report.sent.append(result.connection_id)
            if self.operation == GET:
                self.data[result.connection_id] = result.data
            if self.operation == DELETE:
                self._to_mark.append(result.connection_id)
        elif result.outcome is Outcome.GONE and result.connection_id in _connecting.get():
            report.failed[result.connection_id] = IN_CONNECT_REASON
        elif result.outcome is Outcome.GONE:
            report.gone.append(result.connection_id)
            self._to_mark.append(result.connection_id)
        else:
            report.failed[result.connection_id] = result.reason or "unknown error"

    def _collect(self, results: list[Result], final: bool = False) -> None:
        for result in results:
            self._record(result)
        if final or (not self._defer_writes and len(self._to_mark) >= GONE_BATCH):
            self._mark_disconnected()

    def _mark_disconnected(self) -> None:
        from .models import WebSocketSession

        now = timezone.now()
        while self._to_mark:
            batch, self._to_mark = self._to_mark[:GONE_BATCH], self._to_mark[GONE_BATCH:]
            WebSocketSession.objects.using(self.db_alias).filter(
                connection_id__in=batch
            ).mark_closed(now)

    def _announce(self) -> None:
        report = self.report
        if not report.failed:
            return
        sample = ", ".join(f"{cid}: {why}" for cid, why in list(report.failed.items())[:5])
        logger.warning("%s (first failures: %s)", report, sample)
        signals.delivery_failed.send(sender=type(self.transport), report=report)


def _db_alias(recipients: Any) -> str:
    return recipients.db if isinstance(recipients, QuerySet) else "default"


def send_message(recipients: Any, data: Any) -> DeliveryReport:
    """Post ``data`` to every connected recipient; the report says what happened to each."""
    payload = encode(data)
    return _Run(POST, payload, _db_alias(recipients)).run(_rows(recipients))


def close_connections(recipients: Any) -> DeliveryReport:
    """DeleteConnection for every connected recipient, then mark them disconnected."""
    return _Run(DELETE, b"", _db_alias(recipients)).run(_rows(recipients))


def probe_connections(recipients: Any) -> tuple[DeliveryReport, dict[str, dict[str, Any] | None]]:
    """GetConnection for every connected recipient; gone ones are marked disconnected.

    Returns the report and GetConnection's answer for each live connection.
    """
    run = _Run(GET, b"", _db_alias(recipients))
    report = run.run(_rows(recipients))
    return report, run.data


def is_connected(session: WebSocketSession) -> bool:
    """Ask API Gateway whether ``session`` is still open, and record its answer.

    A live connection refreshes ``last_seen_at`` from ``lastActiveAt``; a gone one is marked
    disconnected. Raises :class:`ConnectionProbeFailed` when AWS gives no answer either way.
    """
    if not session.connected:
        return False
    report, data = probe_connections([session])
    if session.connection_id in report.gone:
        session._closed_locally()
        return False
    if session.connection_id in report.failed:
        raise ConnectionProbeFailed(report.failed[session.connection_id])
    seen = record_last_active(data)
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
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, tz=dt_timezone.utc)
    if isinstance(value, str):
        parsed = parse_datetime(value)
        if parsed is not None and timezone.is_naive(parsed):
            parsed = timezone.make_aware(parsed, dt_timezone.utc)
        return parsed
    return None
