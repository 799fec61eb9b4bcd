"""Test helpers: drive a WebSocket view exactly as API Gateway calls it, with Django's test client.

Example::

    gateway = ApiGateway.objects.create(name="chat", api_id="abc123",
                                        target_base_endpoint="https://testserver/ws/")
    ws = GatewayClient(Client(), gateway, path="/ws/")
    response = ws.connect(token=mint_token(user).token, channel="general")
    reply = ws.message({"action": "echo", "text": "hi"})
    ws.disconnect()

The headers come from :mod:`.contract`, the same source that defines the integrations'
``RequestParameters``, so the requests cannot drift from what a deployed integration sends.
"""

from __future__ import annotations

import base64
import json
import os
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django.test import Client

from . import contract
from .conf import ws_settings
from .models import ApiGateway

if TYPE_CHECKING:
    # What Django's test client returns: an HttpResponse with .json(), .request, .client.
    from django.test.client import _MonkeyPatchedWSGIResponse as TestResponse

_UNSET: Any = object()


def new_connection_id() -> str:
    """A fresh id in API Gateway's format: base64url of 11 random bytes (16 characters)."""
    return base64.urlsafe_b64encode(os.urandom(11)).decode("ascii")


class GatewayClient:
    """Plays API Gateway for one WebSocket view and one simulated browser connection."""

    def __init__(
        self,
        client: Client,
        gateway: ApiGateway,
        path: str = "/ws/",
        *,
        source_ip: str = "203.0.113.10",
        user_agent: str = "Mozilla/5.0 (test)",
        secret: str | None = _UNSET,
    ) -> None:
        self.client = client
        self.gateway = gateway
        self.path = path if path.endswith("/") else path + "/"
        self.source_ip = source_ip
        self.user_agent = user_agent
        first_secret: str | None = next(iter(ws_settings.gateway_secrets or ()), None)
        self.secret = first_secret if secret is _UNSET else secret
        self.connection_id = new_connection_id()

    def headers(
        self, route_key: str, connection_id: str | None = None, **overrides: str
    ) -> dict[str, str]:
        headers = contract.integration_headers(
            connection_id=connection_id or self.connection_id,
            api_id=self.gateway.api_id or "",
            route_key=route_key,
            source_ip=self.source_ip,
            secret=self.secret,
            stage=self.gateway.stage,
            user_agent=self.user_agent,
        )
        headers.update(overrides)
        return headers

    def _post(self, slug: str, body: Any, query: str, headers: dict[str, str]) -> TestResponse:
        url = self.path + slug + (f"?{query}" if query else "")
        if isinstance(body, (dict, list)):
            data: Any = json.dumps(body)
        else:
            data = body if body is not None else ""
        meta: dict[str, Any] = contract.as_meta(headers)
        return self.client.generic(
            contract.INTEGRATION_METHOD, url, data=data, content_type="application/json", **meta
        )

    def connect(
        self,
        *,
        token: str | None = None,
        channel: str | None = None,
        query: dict[str, str] | None = None,
        connection_id: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> TestResponse:
        params = dict(query or {})
        if token is not None:
            params[contract.TOKEN_QUERY_PARAM] = token
        if channel is not None:
            params[contract.CHANNEL_QUERY_PARAM] = channel
        all_headers = self.headers(contract.CONNECT, connection_id, **(headers or {}))
        slug = contract.route_slug(contract.CONNECT)
        return self._post(slug, None, urlencode(params), all_headers)

    def message(
        self,
        body: Any,
        *,
        route_key: str = contract.DEFAULT,
        route_slug: str | None = None,
        connection_id: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> TestResponse:
        """Deliver a client message on ``route_key`` (at ``route_slug`` if it has its own)."""
        all_headers = self.headers(route_key, connection_id, **(headers or {}))
        slug = route_slug or contract.route_slug(route_key)
        return self._post(slug, body, "", all_headers)

    def disconnect(
        self, *, connection_id: str | None = None, headers: dict[str, str] | None = None
    ) -> TestResponse:
        all_headers = self.headers(contract.DISCONNECT, connection_id, **(headers or {}))
        slug = contract.route_slug(contract.DISCONNECT)
        return self._post(slug, None, "", all_headers)
