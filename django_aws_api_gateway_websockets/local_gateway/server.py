"""One local gateway: control plane, WebSocket data plane and Management API on one port.

URL layout (``ApiEndpoint`` of an API is ``ws://127.0.0.1:<port>/<apiId>``):

* ``ws://127.0.0.1:<port>/<apiId>/<stage>``: clients connect here;
* ``http://127.0.0.1:<port>/<apiId>/<stage>/@connections/<id>`` (or ``%40connections``):
  the Management API;
* ``http://127.0.0.1:<port>/v2/...``: the ``apigatewayv2`` control plane;
* a ``Host: <apiId>.execute-api.localhost[:port]`` request may leave ``/<apiId>`` out, as the
  AWS host names carry the API id.
"""

from __future__ import annotations

import asyncio
import importlib
import threading
from types import TracebackType
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from .config import GatewayConfig
from .dataplane import DataPlane, forbidden
from .fastpath import HOST_SUFFIX, Sniffer, management_target
from .integration import Backend
from .management import ManagementApi
from .store import GatewayStore


def _control_plane() -> Any:
    """The ``apigatewayv2`` control plane module, when it is installed alongside."""
    try:
        return importlib.import_module(f"{__package__}.control_plane")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__package__}.control_plane":
            raise
        return None


class LocalGateway:
    """The gateway on the running event loop: ``await start()``, ``await stop()``."""

    def __init__(self, config: GatewayConfig | None = None, store: GatewayStore | None = None):
        self.config = config or GatewayConfig()
        self.store = store if store is not None else GatewayStore()
        self.backend = Backend(self.config.integration_timeout)
        self.data_plane = DataPlane(self.config, self.store, self.backend)
        self.management = ManagementApi(self.data_plane, self.config.management_rate_limit)
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None
        self._sniffers: set[Sniffer] = set()

    @property
    def http_url(self) -> str:
        """``http://127.0.0.1:<port>``: the Management API is under ``/<apiId>/<stage>``."""
        return f"http://{self._host_for_url()}:{self.port}"

    @property
    def ws_url(self) -> str:
        """``ws://127.0.0.1:<port>``: clients connect to ``/<apiId>/<stage>``."""
        return f"ws://{self._host_for_url()}:{self.port}"

    @property
    def control_url(self) -> str:
        """The ``endpoint_url`` of a boto3 ``apigatewayv2`` client (paths under ``/v2/``)."""
        return self.http_url

    def _host_for_url(self) -> str:
        host = self.config.host
        if host in ("0.0.0.0", "::", ""):  # noqa: S104 - a URL to reach the bound socket
            return "127.0.0.1"
        return f"[{host}]" if ":" in host else host

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        control_plane = _control_plane()
        if control_plane is not None:
            control_plane.add_routes(app, self.store)
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        return app

    async def start(self) -> None:
        """Listen (on a free port when ``port`` is 0) and set the store's ``base_url``."""
        await self.backend.start()
        self._runner = web.AppRunner(
            self.build_app(), access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        aiohttp_protocol = self._runner.server
        assert aiohttp_protocol is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: Sniffer(self.management, aiohttp_protocol, self._sniffers),
            self.config.host,
            self.config.port,
            backlog=4096,
            reuse_address=True,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self.store.base_url = self.ws_url
        self.data_plane.start()

    async def stop(self) -> None:
        """Close every connection with 1001 (``$disconnect`` follows), then stop listening."""
        if self._server is not None:
            self._server.close()
        await self.data_plane.stop()
        for sniffer in list(self._sniffers):
            sniffer.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.backend.close()
        self._server = None

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        """Route a data-plane or Management API request by its raw path (ids are decoded here,
        once, so ``=`` sent as ``%3D`` and ``@`` as ``%40`` both work)."""
        target = management_target(request.raw_path, request.host)
        if target is not None:
            api_id, stage, connection_id = target
            return await self.management.handle(
                request, api_id, unquote(stage), unquote(connection_id)
            )
        parts = request.raw_path.split("?", 1)[0].split("/")
        host = request.host.split(":", 1)[0].lower()
        if host.endswith(HOST_SUFFIX):
            parts.insert(1, host[: -len(HOST_SUFFIX)])
        count = len(parts)
        if count in (3, 4) and (count == 3 or parts[3] == "") and request.method == "GET":
            return await self.data_plane.handle(request, parts[1], unquote(parts[2]))
        return forbidden()


class GatewayThread:
    """A :class:`LocalGateway` on its own event loop in a daemon thread, for tests and tools
    that are not async themselves. ``start()`` returns once it listens."""

    def __init__(self, config: GatewayConfig | None = None, store: GatewayStore | None = None):
        self.gateway = LocalGateway(config, store)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def store(self) -> GatewayStore:
        return self.gateway.store

    @property
    def http_url(self) -> str:
        return self.gateway.http_url

    @property
    def ws_url(self) -> str:
        return self.gateway.ws_url

    @property
    def control_url(self) -> str:
        return self.gateway.control_url

    @property
    def port(self) -> int:
        return self.gateway.port

    def start(self) -> GatewayThread:
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self.loop = loop
            try:
                loop.run_until_complete(self.gateway.start())
            except BaseException as exc:
                errors.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.gateway.stop())
            loop.close()

        self._thread = threading.Thread(target=run, name="dagw-local-gateway", daemon=True)
        self._thread.start()
        ready.wait()
        if errors:
            raise errors[0]
        return self

    def call(self, coroutine: Any, timeout: float = 30) -> Any:
        """Run a coroutine on the gateway's loop and return its result."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        """Stop the gateway (as :meth:`LocalGateway.stop`) and join its thread."""
        if self.loop is not None and self._thread is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=15)

    def __enter__(self) -> GatewayThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
