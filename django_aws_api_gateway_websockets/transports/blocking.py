"""One Management API request made from the caller's own thread, on a blocking socket.

A broadcast is best served by the transport's event loop; a single send from synchronous code (a
view replying to one connection, ``session.send_message()``) is not: handing it to the loop's
thread and waiting for the answer costs two thread wake-ups and an event-loop round, more CPU than
the request itself. :class:`~.aws.ManagementApiTransport` therefore makes the *first* attempt of a
one-recipient batch here, on a keep-alive socket from a small per-host pool, and hands anything
that needs a retry (throttling, 5xx, network errors) to the event loop as before.

The answer is read as :mod:`.http` reads it (status line, headers, ``Content-Length``, chunked, or
until the server closes), into the same :class:`~.http.Response`.
"""

from __future__ import annotations

import os
import socket
import ssl
import threading

from .http import ProtocolError, Response

#: Idle sockets kept per host (one per thread that sends, at most).
MAX_IDLE = 16
_READ_SIZE = 65536


class StaleConnection(ProtocolError):
    """A kept-alive socket was closed by the server before any byte of the answer came back."""


class BlockingPool:
    """Idle keep-alive sockets to one ``host:port``, shared by the threads of one process."""

    def __init__(self, host: str, port: int, use_tls: bool) -> None:
        self.host = host
        self.port = port
        self.ssl: ssl.SSLContext | None = ssl.create_default_context() if use_tls else None
        self._idle: list[socket.socket] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def _take(self) -> socket.socket | None:
        with self._lock:
            if self._pid != os.getpid():  # forked: those sockets belong to the parent
                self._idle, self._pid = [], os.getpid()
            return self._idle.pop() if self._idle else None

    def _connect(self, timeout: float) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ssl is not None:
            sock = self.ssl.wrap_socket(sock, server_hostname=self.host)
        return sock

    def release(self, sock: socket.socket) -> None:
        with self._lock:
            if len(self._idle) < MAX_IDLE and self._pid == os.getpid():
                self._idle.append(sock)
                return
        sock.close()

    def request(self, data: bytes, timeout: float) -> Response:
        """Send ``data`` (head and body) and read the answer; a socket the server had closed
        while idle is replaced once, at no cost to the caller's attempts."""
        sock = self._take()
        if sock is not None:
            try:
                return self._exchange(sock, data, timeout, reused=True)
            except StaleConnection:
                pass
        return self._exchange(self._connect(timeout), data, timeout, reused=False)

    def _exchange(
        self, sock: socket.socket, data: bytes, timeout: float, *, reused: bool
    ) -> Response:
        try:
            sock.settimeout(timeout)
            try:
                sock.sendall(data)
            except (BrokenPipeError, ConnectionResetError) as exc:
                if reused:  # closed while idle: the request never left
                    raise StaleConnection(str(exc)) from exc
                raise
            response, reusable = read_response(sock)
        except BaseException:
            sock.close()
            raise
        if reusable:
            self.release(sock)
        else:
            sock.close()
        return response


def read_response(sock: socket.socket) -> tuple[Response, bool]:
    """The response on ``sock``, and whether the connection may carry another request."""
    buffer = bytearray()
    while (end := buffer.find(b"\r\n\r\n")) < 0:
        chunk = sock.recv(_READ_SIZE)
        if not chunk:
            if not buffer:
                raise StaleConnection("connection closed before the response")
            raise ProtocolError("connection closed before the response ended")
        buffer += chunk
    try:
        lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
    except (ValueError, IndexError) as exc:
        raise ProtocolError(f"malformed response: {exc}") from None
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    del buffer[: end + 4]
    reusable = headers.get("connection", "").lower() != "close"
    if status in (204, 304) or 100 <= status < 200:
        body = b""
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        body = _read_chunked(sock, buffer)
    elif "content-length" in headers:
        try:
            length = int(headers["content-length"])
        except ValueError as exc:
            raise ProtocolError(f"malformed response: {exc}") from None
        while len(buffer) < length:
            chunk = sock.recv(_READ_SIZE)
            if not chunk:
                raise ProtocolError("connection closed before the response ended")
            buffer += chunk
        body = bytes(buffer[:length])
    else:  # delimited by the end of the connection
        while chunk := sock.recv(_READ_SIZE):
            buffer += chunk
        body, reusable = bytes(buffer), False
    return Response(status, headers, body), reusable


def _read_chunked(sock: socket.socket, buffer: bytearray) -> bytes:
    body = bytearray()

    def more() -> None:
        chunk = sock.recv(_READ_SIZE)
        if not chunk:
            raise ProtocolError("connection closed before the response ended")
        buffer.extend(chunk)

    while True:
        while (end := buffer.find(b"\r\n")) < 0:
            more()
        try:
            size = int(bytes(buffer[:end]).split(b";", 1)[0], 16)
        except ValueError as exc:
            raise ProtocolError(f"malformed response: {exc}") from None
        if size == 0:
            while buffer.find(b"\r\n\r\n", end) < 0:  # trailers, then the blank line
                more()
            return bytes(body)
        while len(buffer) < end + 2 + size + 2:
            more()
        body += buffer[end + 2 : end + 2 + size]
        del buffer[: end + 2 + size + 2]
