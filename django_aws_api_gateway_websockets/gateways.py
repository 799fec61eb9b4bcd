"""The gateway records an event is checked against, cached per process for a few seconds.

Every event names its API id; looking the record up on each event would cost a query (the prior
package paid one per event). Instead each process keeps a snapshot of all gateways and their custom
route slugs, refreshed when it is older than ``GATEWAY_CACHE_SECONDS`` and dropped at once when this
process saves a record. Other processes over the same database see a change within that interval.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils.translation import gettext as _

from . import contract, endpoints
from .conf import ws_settings
from .events import DEFAULT_SLUG
from .exceptions import Forbidden
from .models import RESERVED_SLUGS, ApiGateway, ApiGatewayAdditionalRoute
from .transports import Target


@dataclass(frozen=True)
class GatewayInfo:
    """What the view needs to know about a gateway, without touching the database."""

    pk: int
    api_id: str
    name: str
    default_channel_name: str
    #: URL slug of each message route -> the route keys API Gateway may send to it.
    message_routes: dict[str, frozenset[str]]
    #: Where this gateway's Management API is reached.
    target: Target


class GatewayCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_api_id: dict[str, GatewayInfo] = {}
        self._by_pk: dict[int, GatewayInfo] = {}
        self._loaded_at = float("-inf")
        self._local_url = ""

    def _stale(self) -> bool:
        if self._local_url != endpoints.local_gateway_url():
            return True  # LOCAL_GATEWAY_URL changed every gateway's Management API target
        return time.monotonic() - self._loaded_at > float(ws_settings.GATEWAY_CACHE_SECONDS)

    def _load(self) -> None:
        routes: dict[int, dict[str, set[str]]] = {}
        for gateway_id, slug, key, uri in ApiGatewayAdditionalRoute.objects.values_list(
            "gateway_id", "route_slug", "route_key", "integration_uri"
        ):
            if not uri:
                routes.setdefault(gateway_id, {}).setdefault(slug or key, set()).add(key)
        snapshot = {}
        self._local_url = endpoints.local_gateway_url()
        for gateway in ApiGateway.objects.exclude(api_id=None).only(
            "pk",
            "api_id",
            "name",
            "default_channel_name",
            "region",
            "stage",
            "custom_domain_name",
            "api_mapping_key",
        ):
            snapshot[gateway.api_id or ""] = GatewayInfo(
                pk=gateway.pk,
                api_id=gateway.api_id or "",
                name=gateway.name,
                default_channel_name=gateway.default_channel_name,
                message_routes={
                    DEFAULT_SLUG: frozenset({contract.DEFAULT}),
                    **{
                        slug: frozenset(keys)
                        for slug, keys in routes.get(gateway.pk, {}).items()
                        if slug not in RESERVED_SLUGS
                    },
                },
                target=Target(endpoints.management_url(gateway), gateway.region),
            )
        self._by_api_id = snapshot
        self._by_pk = {info.pk: info for info in snapshot.values()}
        self._loaded_at = time.monotonic()

    def _fresh(self) -> None:
        if self._stale():
            with self._lock:
                if self._stale():
                    self._load()

    def get(self, api_id: str) -> GatewayInfo:
        """The gateway for ``api_id``; :class:`Forbidden` when no record has that id."""
        self._fresh()
        info = self._by_api_id.get(api_id)
        if info is None:
            raise Forbidden(_("Unknown API."))
        return info

    def target(self, pk: int) -> Target | None:
        """The Management API target of the gateway with primary key ``pk``, if it has an API id."""
        self._fresh()
        info = self._by_pk.get(pk)
        if info is None:  # created in another process since the snapshot: look again, once
            with self._lock:
                self._load()
            info = self._by_pk.get(pk)
        return info.target if info is not None else None

    def clear(self) -> None:
        with self._lock:
            self._loaded_at = float("-inf")


gateway_cache = GatewayCache()


@receiver(post_save, sender=ApiGateway)
@receiver(post_delete, sender=ApiGateway)
@receiver(post_save, sender=ApiGatewayAdditionalRoute)
@receiver(post_delete, sender=ApiGatewayAdditionalRoute)
def _invalidate(**kwargs: Any) -> None:
    gateway_cache.clear()
