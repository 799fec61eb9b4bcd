"""The local gateway's ``apigatewayv2`` control plane, driven by an unmodified boto3 client and by
the provisioning layer, against a running gateway (real sockets, real HTTP)."""

from __future__ import annotations

import contextlib
import http.client
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.config import Config
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_aws_api_gateway_websockets import contract
from django_aws_api_gateway_websockets.local_gateway import control_plane
from django_aws_api_gateway_websockets.local_gateway.config import GatewayConfig
from django_aws_api_gateway_websockets.local_gateway.server import GatewayThread
from django_aws_api_gateway_websockets.models import ApiGateway, ApiGatewayAdditionalRoute
from django_aws_api_gateway_websockets.provisioning import Provisioner, make_client
from django_aws_api_gateway_websockets.testing import HandshakeRejected, WebSocketTestClient
from tests.settings import GATEWAY_SECRET

URI = "http://127.0.0.1:8000/ws/connect"


@pytest.fixture(scope="module")
def gateway() -> Iterator[GatewayThread]:
    with GatewayThread(GatewayConfig()) as running:
        yield running


@pytest.fixture
def client(gateway: GatewayThread) -> Any:
    return boto3.client(
        "apigatewayv2",
        endpoint_url=gateway.control_url,
        region_name="eu-west-1",
        aws_access_key_id="anything",
        aws_secret_access_key="anything",
        config=Config(retries={"max_attempts": 1}),
    )


@pytest.fixture
def api(client: Any) -> dict[str, Any]:
    created = client.create_api(
        Name="chat", ProtocolType="WEBSOCKET", RouteSelectionExpression="$request.body.action"
    )
    yield created
    with contextlib.suppress(client.exceptions.NotFoundException):
        client.delete_api(ApiId=created["ApiId"])


def integration(client: Any, api_id: str, **overrides: Any) -> dict[str, Any]:
    params = {
        "ApiId": api_id,
        "IntegrationType": "HTTP_PROXY",
        "IntegrationUri": URI,
        "IntegrationMethod": "POST",
        "RequestParameters": contract.integration_request_parameters("s3cret"),
        "TimeoutInMillis": 29_000,
        "PayloadFormatVersion": "1.0",
        **overrides,
    }
    return client.create_integration(**params)


