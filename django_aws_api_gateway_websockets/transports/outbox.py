"""An in-memory transport for tests, in the spirit of Django's ``locmem`` e-mail backend.

Every message is recorded by connection id in :data:`outbox`; a test can make chosen connections
answer as API Gateway would when they are gone, throttled, failing or sent too much::

    from django_aws_api_gateway_websockets.transports import outbox

    outbox.reset()
    outbox.gone("abc=")              # 410 GoneException
    outbox.throttle("def=", times=1) # one 429, then delivered on the retry
    outbox.fail("xyz=", status=403, reason="ForbiddenException")  # fails at once
    outbox.connecting("new=")        # 410 while in $connect, until outbox.open("new=")
    session.send_message({"hello": "world"})
    assert outbox.messages("ghi=") == [{"hello": "world"}]
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from .. import contract
from . import DELETE, GET, POST, BaseTransport, Batch, Outcome, Result, Target, classify


class Outbox:
    """What the outbox transport received, and the faults it should simulate."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.sent: dict[str, list[bytes]] = defaultdict(list)
            self.targets: dict[str, Target] = {}
            self.closed: set[str] = set()
            self._gone: set[str] = set()
            self._connecting: set[str] = set()
            self._faults: dict[str, list[tuple[int, str]]] = {}

    # faults

    def gone(self, *connection_ids: str) -> None:
        """These connections answer 410 GoneException from now on."""
        with self._lock:
            self._gone.update(connection_ids)

    def connecting(self, *connection_ids: str) -> None:
        """These connections are still in ``$connect``: they answer 410 until :meth:`open`."""
        with self._lock:
            self._connecting.update(connection_ids)

    def open(self, *connection_ids: str) -> None:
        """API Gateway opened these sockets (``$connect`` returned): they accept messages."""
        with self._lock:
            self._connecting.difference_update(connection_ids)

    def throttle(self, *connection_ids: str, times: int = 1) -> None:
        """These connections answer 429 LimitExceededException ``times`` times, then succeed."""
        self._add_fault(connection_ids, (429, "LimitExceededException"), times)

    def fail(
        self,
        *connection_ids: str,
        status: int = 500,
        reason: str = "InternalServerErrorException",
        times: int = 1,
    ) -> None:
        """These connections answer ``status`` with error code ``reason`` ``times`` times.

        Transports retry 5xx and throttling answers (so a fault shorter than the attempt limit
        is eventually delivered); any other status, such as 403, fails at once.
        """
        self._add_fault(connection_ids, (status, reason), times)

    def _add_fault(self, connection_ids: Iterable[str], fault: tuple[int, str], times: int) -> None:
        with self._lock:
            for connection_id in connection_ids:
                self._faults.setdefault(connection_id, []).extend([fault] * times)

    # reading

    def messages(self, connection_id: str) -> list[Any]:
        """Messages delivered to ``connection_id``, decoded from JSON where they are JSON."""
        decoded = []
        for raw in self.sent.get(connection_id, []):
            text = raw.decode("utf-8")
            try:
                decoded.append(json.loads(text))
            except ValueError:
                decoded.append(text)
        return decoded

    @property
    def total(self) -> int:
        return sum(len(messages) for messages in self.sent.values())

    # the transport's side

    def attempt(
        self, operation: str, target: Target, connection_id: str, payload: bytes
    ) -> tuple[int, str]:
        """One request: the HTTP status and error code API Gateway would answer."""
        with self._lock:
            if (
                connection_id in self._gone
                or connection_id in self.closed
                or connection_id in self._connecting
            ):
                return 410, "GoneException"
            faults = self._faults.get(connection_id)
            if faults:
                return faults.pop(0)
            if operation == POST:
                if len(payload) > contract.MAX_MESSAGE_BYTES:
                    return 413, "PayloadTooLargeException"
                self.sent[connection_id].append(payload)
                self.targets[connection_id] = target
            elif operation == DELETE:
                self.closed.add(connection_id)
            return (204 if operation == DELETE else 200), ""


#: The process-wide outbox the transport records into.
outbox = Outbox()


class _OutboxBatch(Batch):
    def __init__(self, transport: OutboxTransport, operation: str, payload: bytes) -> None:
        self.transport = transport
        self.operation = operation
        self.payload = payload
        self._results: list[Result] = []

    def submit(self, target: Target, connection_ids: Sequence[str]) -> None:
        for connection_id in connection_ids:
            self._results.append(self._deliver(target, connection_id))

    def _deliver(self, target: Target, connection_id: str) -> Result:
        attempt = 0
        while True:
            attempt += 1
            status, code = outbox.attempt(self.operation, target, connection_id, self.payload)
            outcome = classify(status, code)
            if outcome is None and attempt < self.transport.max_attempts:
                continue  # the real transport backs off here; time does not matter in memory
            data: dict[str, Any] | None = None
            if outcome is Outcome.OK and self.operation == GET:
                data = {"connectedAt": None, "identity": {}, "lastActiveAt": None}
            return Result(connection_id, outcome or Outcome.FAILED, code, attempt, data)

    def completed(self) -> list[Result]:
        results, self._results = self._results, []
        return results

    def finish(self) -> list[Result]:
        return self.completed()

    async def asubmit(self, target: Target, connection_ids: Sequence[str]) -> None:
        self.submit(target, connection_ids)  # in memory: nothing to wait for

    async def afinish(self) -> list[Result]:
        return self.finish()


class OutboxTransport(BaseTransport):
    """Records messages in :data:`outbox` instead of calling AWS."""

    def __init__(self, *, max_attempts: int = 8, **_ignored: Any) -> None:
        self.max_attempts = max(1, int(max_attempts))

    def open(self, operation: str, payload: bytes = b"") -> Batch:
        return _OutboxBatch(self, operation, payload)
