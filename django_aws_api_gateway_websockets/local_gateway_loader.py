"""Load the ``ApiGateway`` records into a running local gateway, through its control plane.

Each record is provisioned by the provisioning layer itself (:class:`~.provisioning.Provisioner`
``apply``), unchanged, with a boto3 ``apigatewayv2`` client pointed at the gateway: what the
local gateway serves is what ``apply_websocket_api`` would create in AWS, so a missing route or
an undeployed change shows up on the laptop first.

The records are not changed by a load, so a record that points at a real AWS API keeps working
against AWS when ``LOCAL_GATEWAY_URL`` is unset:

* the run happens in a transaction that is rolled back: the ids, status and bookkeeping that
  ``apply`` writes as it goes (and the local-only edits below) never reach the database;
* the API keeps the record's id (``CreateApi`` sends the control plane's id header), so events
  from the local gateway carry the id Django already knows;
* the custom domain is left out (there is no DNS locally) and, with ``backend_url``, the
  integrations call that server (scheme, host and port replaced, path kept).

A record without an API id has never been provisioned anywhere: it gets the local id, saved
together with ``aws_resources["api"]`` so that a later ``apply`` against AWS creates the real
API and replaces it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from django.db import transaction

from .local_gateway.control_plane import PRESERVE_API_ID_HEADER
from .models import ApiGateway
from .provisioning import Provisioner, ProvisioningError
from .provisioning.api import not_found

Progress = Callable[[str], None]
SERVICE = "apigatewayv2"


@dataclass
class LoadedApi:
    """One record as the local gateway serves it."""

    name: str
    api_id: str
    stage: str
    websocket_url: str
    management_url: str
    #: The record had no id: the local one was saved on it.
    assigned_id: bool = False
    calls: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


def control_plane_client(control_plane_url: str, region: str, api_id: str | None = None) -> Any:
    """A boto3 ``apigatewayv2`` client for the local gateway (placeholder credentials: it checks
    none). With ``api_id``, ``CreateApi`` asks for that id."""
    client = boto3.session.Session().client(
        SERVICE,
        region_name=region,
        endpoint_url=control_plane_url,
        aws_access_key_id="local",
        aws_secret_access_key="local",  # noqa: S106 - the gateway checks none
        config=Config(retries={"mode": "standard", "max_attempts": 2}),
    )
    if api_id:

        def ask_for_id(request: Any, **kwargs: Any) -> None:
            request.headers[PRESERVE_API_ID_HEADER] = api_id

        client.meta.events.register(f"before-sign.{SERVICE}.CreateApi", ask_for_id)
    return client


def backend_endpoint(target_base_endpoint: str, backend_url: str | None) -> str:
    """The record's endpoint with ``backend_url``'s scheme, host and port (path kept)."""
    if not backend_url:
        return target_base_endpoint
    base, target = urlsplit(backend_url), urlsplit(target_base_endpoint)
    return urlunsplit((base.scheme, base.netloc, target.path or "/", "", ""))


def load_gateway(
    gateway: ApiGateway,
    control_plane_url: str,
    *,
    backend_url: str | None = None,
    progress: Progress | None = None,
) -> LoadedApi:
    """Create (or re-create) ``gateway``'s API in the local gateway; never raises for AWS-style
    errors (they are in :attr:`LoadedApi.error`)."""
    say = progress or (lambda line: None)
    wanted = gateway.api_id or None
    reader = control_plane_client(control_plane_url, gateway.region)
    if wanted:
        try:
            reader.get_api(ApiId=wanted)
        except ClientError as exc:
            if not not_found(exc):
                raise
        else:
            say(f"  {gateway.name}: replacing API {wanted} already in the gateway")
            reader.delete_api(ApiId=wanted)
    loaded = LoadedApi(gateway.name, wanted or "", gateway.stage, "", "")

    def factory(service: str, region: str) -> Any:
        return control_plane_client(control_plane_url, region, wanted)

    try:
        with transaction.atomic():
            ApiGateway.objects.filter(pk=gateway.pk).update(
                api_id=None,
                aws_resources={},
                deployment_id="",
                custom_domain_name="",
                api_mapping_key="",
                provisioning_status=ApiGateway.ProvisioningStatus.NOT_PROVISIONED,
                target_base_endpoint=backend_endpoint(gateway.target_base_endpoint, backend_url),
            )
            scratch = ApiGateway.objects.get(pk=gateway.pk)
            provisioner = Provisioner(
                scratch, client_factory=factory, progress=lambda line: loaded.calls.append(line)
            )
            provisioner.apply(scope="api")
            loaded.api_id = scratch.api_id or ""
            transaction.set_rollback(True)
    except ProvisioningError as exc:
        loaded.error = str(exc)
        say(f"  {gateway.name}: FAILED: {exc}")
        return loaded
    if not wanted:
        ApiGateway.objects.filter(pk=gateway.pk).update(
            api_id=loaded.api_id, aws_resources={**gateway.aws_resources, "api": loaded.api_id}
        )
        gateway.refresh_from_db()
        loaded.assigned_id = True
    endpoint = reader.get_api(ApiId=loaded.api_id)["ApiEndpoint"]
    loaded.websocket_url = f"{endpoint}/{gateway.stage}"
    loaded.management_url = f"{control_plane_url.rstrip('/')}/{loaded.api_id}/{gateway.stage}"
    note = " (new local id saved on the record)" if loaded.assigned_id else ""
    say(
        f"  {gateway.name}: API {loaded.api_id}{note}, {len(loaded.calls)} call(s): "
        f"{loaded.websocket_url}"
    )
    return loaded


def load_gateways(
    control_plane_url: str,
    *,
    gateways: Iterable[ApiGateway] | None = None,
    backend_url: str | None = None,
    progress: Progress | None = None,
) -> list[LoadedApi]:
    """Load every record (or ``gateways``) and return what the gateway serves for each."""
    records = list(gateways if gateways is not None else ApiGateway.objects.order_by("name"))
    return [
        load_gateway(g, control_plane_url, backend_url=backend_url, progress=progress)
        for g in records
    ]
