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
from .dataplane import OPEN, Connection, DataPlane

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
    def __init__(self, data_plane: DataPlane, rate_limit: float | None) -> None:
        self.data_plane = data_plane
        self.store = data_plane.store
        self.limiter = RateLimiter(rate_limit) if rate_limit else None

    async def handle(
        self, request: web.BaseRequest, api_id: str, stage: str, connection_id: str
    ) -> web.StreamResponse:
        try:
            return await self._handle(request, api_id, stage, connection_id)
        except ManagementError as error:
            return error_response(error)

    def _connection(self, api_id: str, stage: str, connection_id: str) -> Connection:
        api = self.store.apis.get(api_id)
        if api is None or stage not in api.stages:
            raise forbidden()
        if not _VALID_ID.match(connection_id):
            raise ManagementError(400, "BadRequestException", "Invalid connectionId")
        connection = self.data_plane.connections.get(connection_id)
        if connection is None or connection.state != OPEN or connection.api_id != api_id:
            raise gone()  # unknown, closed, or still inside $connect
        return connection

    async def _handle(
        self, request: web.BaseRequest, api_id: str, stage: str, connection_id: str
    ) -> web.StreamResponse:
        if self.limiter is not None and not self.limiter.allow():
            raise ManagementError(429, "LimitExceededException", "Too Many Requests")
        if not signed(request):
            raise forbidden("Missing Authentication Token")
        method = request.method
        if method == "POST":
            connection = self._connection(api_id, stage, connection_id)
            length = request.content_length
            if length is not None and length > contract.MAX_MESSAGE_BYTES:
                raise ManagementError(413, "PayloadTooLargeException", "Message too long")
            data = await request.content.read(contract.MAX_MESSAGE_BYTES + 1)
            if len(data) > contract.MAX_MESSAGE_BYTES:
                raise ManagementError(413, "PayloadTooLargeException", "Message too long")
            await self._post(connection, data)
            return web.Response(status=200, content_type="application/json")
        if method == "GET":
            connection = self._connection(api_id, stage, connection_id)
            return web.json_response(connection.info())
        if method == "DELETE":
            connection = self._connection(api_id, stage, connection_id)
            await self.data_plane.close(connection, 1000, "")
            return web.Response(status=204)
        raise forbidden()

    async def _post(self, connection: Connection, data: bytes) -> None:
        ws = connection.ws
        if ws is None or ws.closed:
            raise gone()
        transport = ws._req.transport if ws._req is not None else None
        if transport is None or transport.is_closing():
            raise gone()
        if transport.get_write_buffer_size() > CLIENT_BUFFER_LIMIT:
            raise ManagementError(429, "LimitExceededException", "Client buffer is full")
        connection.last_active = time.time()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            send = ws.send_bytes(data)
        else:
            send = ws.send_str(text)
        try:
            await send
        except (ConnectionError, RuntimeError):
            raise gone() from None
