"""The one place provisioning gets its boto3 clients from.

Each service's endpoint URL comes from ``LOCAL_GATEWAY_URL`` (for ``apigatewayv2``, the local
gateway's control plane) or ``AWS_ENDPOINT_URLS`` (moto…) when set, otherwise boto3 talks to
AWS. Region and credentials come from boto3's standard chain, so nothing here differs between
the three targets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config

from ..conf import ws_settings
from ..endpoints import control_plane_url

#: ``(service_name, region) -> client``; tests pass their own to record or stub calls.
ClientFactory = Callable[[str, str], Any]

#: Route 53 is a global service whose API lives in us-east-1.
GLOBAL_SERVICES = {"route53": "us-east-1"}


def endpoint_url(service: str) -> str | None:
    """``LOCAL_GATEWAY_URL`` for the services the local gateway answers, else the entry of
    ``AWS_ENDPOINT_URLS``, else ``None`` (AWS)."""
    local = control_plane_url(service)
    if local:
        return local
    urls = ws_settings.AWS_ENDPOINT_URLS
    value = urls.get(service) if isinstance(urls, dict) else None
    return value or None


def make_client(service: str, region: str) -> Any:
    """A boto3 client for ``service`` in ``region``, honouring the configured endpoint URL.

    The local gateway accepts any signature, so its client signs with placeholder credentials:
    a laptop without AWS credentials can still provision it.
    """
    credentials: dict[str, str] = {}
    if control_plane_url(service):
        credentials = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
    return boto3.session.Session().client(
        service,
        region_name=GLOBAL_SERVICES.get(service, region),
        endpoint_url=endpoint_url(service),
        config=Config(retries={"mode": "standard", "max_attempts": 5}),
        **credentials,
    )
