"""The local API Gateway in front of a live Django server, for end-to-end tests.

:class:`LiveGateway` starts a gateway on a free port, points Django at it
(``LOCAL_GATEWAY_URL``, so sending goes through its Management API) and loads ``ApiGateway``
records into it through the control plane, with every integration calling the live server.
:class:`LocalGatewayMixin` does this for a ``LiveServerTestCase``::

    class ChatTests(LocalGatewayMixin, LiveServerTestCase):
        def test_echo(self):
            gateway = ApiGateway.objects.create(name="chat", api_id="chat000001",
                                                target_base_endpoint="https://example.com/ws/")
            with self.websocket_client(gateway, query={"channel": "lobby"}) as ws:
                ws.send_json({"action": "echo", "text": "hi"})
                assert ws.receive_json() == {...}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

from django.conf import settings
from django.test.utils import override_settings

from ..conf import SETTINGS_NAME
from ..local_gateway.config import GatewayConfig
from ..local_gateway.server import GatewayThread
from ..local_gateway_loader import LoadedApi, load_gateway, load_gateways
from ..models import ApiGateway
from .websocket import WebSocketTestClient


class LiveGateway:
    """A running local gateway for ``backend_url`` (the live Django server).

    ``config_options`` are :class:`~..local_gateway.config.GatewayConfig` fields
    (``idle_timeout=1`` to test the idle close quickly, ``drop_disconnect=True``…).
    """

    def __init__(self, backend_url: str, **config_options: Any) -> None:
        self.backend_url = backend_url
        self.config = GatewayConfig(**config_options)
        self.thread: GatewayThread | None = None
        self._override: override_settings | None = None
        self.loaded: dict[str, LoadedApi] = {}

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self, *, configure_django: bool = True) -> LiveGateway:
        """Listen on a free port; with ``configure_django``, set ``LOCAL_GATEWAY_URL`` until
        :meth:`stop` (the pytest plugin sets it per test instead)."""
        self.thread = GatewayThread(self.config).start()
        if not configure_django:
            return self
        current = getattr(settings, SETTINGS_NAME, {})
        self._override = override_settings(
            **{SETTINGS_NAME: {**current, "LOCAL_GATEWAY_URL": self.thread.http_url}}
        )
        self._override.enable()
        return self

    def stop(self) -> None:
        if self._override is not None:
            self._override.disable()
            self._override = None
        if self.thread is not None:
            self.thread.stop()
            self.thread = None

    def __enter__(self) -> LiveGateway:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> GatewayThread:
        if self.thread is None:
            raise RuntimeError("The local gateway is not running: call start().")
        return self.thread

    @property
    def url(self) -> str:
        """The gateway's HTTP base URL (``LOCAL_GATEWAY_URL``)."""
        return self.running.http_url

    # -- APIs ------------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every API (between tests: the database was flushed, the gateway was not)."""
        store = self.running.store
        with store.lock:
            store.apis.clear()
        self.loaded.clear()

    def load(self, gateways: Iterable[ApiGateway] | None = None) -> list[LoadedApi]:
        """Provision ``gateways`` (default: every record) into the gateway; raises on failure."""
        results = load_gateways(
            self.running.control_url, gateways=gateways, backend_url=self.backend_url
        )
        for item in results:
            if not item.ok:
                raise AssertionError(f"Could not load {item.name}: {item.error}")
            self.loaded[item.name] = item
        return results

    def ensure_loaded(self, gateway: ApiGateway) -> LoadedApi:
        """Load ``gateway`` unless the gateway already serves its API."""
        known = self.loaded.get(gateway.name)
        if known is not None and known.api_id in self.running.store.apis:
            return known
        item = load_gateway(gateway, self.running.control_url, backend_url=self.backend_url)
        if not item.ok:
            raise AssertionError(f"Could not load {gateway.name}: {item.error}")
        self.loaded[gateway.name] = item
        gateway.refresh_from_db()
        return item

    def websocket_url(self, gateway: ApiGateway) -> str:
        return self.ensure_loaded(gateway).websocket_url

    def client(
        self,
        gateway: ApiGateway,
        *,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        **options: Any,
    ) -> WebSocketTestClient:
        """An unconnected :class:`WebSocketTestClient` for ``gateway``'s stage (``with`` it,
        or call ``connect()`` — which raises ``HandshakeRejected`` if ``$connect`` refuses)."""
        return WebSocketTestClient(
            self.websocket_url(gateway), query=query, headers=headers, **options
        )

    def connect(self, gateway: ApiGateway, **kwargs: Any) -> WebSocketTestClient:
        return self.client(gateway, **kwargs).connect()


class LocalGatewayMixin:
    """For ``LiveServerTestCase``/``StaticLiveServerTestCase``: one gateway per test class in
    front of the live server, emptied before each test; ``self.websocket_client(gateway)``
    loads the record on first use."""

    #: :class:`~..local_gateway.config.GatewayConfig` options for this class's gateway.
    local_gateway_options: dict[str, Any] = {}
    local_gateway: LiveGateway
    live_server_url: str

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()  # type: ignore[misc]
        cls.local_gateway = LiveGateway(cls.live_server_url, **cls.local_gateway_options).start()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.local_gateway.stop()
        super().tearDownClass()  # type: ignore[misc]

    def setUp(self) -> None:
        super().setUp()  # type: ignore[misc]
        self.local_gateway.reset()

    def websocket_client(self, gateway: ApiGateway, **kwargs: Any) -> WebSocketTestClient:
        """An unconnected client for ``gateway`` (use it in a ``with`` block)."""
        return self.local_gateway.client(gateway, **kwargs)
