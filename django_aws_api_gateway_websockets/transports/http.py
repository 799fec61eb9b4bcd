"""A thin keep-alive HTTP/1.1 client on ``asyncio`` for the Management API's tiny requests.

The Management API exchanges a signed request line, a few headers and at most 128 KB of body for
an empty or small JSON answer. A general client spends most of its CPU on features this does not
need, so this module only writes the request bytes and keeps connections open in a per-host pool
shared by every broadcast in the process. Parsing the answer (status line, headers,
``Content-Length``, chunked bodies, keep-alive) is security-sensitive and is left entirely to
``httptools``, the binding to llhttp (Node.js's parser, used by uvicorn). This module adds only
limits llhttp does not set: the size of the header block and of the body.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from typing import Any

import httptools

#: The largest header block accepted (names and values together). The Management API sends a
#: few hundred bytes; anything far larger is not the Management API.
MAX_HEADER_BYTES = 64 * 1024
#: The largest body accepted. ``GetConnection`` answers are a few hundred bytes.
MAX_BODY_BYTES = 1024 * 1024


class ProtocolError(ConnectionError):
    """The server sent something that is not HTTP/1.1, or closed the connection mid-response."""


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


class _TooLarge(Exception):
    """Raised inside a parser callback; llhttp stops and reports a callback error."""


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection carrying one request at a time; ``httptools`` parses."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[Response] | None = None
        self.closed = False
        self.reusable = True
        self.parser = httptools.HttpResponseParser(self)
        self._reset()

    def _reset(self) -> None:
        self._headers: dict[str, str] = {}
        self._header_bytes = 0
        self._headers_done = False
        self._delimited = True  # False: the body ends when the server closes the connection
        self._body: list[bytes] = []
        self._body_bytes = 0

    # httptools callbacks

    def on_message_begin(self) -> None:
        self._reset()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4
        if self._header_bytes > MAX_HEADER_BYTES:
            raise _TooLarge("header block too large")
        if self._headers_done:
            return  # a chunked body's trailer fields: not headers (RFC 9110 section 6.5)
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        # Repeated fields are combined as RFC 9110 section 5.3 says.
        self._headers[key] = f"{self._headers[key]}, {text}" if key in self._headers else text

    def on_headers_complete(self) -> None:
        self._headers_done = True
        status = self.parser.get_status_code()
        headers = self._headers
        self._delimited = (
            "content-length" in headers
            or "transfer-encoding" in headers
            or status in (204, 304)
            or 100 <= status < 200
        )
        if not self._delimited or not self.parser.should_keep_alive():
            self.reusable = False

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > MAX_BODY_BYTES:
            raise _TooLarge("body too large")
        self._body.append(body)

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:
            return  # an interim answer (100 Continue): the real one follows
        self._finish(status)

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            if self._headers_done and not self._delimited:
                # The body was delimited by the end of the connection, which llhttp cannot see
                # (httptools has no "finish"): the answer is complete now.
                self._finish(self.parser.get_status_code())
            else:
                waiter.set_exception(ProtocolError("connection closed before the response ended"))

    def data_received(self, data: bytes) -> None:
        if not data:
            return  # asyncio never passes b""; to llhttp it would mean "end of stream"
        if self.waiter is None:
            self.close()  # nothing was asked: an unsolicited response
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail("unexpected protocol upgrade")
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__ or exc.__cause__
            self._fail(str(cause) if isinstance(cause, _TooLarge) else f"malformed response: {exc}")
        except httptools.HttpParserError as exc:
            self._fail(f"malformed response: {exc}")

    def _fail(self, reason: str) -> None:
        self.reusable = False
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ProtocolError(reason))
        self.close()

    def _finish(self, status: int) -> None:
        response = Response(status, self._headers, b"".join(self._body))
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
