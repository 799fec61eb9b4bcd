"""``{% load websockets %}{% websocket_config %}``: the JSON a page hands the JavaScript client.

Rendered with :func:`django.utils.html.json_script`, so any value (a channel name typed by a
user) is safe inside the page. The client reads it with ``readConfig()``.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.conf import settings
from django.middleware.csrf import get_token
from django.urls import reverse
from django.utils.html import json_script
from django.utils.safestring import SafeString

from .. import contract
from ..models import ApiGateway

register = template.Library()

#: Keep-alive well inside API Gateway's 10-minute idle timeout (half of it).
DEFAULT_KEEP_ALIVE_SECONDS = contract.IDLE_TIMEOUT_SECONDS // 2
#: Reconnect this long before API Gateway's 2-hour maximum closes the connection.
RECONNECT_MARGIN_SECONDS = 5 * 60


def csrf_header_name() -> str:
    """``settings.CSRF_HEADER_NAME`` (a ``request.META`` key) as the HTTP header to send."""
    meta_key: str = settings.CSRF_HEADER_NAME
    return meta_key.removeprefix("HTTP_").replace("_", "-")


def _gateway(value: Any) -> ApiGateway:
    if isinstance(value, ApiGateway):
        return value
    if value:
        gateway = ApiGateway.objects.filter(name=value).first()
        if gateway is None:
            raise template.TemplateSyntaxError(f"websocket_config: no ApiGateway named {value!r}.")
        return gateway
    gateways = list(ApiGateway.objects.order_by("pk")[:2])
    if len(gateways) != 1:
        raise template.TemplateSyntaxError(
            "websocket_config: name the gateway (gateway=...) when there is not exactly one."
        )
    return gateways[0]


@register.simple_tag(takes_context=True)
def websocket_config(
    context: template.Context,
    gateway: Any = None,
    *,
    channel: str = "",
    url: str = "",
    audience: str = "",
    element_id: str = "websocket-config",
    keep_alive_seconds: int = DEFAULT_KEEP_ALIVE_SECONDS,
    max_connection_seconds: int = contract.MAX_CONNECTION_SECONDS - RECONNECT_MARGIN_SECONDS,
) -> SafeString:
    """A ``<script type="application/json">`` with the WebSocket URL, channel, token endpoints
    and CSRF header and token. ``url`` overrides the gateway's own ``wss://`` URL (a custom
    domain, or the local gateway's ``ws://`` URL)."""
    record = _gateway(gateway)
    request = context.get("request")
    config = {
        "url": url or record.websocket_url,
        "channel": channel or record.default_channel_name,
        "apiId": record.api_id or "",
        "audience": audience,
        "tokenUrl": reverse("django_aws_api_gateway_websockets:token"),
        "tokenStatusUrl": reverse("django_aws_api_gateway_websockets:token_status"),
        "csrfHeaderName": csrf_header_name(),
        "csrfToken": get_token(request) if request is not None else "",
        "csrfCookieName": settings.CSRF_COOKIE_NAME,
        "keepAliveSeconds": int(keep_alive_seconds),
        "maxConnectionSeconds": int(max_connection_seconds),
    }
    return json_script(config, element_id)
