"""A fast, faithful fake of the API Gateway Management API (``apigatewaymanagementapi``).

It answers ``POST``/``GET``/``DELETE`` on ``<base path>/@connections/<id>`` (also
``%40connections``) the way AWS does as far as botocore can tell (``aws-websocket-apis.md``,
section 3): 200 / 200 JSON / 204 on success; 410 ``GoneException`` with an empty body; 403
``ForbiddenException`` for a wrong path or a missing SigV4 ``Authorization`` header; 413
``PayloadTooLargeException`` above 131072 bytes; 400 ``BadRequestException`` for a malformed id;
injected 429/500 faults.

It is a raw ``asyncio.Protocol`` HTTP/1.1 server (keep-alive, pipelining, ``Content-Length`` and
chunked request bodies), stdlib only, fast enough for benchmarks (tens of thousands of requests/s).

In tests::

    with ManagementApiServer() as server:
        server.add_connection("L0SM9cOFvHcCIhw=")
        client = boto3.client("apigatewaymanagementapi", endpoint_url=server.url, ...)

For benchmarks, as a separate process (prints its URL on the first line of stdout)::

    python -m tests.management_api --port 0 --latency 0.02 --auto-connect --no-record

``GET /_fake/stats`` (no auth) returns the counters as JSON, so another process can read them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import signal
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import formatdate
from http import HTTPStatus
from random import getrandbits
from types import TracebackType
from typing import Any
from urllib.parse import unquote

__all__ = ["MAX_PAYLOAD", "Connection", "ManagementApiServer", "main"]

MAX_PAYLOAD = 131072
"""Largest ``Data`` accepted by PostToConnection (128 KB); larger answers 413."""
CONNECTION_ID_RE = re.compile(r"[A-Za-z0-9_=-]{1,128}")
AUTH_PREFIX = "AWS4-HMAC-SHA256 Credential="
STATS_PATH = "/_fake/stats"
MAX_HEAD = 65536
MAX_BODY = 16 * 1024 * 1024

ERROR_TYPES = {
    400: "BadRequestException",
    403: "ForbiddenException",
    410: "GoneException",
    413: "PayloadTooLargeException",
    429: "LimitExceededException",
    500: "InternalServerErrorException",
    503: "ServiceUnavailableException",
}
ERROR_MESSAGES = {
    400: "Bad Request",
    403: "Forbidden",
    413: "Request Entity Too Large",
    429: "Too Many Requests",
    500: "Internal server error",
    503: "Service Unavailable",
}
_REASONS = {s.value: s.phrase for s in HTTPStatus}
_MARKERS = ("/@connections/", "/%40connections/")


def _request_id() -> str:
    """Return a random UUID4 string (cheaper than ``str(uuid.uuid4())``)."""
    h = f"{getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


_date_cache: list[Any] = [0, ""]


def _http_date() -> str:
    """Return the ``Date`` header value, recomputed at most once a second."""
    now = int(time.time())
    if now != _date_cache[0]:
        _date_cache[0], _date_cache[1] = now, formatdate(now, usegmt=True)
    return _date_cache[1]


def _iso(ts: float) -> str:
    """Format a POSIX timestamp as AWS does: ``2024-01-02T03:04:05.678Z``."""
    dt = datetime.fromtimestamp(ts, timezone.utc)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ids(ids: str | Iterable[str]) -> list[str]:
    return [ids] if isinstance(ids, str) else list(ids)


@dataclass
class Connection:
    """A connection known to the fake (what GetConnection reports)."""

    connection_id: str
    source_ip: str = "203.0.113.1"
    user_agent: str = "test"
    connected_at: float = 0.0
    last_active_at: float = 0.0

    def as_json(self) -> bytes:
        """Return the GetConnection response body."""
        return json.dumps(
            {
                "connectedAt": _iso(self.connected_at),
                "identity": {"sourceIp": self.source_ip, "userAgent": self.user_agent},
                "lastActiveAt": _iso(self.last_active_at),
            },
            separators=(",", ":"),
        ).encode()


class _Request:
    """A parsed request head (kept on the connection while its body arrives)."""

    __slots__ = (
        "auth",
        "body_start",
        "chunked",
        "expect",
        "keep_alive",
        "length",
        "method",
        "target",
    )

    def __init__(self) -> None:
        self.method = self.target = ""
        self.auth: str | None = None
        self.keep_alive = True
        self.chunked = self.expect = False
        self.length = 0
        self.body_start = 0


_HEADER_RE = re.compile(
    rb"\r\n(content-length|authorization|connection|transfer-encoding|expect)[ \t]*:[ \t]*([^\r]*)",
    re.IGNORECASE,
)


def _parse_head(head: bytes) -> _Request | None:
    """Parse a request line and the few headers that matter; ``None`` when malformed."""
    eol = head.find(b"\r\n")
    parts = (head if eol < 0 else head[:eol]).decode("latin-1").split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return None
    req = _Request()
    req.method, req.target = parts[0], parts[1]
    headers: dict[bytes, bytes] = {}
    for name, value in _HEADER_RE.findall(head):
        headers.setdefault(name.lower(), value.rstrip())
    length = headers.get(b"content-length")
    if length is not None:
        if not length.isdigit():
            return None
        req.length = int(length)
    auth = headers.get(b"authorization")
    req.auth = None if auth is None else auth.decode("latin-1")
    req.chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
    req.expect = headers.get(b"expect", b"").lower() == b"100-continue"
    connection = headers.get(b"connection")
    if connection is None:
        req.keep_alive = parts[2] != "HTTP/1.0"
    else:
        connection = connection.lower()
        req.keep_alive = b"close" not in connection and (
            parts[2] != "HTTP/1.0" or b"keep-alive" in connection
        )
    return req


def _parse_chunked(buf: bytearray, pos: int) -> tuple[bytes, int] | None:
    """Decode a chunked body starting at ``pos``; ``None`` if incomplete. Raises ValueError."""
    chunks: list[bytes] = []
    size_total = 0
    n = len(buf)
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            if n - pos > 1024:
                raise ValueError("chunk size line too long")
            return None
        size = int(bytes(buf[pos:eol]).split(b";", 1)[0].strip(), 16)
        pos = eol + 2
        if size == 0:
            if buf.startswith(b"\r\n", pos):
                return b"".join(chunks), pos + 2
            end = buf.find(b"\r\n\r\n", pos)  # trailers
            return None if end < 0 else (b"".join(chunks), end + 4)
        size_total += size
        if size_total > MAX_BODY:
            raise ValueError("body too large")
        if n < pos + size + 2:
            return None
        if buf[pos + size : pos + size + 2] != b"\r\n":
            raise ValueError("bad chunk terminator")
        chunks.append(bytes(buf[pos : pos + size]))
        pos += size + 2


class _HttpProtocol(asyncio.Protocol):
    """One client connection: parses pipelined requests and writes responses in order."""

    def __init__(self, server: ManagementApiServer, loop: asyncio.AbstractEventLoop) -> None:
        self._server = server
        self._loop = loop
        self._buf = bytearray()
        self._req: _Request | None = None
        self._pending: deque[list[Any]] = deque()
        self._closing = False
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._server._protocols.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._server._protocols.discard(self)
        self._closing = True
        self._pending.clear()

    def pause_writing(self) -> None:
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None and not self._closing:
            self._transport.resume_reading()

    def abort(self) -> None:
        """Drop the connection at once (used when the server stops)."""
        if self._transport is not None:
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        buf = self._buf
        buf += data
        server = self._server
        out: list[bytes] = []
        close = False
        pos = 0
        n = len(buf)
        while pos < n:
            req = self._req
            if req is None:
                end = buf.find(b"\r\n\r\n", pos)
                if end < 0:
                    if n - pos > MAX_HEAD:
                        out.append(server._error(431, keep_alive=False))
                        close = True
                    break
                req = _parse_head(bytes(buf[pos:end]))
                if req is None or req.length > MAX_BODY:
                    status = 400 if req is None else 413
                    out.append(server._error(status, keep_alive=False))
                    close = True
                    break
                req.body_start = end + 4
                self._req = req
            if req.chunked:
                try:
                    parsed = _parse_chunked(buf, req.body_start)
                except ValueError:
                    out.append(server._error(400, keep_alive=False))
                    close = True
                    break
                if parsed is None:
                    self._maybe_continue(req)
                    break
                body, next_pos = parsed
            else:
                next_pos = req.body_start + req.length
                if n < next_pos:
                    self._maybe_continue(req)
                    break
                body = bytes(buf[req.body_start : next_pos]) if req.length else b""
            self._req = None
            pos = next_pos
            out.append(server._handle(req.method, req.target, req.auth, body, req.keep_alive))
            if not req.keep_alive:
                close = True
                break
        if pos:
            del buf[:pos]
            if self._req is not None:
                self._req.body_start -= pos
        if close:
            self._closing = True
        if out:
            self._send(b"".join(out) if len(out) > 1 else out[0], close)

    def _maybe_continue(self, req: _Request) -> None:
        if req.expect and not self._pending and self._transport is not None:
            req.expect = False
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _send(self, data: bytes, close: bool) -> None:
        latency = self._server.latency
        if latency <= 0 and not self._pending:
            self._write(data, close)
            return
        slot: list[Any] = [None, close]
        self._pending.append(slot)
        if latency > 0:
            self._loop.call_later(latency, self._release, slot, data)
        else:
            self._release(slot, data)

    def _release(self, slot: list[Any], data: bytes) -> None:
        slot[0] = data
        pending = self._pending
        while pending and pending[0][0] is not None:
            ready, close = pending.popleft()
            self._write(ready, close)

    def _write(self, data: bytes, close: bool) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        transport.write(data)
        if close:
            transport.close()


class ManagementApiServer:
    """Fake Management API endpoint served by an asyncio loop in a daemon thread.

    Args:
        base_path: path the endpoint URL ends with (stage or custom-domain mapping key);
            ``""`` for none. Requests outside ``<base_path>/@connections/<id>`` get 403.
        host, port: where to listen (port 0 = ephemeral).
        require_auth: answer 403 "Missing Authentication Token" without a SigV4 header.
        auto_connect: every well-formed id is connected unless removed / marked gone.
        record: keep posted messages in :attr:`received`.
        latency: seconds added before each response (non-blocking; settable at runtime).
        max_payload: PostToConnection size limit (413 above it).

    State may be changed from any thread while the server runs.
    """

    def __init__(
        self,
        base_path: str = "/production",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        require_auth: bool = True,
        auto_connect: bool = False,
        record: bool = True,
        latency: float = 0.0,
        max_payload: int = MAX_PAYLOAD,
    ) -> None:
        base_path = base_path.strip().rstrip("/")
        if base_path and not base_path.startswith("/"):
            base_path = "/" + base_path
        self.base_path = base_path
        self.host = host
        self.port = port
        self.require_auth = require_auth
        self.auto_connect = auto_connect
        self.record = record
        self.latency = float(latency)
        self.max_payload = max_payload
        self.connections: dict[str, Connection] = {}
        self.received: defaultdict[str, list[bytes]] = defaultdict(list)
        self.requests = 0
        self.status_counts: Counter[int] = Counter()
        self.method_counts: Counter[str] = Counter()
        self._gone: set[str] = set()
        self._connecting: set[str] = set()
        self._retry_after: str | None = None  # of the answer being built; guarded by _lock
        self._faults: dict[str, deque[list[Any]]] = {}
        self._lock = threading.Lock()
        self._protocols: set[_HttpProtocol] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._bound = False

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def origin(self) -> str:
        """``http://host:port`` without the base path."""
        if not self._bound:
            raise RuntimeError("server is not started")
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """Endpoint URL for boto3's ``endpoint_url`` (includes the base path)."""
        return self.origin + self.base_path

    async def _listen(self) -> asyncio.AbstractServer:
        loop = asyncio.get_running_loop()
        self._loop = loop
        srv = await loop.create_server(
            lambda: _HttpProtocol(self, loop), self.host, self.port, backlog=2048
        )
        self.port = srv.sockets[0].getsockname()[1]
        self._bound = True
        return srv

    def start(self) -> ManagementApiServer:
        """Bind and serve in a daemon thread; returns ``self`` once listening."""
        if self._thread is not None:
            raise RuntimeError("server already started")
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                srv = loop.run_until_complete(self._listen())
            except BaseException as exc:
                errors.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                srv.close()
                for protocol in list(self._protocols):
                    protocol.abort()
                loop.run_until_complete(asyncio.sleep(0))
                loop.run_until_complete(asyncio.sleep(0))
                loop.close()

        self._thread = threading.Thread(target=run, name="fake-management-api", daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            self._thread = None
            raise errors[0]
        return self

    def stop(self) -> None:
        """Stop serving and close all connections."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._thread = None
        self._bound = False

    def __enter__(self) -> ManagementApiServer:
        if self._thread is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def serve_forever(self, announce: Callable[[str], None] | None = None) -> None:
        """Serve in the current event loop (the ``__main__`` entry point uses this)."""
        srv = await self._listen()
        if announce is not None:
            announce(self.url)
        async with srv:
            await srv.serve_forever()

    # -- state -----------------------------------------------------------------------------------

    def add_connection(
        self, connection_id: str, source_ip: str = "203.0.113.1", user_agent: str = "test"
    ) -> Connection:
        """Register a live connection (clears any "gone" mark)."""
        now = time.time()
        conn = Connection(connection_id, source_ip, user_agent, now, now)
        with self._lock:
            self.connections[connection_id] = conn
            self._gone.discard(connection_id)
        return conn

    def add_connecting(self, connection_id: str) -> None:
        """A connection whose ``$connect`` is still running: the id exists but every request
        for it answers 410 ``GoneException`` until :meth:`open_connection`, as on AWS."""
        with self._lock:
            self._connecting.add(connection_id)
            self._gone.discard(connection_id)

    def open_connection(self, connection_id: str) -> Connection:
        """``$connect`` answered 2xx and API Gateway opened the socket: it is live from now on."""
        with self._lock:
            self._connecting.discard(connection_id)
        return self.add_connection(connection_id)

    def remove_connection(self, connection_id: str) -> None:
        """Close a connection: it answers 410 from now on (also in ``auto_connect`` mode)."""
        with self._lock:
            self.connections.pop(connection_id, None)
            self._connecting.discard(connection_id)
            self._gone.add(connection_id)

    def gone(self, ids: str | Iterable[str]) -> None:
        """Mark connections as gone (410)."""
        for connection_id in _ids(ids):
            self.remove_connection(connection_id)

    def is_connected(self, connection_id: str) -> bool:
        """Whether PostToConnection to this id would succeed (ignoring faults)."""
        with self._lock:
            if connection_id in self.connections:
                return True
            return (
                self.auto_connect
                and connection_id not in self._gone
                and CONNECTION_ID_RE.fullmatch(connection_id) is not None
            )

    def fail(
        self,
        connection_id: str,
        status: int = 429,
        times: int = 1,
        error_type: str | None = None,
        message: str | None = None,
        retry_after: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests for this id with an error, then behave normally.

        ``error_type`` defaults to the AWS type for ``status`` (429 ``LimitExceededException``,
        500 ``InternalServerErrorException``...); faults for one id queue up in call order.
        ``retry_after`` adds a ``Retry-After`` header (seconds or an HTTP date) to the answer.
        """
        if error_type is None:
            error_type = ERROR_TYPES.get(status, "InternalServerErrorException")
        if message is None:
            message = ERROR_MESSAGES.get(status, _REASONS.get(status, "Error"))
        with self._lock:
            self._faults.setdefault(connection_id, deque()).append(
                [status, times, error_type, message, retry_after]
            )

    def throttle_once(self, ids: str | Iterable[str]) -> None:
        """Answer the next request for each id with 429 ``LimitExceededException``."""
        for connection_id in _ids(ids):
            self.fail(connection_id, 429, 1, "LimitExceededException")

    def error_once(self, ids: str | Iterable[str], status: int = 500) -> None:
        """Answer the next request for each id with a 5xx (``InternalServerErrorException``)."""
        for connection_id in _ids(ids):
            self.fail(connection_id, status, 1, None)

    def clear_faults(self) -> None:
        """Forget all pending injected faults."""
        with self._lock:
            self._faults.clear()

    def reset(self) -> None:
        """Clear connections, gone marks, faults, recorded messages and counters."""
        with self._lock:
            self.connections.clear()
            self._gone.clear()
            self._connecting.clear()
            self._faults.clear()
            self.received.clear()
            self.requests = 0
            self.status_counts.clear()
            self.method_counts.clear()

    def stats(self) -> dict[str, Any]:
        """Snapshot of the counters."""
        with self._lock:
            return {
                "requests": self.requests,
                "status": {str(k): v for k, v in sorted(self.status_counts.items())},
                "method": dict(sorted(self.method_counts.items())),
                "messages": sum(len(v) for v in self.received.values()),
                "connections": len(self.connections),
            }

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Poll ``predicate`` until true or ``timeout``; returns its last value."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() >= deadline:
                return predicate()
            time.sleep(0.002)
        return True

    # -- request handling (event loop thread) ----------------------------------------------------

    def _response(
        self,
        status: int,
        body: bytes = b"",
        error_type: str | None = None,
        keep_alive: bool = True,
        retry_after: str | None = None,
    ) -> bytes:
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\n"
            f"Date: {_http_date()}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
            f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n"
            f"x-amzn-RequestId: {_request_id()}\r\n"
        )
        if error_type:
            head += f"x-amzn-ErrorType: {error_type}\r\n"
        if retry_after is not None:
            head += f"Retry-After: {retry_after}\r\n"
        return (head + "\r\n").encode("latin-1") + body

    def _error(self, status: int, keep_alive: bool = True) -> bytes:
        """Build an AWS-style error for a malformed HTTP request (counted, no method)."""
        with self._lock:
            self.requests += 1
            self.status_counts[status] += 1
        if status == 410:
            body = b""
        else:
            text = ERROR_MESSAGES.get(status) or _REASONS.get(status, "Error")
            body = json.dumps({"message": text}).encode()
        return self._response(status, body, ERROR_TYPES.get(status), keep_alive)

    def _handle(
        self, method: str, target: str, auth: str | None, body: bytes, keep_alive: bool
    ) -> bytes:
        """Answer one request; returns the full response bytes."""
        path = target.split("?", 1)[0]
        if path == STATS_PATH and method == "GET":
            stats = json.dumps(self.stats()).encode()
            return self._response(200, stats, None, keep_alive)
        with self._lock:
            self._retry_after = None
            status, out_body, error_type = self._dispatch(method, path, auth, body)
            retry_after, self._retry_after = self._retry_after, None
            self.requests += 1
            self.status_counts[status] += 1
            self.method_counts[method] += 1
        return self._response(status, out_body, error_type, keep_alive, retry_after)

    def _dispatch(
        self, method: str, path: str, auth: str | None, body: bytes
    ) -> tuple[int, bytes, str | None]:
        """Return ``(status, body, error type)``; called with the lock held."""
        if self.require_auth and (auth is None or not auth.startswith(AUTH_PREFIX)):
            return 403, b'{"message":"Missing Authentication Token"}', "ForbiddenException"
        for marker in _MARKERS:
            i = path.find(marker)
            if i >= 0:
                raw = path[i + len(marker) :]
                break
        else:
            return 403, b'{"message":"Forbidden"}', "ForbiddenException"
        if path[:i] != self.base_path or not raw or "/" in raw:
            return 403, b'{"message":"Forbidden"}', "ForbiddenException"
        if method not in ("POST", "GET", "DELETE"):
            return 403, b'{"message":"Forbidden"}', "ForbiddenException"
        cid = raw
        if "%" in cid:  # botocore sends "=" as "%3D"; skip unquote() in that common case
            cid = cid.replace("%3D", "=").replace("%3d", "=")
            if "%" in cid:
                cid = unquote(cid)
        if CONNECTION_ID_RE.fullmatch(cid) is None:
            message = json.dumps({"message": f"Invalid connectionId: {cid}"}).encode()
            return 400, message, "BadRequestException"
        if self._faults:
            faults = self._faults.get(cid)
            if faults:
                fault = faults[0]
                fault[1] -= 1
                if fault[1] <= 0:
                    faults.popleft()
                    if not faults:
                        del self._faults[cid]
                status, _, error_type, message, self._retry_after = fault
                fault_body = b"" if status == 410 else json.dumps({"message": message}).encode()
                return status, fault_body, error_type
        if cid in self._connecting:
            return 410, b"", "GoneException"  # not open until $connect has returned
        conn = self.connections.get(cid)
        alive = conn is not None or (self.auto_connect and cid not in self._gone)
        if method == "POST":
            if len(body) > self.max_payload:
                message = f"Message too long: {len(body)} bytes (max {self.max_payload})"
                error = json.dumps({"message": message}).encode()
                return 413, error, "PayloadTooLargeException"
            if not alive:
                return 410, b"", "GoneException"
            if conn is not None:
                conn.last_active_at = time.time()
            if self.record:
                self.received[cid].append(body)
            return 200, b"", None
        if not alive:
            return 410, b"", "GoneException"
        if method == "GET":
            if conn is None:
                now = time.time()
                conn = self.connections[cid] = Connection(cid, connected_at=now, last_active_at=now)
            return 200, conn.as_json(), None
        self.connections.pop(cid, None)
        self._gone.add(cid)
        return 204, b"", None


def main(argv: list[str] | None = None) -> None:
    """Serve in the foreground; the first stdout line is the endpoint URL."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--base-path", default="/production")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--auto-connect", action="store_true")
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--no-auth", action="store_true", help="accept unsigned requests")
    args = parser.parse_args(argv)
    server = ManagementApiServer(
        args.base_path,
        host=args.host,
        port=args.port,
        require_auth=not args.no_auth,
        auto_connect=args.auto_connect,
        record=not args.no_record,
        latency=args.latency,
    )

    async def run() -> None:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, task.cancel)  # type: ignore[union-attr]
        with contextlib.suppress(asyncio.CancelledError):
            await server.serve_forever(lambda url: print(url, flush=True))

    asyncio.run(run())


if __name__ == "__main__":
    main()
