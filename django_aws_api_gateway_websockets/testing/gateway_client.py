"""Drive a WebSocket view exactly as API Gateway calls it, with Django's test client.

Example::

    gateway = ApiGateway.objects.create(name="chat", api_id="abc123",
                                        target_base_endpoint="https://testserver/ws/")
    ws = GatewayClient(Client(), gateway, path="/ws/")
    response = ws.connect(token=mint_token(user).token, channel="general")
    reply = ws.message({"action": "echo", "text": "hi"})
    ws.disconnect()

The headers come from :mod:`..contract`, the same source that defines the integrations'
``RequestParameters`` and the headers the local gateway adds, so the requests cannot drift from
what a deployed integration sends: on ``$connect`` the browser's handshake headers (``Origin``,
``Cookie`` from the test client's cookie jar, ``Sec-WebSocket-*``, its ``User-Agent``); on every
event a client-controlled ``X-Forwarded-For`` with the source IP appended, a fresh
``X-Amzn-Trace-Id``, a request id distinct from the connection id, and the ``Host`` of the
integration URI.
"""

from __future__ import annotations

import base64
import json
import os
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from django.test import Client

from .. import contract
from ..conf import ws_settings
from ..local_gateway import ids
from ..models import ApiGateway

if TYPE_CHECKING:
    # What Django's test client returns: an HttpResponse with .json(), .request, .client.
    from django.test.client import _MonkeyPatchedWSGIResponse as TestResponse

_UNSET: Any = object()
#: A current desktop browser, as API Gateway forwards it on ``$connect``.
BROWSER_USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


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
        user_agent: str = BROWSER_USER_AGENT,
        origin: str | None = None,
        forwarded_for: str = "",
        secret: str | None = _UNSET,
    ) -> None:
        self.client = client
        self.gateway = gateway
        self.path = path if path.endswith("/") else path + "/"
        self.source_ip = source_ip
        self.user_agent = user_agent
        #: What the browser itself sent as ``X-Forwarded-For`` (anything: it is not trusted).
        self.forwarded_for = forwarded_for
        parts = urlsplit(gateway.target_base_endpoint or "https://testserver/")
        self.host = parts.netloc or "testserver"
        self.secure = parts.scheme == "https"
        self.origin = origin if origin is not None else f"{parts.scheme or 'https'}://{self.host}"
        first_secret: str | None = next(iter(ws_settings.gateway_secrets or ()), None)
        self.secret = first_secret if secret is _UNSET else secret
        self.connection_id = new_connection_id()
        self.last_request_id = ""

    def handshake_headers(self) -> dict[str, str]:
        """What the browser sends when it opens the socket (API Gateway passes them on)."""
        headers = {
            "Origin": self.origin,
            "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode("ascii"),
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits",
            "User-Agent": self.user_agent,
            "Accept-Language": "en-GB,en;q=0.9",
        }
        cookies = "; ".join(f"{m.key}={m.coded_value}" for m in self.client.cookies.values())
        if cookies:
            headers["Cookie"] = cookies
        if self.forwarded_for:
            headers["X-Forwarded-For"] = self.forwarded_for
        return headers

    def headers(
        self,
        route_key: str,
        connection_id: str | None = None,
        client_headers: dict[str, str] | None = None,
        **overrides: str,
    ) -> dict[str, str]:
        """Every header of the integration request for ``route_key``, as API Gateway sends it."""
        self.last_request_id = ids.new_request_id()
        headers = contract.integration_headers(
            connection_id=connection_id or self.connection_id,
            api_id=self.gateway.api_id or "",
            route_key=route_key,
            source_ip=self.source_ip,
            secret=self.secret,
            stage=self.gateway.stage,
            request_id=self.last_request_id,
            user_agent=self.user_agent,
        )
        handshake = {**self.handshake_headers(), **(client_headers or {})}
        headers.update(
            contract.forwarded_headers(
                api_id=self.gateway.api_id or "",
                route_key=route_key,
                source_ip=self.source_ip,
                client_headers=handshake,
                client_forwarded_for=handshake.get("X-Forwarded-For", ""),
            )
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
        # Django's test client adds its cookie jar to every request; API Gateway forwards the
        # browser's cookies on $connect only.
        meta.setdefault("HTTP_COOKIE", "")
        return self.client.generic(
            contract.INTEGRATION_METHOD,
            url,
            data=data,
            content_type="application/json",
            secure=self.secure,
            HTTP_HOST=self.host,
            **meta,
        )

    def connect(
        self,
        *,
        token: str | None = None,
        channel: str | None = None,
        query: dict[str, str] | None = None,
        connection_id: str | None = None,
        headers: dict[str, str] | None = None,
        client_headers: dict[str, str] | None = None,
    ) -> TestResponse:
        """``$connect`` with the client's query string and handshake headers (``client_headers``
        add to or replace the browser's); ``headers`` override the final request's."""
        params = dict(query or {})
        if token is not None:
            params[contract.TOKEN_QUERY_PARAM] = token
        if channel is not None:
            params[contract.CHANNEL_QUERY_PARAM] = channel
        all_headers = self.headers(
            contract.CONNECT, connection_id, client_headers, **(headers or {})
        )
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
        all_headers = self.headers(route_key, connection_id, None, **(headers or {}))
        slug = route_slug or contract.route_slug(route_key)
        return self._post(slug, body, "", all_headers)

    def disconnect(
        self, *, connection_id: str | None = None, headers: dict[str, str] | None = None
    ) -> TestResponse:
        all_headers = self.headers(contract.DISCONNECT, connection_id, None, **(headers or {}))
        slug = contract.route_slug(contract.DISCONNECT)
        return self._post(slug, None, "", all_headers)
