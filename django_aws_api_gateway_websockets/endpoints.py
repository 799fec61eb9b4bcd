"""Where each gateway is reached: AWS by default, the local gateway when ``LOCAL_GATEWAY_URL``
is set.

The choice is made by settings only, never by editing ``ApiGateway`` records: a record that
points at a real AWS API keeps its id, region and stage, and the local gateway serves the same
API id at ``<LOCAL_GATEWAY_URL>/<api_id>/<stage>`` (its ``ApiEndpoint`` is
``ws://host:port/<api_id>``, as AWS's is ``wss://<api_id>.execute-api.<region>.amazonaws.com``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from django.utils.translation import gettext_lazy

from . import contract
from .conf import ws_settings

if TYPE_CHECKING:
    from .models import ApiGateway

#: Services the local gateway answers (its control plane).
LOCAL_SERVICES = ("apigatewayv2",)


def local_gateway_url() -> str:
    """``LOCAL_GATEWAY_URL`` without a trailing slash; empty when AWS is used."""
    value = ws_settings.LOCAL_GATEWAY_URL
    return value.rstrip("/") if isinstance(value, str) else ""


def management_url(gateway: ApiGateway) -> str:
    """Base URL of the gateway's Management API (``/@connections/{id}`` is appended)."""
    return management_url_of(
        api_id=gateway.api_id or "",
        region=gateway.region,
        stage=gateway.stage,
        custom_domain=gateway.custom_domain_name,
        mapping_key=gateway.api_mapping_key,
    )


def management_url_of(
    *, api_id: str, region: str, stage: str, custom_domain: str, mapping_key: str
) -> str:
    """:func:`management_url` from a record's values (the gateway cache loads values, not rows)."""
    local = local_gateway_url()
    if local:
        return f"{local}/{api_id}/{stage}"
    return contract.management_endpoint_url(
        api_id=api_id,
        region=region,
        stage=stage,
        custom_domain=custom_domain,
        mapping_key=mapping_key,
    )


def websocket_url(gateway: ApiGateway) -> str:
    """The URL browsers connect to; empty until the API has an id (or, in AWS, a domain)."""
    local = local_gateway_url()
    if local:
        if not gateway.api_id:
            return ""
        parts = urlsplit(local)
        scheme = "wss" if parts.scheme == "https" else "ws"
        return f"{scheme}://{parts.netloc}{parts.path}/{gateway.api_id}/{gateway.stage}"
    if not (gateway.custom_domain_name or gateway.api_id):
        return ""
    return "wss://" + gateway.management_endpoint_url.removeprefix("https://")


#: Why commands and admin actions that write provisioning results refuse with the setting.
LOCAL_WRITES_REFUSED = gettext_lazy(
    "LOCAL_GATEWAY_URL is set: this would write the local gateway's ids into the ApiGateway "
    "records. manage.py run_local_gateway loads the records into the local gateway without "
    "changing them; unset LOCAL_GATEWAY_URL to provision AWS."
)


def control_plane_url(service: str) -> str | None:
    """The local gateway for the services it answers, when configured."""
    local = local_gateway_url()
    return local if local and service in LOCAL_SERVICES else None
