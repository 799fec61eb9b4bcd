"""Who is the client of an ordinary HTTP request (the token endpoint)?

WebSocket events need none of this: API Gateway maps the TCP peer it saw into the event
(``context.identity.sourceIp``), which a client cannot forge. A plain Django view behind a load
balancer or CDN only sees the proxy in ``REMOTE_ADDR``, so every visitor would share one rate-limit
bucket. The function named by ``CLIENT_IP_FUNCTION`` decides; the default one trusts exactly
``TRUSTED_PROXY_COUNT`` proxies:

* no proxy (``0``, the default): ``REMOTE_ADDR``;
* an AWS Application Load Balancer (``1``): the last ``X-Forwarded-For`` entry, which the load
  balancer appended; anything before it was written by the client and is ignored;
* CloudFront in front of a load balancer (``2``): the second entry from the right;
* or a header that a trusted proxy sets and overwrites, such as CloudFront's
  ``CloudFront-Viewer-Address`` (``CLIENT_IP_HEADER``; its ``:port`` suffix is dropped).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from functools import lru_cache

from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest
from django.utils.module_loading import import_string

from .conf import ws_settings


def parse_ip(value: str) -> str | None:
    """``value`` as a normalised IP address, ``None`` when it is not one (ports are dropped)."""
    value = value.strip()
    if value.startswith("[") and "]" in value:  # "[2001:db8::1]:443"
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # "198.51.100.7:443"
        value = value.split(":", 1)[0]
    elif value.count(":") > 1 and "." not in value and not _is_ipv6(value):
        value = value.rsplit(":", 1)[0]  # "2001:db8::1:443" as CloudFront writes it
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if getattr(address, "scope_id", None):
        return None
    return str(address)


def _is_ipv6(value: str) -> bool:
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return True


def meta_key(header: str) -> str:
    return "HTTP_" + header.upper().replace("-", "_")


def client_ip(request: HttpRequest) -> str | None:
    """The default ``CLIENT_IP_FUNCTION``: ``CLIENT_IP_HEADER``, else ``TRUSTED_PROXY_COUNT``."""
    header = str(ws_settings.CLIENT_IP_HEADER or "")
    if header:
        return parse_ip(str(request.META.get(meta_key(header), "")))
    proxies = int(ws_settings.TRUSTED_PROXY_COUNT)
    if proxies <= 0:
        return parse_ip(str(request.META.get("REMOTE_ADDR", "")))
    chain = [hop for hop in str(request.META.get("HTTP_X_FORWARDED_FOR", "")).split(",")]
    if len(chain) < proxies or not chain[-proxies].strip():
        return None  # fewer hops than trusted proxies: not the path we were told to expect
    return parse_ip(chain[-proxies])


@lru_cache(maxsize=1)
def _configured() -> Callable[[HttpRequest], str | None]:
    function = ws_settings.CLIENT_IP_FUNCTION
    found: Callable[[HttpRequest], str | None] = (
        import_string(function) if isinstance(function, str) else function
    )
    return found


def get_client_ip(request: HttpRequest) -> str | None:
    """The client's address according to ``CLIENT_IP_FUNCTION`` (``None``: unknown)."""
    return _configured()(request)


@receiver(setting_changed)
def _reload(*, setting: str, **kwargs: object) -> None:
    if setting == "AWS_API_GATEWAY_WEBSOCKETS":
        _configured.cache_clear()