def raw(gateway: GatewayThread, method: str, path: str, body: bytes | None = None) -> tuple:
    parts = urlsplit(gateway.control_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, response.getheader("x-amzn-ErrorType"), response.read()
    finally:
        connection.close()


# -- the lifecycle of a WebSocket API ---------------------------------------------------------


def test_create_api_answers_like_aws(client, gateway, api):
    assert len(api["ApiId"]) == 10 and api["ApiId"].isalnum()
    assert api["ApiEndpoint"] == f"{gateway.ws_url}/{api['ApiId']}"
    assert api["ProtocolType"] == "WEBSOCKET"
    assert api["RouteSelectionExpression"] == "$request.body.action"
    assert api["ApiKeySelectionExpression"] == "$request.header.x-api-key"
    assert api["CreatedDate"].tzinfo is not None
    fetched = client.get_api(ApiId=api["ApiId"])
    assert fetched["Name"] == "chat" and fetched["ApiEndpoint"] == api["ApiEndpoint"]
    listed = [a["ApiId"] for a in client.get_apis()["Items"]]
    assert api["ApiId"] in listed


def test_integrations_routes_responses_stage_and_deployment(client, gateway, api):
    api_id = api["ApiId"]
    made = integration(client, api_id)
    assert made["RequestParameters"][f"integration.request.header.{contract.GATEWAY_SECRET_HEADER}"]
    assert made["PayloadFormatVersion"] == "1.0" and made["TimeoutInMillis"] == 29_000
    target = f"integrations/{made['IntegrationId']}"
    connect = client.create_route(ApiId=api_id, RouteKey="$connect", Target=target)
    default = client.create_route(
        ApiId=api_id,
        RouteKey="$default",
        Target=target,
        RouteResponseSelectionExpression="$default",
    )
    response = client.create_route_response(
        ApiId=api_id, RouteId=default["RouteId"], RouteResponseKey="$default"
    )
    assert client.get_route_responses(ApiId=api_id, RouteId=default["RouteId"])["Items"] == [
        {"RouteResponseId": response["RouteResponseId"], "RouteResponseKey": "$default"}
    ]
    stage = client.create_stage(
        ApiId=api_id, StageName="production", StageVariables={"backend": "127.0.0.1:8000"}
    )
    assert "DeploymentId" not in stage
    assert gateway.store.deployed(api_id, "production") is None  # nothing deployed: no API
    deployment = client.create_deployment(ApiId=api_id, StageName="production")
    assert deployment["DeploymentStatus"] == "DEPLOYED"
    assert (
        client.get_stage(ApiId=api_id, StageName="production")["DeploymentId"]
        == (deployment["DeploymentId"])
    )
    served = gateway.store.deployed(api_id, "production")
    assert set(served.snapshot.routes) == {"$connect", "$default"}
    assert served.snapshot.routes["$default"].two_way
    assert served.stage_variables == {"backend": "127.0.0.1:8000"}

    # A stage serves its last deployment: a new route does nothing until deployed.
    client.create_route(ApiId=api_id, RouteKey="shout", Target=target)
    assert "shout" not in gateway.store.deployed(api_id, "production").snapshot.routes
    client.create_deployment(ApiId=api_id, StageName="production")
    assert "shout" in gateway.store.deployed(api_id, "production").snapshot.routes

    assert client.get_route(ApiId=api_id, RouteId=connect["RouteId"])["RouteKey"] == "$connect"
    first = client.get_deployments(ApiId=api_id)["Items"][0]
    assert first["DeploymentId"] == deployment["DeploymentId"]


def test_updates_keep_what_was_not_sent(client, gateway, api):
    api_id = api["ApiId"]
    made = integration(client, api_id)
    updated = client.update_integration(
        ApiId=api_id, IntegrationId=made["IntegrationId"], TimeoutInMillis=5000
    )
    assert updated["TimeoutInMillis"] == 5000 and updated["IntegrationUri"] == URI
    route = client.create_route(
        ApiId=api_id, RouteKey="a", Target=f"integrations/{made['IntegrationId']}"
    )
    renamed = client.update_route(ApiId=api_id, RouteId=route["RouteId"], RouteKey="b")
    assert renamed["RouteKey"] == "b" and renamed["Target"] == route["Target"]
    cleared = client.update_route(
        ApiId=api_id, RouteId=route["RouteId"], RouteResponseSelectionExpression=""
    )
    assert "RouteResponseSelectionExpression" not in cleared
    assert client.update_api(ApiId=api_id, Description="d")["Description"] == "d"
    client.create_stage(ApiId=api_id, StageName="dev")
    stage = client.update_stage(ApiId=api_id, StageName="dev", StageVariables={"v": "1"})
    assert stage["StageVariables"] == {"v": "1"}
    deployment = client.create_deployment(ApiId=api_id, Description="first")
    assert (
        client.update_deployment(
            ApiId=api_id, DeploymentId=deployment["DeploymentId"], Description="second"
        )["Description"]
        == "second"
    )
    moved = client.update_stage(
        ApiId=api_id, StageName="dev", DeploymentId=deployment["DeploymentId"]
    )
    assert moved["DeploymentId"] == deployment["DeploymentId"]
    assert gateway.store.deployed(api_id, "dev").snapshot.routes["b"]


def test_auto_deploy_stages_redeploy_on_every_change(client, gateway, api):
    api_id = api["ApiId"]
    made = integration(client, api_id)
    client.create_route(
        ApiId=api_id, RouteKey="$default", Target=f"integrations/{made['IntegrationId']}"
    )
    client.create_stage(ApiId=api_id, StageName="live", AutoDeploy=True)
    assert set(gateway.store.deployed(api_id, "live").snapshot.routes) == {"$default"}
    client.create_route(
        ApiId=api_id, RouteKey="more", Target=f"integrations/{made['IntegrationId']}"
    )
    assert set(gateway.store.deployed(api_id, "live").snapshot.routes) == {"$default", "more"}
    deployments = client.get_deployments(ApiId=api_id)["Items"]
    assert deployments[-1]["AutoDeployed"] is True
    with pytest.raises(client.exceptions.BadRequestException, match="AutoDeploy"):
        client.create_deployment(ApiId=api_id, StageName="live")
    manual = client.create_deployment(ApiId=api_id)
    with pytest.raises(client.exceptions.BadRequestException, match="AutoDeploy"):
        client.update_stage(ApiId=api_id, StageName="live", DeploymentId=manual["DeploymentId"])
    with pytest.raises(client.exceptions.BadRequestException, match="AutoDeploy"):
        client.create_stage(
            ApiId=api_id, StageName="other", AutoDeploy=True, DeploymentId=manual["DeploymentId"]
        )


def test_deletes(client, gateway, api):
    api_id = api["ApiId"]
    made = integration(client, api_id)
    route = client.create_route(
        ApiId=api_id, RouteKey="$default", Target=f"integrations/{made['IntegrationId']}"
    )
    response = client.create_route_response(
        ApiId=api_id, RouteId=route["RouteId"], RouteResponseKey="$default"
    )
    with pytest.raises(client.exceptions.ConflictException, match="target of route"):
        client.delete_integration(ApiId=api_id, IntegrationId=made["IntegrationId"])
    client.delete_route_response(
        ApiId=api_id, RouteId=route["RouteId"], RouteResponseId=response["RouteResponseId"]
    )
    client.delete_route(ApiId=api_id, RouteId=route["RouteId"])
    client.delete_integration(ApiId=api_id, IntegrationId=made["IntegrationId"])
    with pytest.raises(client.exceptions.NotFoundException):
        client.get_route(ApiId=api_id, RouteId=route["RouteId"])
    with pytest.raises(client.exceptions.NotFoundException):
        client.get_integration(ApiId=api_id, IntegrationId=made["IntegrationId"])
    client.create_route(ApiId=api_id, RouteKey="x")
    with pytest.raises(client.exceptions.BadRequestException, match="no integration target"):
        client.create_deployment(ApiId=api_id)
    client.create_stage(ApiId=api_id, StageName="s")
    client.delete_stage(ApiId=api_id, StageName="s")
    with pytest.raises(client.exceptions.NotFoundException):
        client.get_stage(ApiId=api_id, StageName="s")
    client.delete_api(ApiId=api_id)
    with pytest.raises(client.exceptions.NotFoundException):
        client.get_api(ApiId=api_id)


def test_a_deployment_in_use_cannot_be_deleted(client, api):
    api_id = api["ApiId"]
    made = integration(client, api_id)
    client.create_route(
        ApiId=api_id, RouteKey="$default", Target=f"integrations/{made['IntegrationId']}"
    )
    client.create_stage(ApiId=api_id, StageName="s")
    deployment = client.create_deployment(ApiId=api_id, StageName="s")
    with pytest.raises(client.exceptions.BadRequestException, match="Active stages"):
        client.delete_deployment(ApiId=api_id, DeploymentId=deployment["DeploymentId"])
    client.delete_stage(ApiId=api_id, StageName="s")
    client.delete_deployment(ApiId=api_id, DeploymentId=deployment["DeploymentId"])
    assert client.get_deployments(ApiId=api_id)["Items"] == []


def test_lists_are_paginated(client, api):
    api_id = api["ApiId"]
    keys = [f"route{n}" for n in range(7)]
    for key in keys:
        client.create_route(ApiId=api_id, RouteKey=key)
    first = client.get_routes(ApiId=api_id, MaxResults="3")
    assert len(first["Items"]) == 3 and first["NextToken"]
    pages = client.get_paginator("get_routes").paginate(
        ApiId=api_id, PaginationConfig={"PageSize": 2}
    )
    assert [r["RouteKey"] for page in pages for r in page["Items"]] == keys
    with pytest.raises(client.exceptions.BadRequestException, match="NextToken"):
        client.get_routes(ApiId=api_id, NextToken="not-a-token")
    with pytest.raises(client.exceptions.BadRequestException, match="MaxResults"):
        client.get_routes(ApiId=api_id, MaxResults="0")


# -- what AWS refuses for WebSocket APIs ------------------------------------------------------

CREATE_API_REFUSALS = [
    ({"ProtocolType": "HTTP"}, "WEBSOCKET"),
    ({"RouteSelectionExpression": None}, "RouteSelectionExpression is required"),
    ({"RouteSelectionExpression": "action"}, "RouteSelectionExpression"),
    ({"RouteKey": "GET /"}, "HTTP APIs"),
    ({"Target": "http://example.com"}, "HTTP APIs"),
    ({"CorsConfiguration": {"AllowOrigins": ["*"]}}, "HTTP APIs"),
    ({"ApiKeySelectionExpression": "$request.header.other"}, "ApiKeySelectionExpression"),
]


@pytest.mark.parametrize(("change", "message"), CREATE_API_REFUSALS)
def test_create_api_refusals(client, change, message):
    params = {
        "Name": "x",
        "ProtocolType": "WEBSOCKET",
        "RouteSelectionExpression": "$request.body.action",
        **change,
    }
    params = {k: v for k, v in params.items() if v is not None}
    with pytest.raises(client.exceptions.BadRequestException, match=message):
        client.create_api(**params)


INTEGRATION_REFUSALS = [
    ({"IntegrationType": "AWS_PROXY", "IntegrationUri": "arn:aws:lambda:x"}, "not supported"),
    ({"TimeoutInMillis": 29_001}, "between 50 and 29000"),
    ({"TimeoutInMillis": 30_000}, "between 50 and 29000"),
    ({"PayloadFormatVersion": "2.0"}, "PayloadFormatVersion"),
    ({"IntegrationUri": "/relative"}, "absolute"),
    ({"IntegrationUri": "ftp://example.com/x"}, "absolute"),
    ({"IntegrationUri": "http://${request.body.host}/x"}, "stageVariables"),
    ({"IntegrationMethod": "FETCH"}, "IntegrationMethod"),
    ({"ConnectionType": "VPC_LINK", "ConnectionId": "abc"}, "VPC links"),
    ({"IntegrationSubtype": "SQS-SendMessage"}, "HTTP APIs"),
    ({"ResponseParameters": {"200": {"overwrite:statuscode": "204"}}}, "HTTP APIs"),
    (
        {"RequestParameters": {"append:header.connectionId": "$context.connectionId"}},
        "HTTP API syntax",
    ),
    (
        {"RequestParameters": {"integration.request.header.id": "$context.connectionId"}},
        "HTTP API syntax",
    ),
    ({"RequestParameters": {"integration.request.body.x": "context.connectionId"}}, "mapping"),
    ({"RequestParameters": {"integration.request.header.x": "context.nothing"}}, "unknown context"),
    ({"RequestParameters": {"integration.request.header.x": "static"}}, "mapping expression"),
]


@pytest.mark.parametrize(("change", "message"), INTEGRATION_REFUSALS)
def test_integration_refusals(client, api, change, message):
    with pytest.raises(client.exceptions.BadRequestException, match=message):
        integration(client, api["ApiId"], **change)


def test_integration_accepts_every_websocket_mapping_source(client, api):
    sources = {
        "integration.request.header.a": "context.connectionId",
        "integration.request.header.b": "context.identity.sourceIp",
        "integration.request.header.c": "stageVariables.secret",
        "integration.request.header.d": "'static value'",
        "integration.request.querystring.e": "route.request.querystring.token",
        "integration.request.header.f": "route.request.header.Origin",
        "integration.request.header.g": "route.request.body.action",
        "integration.request.header.h": "route.request.multivalueheader.Cookie",
    }
    made = integration(
        client,
        api["ApiId"],
        RequestParameters=sources,
        IntegrationUri="http://${stageVariables.host}/ws/connect",
    )
    assert made["RequestParameters"] == sources
    with pytest.raises(client.exceptions.BadRequestException, match="between 50"):
        client.update_integration(
            ApiId=api["ApiId"], IntegrationId=made["IntegrationId"], TimeoutInMillis=40_000
        )


ROUTE_REFUSALS = [
    ({"RouteKey": "$custom"}, "reserved"),
    ({"RouteKey": "$CONNECT"}, "reserved"),
    ({"Target": "arn:aws:lambda:x"}, "integrations/"),
    ({"RouteResponseSelectionExpression": "$request.body.x"}, "must be \\$default"),
    ({"AuthorizationType": "AWS_IAM"}, "only supported for the \\$connect route"),
    ({"AuthorizationType": "JWT"}, "HTTP APIs"),
    ({"AuthorizationScopes": ["a"]}, "HTTP APIs"),
    ({"RequestParameters": {"route.request.querystring.t": {"Required": True}}}, "\\$connect"),
    ({"RouteKey": "$connect", "RequestParameters": {"t": {"Required": True}}}, "Invalid route"),
]


@pytest.mark.parametrize(("change", "message"), ROUTE_REFUSALS)
def test_route_refusals(client, api, change, message):
    params = {"ApiId": api["ApiId"], "RouteKey": "custom", **change}
    with pytest.raises(client.exceptions.BadRequestException, match=message):
        client.create_route(**params)


def test_route_keys_are_unique_and_targets_must_exist(client, api):
    api_id = api["ApiId"]
    first = client.create_route(ApiId=api_id, RouteKey="$connect")
    with pytest.raises(client.exceptions.ConflictException, match="already exists"):
        client.create_route(ApiId=api_id, RouteKey="$connect")
    other = client.create_route(ApiId=api_id, RouteKey="other")
    with pytest.raises(client.exceptions.ConflictException):
        client.update_route(ApiId=api_id, RouteId=other["RouteId"], RouteKey="$connect")
    with pytest.raises(client.exceptions.NotFoundException, match="Integration"):
        client.update_route(ApiId=api_id, RouteId=first["RouteId"], Target="integrations/abc1234")
    accepted = client.create_route(
        ApiId=api_id,
        RouteKey="$disconnect",
        RequestParameters={},
    )
    assert accepted["RouteKey"] == "$disconnect"
    with_params = client.update_route(
        ApiId=api_id,
        RouteId=first["RouteId"],
        RequestParameters={"route.request.querystring.ws_token": {"Required": False}},
    )
    assert with_params["RequestParameters"] == {
        "route.request.querystring.ws_token": {"Required": False}
    }


def test_route_responses_only_default_and_once(client, api):
    api_id = api["ApiId"]
    route = client.create_route(ApiId=api_id, RouteKey="$default")
    with pytest.raises(client.exceptions.BadRequestException, match="\\$default"):
        client.create_route_response(ApiId=api_id, RouteId=route["RouteId"], RouteResponseKey="ok")
    client.create_route_response(
        ApiId=api_id, RouteId=route["RouteId"], RouteResponseKey="$default"
    )
    with pytest.raises(client.exceptions.ConflictException):
        client.create_route_response(
            ApiId=api_id, RouteId=route["RouteId"], RouteResponseKey="$default"
        )


@pytest.mark.parametrize(
    ("params", "error", "message"),
    [
        ({"StageName": "$default"}, "BadRequestException", "HTTP APIs"),
        ({"StageName": "has space"}, "BadRequestException", "Stage names"),
        ({"StageName": "x" * 129}, "BadRequestException", "128"),
        ({"StageName": "s", "StageVariables": {"bad-name": "v"}}, "BadRequestException", "name"),
        ({"StageName": "s", "StageVariables": {"v": "sp ace"}}, "BadRequestException", "value"),
        ({"StageName": "s", "DeploymentId": "nope00"}, "NotFoundException", "Deployment"),
    ],
)
def test_stage_refusals(client, api, params, error, message):
    with pytest.raises(getattr(client.exceptions, error), match=message):
        client.create_stage(ApiId=api["ApiId"], **params)


def test_route_settings_name_existing_routes(client, api):
    settings_ = {"ThrottlingBurstLimit": 10, "ThrottlingRateLimit": 5.0}
    with pytest.raises(client.exceptions.BadRequestException, match="Unable to find Route"):
        client.create_stage(ApiId=api["ApiId"], StageName="s", RouteSettings={"nope": settings_})
    client.create_route(ApiId=api["ApiId"], RouteKey="$default")
    stage = client.create_stage(
        ApiId=api["ApiId"],
        StageName="s",
        RouteSettings={"$default": settings_},
        DefaultRouteSettings={"DataTraceEnabled": False, "LoggingLevel": "INFO"},
    )
    assert stage["RouteSettings"] == {"$default": settings_}
    assert stage["DefaultRouteSettings"] == {"DataTraceEnabled": False, "LoggingLevel": "INFO"}


def test_stage_names_are_unique_and_deployment_needs_routes(client, api):
    client.create_stage(ApiId=api["ApiId"], StageName="prod")
    with pytest.raises(client.exceptions.ConflictException):
        client.create_stage(ApiId=api["ApiId"], StageName="prod")
    with pytest.raises(client.exceptions.BadRequestException, match="At least one route"):
        client.create_deployment(ApiId=api["ApiId"], StageName="prod")
    with pytest.raises(client.exceptions.NotFoundException, match="stage"):
        client.create_deployment(ApiId=api["ApiId"], StageName="nope")


def test_unknown_ids_are_not_found(client, api):
    api_id = api["ApiId"]
    calls = [
        lambda: client.get_api(ApiId="unknown000"),
        lambda: client.get_integration(ApiId=api_id, IntegrationId="nope000"),
        lambda: client.get_route(ApiId=api_id, RouteId="nope000"),
        lambda: client.get_routes(ApiId="unknown000"),
        lambda: client.get_stage(ApiId=api_id, StageName="nope"),
        lambda: client.get_deployment(ApiId=api_id, DeploymentId="nope00"),
        lambda: client.delete_route(ApiId=api_id, RouteId="nope000"),
        lambda: client.update_stage(ApiId=api_id, StageName="nope", Description="x"),
        lambda: client.create_route_response(
            ApiId=api_id, RouteId="nope000", RouteResponseKey="$default"
        ),
    ]
    for call in calls:
        with pytest.raises(client.exceptions.NotFoundException):
            call()


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.create_authorizer(
            ApiId="a", AuthorizerType="REQUEST", IdentitySource=["route.request.header.x"], Name="n"
        ),
        lambda c: c.create_domain_name(DomainName="ws.example.com"),
        lambda c: c.get_tags(ResourceArn="arn:aws:apigateway:eu-west-1::/apis/a"),
        lambda c: c.create_vpc_link(Name="v", SubnetIds=["s"]),
    ],
)
def test_unsupported_operations_answer_bad_request(client, call):
    with pytest.raises(client.exceptions.BadRequestException, match="not supported by the local"):
        call(client)


