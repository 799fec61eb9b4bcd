"""Throttle classes for ``$connect`` (and the key functions behind them), in the style of DRF.

A throttle does not count anything itself: it names a :class:`~.ratelimits.Limit` (a key, a limit
and a window) for the event at hand, and the view counts every throttle's limit in one upsert, so
adding a throttle adds no query. List them in ``THROTTLE_CLASSES`` or on a view's
``throttle_classes``; a throttle whose :attr:`~BaseThrottle.before_authentication` is true also
counts attempts whose token was refused, so hammering with bad tokens keeps the door closed.
"""

from __future__ import annotations

import ipaddress
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from .conf import ws_settings
from .ratelimits import Limit

if TYPE_CHECKING:
    from .views import WebSocketView


def ip_key(address: str) -> str:
    """The rate-limit key for ``address``: IPv4 as it is, IPv6 by its network prefix.

    One IPv6 subscriber is usually given a whole /64 (or more), so keying on the full address
    would let a client rotate addresses to reset its limit and add a row for each.
    """
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        prefix = int(ws_settings.IPV6_RATE_LIMIT_PREFIX)
        if not 0 <= prefix <= 128:  # refused by a system check; keep ipaddress's error
            return str(ipaddress.IPv6Network((parsed, prefix), strict=False))
        host_bits = 128 - prefix
        # What str(IPv6Network((parsed, prefix), strict=False)) gives, without building one.
        return f"{ipaddress.IPv6Address(int(parsed) >> host_bits << host_bits)}/{prefix}"
    return str(parsed)


class BaseThrottle(ABC):
    """Names the :class:`~.ratelimits.Limit` one event counts against, or ``None``."""

    #: Count this limit even when the token is refused (no user is known yet).
    before_authentication: bool = False

    @abstractmethod
    def get_key(self, view: WebSocketView, user_id: Any) -> str | None:
        """The counter's key; ``None`` leaves this event unthrottled."""

    @abstractmethod
    def get_rate(self) -> tuple[int, int]:
        """``(limit, window seconds)``; a limit of 0 disables the throttle."""

    def get_limit(self, view: WebSocketView, user_id: Any) -> Limit | None:
        key = self.get_key(view, user_id)
        if key is None:
            return None
        limit, window = self.get_rate()
        return Limit(key, limit, window)


class ConnectRateThrottle(BaseThrottle):
    """``CONNECT_LIMIT_PER_IP`` connection attempts per ``CONNECT_WINDOW`` from one address
    (one IPv6 /64 by default), counting refused attempts too."""

    before_authentication = True

    def get_key(self, view: WebSocketView, user_id: Any) -> str | None:
        source_ip = view.event.source_ip
        return f"connect:ip:{ip_key(source_ip)}" if source_ip else None

    def get_rate(self) -> tuple[int, int]:
        return int(ws_settings.CONNECT_LIMIT_PER_IP), int(ws_settings.CONNECT_WINDOW)


class UserConnectRateThrottle(BaseThrottle):
    """``CONNECT_LIMIT_PER_USER`` connections per ``CONNECT_WINDOW`` for one signed-in user."""

    def get_key(self, view: WebSocketView, user_id: Any) -> str | None:
        return None if user_id is None else f"connect:user:{user_id}"

    def get_rate(self) -> tuple[int, int]:
        return int(ws_settings.CONNECT_LIMIT_PER_USER), int(ws_settings.CONNECT_WINDOW)
