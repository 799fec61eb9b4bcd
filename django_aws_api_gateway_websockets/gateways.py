"""The gateway records an event is checked against, cached per process for a few seconds.

Every event names its API id; looking the record up on each event would cost a query (the prior
package paid one per event). Instead each process keeps a snapshot of all gateways and their custom
route slugs, refreshed when it is older than ``GATEWAY_CACHE_SECONDS`` and dropped at once when this
process saves a record. Other processes over the same database see a change within that interval.
A refresh is one query (gateways joined to their routes), paid by the event that finds the snapshot
too old: about one event per process every ``GATEWAY_CACHE_SECONDS``.
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
        #: Snapshots loaded by this process so far (for benchmarks and diagnostics).
        self.loads = 0

    def _stale(self) -> bool:
        if self._local_url != endpoints.local_gateway_url():
            return True  # LOCAL_GATEWAY_URL changed every gateway's Management API target
        return time.monotonic() - self._loaded_at > float(ws_settings.GATEWAY_CACHE_SECONDS)

    def _load(self) -> None:
        """One query: every gateway with an API id, joined to its custom routes."""
        gateways: dict[int, tuple[Any, ...]] = {}
        routes: dict[int, dict[str, set[str]]] = {}
        self._local_url = endpoints.local_gateway_url()
        for row in ApiGateway.objects.exclude(api_id=None).values_list(
            "pk",
            "api_id",
            "name",
            "default_channel_name",
            "region",
            "stage",
            "custom_domain_name",
            "api_mapping_key",
            "additional_routes__route_slug",
            "additional_routes__route_key",
            "additional_routes__integration_uri",
        ):
            pk, slug, key, uri = row[0], row[8], row[9], row[10]
            gateways.setdefault(pk, row[:8])
            if key is not None and not uri:  # a route of this view (not one sent elsewhere)
                routes.setdefault(pk, {}).setdefault(slug or key, set()).add(key)
        snapshot = {}
        for pk, (_pk, api_id, name, channel, region, stage, domain, mapping) in gateways.items():
            snapshot[api_id or ""] = GatewayInfo(
                pk=pk,
                api_id=api_id or "",
                name=name,
                default_channel_name=channel,
                message_routes={
                    DEFAULT_SLUG: frozenset({contract.DEFAULT}),
                    **{
                        slug: frozenset(keys)
                        for slug, keys in routes.get(pk, {}).items()
                        if slug not in RESERVED_SLUGS
                    },
                },
                target=Target(
                    endpoints.management_url_of(
                        api_id=api_id or "",
                        region=region,
                        stage=stage,
                        custom_domain=domain,
                        mapping_key=mapping,
                    ),
                    region,
                ),
            )
        self._by_api_id = snapshot
        self._by_pk = {info.pk: info for info in snapshot.values()}
        self._loaded_at = time.monotonic()
        self.loads += 1

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
