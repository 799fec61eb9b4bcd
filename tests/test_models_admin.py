"""Models (validation, URLs), the admin, and the integration contract written to API Gateway."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from django_aws_api_gateway_websockets import contract
from django_aws_api_gateway_websockets.models import (
    ApiGateway,
    ApiGatewayAdditionalRoute,
    RateLimitWindow,
    WebSocketSession,
    WebSocketToken,
)
from django_aws_api_gateway_websockets.testing import new_connection_id
from django_aws_api_gateway_websockets.tokens import mint_token

pytestmark = pytest.mark.django_db

APP = "django_aws_api_gateway_websockets"
SLUG_RE = re.compile(r"[-a-zA-Z0-9_]+")


def _gateway(**fields) -> ApiGateway:
    values = {"name": "g", "target_base_endpoint": "https://example.com/ws/", **fields}
    return ApiGateway(**values)


def _errors(instance) -> dict:
    with pytest.raises(ValidationError) as caught:
        instance.full_clean()
    return caught.value.message_dict


# ApiGateway --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("https://example.com/ws", "https://example.com/ws/"),
        ("https://example.com/ws/", "https://example.com/ws/"),
        ("https://example.com/ws///", "https://example.com/ws/"),
        ("  https://example.com/ws  ", "https://example.com/ws/"),
    ],
)
def test_target_base_endpoint_gets_one_trailing_slash_on_save(given, stored):
    gateway = ApiGateway.objects.create(name="g", target_base_endpoint=given)
    gateway.refresh_from_db()
    assert gateway.target_base_endpoint == stored


def test_full_clean_normalises_the_endpoint():
    gateway = _gateway(target_base_endpoint="https://example.com/ws")
    gateway.full_clean(validate_unique=False)
    assert gateway.target_base_endpoint == "https://example.com/ws/"


def test_empty_api_id_is_stored_as_null():
    first = ApiGateway.objects.create(name="a", api_id="", target_base_endpoint="https://x/ws/")
    second = ApiGateway.objects.create(name="b", api_id="", target_base_endpoint="https://x/ws/")
    assert first.api_id is None and second.api_id is None


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://example.com/ws/",
        "https://example.com:8443/ws/",
        "http://localhost:8000/ws/",
        "http://127.0.0.1/ws/",
        "http://[::1]:8000/ws/",
    ],
)
def test_valid_endpoints(endpoint):
    _gateway(target_base_endpoint=endpoint).full_clean(validate_unique=False)


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://example.com/ws/",
        "http://198.51.100.1/ws/",
        "ftp://example.com/ws/",
        "example.com/ws/",
        "https:///ws/",
        "https://example.com/ws/?x=1",
        "https://example.com/ws/#frag",
        "https://example.com/ws/<slug:route>",
        "https://example.com/ws/{route}",
        "",
    ],
)
def test_invalid_endpoints_fail_full_clean(endpoint):
    errors = _errors(_gateway(target_base_endpoint=endpoint))
    assert "target_base_endpoint" in errors


def test_invalid_stage_fails_full_clean():
    assert "stage" in _errors(_gateway(stage="prod stage"))


def test_websocket_url_without_custom_domain():
    gateway = _gateway(api_id="abc123", region="eu-west-1", stage="live")
    assert gateway.websocket_url == "wss://abc123.execute-api.eu-west-1.amazonaws.com/live"


def test_websocket_url_with_custom_domain():
    gateway = _gateway(api_id="abc123", custom_domain_name="ws.example.com")
    assert gateway.websocket_url == "wss://ws.example.com"
    gateway.api_mapping_key = "chat"
    assert gateway.websocket_url == "wss://ws.example.com/chat"


def test_websocket_url_is_empty_before_provisioning():
    assert _gateway().websocket_url == ""


def test_management_endpoint_url():
    gateway = _gateway(api_id="abc123", region="eu-west-1", stage="live")
    assert gateway.management_endpoint_url == (
        "https://abc123.execute-api.eu-west-1.amazonaws.com/live"
    )
    gateway.custom_domain_name = "ws.example.com"
    gateway.api_mapping_key = "chat"
    assert gateway.management_endpoint_url == "https://ws.example.com/chat"


def test_integration_uri_per_route():
    gateway = ApiGateway.objects.create(name="g", target_base_endpoint="https://example.com/ws")
    assert gateway.integration_uri("$connect") == "https://example.com/ws/connect"
    assert gateway.integration_uri("$disconnect") == "https://example.com/ws/disconnect"
    assert gateway.integration_uri("$default") == "https://example.com/ws/default"
    assert gateway.integration_uri("sendmessage") == "https://example.com/ws/sendmessage"


# ApiGatewayAdditionalRoute -----------------------------------------------------------------------


@pytest.fixture
def saved_gateway(db) -> ApiGateway:
    return ApiGateway.objects.create(name="g", target_base_endpoint="https://example.com/ws/")


@pytest.mark.parametrize("key", ["$connect", "$disconnect", "$default", "$custom"])
def test_reserved_route_keys_are_rejected(saved_gateway, key):
    errors = _errors(ApiGatewayAdditionalRoute(gateway=saved_gateway, route_key=key))
    assert "route_key" in errors


@pytest.mark.parametrize("slug", ["connect", "disconnect", "default"])
def test_system_route_slugs_are_rejected(saved_gateway, slug):
    route = ApiGatewayAdditionalRoute(gateway=saved_gateway, route_key="custom", route_slug=slug)
    assert "route_slug" in _errors(route)


def test_route_key_is_used_as_the_slug(saved_gateway):
    route = ApiGatewayAdditionalRoute(gateway=saved_gateway, route_key="sendmessage")
    route.full_clean()
    assert route.slug == "sendmessage"
    assert route.get_integration_uri() == "https://example.com/ws/sendmessage"


@pytest.mark.parametrize("key", ["chat.send", "chat:send"])
def test_route_key_that_is_no_slug_needs_a_routable_slug(saved_gateway, key):
    route = ApiGatewayAdditionalRoute(gateway=saved_gateway, route_key=key)
    try:
        route.full_clean()
    except ValidationError as error:
        assert "route_slug" in error.message_dict
    else:
        # If accepted, the URL API Gateway calls must match ``<slug:route>``.
        assert SLUG_RE.fullmatch(route.slug), route.slug
    route.route_slug = "chat-send"
    route.full_clean()
    assert route.get_integration_uri() == "https://example.com/ws/chat-send"


def test_route_with_its_own_integration_uri(saved_gateway):
    route = ApiGatewayAdditionalRoute(
        gateway=saved_gateway, route_key="upload", integration_uri="https://other.example/up"
    )
    route.full_clean()
    assert route.get_integration_uri() == "https://other.example/up"


# Contract ----------------------------------------------------------------------------------------


def test_integration_request_parameters():
    params = contract.integration_request_parameters("s3cret")
    assert params["integration.request.header.X-Ws-Connection-Id"] == "context.connectionId"
    assert params["integration.request.header.X-Ws-Source-Ip"] == "context.identity.sourceIp"
    assert params["integration.request.header.X-Ws-Api-Id"] == "context.apiId"
    assert params["integration.request.header.X-Ws-Gateway-Secret"] == "'s3cret'"
    assert all(key.startswith("integration.request.header.") for key in params)
    assert all(1 <= len(value) <= 512 for value in params.values())


def test_integration_request_parameters_without_secret():
    params = contract.integration_request_parameters(None)
    assert "integration.request.header.X-Ws-Gateway-Secret" not in params
    assert params["integration.request.header.X-Ws-Connection-Id"] == "context.connectionId"


def test_integration_headers_match_the_mapped_names():
    headers = contract.integration_headers(
        connection_id="abc=", api_id="api1", route_key="$connect", source_ip="192.0.2.1", secret="s"
    )
    targets = contract.integration_request_parameters("s")
    for header in contract.MAPPED_HEADERS:
        assert header.name in headers
        assert header.target in targets
    assert headers["X-Ws-Event-Type"] == "CONNECT"
    assert headers[contract.GATEWAY_SECRET_HEADER] == "s"


def test_static_value_quotes():
    assert contract.static_value("abc") == "'abc'"


@pytest.mark.parametrize("value", ["it's", "'", "x" * 511])
def test_static_value_rejects_quotes_and_overlong_values(value):
    with pytest.raises(ValueError):
        contract.static_value(value)


def test_integration_request_parameters_rejects_a_quoted_secret():
    with pytest.raises(ValueError):
        contract.integration_request_parameters("it's")


# Admin -------------------------------------------------------------------------------------------


@pytest.fixture
def records(db):
    gateway = ApiGateway.objects.create(
        name="g", api_id="abc123", target_base_endpoint="https://example.com/ws/"
    )
    route = ApiGatewayAdditionalRoute.objects.create(gateway=gateway, route_key="sendmessage")
    now = timezone.now()
    session = WebSocketSession.objects.create(
        connection_id=new_connection_id(),
        gateway=gateway,
        channel_name="lobby",
        connected_at=now,
        last_seen_at=now,
        source_ip="192.0.2.1",
    )
    minted = mint_token(None)
    window = RateLimitWindow.objects.create(
        key="connect:ip:192.0.2.1",
        window_start=now,
        window_end=now + timedelta(seconds=60),
        count=1,
    )
    return {
        "apigateway": gateway,
        "apigatewayadditionalroute": route,
        "websocketsession": session,
        "websockettoken": minted.record,
        "ratelimitwindow": window,
        "token": minted.token,
    }


MODELS = [
    "apigateway",
    "apigatewayadditionalroute",
    "websocketsession",
    "websockettoken",
    "ratelimitwindow",
]
READ_ONLY = ["websocketsession", "websockettoken", "ratelimitwindow"]


@pytest.mark.parametrize("model", MODELS)
def test_changelist_page(admin_client, records, model):
    response = admin_client.get(reverse(f"admin:{APP}_{model}_changelist"))
    assert response.status_code == 200
    assert response.context["cl"].result_count == 1


@pytest.mark.parametrize("model", MODELS)
def test_change_page(admin_client, records, model):
    response = admin_client.get(reverse(f"admin:{APP}_{model}_change", args=[records[model].pk]))
    assert response.status_code == 200


@pytest.mark.parametrize("model", ["apigateway", "apigatewayadditionalroute"])
def test_add_page_for_editable_models(admin_client, db, model):
    assert admin_client.get(reverse(f"admin:{APP}_{model}_add")).status_code == 200


@pytest.mark.parametrize("model", READ_ONLY)
def test_read_only_models_have_no_add_page(admin_client, db, model):
    assert admin_client.get(reverse(f"admin:{APP}_{model}_add")).status_code == 403


@pytest.mark.parametrize("model", READ_ONLY)
def test_read_only_models_cannot_be_changed(admin_client, records, model):
    record = records[model]
    before = type(record).objects.filter(pk=record.pk).values().get()
    url = reverse(f"admin:{APP}_{model}_change", args=[record.pk])
    response = admin_client.post(url, {"channel_name": "hacked", "key": "hacked", "count": 0})
    assert response.status_code == 403
    assert type(record).objects.filter(pk=record.pk).values().get() == before


@pytest.mark.parametrize("model", [WebSocketSession, WebSocketToken, RateLimitWindow])
def test_read_only_admins_disallow_add_and_change(admin_user, model):
    request = RequestFactory().get("/")
    request.user = admin_user
    model_admin = admin.site._registry[model]
    assert model_admin.has_add_permission(request) is False
    assert model_admin.has_change_permission(request) is False
    assert model_admin.has_view_permission(request) is True
    assert model_admin.has_delete_permission(request) is True


def test_token_admin_never_shows_the_token(admin_client, records):
    token = records["token"]
    record = records["websockettoken"]
    listing = admin_client.get(reverse(f"admin:{APP}_websockettoken_changelist"))
    change = admin_client.get(reverse(f"admin:{APP}_websockettoken_change", args=[record.pk]))
    for response in (listing, change):
        assert response.status_code == 200
        assert token not in response.content.decode()
    assert record.token_hash[:12] in listing.content.decode()


def test_session_admin_search(admin_client, records):
    url = reverse(f"admin:{APP}_websocketsession_changelist")
    session = records["websocketsession"]
    assert admin_client.get(url, {"q": session.connection_id}).context["cl"].result_count == 1
    assert admin_client.get(url, {"q": "no-such-thing"}).context["cl"].result_count == 0


def test_gateway_admin_saves_a_normalised_endpoint(admin_client, db):
    response = admin_client.post(
        reverse(f"admin:{APP}_apigateway_add"),
        {
            "name": "new",
            "description": "",
            "target_base_endpoint": "https://example.com/ws",
            "default_channel_name": "lobby",
            "api_id": "",
            "region": "us-east-1",
            "stage": "production",
            "route_selection_expression": "$request.body.action",
            "custom_domain_name": "",
            "api_mapping_key": "",
            "certificate_arn": "",
            "hosted_zone_id": "",
            "additional_routes-TOTAL_FORMS": "0",
            "additional_routes-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    gateway = ApiGateway.objects.get(name="new")
    assert gateway.target_base_endpoint == "https://example.com/ws/"
    assert gateway.api_id is None


def test_gateway_admin_rejects_a_plain_http_endpoint(admin_client, db):
    response = admin_client.post(
        reverse(f"admin:{APP}_apigateway_add"),
        {
            "name": "new",
            "target_base_endpoint": "http://example.com/ws/",
            "default_channel_name": "lobby",
            "region": "us-east-1",
            "stage": "production",
            "route_selection_expression": "$request.body.action",
            "additional_routes-TOTAL_FORMS": "0",
            "additional_routes-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200
    assert "target_base_endpoint" in response.context["adminform"].form.errors
    assert ApiGateway.objects.count() == 0
