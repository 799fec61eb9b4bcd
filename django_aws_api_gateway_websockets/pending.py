"""Background delivery to connections that are still opening.

API Gateway opens a socket only after ``$connect`` has answered, and until then it answers 410 to
anything sent to that connection id, exactly as it does for a closed one. :mod:`.sending` never
takes such a 410 for "gone" while the session is in its connect window; for a send (or a close)
it hands the recipient to the :data:`pending_deliveries` worker instead, which retries it with
back-off, without blocking the caller, until the socket opens or ``PENDING_DELIVERY_TIMEOUT``
runs out. This is what lets a ``connected`` signal receiver greet the new connection during its
own ``$connect`` request: the retries can only succeed after that request has returned.

One daemon thread per process holds the retries. Messages queued for one connection are delivered
in the order they were sent. A process that exits waits for the queued retries (each bounded by its
deadline) before it ends, so management commands and task workers do not drop them silently.
"""

from __future__ import annotations

import atexit
import heapq
import itertools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db import DatabaseError, connections

from .transports import POST, BaseTransport, Outcome, Result, Target

if TYPE_CHECKING:
    from .sending import DeliveryReport

logger = logging.getLogger("django_aws_api_gateway_websockets.sending")

#: The first retry waits this long; the wait doubles up to :data:`MAX_DELAY`.
FIRST_DELAY = 0.05
#: Short, so a socket that opens is served within half a second.
MAX_DELAY = 0.5
#: The reason recorded in ``report.failed`` for a connection that never opened in time.
NOT_OPENED_REASON = "GoneException: the connection did not open within PENDING_DELIVERY_TIMEOUT"


@dataclass
class PendingItem:
    """One message (or close) waiting for one connection to open."""

    report: DeliveryReport
    transport: BaseTransport
    operation: str
    payload: bytes
    target: Target
    connection_id: str
    db_alias: str
    deadline: float
    delay: float = FIRST_DELAY


class PendingDeliveries:
    """The per-process queue of retries for connections that are still opening."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queues: dict[str, deque[PendingItem]] = {}
        self._due: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._exit_hook = False

    def add(self, items: Iterable[PendingItem]) -> None:
        """Queue ``items``; their first retry follows shortly."""
        with self._cond:
            self._ensure_thread()
            when = time.monotonic() + FIRST_DELAY
            for item in items:
                queue = self._queues.get(item.connection_id)
                if queue is None:
                    self._queues[item.connection_id] = deque([item])
                    self._schedule(item.connection_id, when)
                else:
                    queue.append(item)  # after the earlier ones: order is kept
            self._cond.notify()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until nothing is queued (each item is bounded by its deadline)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queues, timeout)

    @property
    def waiting(self) -> int:
        with self._cond:
            return sum(len(queue) for queue in self._queues.values())

    # internals (lock held unless said otherwise)

    def _schedule(self, connection_id: str, when: float) -> None:
        heapq.heappush(self._due, (when, next(self._seq), connection_id))

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
            return
        if self._pid != os.getpid():
            # A forked child inherits the parent's queue but not its thread: start afresh.
            self._queues, self._due = {}, []
        self._pid = os.getpid()
        self._thread = threading.Thread(target=self._run, name="dagw-pending", daemon=True)
        self._thread.start()
        if not self._exit_hook:
            atexit.register(self.join)
            self._exit_hook = True

    def _take_due(self) -> list[PendingItem]:
        with self._cond:
            while True:
                now = time.monotonic()
                if self._due and self._due[0][0] <= now:
                    break
                self._cond.wait(self._due[0][0] - now if self._due else None)
            due = []
            while self._due and self._due[0][0] <= now:
                _when, _seq, connection_id = heapq.heappop(self._due)
                queue = self._queues.get(connection_id)
                if queue:
                    due.append(queue[0])
            return due

    def _run(self) -> None:
        while True:
            due = self._take_due()
            try:
                self._attempt(due)
            except Exception:  # never let the worker die: the queue would stall for ever
                logger.exception("Pending delivery failed unexpectedly")
                with self._cond:
                    done = [self._resolve(item, False, "unexpected error") for item in due]
                    self._cond.notify_all()
                for report in done:
                    if report is not None:
                        report._finish_pending()

    def _attempt(self, due: list[PendingItem]) -> None:
        """Try the head item of every due connection; one batch per message and endpoint."""
        groups: dict[tuple[int, str, bytes, Target], list[PendingItem]] = {}
        for item in due:
            key = (id(item.transport), item.operation, item.payload, item.target)
            groups.setdefault(key, []).append(item)
        outcomes: dict[int, Result | str] = {}
        for items in groups.values():
            first = items[0]
            try:
                ids = [item.connection_id for item in items]
                answers = first.transport.call(first.operation, first.target, ids, first.payload)
                results = {r.connection_id: r for r in answers}
            except Exception as exc:  # no credentials, a broken transport: final for these
                for item in items:
                    outcomes[id(item)] = type(exc).__name__
                continue
            for item in items:
                outcomes[id(item)] = results.get(item.connection_id) or "no result"
        # The socket is open where a message got through: record it before anyone waiting on
        # the report sees the delivery.
        opened: dict[str, list[str]] = {}
        for item in due:
            outcome = outcomes[id(item)]
            if item.operation == POST and _is(outcome, Outcome.OK):
                opened.setdefault(item.db_alias, []).append(item.connection_id)
        self._mark_open(opened)
        announce: list[DeliveryReport] = []
        with self._cond:
            now = time.monotonic()
            for item in due:
                outcome = outcomes[id(item)]
                if _is(outcome, Outcome.OK):
                    done = self._resolve(item, True, "")
                elif _is(outcome, Outcome.GONE):
                    if now < item.deadline:
                        item.delay = min(item.delay * 2, MAX_DELAY)
                        self._schedule(item.connection_id, min(now + item.delay, item.deadline))
                        continue
                    done = self._resolve(item, False, NOT_OPENED_REASON)
                else:
                    reason = outcome.reason if isinstance(outcome, Result) else outcome
                    done = self._resolve(item, False, reason or "unknown error")
                if done is not None:
                    announce.append(done)
            self._cond.notify_all()
        for report in announce:
            report._finish_pending()

    def _resolve(self, item: PendingItem, delivered: bool, reason: str) -> DeliveryReport | None:
        """Drop ``item`` from its queue and tell its report; the next item of the connection is
        due at once. Returns the report once all its pending recipients are settled (lock held)."""
        queue = self._queues.get(item.connection_id)
        if queue and queue[0] is item:
            queue.popleft()
            if queue:
                self._schedule(item.connection_id, time.monotonic())
            else:
                del self._queues[item.connection_id]
        resolved: DeliveryReport | None = item.report._resolve_pending(
            item.connection_id, delivered, reason
        )
        return resolved

    @staticmethod
    def _mark_open(opened: dict[str, list[str]]) -> None:
        """Sessions whose first message just arrived have an open socket: record it."""
        if not opened:
            return
        from .models import WebSocketSession

        try:
            for alias, connection_ids in opened.items():
                WebSocketSession.objects.using(alias).filter(
                    connection_id__in=connection_ids
                ).mark_open()
        except DatabaseError:
            logger.warning("Could not mark delivered sessions open", exc_info=True)
        finally:
            connections.close_all()  # this thread's connections only


def _is(outcome: Result | str, expected: Outcome) -> bool:
    return isinstance(outcome, Result) and outcome.outcome is expected


#: The process-wide worker.
pending_deliveries = PendingDeliveries()