# -- malformed requests (not what boto3 would send) -------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "error"),
    [
        ("POST", "/v2/apis", b"{not json", 400, "BadRequestException"),
        ("POST", "/v2/apis", b"[1, 2]", 400, "BadRequestException"),
        (
            "POST",
            "/v2/apis",
            b'{"name": 5, "protocolType": "WEBSOCKET"}',
            400,
            "BadRequestException",
        ),
        ("POST", "/v2/apis", b'{"protocolType": "WEBSOCKET"}', 400, "BadRequestException"),
        ("POST", "/v2/apis", b'{"name": "x", "protocolType": "SOAP"}', 400, "BadRequestException"),
        (
            "POST",
            "/v2/apis",
            b'{"name": "x", "protocolType": "WEBSOCKET", '
            b'"routeSelectionExpression": "$request.body.a", "tags": ["x"]}',
            400,
            "BadRequestException",
        ),
        ("POST", "/v2/apis", b"\xff\xfe", 400, "BadRequestException"),
        ("GET", "/v2/apis?maxResults=abc", None, 400, "BadRequestException"),
        ("GET", "/v2/nothing-here", None, 404, "NotFoundException"),
        ("PUT", "/v2/apis/abc/routes", b"{}", 404, "NotFoundException"),
        ("GET", "/v2/apis/unknown%2Fid", None, 404, "NotFoundException"),
        ("PUT", "/v2/apis", b"{}", 400, "BadRequestException"),
    ],
)
def test_malformed_requests_get_aws_errors(gateway, method, path, body, status, error):
    got_status, error_type, payload = raw(gateway, method, path, body)
    assert (got_status, error_type) == (status, error)
    assert isinstance(json.loads(payload)["message"], str)


