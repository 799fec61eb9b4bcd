"""pytest fixtures for the local API Gateway in front of pytest-django's live server.

Registered as a ``pytest11`` entry point, so installing the package (with the ``local-gateway``
extra and pytest-django) makes them available:

* ``local_gateway``: a :class:`~.live.LiveGateway` in front of ``live_server`` with
  ``LOCAL_GATEWAY_URL`` pointing at it; one gateway per session, emptied for each test;
* ``websocket_client``: a factory ``websocket_client(gateway, query=..., headers=...)`` that
  loads the record and returns a connected :class:`~.websocket.WebSocketTestClient`, closed
  after the test.

Nothing is imported until a fixture is used, so the plugin costs nothing to other projects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def local_gateway_options() -> dict[str, Any]:
    """Override to configure the gateway (``{"idle_timeout": 2}``…)."""
    return {}


@pytest.fixture(scope="session")
def _local_gateway_session(
    live_server: Any, local_gateway_options: dict[str, Any]
) -> Iterator[Any]:
    from .live import LiveGateway

    gateway = LiveGateway(live_server.url, **local_gateway_options).start(configure_django=False)
    try:
        yield gateway
    finally:
        gateway.stop()


@pytest.fixture
def local_gateway(_local_gateway_session: Any, transactional_db: None) -> Iterator[Any]:
    """The running gateway, empty, with Django's settings pointing at it for this test."""
    from django.conf import settings
    from django.test.utils import override_settings

    from ..conf import SETTINGS_NAME

    gateway = _local_gateway_session
    gateway.reset()
    current = getattr(settings, SETTINGS_NAME, {})
    with override_settings(**{SETTINGS_NAME: {**current, "LOCAL_GATEWAY_URL": gateway.url}}):
        yield gateway
    gateway.reset()


@pytest.fixture
def websocket_client(local_gateway: Any) -> Iterator[Callable[..., Any]]:
    """``websocket_client(gateway_record, query={...}, headers={...})``: a connected client."""
    opened: list[Any] = []

    def connect(gateway: Any, **kwargs: Any) -> Any:
        client = local_gateway.connect(gateway, **kwargs)
        opened.append(client)
        return client

    yield connect
    for client in opened:
        client.close()
