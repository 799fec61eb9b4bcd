"""Test helpers for projects using this package (and for its own suite).

* :class:`GatewayClient`: call a WebSocket view as API Gateway does, with Django's test client
  (no network, no extra dependencies).
* :class:`WebSocketTestClient` / :class:`AsyncWebSocketTestClient`: a real WebSocket client
  (the ``websockets`` library) with a test-friendly API.
* :class:`LiveGateway` and :class:`LocalGatewayMixin`: the local API Gateway in front of a live
  Django server, for ``LiveServerTestCase``; the pytest plugin
  (:mod:`.pytest_plugin`) offers the same as the ``local_gateway`` and ``websocket_client``
  fixtures.

Every name is imported on first use: the pytest plugin in this package is loaded before Django
is configured, and ``GatewayClient`` works without the ``local-gateway`` extra.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "BROWSER_USER_AGENT": ".gateway_client",
    "GatewayClient": ".gateway_client",
    "new_connection_id": ".gateway_client",
    "WebSocketTestClient": ".websocket",
    "AsyncWebSocketTestClient": ".websocket",
    "HandshakeRejected": ".websocket",
    "LiveGateway": ".live",
    "LocalGatewayMixin": ".live",
}

__all__ = [
    "BROWSER_USER_AGENT",
    "AsyncWebSocketTestClient",
    "GatewayClient",
    "HandshakeRejected",
    "LiveGateway",
    "LocalGatewayMixin",
    "WebSocketTestClient",
    "new_connection_id",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