def test_wrong_types_inside_structures_are_refused(gateway, client, api):
    path = f"/v2/apis/{api['ApiId']}/integrations"
    body = {
        "integrationType": "HTTP_PROXY",
        "integrationUri": URI,
        "integrationMethod": "POST",
        "timeoutInMillis": "29000",
    }
    status, error_type, payload = raw(gateway, "POST", path, json.dumps(body).encode())
    assert (status, error_type) == (400, "BadRequestException")
    assert "TimeoutInMillis" in json.loads(payload)["message"]
    body["timeoutInMillis"] = 1000
    body["requestParameters"] = {"integration.request.header.x": 5}
    status, error_type, _ = raw(gateway, "POST", path, json.dumps(body).encode())
    assert (status, error_type) == (400, "BadRequestException")
    assert client.get_integrations(ApiId=api["ApiId"])["Items"] == []


def test_the_route_table_comes_from_botocore():
    model = control_plane.service_model()
    assert {op.name for op in control_plane.route_table()} == set(model.operation_names)
    for name in control_plane.supported_operations():
        assert name in model.operation_names
    found = control_plane.match("PATCH", "/v2/apis/abc/stages/prod")
    assert found is not None and found[0].name == "UpdateStage"
    assert found[1] == {"apiId": "abc", "stageName": "prod"}


