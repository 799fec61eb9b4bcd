"""How one local gateway runs: where it listens, its timeouts and the AWS behaviours to simulate.

The defaults are AWS's own limits, so a project sees production behaviour unless a test shortens
them on purpose.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from .. import contract


class ConfigError(ValueError):
    """A configuration the gateway refuses to start with."""


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (``127.0.0.0/8``, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class GatewayConfig:
    """Options of one gateway (the command-line flags of ``python -m ...local_gateway``).

    Raises :class:`ConfigError` for a non-loopback ``host`` without ``allow_remote``, a port
    out of range, or a non-positive timeout or rate.
    """

    host: str = "127.0.0.1"
    #: ``0`` picks a free port (read it back from :attr:`LocalGateway.port`).
    port: int = 0
    #: Seconds without a data frame in either direction before AWS closes with 1001.
    idle_timeout: float = float(contract.IDLE_TIMEOUT_SECONDS)
    #: Seconds after which AWS closes any connection (1001).
    max_duration: float = float(contract.MAX_CONNECTION_SECONDS)
    #: Upper bound for one integration call; an integration's ``TimeoutInMillis`` may lower it.
    integration_timeout: float = contract.INTEGRATION_TIMEOUT_MILLIS / 1000
    #: Simulate AWS's best-effort ``$disconnect`` by never calling it.
    drop_disconnect: bool = False
    #: Management API requests per second before it answers 429 ``LimitExceededException``.
    management_rate_limit: float | None = None
    #: Listen on a non-loopback address (the gateway has no authentication: off by default).
    allow_remote: bool = False

    def __post_init__(self) -> None:
        if not is_loopback(self.host) and not self.allow_remote:
            raise ConfigError(
                f"Refusing to listen on {self.host!r}: the local gateway has no authentication. "
                "Use 127.0.0.1, or allow_remote=True (--allow-remote) if you really mean it."
            )
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"Port {self.port} is out of range.")
        for name in ("idle_timeout", "max_duration", "integration_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive.")
        if self.management_rate_limit is not None and self.management_rate_limit <= 0:
            raise ConfigError("management_rate_limit must be positive (or None for no limit).")
