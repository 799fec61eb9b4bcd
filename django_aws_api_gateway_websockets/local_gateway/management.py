"""The Management API (``apigatewaymanagementapi``) of the local gateway (reference §3).

``POST|GET|DELETE /{apiId}/{stage}/@connections/{connectionId}``: 200 / 200 JSON / 204; refusals
carry ``x-amzn-ErrorType`` so an unmodified boto3 client raises ``GoneException``,
``PayloadTooLargeException``, ``ForbiddenException`` or ``LimitExceededException``. SigV4 is not
verified, but a request without any signature is refused as AWS refuses it.

It is the hot path of every broadcast, so it does the least it can per request: no JSON on
success, no store lock, one frame written without waiting for the client unless its buffer is
full.
"""

from __future__ import annotations

import json
import re
import time

from aiohttp import web

from .. import contract
from . import ids
from .dataplane import CLOSING, OPEN, Connection, DataPlane

#: A connection whose unsent output exceeds this answers 429, as AWS does when "the WebSocket
#: client side buffer is full".
CLIENT_BUFFER_LIMIT = 4 * 1024 * 1024
_VALID_ID = re.compile(r"^[A-Za-z0-9_=+/-]{1,128}$")


class ManagementError(Exception):
    """A refusal: turned into a response in :func:`error_response` only."""

    def __init__(self, status: int, error_type: str, message: str | None) -> None:
        super().__init__(message or error_type)
        self.status = status
        self.error_type = error_type
        self.message = message


def gone() -> ManagementError:
    # AWS's 410 carries the error type and no body (reference §3.3).
    return ManagementError(410, "GoneException", None)


def forbidden(message: str = "Forbidden") -> ManagementError:
    return ManagementError(403, "ForbiddenException", message)


def error_response(error: ManagementError) -> web.Response:
    body = b"" if error.message is None else json.dumps({"message": error.message}).encode()
    return web.Response(
        status=error.status,
        body=body,
        content_type="application/json",
        headers={"x-amzn-ErrorType": error.error_type, "x-amzn-RequestId": ids.new_request_id()},
    )


class RateLimiter:
    """A token bucket: ``rate`` requests per second with bursts of one second's worth."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.updated = time.monotonic()

    def allow(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


def signed(request: web.BaseRequest) -> bool:
    """Any SigV4 form (header or presigned query); the signature itself is not checked."""
    return "Authorization" in request.headers or "X-Amz-Signature" in request.query


class ManagementApi:
    """The operations, shared by the fast path (:mod:`.fastpath`) and the aiohttp route.

    Every step is synchronous: a POST writes one frame straight to the client's transport (one
    ``write`` call, so frames never interleave with aiohttp's own), without waiting for it.
    """

    def __init__(self, data_plane: DataPlane, rate_limit: float | None) -> None:
        self.data_plane = data_plane
        self.store = data_plane.store
        self.limiter = RateLimiter(rate_limit) if rate_limit else None

    def connection(self, api_id: str, stage: str, connection_id: str, signed: bool) -> Connection:
        """The open connection a request names, or the refusal AWS would answer."""
        if self.limiter is not None and not self.limiter.allow():
            raise ManagementError(429, "LimitExceededException", "Too Many Requests")
        api = self.store.apis.get(api_id)
        if api is None or stage not in api.stages:
            raise forbidden()
        if not signed:
            raise forbidden("Missing Authentication Token")
        if not _VALID_ID.match(connection_id):
            raise ManagementError(400, "BadRequestException", "Invalid connectionId")
        connection = self.data_plane.connections.get(connection_id)
        if connection is None or connection.state != OPEN or connection.api_id != api_id:
            raise gone()  # unknown, closed, or still inside $connect
        return connection

    def post(self, connection: Connection, data: bytes) -> None:
        if len(data) > contract.MAX_MESSAGE_BYTES:
            raise ManagementError(413, "PayloadTooLargeException", "Message too long")
        transport = connection.transport
        ws = connection.ws
        if transport is None or ws is None or ws.closed or transport.is_closing():
            raise gone()
        if getattr(ws, "_closing", False):  # a close frame went out: nothing may follow it
            raise gone()
        if transport.get_write_buffer_size() > CLIENT_BUFFER_LIMIT:
            raise ManagementError(429, "LimitExceededException", "Client buffer is full")
        connection.last_active = time.time()
        transport.write(frame(data))

    def get(self, connection: Connection) -> bytes:
        return json.dumps(connection.info()).encode()

    def delete(self, connection: Connection) -> None:
        """Answered at once; the socket closes (1000) and ``$disconnect`` follows."""
        connection.state = CLOSING
        self.data_plane.spawn(self.data_plane.close(connection, 1000, ""))

    async def handle(
        self, request: web.BaseRequest, api_id: str, stage: str, connection_id: str
    ) -> web.StreamResponse:
        """The aiohttp route (chunked bodies, ``*.execute-api.localhost`` hosts)."""
        try:
            method = request.method
            if method not in ("POST", "GET", "DELETE"):
                raise forbidden()
            connection = self.connection(api_id, stage, connection_id, signed(request))
            if method == "POST":
                length = request.content_length
                if length is not None and length > contract.MAX_MESSAGE_BYTES:
                    raise ManagementError(413, "PayloadTooLargeException", "Message too long")
                self.post(connection, await read_bounded(request, contract.MAX_MESSAGE_BYTES + 1))
                return web.Response(status=200, content_type="application/json")
            if method == "GET":
                return web.Response(body=self.get(connection), content_type="application/json")
            self.delete(connection)
            return web.Response(status=204)
        except ManagementError as error:
            return error_response(error)


async def read_bounded(request: web.BaseRequest, limit: int) -> bytes:
    """The whole body, or its first ``limit`` bytes: ``StreamReader.read(n)`` returns only what
    has arrived so far, which for a chunked body can be its first chunk."""
    body = bytearray()
    while len(body) < limit:
        chunk = await request.content.read(limit - len(body))
        if not chunk:
            break
        body += chunk
    return bytes(body)


def frame(data: bytes) -> bytes:
    """One unmasked server frame: text when ``data`` is UTF-8 (as AWS sends), else binary."""
    try:
        data.decode("utf-8")
        opcode = 0x81
    except UnicodeDecodeError:
        opcode = 0x82
    length = len(data)
    if length < 126:
        return bytes((opcode, length)) + data
    if length < 65536:
        return bytes((opcode, 126)) + length.to_bytes(2, "big") + data
    return bytes((opcode, 127)) + length.to_bytes(8, "big") + data
