"""The Management API's fast path: keep-alive HTTP/1.1 parsed by httptools, no framework per
request.

Every connection starts on :class:`Sniffer`, which feeds ``httptools`` (llhttp, the parser
uvicorn uses) and lets the connection's first request decide who serves it. A Management API
request (``/{api}/{stage}/@connections/{id}``, or ``/{stage}/@connections/{id}`` on a
``<api>.execute-api.localhost`` host) keeps the connection here: each request is answered with
one frame written to the WebSocket client and a prebuilt response, about a fifth of what a full
aiohttp request costs. Anything else (WebSocket upgrades, the control plane, bad requests) hands
the socket, with every byte read so far, to aiohttp's own protocol for the rest of its life.

Clients keep one pool per service (botocore, the package's transports), so a connection that
began with the Management API only ever carries Management API requests; a stray other request
on it is answered 403, as AWS answers an unknown path, and the connection closed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from email.utils import formatdate
from typing import Any
from urllib.parse import unquote

import httptools

from .. import contract
from . import ids
from .management import ManagementApi, ManagementError

_CONNECTIONS = frozenset({"@connections", "%40connections"})
#: ``<apiId>.execute-api.localhost`` hosts carry the API id, as AWS host names do.
HOST_SUFFIX = ".execute-api.localhost"
#: Read at most this much of a body: one byte over the limit is enough to answer 413.
_BODY_LIMIT = contract.MAX_MESSAGE_BYTES + 1
_REASONS = {
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    403: "Forbidden",
    410: "Gone",
    413: "Payload Too Large",
    429: "Too Many Requests",
}
_STATUS_LINES = {
    status: f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n".encode()
    for status, reason in _REASONS.items()
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


def _message(text: str) -> bytes:
    return json.dumps({"message": text}).encode()


def management_target(path: str, host: str) -> tuple[str, str, str] | None:
    """``(api_id, stage, connection_id)`` of a Management API path (raw, ids still encoded),
    or ``None`` for any other request."""
    parts = path.split("?", 1)[0].split("/")
    host = host.split(":", 1)[0].lower()
    if host.endswith(HOST_SUFFIX):
        parts.insert(1, host[: -len(HOST_SUFFIX)])
    if len(parts) != 5 or parts[3] not in _CONNECTIONS:
        return None
    return parts[1], parts[2], parts[4]


class Sniffer(asyncio.Protocol):
    """Serves a connection's Management API requests itself, or gives the connection to
    aiohttp's ``RequestHandler`` when its first request is something else."""

    __slots__ = (
        "api",
        "body",
        "connections",
        "decided",
        "fallback",
        "host",
        "loop",
        "out",
        "parser",
        "pending",
        "signed",
        "transport",
        "url",
    )

    def __init__(
        self,
        api: ManagementApi,
        fallback: Callable[[], Any],
        connections: set[Sniffer],
    ) -> None:
        self.api = api
        self.fallback = fallback
        self.connections = connections
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        #: Every byte read until the first request's headers decide who serves the connection.
        self.pending: bytearray | None = bytearray()
        self.decided = False
        self.out: list[bytes] = []
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.host = ""
        self.signed = False
        self.body = bytearray()

    # asyncio.Protocol --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self.pending is not None:
            self.pending += data
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # Only a first request can get here (a later one is refused at its headers).
            self._hand_over()
            return
        except httptools.HttpParserError:
            if self.pending is not None:  # aiohttp answers a malformed first request itself
                self._hand_over()
                return
            self.out.append(
                _response(self.loop, 400, _message("Bad request"), "BadRequestException", True)
            )
            self._flush()
            transport.close()
            return
        if self.pending is None or self.decided:
            self._flush()
        if self.pending is not None and not self.decided:
            return  # the first request's headers have not all arrived
        if self.pending is not None:  # decided for aiohttp inside a callback
            self._hand_over()

    def _flush(self) -> None:
        if self.out and self.transport is not None:
            self.transport.write(b"".join(self.out))
            self.out.clear()

    def _hand_over(self) -> None:
        """aiohttp takes the connection from here, starting with everything read so far."""
        self.connections.discard(self)
        transport = self.transport
        assert transport is not None
        data = bytes(self.pending or b"")
        self.pending = None
        protocol = self.fallback()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if data:
            protocol.data_received(data)

    # httptools callbacks -----------------------------------------------------------------------

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"host":
            self.host = value.decode("latin-1")
        elif name == b"authorization":
            self.signed = True

    def on_headers_complete(self) -> None:
        ours = management_target(self.url.decode("latin-1"), self.host) is not None
        if self.pending is not None:
            if ours and not self.parser.should_upgrade():
                self.pending = None  # this connection stays on the fast path
                self.decided = True
            else:
                self.decided = True  # aiohttp's; data_received hands over after feed_data
                raise _HandOver

    def on_body(self, body: bytes) -> None:
        room = _BODY_LIMIT - len(self.body)
        if room > 0:
            self.body += body[:room]

    def on_message_complete(self) -> None:
        close = not self.parser.should_keep_alive()
        method = self.parser.get_method().decode("latin-1")
        path = self.url.decode("latin-1")
        target = management_target(path, self.host)
        signed = self.signed or "X-Amz-Signature=" in path
        body = bytes(self.body)
        self._reset()
        if target is None:
            close = True
            self.out.append(
                _response(self.loop, 403, _message("Forbidden"), "ForbiddenException", True)
            )
        else:
            self.out.append(self._serve(method, target, body, signed, close))
        if close and self.transport is not None:
            self._flush()
            self.transport.close()

    def _serve(
        self, method: str, target: tuple[str, str, str], body: bytes, signed: bool, close: bool
    ) -> bytes:
        api = self.api
        loop = self.loop
        api_id, stage, connection_id = target
        try:
            if method not in ("POST", "GET", "DELETE"):
                raise ManagementError(403, "ForbiddenException", "Forbidden")
            connection = api.connection(api_id, unquote(stage), unquote(connection_id), signed)
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


class _HandOver(Exception):
    """Raised from a callback to stop parsing a first request that aiohttp will serve."""
