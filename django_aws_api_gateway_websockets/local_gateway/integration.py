"""Calling an integration's HTTP backend the way API Gateway does (``HTTP_PROXY`` and ``HTTP``).

One shared ``aiohttp.ClientSession`` with keep-alive connections serves every connection of the
gateway; a slow or failing backend only affects the requests sent to it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import aiohttp
from yarl import URL

from .mapping import substitute_stage_variables
from .store import Integration

PROXY_TYPES = frozenset({"HTTP_PROXY", "HTTP"})


class IntegrationFailure(Exception):
    """The integration gave no usable answer; ``status`` is what a ``$connect`` client sees and
    ``message`` the error frame a message route sends."""

    status = 500
    message = "Internal server error"


class IntegrationTimeout(IntegrationFailure):
    status = 504
    message = "Endpoint request timed out"


class IntegrationUnreachable(IntegrationFailure):
    status = 502


@dataclass(frozen=True)
class IntegrationResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes


class Backend:
    """The HTTP client of one gateway."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            skip_auto_headers=("Content-Type", "Accept", "Accept-Encoding", "User-Agent"),
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def timeout_for(self, integration: Integration) -> float:
        own = (integration.timeout_in_millis or 29_000) / 1000
        return min(self.timeout, own)

    async def call(
        self,
        integration: Integration,
        *,
        stage_variables: Mapping[str, str],
        headers: Mapping[str, str],
        query: str,
        mapped_query: Mapping[str, str],
        body: bytes,
    ) -> IntegrationResponse:
        """Send one integration request; raise :class:`IntegrationFailure` when it gets no answer.

        ``MOCK`` answers 200 without a call; ``AWS``/``AWS_PROXY`` (Lambda) cannot run locally.
        """
        kind = integration.integration_type.upper()
        if kind == "MOCK":
            return IntegrationResponse(200, {}, b"")
        if kind not in PROXY_TYPES:
            raise IntegrationFailure(f"{kind} integrations are not supported by the local gateway")
        assert self._session is not None, "Backend.start() was not awaited"
        url = substitute_stage_variables(integration.integration_uri, stage_variables)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise IntegrationFailure(f"invalid integration URI {url!r}")
        extra = "&".join(filter(None, (query, urlencode(mapped_query) if mapped_query else "")))
        if extra:
            url = f"{url}{'&' if parts.query else '?'}{extra}"
        method = (integration.integration_method or "POST").upper()
        try:
            async with self._session.request(
                method,
                URL(url, encoded=True),
                headers=headers,
                data=body,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self.timeout_for(integration)),
            ) as response:
                content = await response.read()
                return IntegrationResponse(response.status, response.headers, content)
        except asyncio.TimeoutError:
            raise IntegrationTimeout(f"{method} {url} timed out") from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise IntegrationUnreachable(f"{method} {url}: {exc}") from None
