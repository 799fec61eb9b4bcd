"""The Management API's fast path: keep-alive HTTP/1.1 parsed in place, no framework per request.

Every connection starts on :class:`Sniffer`. A request to ``/{api}/{stage}/@connections/{id}``
with a ``Content-Length`` body (what botocore and the package's transports send) is answered here:
parse, one frame written to the WebSocket client, a prebuilt response; about a fifth of what a
full aiohttp request costs. Anything else (WebSocket upgrades, the control plane, chunked
bodies, unusual hosts) hands the socket, with the bytes already read, to aiohttp's own protocol,
which serves it from then on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from email.utils import formatdate
from typing import Any
from urllib.parse import unquote

from . import ids
from .management import ManagementApi, ManagementError

_METHODS = (b"POST ", b"GET ", b"DELETE ")
_CONNECTIONS = ("@connections", "%40connections")
#: Requests that are not for this path never carry a header block this large.
_MAX_HEAD = 16 * 1024
_REASONS = {
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    403: "Forbidden",
    410: "Gone",
    413: "Payload Too Large",
    429: "Too Many Requests",
}


class _Date:
    """The ``Date`` header, formatted at most once per second."""

    value = ""
    second = -1

    @classmethod
    def get(cls, loop: asyncio.AbstractEventLoop) -> str:
        now = int(loop.time())
        if now != cls.second:
            cls.second, cls.value = now, formatdate(usegmt=True)
        return cls.value


_STATUS_LINES = {
    status: f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n".encode()
    for status, reason in _REASONS.items()
}


def _response(
    loop: asyncio.AbstractEventLoop,
    status: int,
    body: bytes = b"",
    error_type: str = "",
    close: bool = False,
) -> bytes:
    head = [
        _STATUS_LINES.get(status) or f"HTTP/1.1 {status} Error\r\n".encode(),
        f"Date: {_Date.get(loop)}\r\nContent-Length: {len(body)}\r\n"
        f"x-amzn-RequestId: {ids.new_request_id()}\r\n".encode(),
    ]
    if error_type:
        head.append(f"x-amzn-ErrorType: {error_type}\r\n".encode())
    if close:
        head.append(b"Connection: close\r\n")
    head.append(b"\r\n")
    head.append(body)
    return b"".join(head)


class Sniffer(asyncio.Protocol):
    """Serves Management API requests itself until the first other request, then becomes
    aiohttp's ``RequestHandler`` for the rest of the connection."""

    __slots__ = ("api", "buffer", "connections", "fallback", "loop", "transport")

    def __init__(
        self,
        api: ManagementApi,
        fallback: Callable[[], Any],
        connections: set[Sniffer],
    ) -> None:
        self.api = api
        self.fallback = fallback
        self.connections = connections
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _hand_over(self, data: bytes) -> None:
        """aiohttp takes the connection from here, starting with ``data``."""
        self.connections.discard(self)
        transport = self.transport
        assert transport is not None
        protocol = self.fallback()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if data:
            protocol.data_received(data)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        self.buffer = b""
        out: list[bytes] = []
        while buffer:
            consumed = self._one(buffer, out)
            if consumed is None:  # not ours: aiohttp gets this request and everything after
                if out:
                    self.transport.write(b"".join(out))  # type: ignore[union-attr]
                self._hand_over(buffer)
                return
            if consumed == 0:  # incomplete
                if len(buffer) > _MAX_HEAD + 200_000:
                    self._hand_over(buffer)
                    return
                break
            buffer = buffer[consumed:]
        self.buffer = buffer
        if out:
            self.transport.write(b"".join(out))  # type: ignore[union-attr]

    def _one(self, buffer: bytes, out: list[bytes]) -> int | None:
        """Serve the request at the start of ``buffer``: bytes consumed, 0 if incomplete,
        ``None`` if it is not a plain Management API request."""
        if not buffer.startswith(_METHODS):
            if len(buffer) < 7 and any(m.startswith(buffer) for m in _METHODS):
                return 0
            return None
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            return 0 if len(buffer) < _MAX_HEAD else None
        line_end = buffer.find(b"\r\n")
        request_line = buffer[:line_end].decode("latin-1").split(" ")
        if len(request_line) != 3 or not request_line[2].startswith("HTTP/1."):
            return None
        method, target, version = request_line
        parts = target.split("?", 1)[0].split("/")
        if len(parts) != 5 or parts[3] not in _CONNECTIONS:
            return None
        # Header names are case-insensitive: search the lower-cased block (C-speed finds rather
        # than a loop over lines; each name is anchored on the preceding CRLF).
        headers = buffer[line_end : end + 2].lower()
        if b"\r\ntransfer-encoding:" in headers:
            return None  # chunked: aiohttp's parser
        host = _value(headers, b"\r\nhost:")
        if host is not None and b".execute-api." in host:
            return None
        length_value = _value(headers, b"\r\ncontent-length:")
        if length_value is None:
            length = 0
        elif length_value.isdigit():
            length = int(length_value)
        else:
            return None
        signed = b"\r\nauthorization:" in headers or "X-Amz-Signature=" in target
        connection_value = _value(headers, b"\r\nconnection:")
        keep_alive = version == "HTTP/1.1"
        if connection_value is not None:
            keep_alive = connection_value == b"keep-alive" or (
                keep_alive and connection_value != b"close"
            )
        total = end + 4 + length
        if length > 200_000:
            return None  # aiohttp reads it bounded and answers 413
        if len(buffer) < total:
            return 0
        body = buffer[end + 4 : total]
        out.append(self._serve(method, parts, body, signed, not keep_alive))
        if not keep_alive:
            self.buffer = b""
            self.transport.write(b"".join(out))  # type: ignore[union-attr]
            out.clear()
            self.transport.close()  # type: ignore[union-attr]
            return len(buffer)
        return total

    def _serve(
        self, method: str, parts: list[str], body: bytes, signed: bool, close: bool
    ) -> bytes:
        api = self.api
        loop = self.loop
        try:
            if method not in ("POST", "GET", "DELETE"):
                raise ManagementError(403, "ForbiddenException", "Forbidden")
            connection = api.connection(parts[1], unquote(parts[2]), unquote(parts[4]), signed)
            if method == "POST":
                api.post(connection, body)
                return _response(loop, 200, close=close)
            if method == "GET":
                return _response(loop, 200, api.get(connection), close=close)
            api.delete(connection)
            return _response(loop, 204, close=close)
        except ManagementError as error:
            payload = b"" if error.message is None else _message(error.message)
            return _response(loop, error.status, payload, error.error_type, close)


def _value(headers: bytes, name: bytes) -> bytes | None:
    """The stripped value of header ``name`` (``b"\\r\\nname:"``) in a lower-cased block."""
    start = headers.find(name)
    if start < 0:
        return None
    start += len(name)
    return headers[start : headers.find(b"\r\n", start)].strip()


def _message(text: str) -> bytes:
    import json

    return json.dumps({"message": text}).encode()
