"""The hand-written HTTP/1.1 response parser the package used before httptools (kept only so
``benchmarks/http_client.py`` can compare old and new in one run; not used by the package).

Original description follows.

The Management API exchanges a signed request line, a few headers and at most 128 KB of body for
an empty or small JSON answer. A general client spends most of its time on features this does not
need; this one writes the request bytes and parses the status line, headers and a
``Content-Length`` or chunked body, and keeps connections open in a per-host pool shared by every
broadcast in the process.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from typing import Any


class ProtocolError(ConnectionError):
    """The server sent something that is not HTTP/1.1, or closed the connection mid-response."""


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection carrying one request at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[Response] | None = None
        self.closed = False
        self.reusable = True
        self._reset()

    def _reset(self) -> None:
        self._status = 0
        self._headers: dict[str, str] | None = None
        self._length: int | None = None
        self._chunked = False
        self._body = bytearray()

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            if self._headers is not None and self._length is None and not self._chunked:
                self._finish(bytes(self.buffer))  # body delimited by the end of the connection
            else:
                waiter.set_exception(ProtocolError("connection closed before the response ended"))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.waiter is None:
            self.close()  # nothing was asked: an unsolicited response
            return
        try:
            self._parse()
        except (ValueError, IndexError) as exc:
            self.reusable = False
            if not self.waiter.done():
                self.waiter.set_exception(ProtocolError(f"malformed response: {exc}"))
            self.close()

    # parsing

    def _parse(self) -> None:
        buffer = self.buffer
        if self._headers is None:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
            del buffer[: end + 4]
            status = int(lines[0].split(" ", 2)[1])
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            self._status, self._headers = status, headers
            if headers.get("connection", "").lower() == "close":
                self.reusable = False
            if status in (204, 304) or 100 <= status < 200:
                self._length = 0
            elif "chunked" in headers.get("transfer-encoding", "").lower():
                self._chunked = True
            elif "content-length" in headers:
                self._length = int(headers["content-length"])
            else:
                self.reusable = False  # read until the server closes
        if self._chunked:
            self._parse_chunks()
        elif self._length is not None and len(buffer) >= self._length:
            body = bytes(buffer[: self._length])
            del buffer[: self._length]
            self._finish(body)

    def _parse_chunks(self) -> None:
        buffer = self.buffer
        while True:
            end = buffer.find(b"\r\n")
            if end < 0:
                return
            size = int(bytes(buffer[:end]).split(b";", 1)[0], 16)
            if size == 0:
                trailer_end = buffer.find(b"\r\n\r\n", end)
                if trailer_end < 0:
                    if buffer[end : end + 4] == b"\r\n\r\n":
                        trailer_end = end
                    else:
                        return
                del buffer[: trailer_end + 4]
                self._finish(bytes(self._body))
                return
            if len(buffer) < end + 2 + size + 2:
                return
            self._body += buffer[end + 2 : end + 2 + size]
            del buffer[: end + 2 + size + 2]

    def _finish(self, body: bytes) -> None:
        assert self._headers is not None
        response = Response(self._status, self._headers, body)
        waiter, self.waiter = self.waiter, None
        self._reset()
        if waiter is not None and not waiter.done():
            waiter.set_result(response)

    # use

    def send(self, data: bytes) -> asyncio.Future[Response]:
        assert self.transport is not None
        self.waiter = self.loop.create_future()
        self.transport.write(data)
        return self.waiter

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None and not self.closed:
            self.transport.close()


class ConnectionPool:
    """Idle keep-alive connections to one ``host:port``, created on demand, never capped here
    (the caller bounds concurrency)."""

    def __init__(self, host: str, port: int, use_tls: bool) -> None:
        self.host = host
        self.port = port
        self.ssl: ssl.SSLContext | None = ssl.create_default_context() if use_tls else None
        self.idle: list[_Connection] = []

    async def acquire(self, timeout: float) -> _Connection:
        while self.idle:
            connection = self.idle.pop()
            if not connection.closed and connection.reusable:
                return connection
        loop = asyncio.get_running_loop()
        # The timeout bounds the TCP connect and TLS handshake too, not only the answer.
        _transport, connection = await asyncio.wait_for(
            loop.create_connection(
                lambda: _Connection(loop),
                self.host,
                self.port,
                ssl=self.ssl,
                server_hostname=self.host if self.ssl else None,
            ),
            timeout,
        )
        return connection

    def release(self, connection: _Connection) -> None:
        if connection.reusable and not connection.closed and connection.waiter is None:
            self.idle.append(connection)
        else:
            connection.close()

    def close(self) -> None:
        for connection in self.idle:
            connection.close()
        self.idle.clear()


async def request(pool: ConnectionPool, head: bytes, body: bytes, timeout: float) -> Response:
    """Send one request (``head`` ends with the blank line) and return its response.

    A connection that fails or times out is closed, never returned to the pool.
    """
    connection = await pool.acquire(timeout)
    loop = asyncio.get_running_loop()
    waiter = connection.send(head + body if body else head)
    timer = loop.call_later(timeout, _expire, waiter, connection)
    try:
        response = await waiter
    except BaseException:
        connection.close()
        raise
    finally:
        timer.cancel()
    pool.release(connection)
    return response


def _expire(waiter: asyncio.Future[Any], connection: _Connection) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError("no response within the timeout"))
        connection.close()