# -- the provisioning layer, unchanged, against the local gateway -----------------------------


@pytest.fixture
def local_settings(gateway: GatewayThread) -> Iterator[None]:
    with override_settings(
        AWS_API_GATEWAY_WEBSOCKETS={
            "GATEWAY_SECRETS": [GATEWAY_SECRET],
            "LOCAL_GATEWAY_URL": gateway.http_url,
        }
    ):
        yield


@pytest.mark.django_db
def test_provisioning_plans_applies_converges_and_tears_down(gateway, local_settings):
    record = ApiGateway.objects.create(
        name="provisioned", region="eu-west-1", target_base_endpoint="http://127.0.0.1:8000/ws/"
    )
    client = make_client("apigatewayv2", "eu-west-1")
    assert client.meta.endpoint_url == gateway.http_url

    plan = Provisioner(record).plan()
    assert plan.steps[0].operation == "create_api"
    applied = Provisioner(record).apply()
    assert applied.mutating_steps
    record.refresh_from_db()
    assert record.provisioning_status == ApiGateway.ProvisioningStatus.PROVISIONED
    assert record.api_endpoint == f"{gateway.ws_url}/{record.api_id}"
    assert record.websocket_url == f"{gateway.ws_url}/{record.api_id}/production"
    served = gateway.store.deployed(record.api_id, "production")
    assert set(served.snapshot.routes) == {"$connect", "$disconnect", "$default"}
    assert served.snapshot.routes["$default"].two_way
    connect = served.snapshot.integrations[served.snapshot.routes["$connect"].integration_id]
    assert connect.integration_uri == "http://127.0.0.1:8000/ws/connect"
    assert connect.request_parameters == contract.integration_request_parameters(GATEWAY_SECRET)

    assert Provisioner(record).plan().in_sync  # a second plan finds nothing to do

    ApiGatewayAdditionalRoute.objects.create(gateway=record, route_key="shout", two_way=True)
    record.refresh_from_db()
    again = Provisioner(record).apply()
    assert {s.operation for s in again.mutating_steps} >= {
        "create_integration",
        "create_route",
        "create_route_response",
        "create_deployment",
    }
    assert "shout" in gateway.store.deployed(record.api_id, "production").snapshot.routes
    assert Provisioner(record).drift() == []

    api_id = record.api_id
    Provisioner(record).teardown()
    assert api_id not in gateway.store.apis


