"""What AWS should look like for one ``ApiGateway`` record: built once, read by the planner and
the CloudFormation export so both describe the same API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import contract
from ..conf import ws_settings

if TYPE_CHECKING:
    from ..models import ApiGateway

#: Written on every integration the layer creates, so a person in the console can tell.
DESCRIPTION_PREFIX = "django-aws-api-gateway-websockets"
#: The only route response key API Gateway supports for WebSocket routes.
ROUTE_RESPONSE_KEY = "$default"
PAYLOAD_FORMAT_VERSION = "1.0"
ENDPOINT_TYPE = "REGIONAL"
SECURITY_POLICY = "TLS_1_2"
#: Route keys whose integration answer is sent back to the client.
SYSTEM_TWO_WAY = {contract.CONNECT: False, contract.DISCONNECT: False, contract.DEFAULT: True}


@dataclass(frozen=True)
class DesiredIntegration:
    uri: str
    request_parameters: dict[str, str]
    integration_type: str = contract.INTEGRATION_TYPE
    method: str = contract.INTEGRATION_METHOD
    timeout_millis: int = contract.INTEGRATION_TIMEOUT_MILLIS
    payload_format_version: str = PAYLOAD_FORMAT_VERSION

    def params(self) -> dict[str, object]:
        """The fields ``create_integration``/``update_integration`` take (ApiId excluded)."""
        return {
            "IntegrationType": self.integration_type,
            "IntegrationMethod": self.method,
            "IntegrationUri": self.uri,
            "RequestParameters": dict(self.request_parameters),
            "TimeoutInMillis": self.timeout_millis,
            "PayloadFormatVersion": self.payload_format_version,
        }


@dataclass(frozen=True)
class DesiredRoute:
    route_key: str
    two_way: bool
    integration: DesiredIntegration

    @property
    def response_selection(self) -> str | None:
        return ROUTE_RESPONSE_KEY if self.two_way else None

    @property
    def description(self) -> str:
        return f"{DESCRIPTION_PREFIX}: {self.route_key}"


@dataclass(frozen=True)
class DesiredDomain:
    domain_name: str
    mapping_key: str
    certificate_arn: str
    hosted_zone_id: str


@dataclass(frozen=True)
class DesiredApi:
    name: str
    description: str
    region: str
    stage: str
    route_selection_expression: str
    routes: tuple[DesiredRoute, ...]
    domain: DesiredDomain | None

    def route(self, route_key: str) -> DesiredRoute:
        return next(r for r in self.routes if r.route_key == route_key)


def provisioned_secret() -> str | None:
    """The secret provisioning writes: the first of ``GATEWAY_SECRETS`` (see rotation)."""
    secrets = ws_settings.gateway_secrets
    return secrets[0] if secrets else None


def desired_api(gateway: ApiGateway) -> DesiredApi:
    """The desired state of ``gateway`` and its additional routes, read from the database."""
    params = contract.integration_request_parameters(provisioned_secret())
    routes = [
        DesiredRoute(
            key,
            SYSTEM_TWO_WAY[key],
            DesiredIntegration(gateway.integration_uri(key), params),
        )
        for key in (contract.CONNECT, contract.DISCONNECT, contract.DEFAULT)
    ]
    for extra in gateway.additional_routes.order_by("route_key"):
        routes.append(
            DesiredRoute(
                extra.route_key,
                extra.two_way,
                DesiredIntegration(extra.get_integration_uri(), params),
            )
        )
    domain = None
    if gateway.custom_domain_name:
        domain = DesiredDomain(
            domain_name=gateway.custom_domain_name.lower().rstrip("."),
            mapping_key=gateway.api_mapping_key,
            certificate_arn=gateway.certificate_arn,
            hosted_zone_id=normalise_zone_id(gateway.hosted_zone_id),
        )
    return DesiredApi(
        name=gateway.name,
        description=gateway.description,
        region=gateway.region,
        stage=gateway.stage,
        route_selection_expression=gateway.route_selection_expression,
        routes=tuple(routes),
        domain=domain,
    )


def normalise_zone_id(value: str) -> str:
    """``/hostedzone/Z123`` and ``Z123`` both name the zone; Route 53 calls take the bare id."""
    return (value or "").strip().rsplit("/", 1)[-1]
