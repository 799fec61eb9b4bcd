"""The AWS control plane for provisioning tests: moto where it implements a call, botocore's
Stubber where it does not (create_deployment, get_route_responses, domain names and API
mappings with their generated outputs).

Every call goes through real boto3 clients, so parameters are validated against botocore's
service model either way; Stubber also validates each canned answer against the output shape.
The plane records every operation (by its API name) and can fail the n-th mutating call.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import boto3
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from moto.apigatewayv2.models import apigatewayv2_backends
from moto.core import DEFAULT_ACCOUNT_ID

from django_aws_api_gateway_websockets.models import ApiGateway
from django_aws_api_gateway_websockets.provisioning import Provisioner
from django_aws_api_gateway_websockets.provisioning.plan import MUTATING_PREFIXES

REGION = "eu-west-1"
#: API Gateway's own hosted zone for regional custom domains (eu-west-1).
APIGW_ZONE = "ZLY8HYME6SFDD"


class Injected(ClientError):
    pass


class ControlPlane:
    STUBBED = {
        "create_deployment",
        "get_route_responses",
        "create_domain_name",
        "get_domain_name",
        "delete_domain_name",
        "create_api_mapping",
        "get_api_mappings",
        "delete_api_mapping",
    }

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.fail_at: int | None = None
        self.mutations = 0
        self.deployments: dict[str, list[str]] = {}
        self.domains: dict[str, dict[str, Any]] = {}
        self.mappings: dict[str, dict[str, dict[str, Any]]] = {}
        self._ids = (f"{n:08x}" for n in itertools.count(0x10000000))
        self._clients: dict[tuple[str, str], Any] = {}

    # -- what the provisioner gets ----------------------------------------------------------

    def factory(self, service: str, region: str) -> Any:
        key = (service, region)
        if key not in self._clients:
            real = boto3.client(service, region_name=region)
            stub_client = boto3.client(service, region_name=region)
            stubber = Stubber(stub_client)
            stubber.activate()
            self._clients[key] = _Client(self, service, region, real, stub_client, stubber)
        return self._clients[key]

    def raw(self, service: str, region: str = "eu-west-1") -> Any:
        """A plain moto-backed client for the test itself (not recorded)."""
        return boto3.client(service, region_name=region)

    @property
    def operations(self) -> list[str]:
        return [op for _service, op in self.calls]

    def mutating(self) -> list[str]:
        return [op for op in self.operations if _is_mutating_api_name(op)]

    def reset(self) -> None:
        self.calls.clear()

    # -- the calls moto lacks ---------------------------------------------------------------

    def answer(self, method: str, region: str, params: dict[str, Any]) -> dict[str, Any]:
        handler: Callable[..., dict[str, Any]] = getattr(self, f"_{method}")
        return handler(region, **params)

    def _create_deployment(self, region: str, ApiId: str, **params: Any) -> dict[str, Any]:
        self._api(region, ApiId)
        deployment_id = next(self._ids)
        self.deployments.setdefault(ApiId, []).append(deployment_id)
        return {
            "DeploymentId": deployment_id,
            "DeploymentStatus": "DEPLOYED",
            "AutoDeployed": False,
            "CreatedDate": datetime.now(timezone.utc),
            "Description": params.get("Description", ""),
        }

    def _get_route_responses(self, region: str, ApiId: str, RouteId: str) -> dict[str, Any]:
        api = self._api(region, ApiId)
        if RouteId not in api.routes:
            raise _NotFound("Route not found")
        items = [
            {"RouteResponseId": r.id, "RouteResponseKey": r.route_response_key}
            for r in api.routes[RouteId].route_responses.values()
        ]
        return {"Items": items}

    def _create_domain_name(
        self, region: str, DomainName: str, DomainNameConfigurations: list[dict[str, Any]]
    ) -> dict[str, Any]:
        if DomainName in self.domains:
            raise _Conflict("Domain name already exists")
        configs = [
            {
                **c,
                "ApiGatewayDomainName": f"d-{next(self._ids)}.execute-api.{region}.amazonaws.com",
                "HostedZoneId": APIGW_ZONE,
                "DomainNameStatus": "AVAILABLE",
            }
            for c in DomainNameConfigurations
        ]
        self.domains[DomainName] = {"DomainName": DomainName, "DomainNameConfigurations": configs}
        self.mappings[DomainName] = {}
        return self.domains[DomainName]

    def _get_domain_name(self, region: str, DomainName: str) -> dict[str, Any]:
        if DomainName not in self.domains:
            raise _NotFound("Domain name not found")
        return self.domains[DomainName]

    def _delete_domain_name(self, region: str, DomainName: str) -> dict[str, Any]:
        self._get_domain_name(region, DomainName)
        if self.mappings[DomainName]:
            raise _Conflict("Domain still has API mappings")
        del self.domains[DomainName], self.mappings[DomainName]
        return {}

    def _create_api_mapping(
        self, region: str, DomainName: str, ApiId: str, Stage: str, ApiMappingKey: str = ""
    ) -> dict[str, Any]:
        self._get_domain_name(region, DomainName)
        self._api(region, ApiId)
        mapping = {"ApiMappingId": next(self._ids), "ApiId": ApiId, "Stage": Stage}
        if ApiMappingKey:
            mapping["ApiMappingKey"] = ApiMappingKey
        self.mappings[DomainName][mapping["ApiMappingId"]] = mapping
        return mapping

    def _get_api_mappings(self, region: str, DomainName: str) -> dict[str, Any]:
        self._get_domain_name(region, DomainName)
        return {"Items": list(self.mappings[DomainName].values())}

    def _delete_api_mapping(self, region: str, DomainName: str, ApiMappingId: str) -> dict:
        if ApiMappingId not in self.mappings.get(DomainName, {}):
            raise _NotFound("Mapping not found")
        del self.mappings[DomainName][ApiMappingId]
        return {}

    def _api(self, region: str, api_id: str) -> Any:
        apis = apigatewayv2_backends[DEFAULT_ACCOUNT_ID][region].apis
        if api_id not in apis:
            raise _NotFound("Invalid API identifier specified")
        return apis[api_id]


class _FakeError(Exception):
    code = "BadRequestException"
    status = 400


class _NotFound(_FakeError):
    code = "NotFoundException"
    status = 404


class _Conflict(_FakeError):
    code = "ConflictException"
    status = 409


def _is_mutating_api_name(name: str) -> bool:
    snake = "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
    return snake.startswith(MUTATING_PREFIXES)


class _Client:
    """Looks like a boto3 client; records each call and sends it to moto or the Stubber."""

    def __init__(self, plane: ControlPlane, service: str, region: str, real, stub, stubber):
        self._plane, self._service, self._region = plane, service, region
        self._real, self._stub, self._stubber = real, stub, stubber
        self.meta = real.meta
        self.exceptions = real.exceptions

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if not callable(getattr(self._real, method, None)):
            raise AttributeError(method)

        def call(**params: Any) -> Any:
            api_name = self._real.meta.method_to_api_mapping[method]
            if method.startswith(MUTATING_PREFIXES):
                plane = self._plane
                if plane.fail_at is not None and plane.mutations == plane.fail_at:
                    plane.mutations += 1
                    plane.fail_at = None
                    raise Injected(
                        {"Error": {"Code": "InternalFailure", "Message": "injected failure"}},
                        api_name,
                    )
                plane.mutations += 1
            self._plane.calls.append((self._service, api_name))
            if self._service == "apigatewayv2" and method in ControlPlane.STUBBED:
                return self._stubbed(method, params)
            return getattr(self._real, method)(**params)

        return call

    def _stubbed(self, method: str, params: dict[str, Any]) -> Any:
        try:
            response = self._plane.answer(method, self._region, params)
        except _FakeError as exc:
            self._stubber.add_client_error(
                method,
                service_error_code=exc.code,
                service_message=str(exc),
                http_status_code=exc.status,
                expected_params=params,
            )
        else:
            self._stubber.add_response(method, response, expected_params=params)
        result = getattr(self._stub, method)(**params)
        self._stubber.assert_no_pending_responses()
        return result


def random_secret() -> str:
    return secrets.token_urlsafe(32)


def provisioner(plane: ControlPlane, gateway: ApiGateway, lines: list | None = None) -> Provisioner:
    """A provisioner on ``plane`` for a fresh copy of ``gateway``, progress lines to ``lines``."""
    gateway.refresh_from_db()
    sink = lines.append if lines is not None else None
    return Provisioner(gateway, client_factory=plane.factory, progress=sink, sleep=lambda s: None)
