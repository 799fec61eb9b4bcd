"""The WebSocket data plane: connections held the way API Gateway holds them (reference §1, §9).

* the upgrade waits for the ``$connect`` integration; its status decides the handshake;
* each message selects a route, goes to its integration in the client's order, and on a two-way
  route the answer comes back as one frame; failures become AWS's error frames;
* 32 KB frames / 128 KB messages (1009), binary frames (1003), idle and maximum duration (1001);
* every close is followed by ``$disconnect`` (best effort: ``drop_disconnect`` skips it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from datetime import datetime, timezone
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp.http_websocket import WebSocketError

from .. import contract
from . import ids
from .config import GatewayConfig
from .integration import Backend, IntegrationFailure, IntegrationResponse
from .mapping import MappingSources, apply_request_parameters, select_route
from .store import DeployedStage, GatewayStore, Route

logger = logging.getLogger("django_aws_api_gateway_websockets.local_gateway")

MAX_FRAME_BYTES = 32 * 1024
MAX_MESSAGE_BYTES = contract.MAX_MESSAGE_BYTES
GOING_AWAY = WSCloseCode.GOING_AWAY  # 1001: idle timeout and maximum duration, as users report

CONNECTING, OPEN, CLOSING, CLOSED = 0, 1, 2, 3


class Connection:
    """One client connection, from the start of its ``$connect`` until its ``$disconnect``."""

    __slots__ = (
        "api_id",
        "close_code",
        "connected_at",
        "connection_id",
        "domain_name",
        "forwarded_for",
        "last_active",
        "pending",
        "source_ip",
        "stage",
        "state",
        "transport",
        "user_agent",
        "worker",
        "ws",
    )

    def __init__(
        self,
        *,
        api_id: str,
        stage: str,
        source_ip: str,
        user_agent: str,
        forwarded_for: str,
        domain_name: str,
    ) -> None:
        self.connection_id = ids.new_connection_id()
        self.api_id = api_id
        self.stage = stage
        self.source_ip = source_ip
        self.user_agent = user_agent
        self.forwarded_for = forwarded_for
        self.domain_name = domain_name
        self.connected_at = time.time()
        self.last_active = self.connected_at
        self.state = CONNECTING
        self.ws: web.WebSocketResponse | None = None
        self.transport: asyncio.Transport | None = None
        self.pending: deque[str] | None = None
        self.worker: asyncio.Task[None] | None = None
        self.close_code: int | None = None

    def info(self) -> dict[str, Any]:
        """GetConnection's body (wire names are lower camel case, dates ISO 8601)."""
        return {
            "connectedAt": iso8601(self.connected_at),
            "identity": {"sourceIp": self.source_ip, "userAgent": self.user_agent},
            "lastActiveAt": iso8601(self.last_active),
        }