@pytest.mark.django_db
def test_provisioning_reports_drift_made_in_the_gateway(gateway, local_settings):
    record = ApiGateway.objects.create(
        name="drifting", region="eu-west-1", target_base_endpoint="http://127.0.0.1:8000/ws/"
    )
    Provisioner(record).apply()
    record.refresh_from_db()
    client = make_client("apigatewayv2", "eu-west-1")
    routes = {r["RouteKey"]: r for r in client.get_routes(ApiId=record.api_id)["Items"]}
    integration_id = routes["$default"]["Target"].split("/")[1]
    client.update_integration(
        ApiId=record.api_id, IntegrationId=integration_id, IntegrationUri="http://127.0.0.1:1/x"
    )
    differences = Provisioner(record).drift()
    assert [d.resource for d in differences] == ["integration:$default"]
    Provisioner(record).apply()
    assert Provisioner(record).drift() == []


# -- what the control plane configures is what the data plane serves ----------------------------


def test_an_undeployed_route_does_nothing_until_deployed(client, gateway):
    from tests.local_gateway_support import RecordingBackend

    backend = RecordingBackend().start()
    try:
        api = client.create_api(
            Name="live", ProtocolType="WEBSOCKET", RouteSelectionExpression="$request.body.action"
        )
        api_id = api["ApiId"]
        default = integration(client, api_id, IntegrationUri=backend.url + "/ws/default")
        shout = integration(client, api_id, IntegrationUri=backend.url + "/ws/shout")
        client.create_route(
            ApiId=api_id, RouteKey="$default", Target=f"integrations/{default['IntegrationId']}"
        )
        client.create_stage(ApiId=api_id, StageName="dev", StageVariables={"v": "1"})
        client.create_deployment(ApiId=api_id, StageName="dev")
        client.create_route(
            ApiId=api_id, RouteKey="shout", Target=f"integrations/{shout['IntegrationId']}"
        )
        url = f"{api['ApiEndpoint']}/dev"
        with WebSocketTestClient(url) as ws:
            ws.send_json({"action": "shout"})
            backend.wait_for(lambda r: len(r) == 1)
        assert backend.paths() == ["/ws/default"]  # the new route is not deployed yet

        client.create_deployment(ApiId=api_id, StageName="dev")
        with WebSocketTestClient(url) as ws:
            ws.send_json({"action": "shout"})
            backend.wait_for(lambda r: len(r) == 2)
        assert backend.paths() == ["/ws/default", "/ws/shout"]

        with pytest.raises(HandshakeRejected) as refused:  # a stage that was never created
            WebSocketTestClient(f"{api['ApiEndpoint']}/prod").connect()
        assert refused.value.status == 403
    finally:
        backend.stop()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=12), children, max_size=3)
    ),
    max_leaves=8,
)
MEMBER_NAMES = st.sampled_from(
    [
        "name",
        "protocolType",
        "routeSelectionExpression",
        "routeKey",
        "target",
        "integrationType",
        "integrationUri",
        "integrationMethod",
        "requestParameters",
        "timeoutInMillis",
        "stageName",
        "stageVariables",
        "routeResponseKey",
        "autoDeploy",
        "deploymentId",
        "defaultRouteSettings",
    ]
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    method_path=st.sampled_from(
        [
            ("POST", "/v2/apis"),
            ("POST", "/v2/apis/{api}/integrations"),
            ("POST", "/v2/apis/{api}/routes"),
            ("POST", "/v2/apis/{api}/stages"),
            ("POST", "/v2/apis/{api}/deployments"),
            ("PATCH", "/v2/apis/{api}"),
            ("PATCH", "/v2/apis/{api}/stages/dev"),
            ("GET", "/v2/apis/{api}/routes?maxResults={text}&nextToken={text}"),
        ]
    ),
    body=st.dictionaries(MEMBER_NAMES, json_values, max_size=5) | json_values,
    text=st.text(alphabet="abc012=%/-", max_size=6),
)
def test_random_requests_never_get_a_server_error(gateway, fuzz_api, method_path, body, text):
    method, path = method_path
    path = path.replace("{api}", fuzz_api).replace("{text}", text)
    status, error_type, payload = raw(gateway, method, path, json.dumps(body).encode())
    assert status < 500
    if status >= 400:
        assert error_type in ("BadRequestException", "NotFoundException", "ConflictException")
        assert "message" in json.loads(payload)


@pytest.fixture(scope="module")
def fuzz_api(gateway) -> str:
    client = boto3.client(
        "apigatewayv2",
        endpoint_url=gateway.control_url,
        region_name="eu-west-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    api = client.create_api(
        Name="fuzz", ProtocolType="WEBSOCKET", RouteSelectionExpression="$request.body.action"
    )
    client.create_stage(ApiId=api["ApiId"], StageName="dev")
    return api["ApiId"]
