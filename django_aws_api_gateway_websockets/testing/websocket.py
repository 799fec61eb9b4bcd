"""A WebSocket client for tests: the ``websockets`` library (not this package's code) with the
calls a test needs: connect with a query string and headers, send, receive with a timeout,
expect a close code, close.

:class:`WebSocketTestClient` is synchronous (``websockets.sync``), so it works in Django's
``TestCase``/``LiveServerTestCase`` and plain pytest tests; :class:`AsyncWebSocketTestClient`
has the same methods as coroutines (``websockets.asyncio``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

from websockets.asyncio.client import ClientConnection as AsyncConnection
from websockets.asyncio.client import connect as async_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from .gateway_client import BROWSER_USER_AGENT

DEFAULT_TIMEOUT = 5.0
#: Close code a client reports when the connection ended without a close frame.
ABNORMAL_CLOSURE = 1006


class HandshakeRejected(AssertionError):
    """The gateway refused the upgrade (``$connect`` answered non-2xx, or an unknown stage)."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"WebSocket handshake rejected with HTTP {status}: {body[:200]!r}")
        self.status = status
        self.body = body


def build_url(url: str, query: Mapping[str, str] | None) -> str:
    if not query:
        return url
    return url + ("&" if "?" in url else "?") + urlencode(dict(query))


def _decode(message: str | bytes) -> Any:
    return json.loads(message)


def _close_code(exc: ConnectionClosed) -> tuple[int, str]:
    if exc.rcvd is not None:
        return exc.rcvd.code, exc.rcvd.reason
    return ABNORMAL_CLOSURE, ""


class _HandshakeOptions:
    """What both clients send on the handshake: URL with query string, headers, subprotocols."""

    def __init__(
        self,
        url: str,
        *,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        origin: str | None = None,
        subprotocols: list[str] | None = None,
        user_agent: str = BROWSER_USER_AGENT,
        open_timeout: float = 10.0,
    ) -> None:
        self.url = build_url(url, query)
        self.headers = dict(headers or {})
        if origin:
            self.headers["Origin"] = origin
        self.subprotocols = subprotocols
        self.user_agent = user_agent
        self.open_timeout = open_timeout
        #: ``(code, reason)`` once the connection is closed.
        self.closed: tuple[int, str] | None = None


class WebSocketTestClient(_HandshakeOptions):
    """One browser-like connection. ``with WebSocketTestClient(url, query={...}) as ws:``."""

    connection: ClientConnection | None = None

    def connect(self) -> WebSocketTestClient:
        """Open the socket; :class:`HandshakeRejected` if the gateway answers the upgrade with
        an HTTP status (``$connect`` refused the connection)."""
        try:
            # Entered at once: websockets 17 wants a context manager, older versions return the
            # connection, which is its own context manager; both give the open connection.
            self.connection = connect(
                self.url,
                additional_headers=self.headers,
                subprotocols=self.subprotocols,  # type: ignore[arg-type]
                user_agent_header=self.user_agent,
                open_timeout=self.open_timeout,
                compression=None,
                max_size=None,
            ).__enter__()
        except InvalidStatus as exc:
            raise HandshakeRejected(
                exc.response.status_code, bytes(exc.response.body or b"")
            ) from None
        return self

    def _open(self) -> ClientConnection:
        if self.connection is None:
            raise RuntimeError("Call connect() first.")
        return self.connection

    def send(self, message: str | bytes) -> None:
        self._open().send(message)

    def send_json(self, data: Any) -> None:
        self.send(json.dumps(data))

    def receive(self, timeout: float = DEFAULT_TIMEOUT) -> str | bytes:
        """The next message; ``TimeoutError`` if none comes, ``AssertionError`` if it closed."""
        try:
            return self._open().recv(timeout=timeout)
        except ConnectionClosed as exc:
            self.closed = _close_code(exc)
            raise AssertionError(
                f"The connection closed {self.closed} instead of a message."
            ) from None

    def receive_json(self, timeout: float = DEFAULT_TIMEOUT) -> Any:
        return _decode(self.receive(timeout))

    def expect_nothing(self, timeout: float = 0.5) -> None:
        """Assert that no message arrives within ``timeout``."""
        try:
            message = self._open().recv(timeout=timeout)
        except TimeoutError:
            return
        raise AssertionError(f"Expected no message, got {message!r}")

    def expect_close(
        self, code: int | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> tuple[int, str]:
        """Wait for the server to close; assert the code (if given); return ``(code, reason)``."""
        connection = self._open()
        try:
            message = connection.recv(timeout=timeout)
        except ConnectionClosed as exc:
            self.closed = _close_code(exc)
        except TimeoutError:
            raise AssertionError(f"The connection did not close within {timeout} s.") from None
        else:
            raise AssertionError(f"Expected the connection to close, got {message!r}")
        if code is not None and self.closed[0] != code:
            raise AssertionError(f"Expected close code {code}, got {self.closed}")
        return self.closed

    def close(self, code: int = 1000, reason: str = "") -> None:
        if self.connection is not None:
            self.connection.close(code, reason)
            if self.closed is None:
                self.closed = (code, reason)

    def __enter__(self) -> WebSocketTestClient:
        return self.connect() if self.connection is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class AsyncWebSocketTestClient(_HandshakeOptions):
    """:class:`WebSocketTestClient` for async tests (``async with``, ``await ws.receive()``)."""

    connection: AsyncConnection | None = None

    async def connect(self) -> AsyncWebSocketTestClient:
        try:
            self.connection = await async_connect(
                self.url,
                additional_headers=self.headers,
                subprotocols=self.subprotocols,  # type: ignore[arg-type]
                user_agent_header=self.user_agent,
                open_timeout=self.open_timeout,
                compression=None,
                max_size=None,
            )
        except InvalidStatus as exc:
            raise HandshakeRejected(
                exc.response.status_code, bytes(exc.response.body or b"")
            ) from None
        return self

    def _open(self) -> AsyncConnection:
        if self.connection is None:
            raise RuntimeError("Await connect() first.")
        return self.connection

    async def send(self, message: str | bytes) -> None:
        await self._open().send(message)

    async def send_json(self, data: Any) -> None:
        await self.send(json.dumps(data))

    async def receive(self, timeout: float = DEFAULT_TIMEOUT) -> str | bytes:
        import asyncio

        try:
            return await asyncio.wait_for(self._open().recv(), timeout)
        except ConnectionClosed as exc:
            self.closed = _close_code(exc)
            raise AssertionError(
                f"The connection closed {self.closed} instead of a message."
            ) from None

    async def receive_json(self, timeout: float = DEFAULT_TIMEOUT) -> Any:
        return _decode(await self.receive(timeout))

    async def expect_close(
        self, code: int | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> tuple[int, str]:
        import asyncio

        try:
            message = await asyncio.wait_for(self._open().recv(), timeout)
        except ConnectionClosed as exc:
            self.closed = _close_code(exc)
        except asyncio.TimeoutError:
            raise AssertionError(f"The connection did not close within {timeout} s.") from None
        else:
            raise AssertionError(f"Expected the connection to close, got {message!r}")
        if code is not None and self.closed[0] != code:
            raise AssertionError(f"Expected close code {code}, got {self.closed}")
        return self.closed

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self.connection is not None:
            await self.connection.close(code, reason)
            if self.closed is None:
                self.closed = (code, reason)

    async def __aenter__(self) -> AsyncWebSocketTestClient:
        return await self.connect() if self.connection is None else self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