def iso8601(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def clf_time(epoch: float) -> str:
    """``$context.requestTime``: ``dd/MMM/yyyy:HH:mm:ss +0000``."""
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%d/%b/%Y:%H:%M:%S +0000")


class FrameGuard:
    """In front of aiohttp's WebSocket parser: refuses what API Gateway refuses, frame by frame.

    aiohttp only bounds whole messages; AWS also closes on any single data frame above 32 KB
    (1009) and on binary frames (1003), and RFC 6455 requires closing on an unmasked client frame
    (1002), which aiohttp tolerates. This reads only the frame headers and skips payloads.
    """

    __slots__ = ("failed", "head", "parser", "queue", "skip")

    def __init__(self, parser: Any, queue: Any) -> None:
        self.parser = parser
        self.queue = queue
        self.head = b""
        self.skip = 0
        self.failed = False

    def feed_eof(self) -> None:
        self.parser.feed_eof()

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if self.failed:
            return True, b""
        problem = self._scan(bytes(data))
        if problem is not None:
            self.failed = True
            self.queue.set_exception(WebSocketError(*problem))
            return True, b""
        fed: tuple[bool, bytes] = self.parser.feed_data(data)
        return fed

    def _scan(self, data: bytes) -> tuple[int, str] | None:
        buf = self.head + data if self.head else data
        self.head = b""
        n = len(buf)
        pos = 0
        while True:
            if self.skip:
                take = min(self.skip, n - pos)
                self.skip -= take
                pos += take
                if self.skip:
                    return None
            if pos >= n:
                return None
            if n - pos < 2:
                self.head = buf[pos:]
                return None
            opcode = buf[pos] & 0x0F
            length = buf[pos + 1] & 0x7F
            size = 2 + (2 if length == 126 else 8 if length == 127 else 0)
            size += 4 if buf[pos + 1] & 0x80 else 0
            if n - pos < size:
                self.head = buf[pos:]
                return None
            if length == 126:
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
            elif length == 127:
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
            if not buf[pos + 1] & 0x80:
                return WSCloseCode.PROTOCOL_ERROR, "Client frames must be masked"
            if opcode == 0x2:
                return WSCloseCode.UNSUPPORTED_DATA, "Binary frames are not supported"
            if opcode in (0x0, 0x1) and length > MAX_FRAME_BYTES:
                return WSCloseCode.MESSAGE_TOO_BIG, "Frame size exceeds 32 KB"
            pos += size
            self.skip = length


def error_frame(message: str, connection: Connection, request_id: str) -> str:
    return json.dumps(
        {"message": message, "connectionId": connection.connection_id, "requestId": request_id}
    )


class DataPlane:
    """All connections of one gateway and the integration calls they make."""

    def __init__(self, config: GatewayConfig, store: GatewayStore, backend: Backend) -> None:
        self.config = config
        self.store = store
        self.backend = backend
        self.connections: dict[str, Connection] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._warned: set[tuple[str, str]] = set()
        self._workers: set[asyncio.Task[None]] = set()

    # lifecycle

    def start(self) -> None:
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for worker in list(self._workers):  # messages in flight are dropped; $disconnect runs
            worker.cancel()
        connections = list(self.connections.values())
        closing = [self.close(connection, GOING_AWAY, "Going away") for connection in connections]
        if closing:  # all at once: a client that never answers the close costs its timeout once
            await asyncio.wait([asyncio.ensure_future(c) for c in closing], timeout=3)
        await asyncio.sleep(0)  # let the read loops end and spawn their $disconnect
        if self._background:
            await asyncio.wait(list(self._background), timeout=5)

    def spawn(self, coroutine: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _sweep(self) -> None:
        """Close idle and too-old connections: one timer for all of them."""
        config = self.config
        interval = min(5.0, max(0.05, min(config.idle_timeout, config.max_duration) / 10))
        while True:
            await asyncio.sleep(interval)
            now = time.time()
            for connection in list(self.connections.values()):
                if connection.state != OPEN or connection.ws is None:
                    continue
                if (
                    now - connection.last_active >= config.idle_timeout
                    or now - connection.connected_at >= config.max_duration
                ):
                    connection.state = CLOSING  # closed once, and no more posts to it
                    self.spawn(self.close(connection, GOING_AWAY, "Going away"))

    async def close(self, connection: Connection, code: int, reason: str) -> None:
        """Close from the gateway's side (DeleteConnection, timeouts); ``$disconnect`` follows
        when the handler's read loop ends."""
        ws = connection.ws
        if ws is not None and not ws.closed:
            connection.close_code = code
            await ws.close(code=code, message=reason.encode())

    # the WebSocket endpoint

    async def handle(self, request: web.Request, api_id: str, stage: str) -> web.StreamResponse:
        deployed = self.store.deployed(api_id, stage)
        if deployed is None:
            return forbidden()
        if not web.WebSocketResponse().can_prepare(request).ok:
            return web.json_response({"message": "Bad Request"}, status=400)
        headers = request.headers
        transport = request.transport
        if transport is None:  # the client already left
            return web.Response(status=400)
        source_ip = (transport.get_extra_info("peername") or ("127.0.0.1",))[0]
        connection = Connection(
            api_id=api_id,
            stage=stage,
            source_ip=source_ip,
            user_agent=headers.get("User-Agent", ""),
            forwarded_for=", ".join(headers.getall("X-Forwarded-For", ())),
            domain_name=headers.get("Host", ""),
        )
        self.connections[connection.connection_id] = connection
        try:
            accepted = await self._connect(request, connection, deployed)
        except BaseException:
            self.connections.pop(connection.connection_id, None)
            raise
        if isinstance(accepted, web.StreamResponse):
            self.connections.pop(connection.connection_id, None)
            return accepted
        ws = web.WebSocketResponse(
            protocols=(accepted,) if accepted else (),
            autoping=True,
            max_msg_size=MAX_MESSAGE_BYTES + 1,  # aiohttp refuses sizes >= its limit
            compress=False,
            timeout=2.0,
        )
        try:
            await ws.prepare(request)
        except (ConnectionError, RuntimeError):
            # The client left while $connect ran: the backend accepted it, so, as for any
            # established connection that closes, $disconnect follows.
            self.connections.pop(connection.connection_id, None)
            if not self.config.drop_disconnect:
                self.spawn(self._disconnect(connection))
            return ws
        except BaseException:
            self.connections.pop(connection.connection_id, None)
            raise
        # Guard every frame after the handshake (see FrameGuard).
        protocol = request.protocol
        protocol._payload_parser = FrameGuard(protocol._payload_parser, ws._reader)
        connection.ws = ws
        connection.transport = request.transport
        connection.state = OPEN
        try:
            await self._read(connection, ws)
        finally:
            connection.state = CLOSED
            self.connections.pop(connection.connection_id, None)
            if not self.config.drop_disconnect:
                self.spawn(self._disconnect(connection))
        return ws

    async def _connect(
        self,
        request: web.Request,
        connection: Connection,
        deployed: DeployedStage,
    ) -> web.StreamResponse | str:
        """Run ``$connect``: a response refuses the handshake with it; a string accepts it (the
        subprotocol the backend chose, or ``""``)."""
        route = deployed.snapshot.routes.get(contract.CONNECT)
        if route is None:
            return ""
        self._warn_unenforced(connection.api_id, route)
        request_id = ids.new_request_id()
        try:
            response = await self._invoke(
                connection,
                deployed,
                route,
                request_id,
                body="",
                client_headers=list(request.headers.items()),
                query=request.rel_url.raw_query_string,  # as the client encoded it
                query_pairs=list(request.query.items()),
            )
        except IntegrationFailure as failure:
            logger.warning("$connect of %s failed: %s", connection.connection_id, failure)
            return web.json_response({"message": failure.message}, status=failure.status)
        integration = self._integration(deployed, route)
        proxy = integration is None or integration.integration_type.upper() != "HTTP"
        if proxy and not 200 <= response.status < 300:
            return web.Response(status=response.status)
        return response.headers.get("Sec-WebSocket-Protocol", "").split(",")[0].strip()

    def _warn_unenforced(self, api_id: str, route: Route) -> None:
        """Authorizers and API keys are not enforced locally: say so once per API, since AWS
        would refuse connections that this gateway accepts."""
        unenforced = []
        if route.authorization_type and route.authorization_type.upper() != "NONE":
            unenforced.append(f"AuthorizationType {route.authorization_type}")
        if route.api_key_required:
            unenforced.append("ApiKeyRequired")
        if unenforced and (api_id, route.route_id) not in self._warned:
            self._warned.add((api_id, route.route_id))
            logger.warning(
                "API %s: $connect has %s, which the local gateway does not enforce; AWS would "
                "refuse connections that are accepted here.",
                api_id,
                " and ".join(unenforced),
            )

    async def _read(self, connection: Connection, ws: web.WebSocketResponse) -> None:
        while True:
            message = await ws.receive()
            kind = message.type
            if kind is WSMsgType.TEXT:
                connection.last_active = time.time()
                self._enqueue(connection, message.data)
            elif kind is WSMsgType.BINARY:  # FrameGuard refuses these first; kept for safety
                await self.close(connection, WSCloseCode.UNSUPPORTED_DATA, "Binary not supported")
            elif kind in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                if kind is WSMsgType.ERROR and not ws.closed:
                    await ws.close(code=WSCloseCode.PROTOCOL_ERROR)
                return

    def _enqueue(self, connection: Connection, text: str) -> None:
        """Messages of one connection reach the backend one after the other, in order."""
        if connection.pending is None:
            connection.pending = deque()
        connection.pending.append(text)
        if connection.worker is None:
            worker = connection.worker = self.spawn(self._drain(connection))
            self._workers.add(worker)
            worker.add_done_callback(self._workers.discard)

    async def _drain(self, connection: Connection) -> None:
        pending = connection.pending
        assert pending is not None
        try:
            while pending:
                await self._message(connection, pending.popleft())
        finally:
            connection.worker = None

    async def _message(self, connection: Connection, text: str) -> None:
        request_id = ids.new_request_id()
        deployed = self.store.deployed(connection.api_id, connection.stage)
        routes = deployed.snapshot.routes if deployed is not None else {}
        route_key = (
            select_route(deployed.snapshot.route_selection_expression, text, routes)
            if deployed is not None
            else None
        )
        if route_key is None or deployed is None:
            await self._send(connection, error_frame("Forbidden", connection, request_id))
            return
        route = routes[route_key]
        try:
            response = await self._invoke(connection, deployed, route, request_id, body=text)
        except IntegrationFailure as failure:
            logger.warning("%s of %s failed: %s", route_key, connection.connection_id, failure)
            await self._send(connection, error_frame(failure.message, connection, request_id))
            return
        if route.two_way and response.body:
            await self._send(connection, response.body.decode("utf-8", "replace"))

    async def _disconnect(self, connection: Connection) -> None:
        deployed = self.store.deployed(connection.api_id, connection.stage)
        route = deployed.snapshot.routes.get(contract.DISCONNECT) if deployed else None
        if deployed is None or route is None:
            return
        try:
            await self._invoke(connection, deployed, route, ids.new_request_id(), body="")
        except IntegrationFailure as failure:
            logger.warning("$disconnect of %s failed: %s", connection.connection_id, failure)

    async def _send(self, connection: Connection, text: str) -> None:
        ws = connection.ws
        if ws is None or ws.closed:
            return
        connection.last_active = time.time()
        # A client that went away ends its read loop, which runs $disconnect.
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_str(text)

    # integration requests

    @staticmethod
    def _integration(deployed: DeployedStage, route: Route) -> Any:
        integration_id = route.integration_id
        return deployed.snapshot.integrations.get(integration_id) if integration_id else None

    async def _invoke(
        self,
        connection: Connection,
        deployed: DeployedStage,
        route: Route,
        request_id: str,
        *,
        body: str,
        client_headers: list[tuple[str, str]] | None = None,
        query: str = "",
        query_pairs: list[tuple[str, str]] | None = None,
    ) -> IntegrationResponse:
        integration = self._integration(deployed, route)
        if integration is None:
            raise IntegrationFailure(f"route {route.route_key} has no integration")
        now = time.time()
        route_key = route.route_key
        event_type = contract.event_type_for(route_key)
        context = {
            "connectionId": connection.connection_id,
            "connectedAt": str(int(connection.connected_at * 1000)),
            "domainName": connection.domain_name,
            "stage": connection.stage,
            "apiId": connection.api_id,
            "eventType": event_type,
            "routeKey": route_key,
            "requestId": request_id,
            "extendedRequestId": request_id,
            "requestTime": clf_time(now),
            "requestTimeEpoch": str(int(now * 1000)),
            "identity.sourceIp": connection.source_ip,
            "identity.userAgent": connection.user_agent,
            "messageDirection": "IN",
        }
        if event_type == contract.MESSAGE_EVENT_TYPE:
            context["messageId"] = ids.new_request_id()
        sources = MappingSources(
            context=context,
            stage_variables=deployed.stage_variables,
            headers=client_headers or [],
            query=query_pairs or [],
            body=body,
        )
        mapped = apply_request_parameters(integration.request_parameters, sources)
        headers = contract.forwarded_headers(
            api_id=connection.api_id,
            route_key=route_key,
            source_ip=connection.source_ip,
            client_headers=client_headers,
            client_forwarded_for=connection.forwarded_for,
        )
        if mapped.headers:
            lower = {name.lower(): name for name in headers}
            for name, value in mapped.headers.items():
                headers.pop(lower.get(name.lower(), name), None)
                headers[name] = value
        return await self.backend.call(
            integration,
            stage_variables=deployed.stage_variables,
            headers=headers,
            query=query if route_key == contract.CONNECT else "",
            mapped_query=mapped.query,
            body=body.encode("utf-8"),
        )


def forbidden() -> web.Response:
    return web.json_response(
        {"message": "Forbidden"}, status=403, headers={"x-amzn-ErrorType": "ForbiddenException"}
    )
