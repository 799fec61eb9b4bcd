"""Authenticating API Gateway: shared secret, API id, gateway cache and trusted headers."""

from __future__ import annotations

import time

import pytest
from django.conf import settings
from django.test import Client, override_settings
from django.utils import timezone

from django_aws_api_gateway_websockets import contract
from django_aws_api_gateway_websockets.models import (
    ApiGateway,
    RateLimitWindow,
    WebSocketSession,
    WebSocketToken,
)
from django_aws_api_gateway_websockets.testing import GatewayClient
from django_aws_api_gateway_websockets.tokens import mint_token
from tests.helpers import ws_settings

pytestmark = pytest.mark.django_db

SECRET: str = settings.GATEWAY_SECRET
ROUTES = [contract.CONNECT, contract.DEFAULT, contract.DISCONNECT]


def _without_secret(**overrides: object) -> override_settings:
    values = {
        k: v for k, v in settings.AWS_API_GATEWAY_WEBSOCKETS.items() if k != "GATEWAY_SECRETS"
    }
    return override_settings(AWS_API_GATEWAY_WEBSOCKETS={**values, **overrides})


def _snapshot() -> dict[str, list[dict]]:
    return {
        model.__name__: list(model.objects.order_by("pk").values())
        for model in (WebSocketSession, WebSocketToken, RateLimitWindow)
    }


def _send(ws: GatewayClient, route_key: str, *, token: str | None = None, connection_id=None):
    if route_key == contract.CONNECT:
        return ws.connect(token=token, channel="general", connection_id=connection_id)
    if route_key == contract.DISCONNECT:
        return ws.disconnect(connection_id=connection_id)
    return ws.message({"action": "echo"}, route_key=route_key, connection_id=connection_id)


@pytest.fixture
def live(ws, token) -> GatewayClient:
    assert ws.connect(token=token).status_code == 200
    return ws


# The secret --------------------------------------------------------------------------------------


@pytest.mark.parametrize("route_key", ROUTES)
@pytest.mark.parametrize("secret", [None, "", "wrong", SECRET + "x", SECRET[:-1], SECRET.upper()])
def test_wrong_or_missing_secret_is_403_and_writes_nothing(live, user, route_key, secret):
    spare = mint_token(user).token
    before = _snapshot()
    forger = GatewayClient(Client(), live.gateway, secret=secret)
    response = _send(forger, route_key, token=spare, connection_id=live.connection_id)
    assert response.status_code == 403, response.content
    assert _snapshot() == before
    assert WebSocketSession.objects.get().connected is True


@pytest.mark.parametrize("route_key", ROUTES)
def test_new_connection_with_wrong_secret_writes_no_row(ws, user, route_key):
    forger = GatewayClient(Client(), ws.gateway, secret="wrong")
    assert _send(forger, route_key, token=mint_token(user).token).status_code == 403
    assert WebSocketSession.objects.count() == 0
    assert RateLimitWindow.objects.count() == 0
    assert WebSocketToken.objects.filter(used_at__isnull=False).count() == 0


def test_rotation_accepts_every_configured_secret(gateway, user):
    with ws_settings(GATEWAY_SECRETS=["new-secret-" + "n" * 32, SECRET]):
        for secret in ("new-secret-" + "n" * 32, SECRET):
            ws = GatewayClient(Client(), gateway, secret=secret)
            assert ws.connect(token=mint_token(user).token).status_code == 200
            assert ws.message({"action": "echo"}).status_code == 200
            assert ws.disconnect().status_code == 200
        wrong = GatewayClient(Client(), gateway, secret="neither")
        assert wrong.connect(token=mint_token(user).token).status_code == 403
    assert WebSocketSession.objects.count() == 2


def test_removed_secret_is_refused(gateway, user):
    with ws_settings(GATEWAY_SECRETS=["only-the-new-one-" + "n" * 32]):
        ws = GatewayClient(Client(), gateway, secret=SECRET)
        assert ws.connect(token=mint_token(user).token).status_code == 403
    assert WebSocketSession.objects.count() == 0


# The API id and the connection id ----------------------------------------------------------------


@pytest.mark.parametrize("route_key", ROUTES)
def test_unknown_api_id_is_403(db, user, route_key):
    unsaved = ApiGateway(name="ghost", api_id="unknown1", target_base_endpoint="https://x/ws/")
    ws = GatewayClient(Client(), unsaved)
    assert _send(ws, route_key, token=mint_token(user).token).status_code == 403
    assert WebSocketSession.objects.count() == 0


def test_empty_api_id_is_400(db, user):
    # A gateway record without an API id exists, but an event can never match it.
    ApiGateway.objects.create(name="draft", target_base_endpoint="https://x/ws/")
    ws = GatewayClient(Client(), ApiGateway(name="blank", api_id=""))
    # An empty API id is malformed: 400 before any lookup.
    assert ws.connect(token=mint_token(user).token).status_code == 400
    assert WebSocketSession.objects.count() == 0


@pytest.mark.parametrize("route_key", ROUTES)
@pytest.mark.parametrize("connection_id", ["has space", "semi;colon", "a" * 129, "é"])
def test_malformed_connection_id_is_400(ws, user, route_key, connection_id):
    response = _send(ws, route_key, token=mint_token(user).token, connection_id=connection_id)
    assert response.status_code == 400, response.content
    assert WebSocketSession.objects.count() == 0
    assert WebSocketToken.objects.filter(used_at__isnull=False).count() == 0


def test_malformed_source_ip_is_400(ws, token):
    response = ws.connect(token=token, headers={"X-Ws-Source-Ip": "999.1.1.1"})
    assert response.status_code == 400
    assert WebSocketSession.objects.count() == 0


# No secret configured ----------------------------------------------------------------------------


@pytest.mark.parametrize("route_key", ROUTES)
def test_no_secret_and_debug_off_is_403(gateway, user, route_key):
    with _without_secret(), override_settings(DEBUG=False):
        ws = GatewayClient(Client(), gateway, secret=None)
        assert _send(ws, route_key, token=mint_token(user).token).status_code == 403
    assert WebSocketSession.objects.count() == 0
    assert RateLimitWindow.objects.count() == 0


@pytest.mark.parametrize("route_key", ROUTES)
def test_no_secret_and_debug_on_is_still_403(gateway, user, route_key):
    """DEBUG does not open the door: a tunnelled development server is reachable by anyone,
    who could otherwise send as any connection or disconnect it."""
    with _without_secret(), override_settings(DEBUG=True):
        ws = GatewayClient(Client(), gateway, secret=None)
        assert _send(ws, route_key, token=mint_token(user).token).status_code == 403
    assert WebSocketSession.objects.count() == 0


def test_explicit_allow_unauthenticated_true_warns_on_every_event(gateway, user, caplog):
    with _without_secret(ALLOW_UNAUTHENTICATED_GATEWAY=True), override_settings(DEBUG=False):
        ws = GatewayClient(Client(), gateway, secret=None)
        with caplog.at_level("WARNING", logger="django_aws_api_gateway_websockets.security"):
            assert ws.connect(token=mint_token(user).token).status_code == 200
            assert ws.message({"action": "echo"}).status_code == 200
            assert ws.disconnect().status_code == 200
    warnings = [r for r in caplog.records if "unauthenticated API Gateway event" in r.message]
    assert len(warnings) == 3
    assert WebSocketSession.objects.get().connected is False


def test_explicit_allow_unauthenticated_false_with_debug(gateway, user):
    with _without_secret(ALLOW_UNAUTHENTICATED_GATEWAY=False), override_settings(DEBUG=True):
        ws = GatewayClient(Client(), gateway, secret=None)
        assert ws.connect(token=mint_token(user).token).status_code == 403
    assert WebSocketSession.objects.count() == 0


def test_allow_unauthenticated_does_not_waive_a_configured_secret(gateway, user):
    with ws_settings(ALLOW_UNAUTHENTICATED_GATEWAY=True), override_settings(DEBUG=True):
        ws = GatewayClient(Client(), gateway, secret=None)
        assert ws.connect(token=mint_token(user).token).status_code == 403
        wrong = GatewayClient(Client(), gateway, secret="wrong")
        assert wrong.connect(token=mint_token(user).token).status_code == 403
    assert WebSocketSession.objects.count() == 0


# HTTP method -------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("route_key", ROUTES)
def test_methods_other_than_post_are_405(ws, token, method, route_key):
    headers = ws.headers(route_key)
    url = ws.path + contract.route_slug(route_key) + f"?ws_token={token}"
    response = ws.client.generic(method, url, **contract.as_meta(headers))
    assert response.status_code == 405
    assert WebSocketSession.objects.count() == 0
    assert WebSocketToken.objects.get().used_at is None


# Trusted headers ---------------------------------------------------------------------------------


def test_client_x_forwarded_for_is_ignored(gateway, token):
    ws = GatewayClient(Client(), gateway, source_ip="203.0.113.10")
    response = ws.connect(token=token, headers={"X-Forwarded-For": "192.0.2.99, 198.51.100.1"})
    assert response.status_code == 200
    assert WebSocketSession.objects.get().source_ip == "203.0.113.10"
    keys = set(RateLimitWindow.objects.values_list("key", flat=True))
    assert "connect:ip:203.0.113.10" in keys
    assert not any("192.0.2.99" in key or "198.51.100.1" in key for key in keys)


def test_rotating_x_forwarded_for_shares_the_mapped_ip_limit(gateway, user):
    with ws_settings(CONNECT_LIMIT_PER_IP=2, CONNECT_LIMIT_PER_USER=0, CONNECT_WINDOW=86400):
        statuses = []
        for n in range(3):
            ws = GatewayClient(Client(), gateway, source_ip="203.0.113.10")
            response = ws.connect(
                token=mint_token(user).token, headers={"X-Forwarded-For": f"192.0.2.{n}"}
            )
            statuses.append(response.status_code)
    assert statuses == [200, 200, 429]
    assert WebSocketSession.objects.count() == 2


# The gateway cache -------------------------------------------------------------------------------


def test_saved_gateway_change_is_seen_at_once(ws, user):
    assert ws.connect(token=mint_token(user).token).status_code == 200  # cache loaded
    gateway = ws.gateway
    gateway.default_channel_name = "hall"
    gateway.save()
    second = GatewayClient(Client(), gateway)
    assert second.connect(token=mint_token(user).token).status_code == 200
    assert WebSocketSession.objects.get(connection_id=second.connection_id).channel_name == "hall"


def test_saved_api_id_change_is_seen_at_once(ws, user):
    assert ws.connect(token=mint_token(user).token).status_code == 200
    gateway = ws.gateway
    gateway.api_id = "renamed42"
    gateway.save()
    old = GatewayClient(Client(), ApiGateway(name="old", api_id="abc123def4"))
    assert old.connect(token=mint_token(user).token).status_code == 403
    new = GatewayClient(Client(), gateway)
    assert new.connect(token=mint_token(user).token).status_code == 200


def test_deleted_gateway_is_refused_at_once(ws, user):
    assert ws.connect(token=mint_token(user).token).status_code == 200
    ApiGateway.objects.filter(pk=ws.gateway.pk).first().delete()
    assert ws.connect(token=mint_token(user).token).status_code == 403


def test_unsignalled_change_is_seen_after_the_cache_interval(ws, user):
    draft = ApiGateway.objects.create(name="draft", target_base_endpoint="https://testserver/ws/")
    with ws_settings(GATEWAY_CACHE_SECONDS=0.5):
        assert ws.connect(token=mint_token(user).token).status_code == 200  # cache loaded
        loaded = time.monotonic()
        # A write that sends no post_save signal (another process, a data migration, .update()).
        ApiGateway.objects.filter(pk=draft.pk).update(api_id="fresh77", updated_at=timezone.now())
        draft.api_id = "fresh77"
        fresh = GatewayClient(Client(), draft)
        early = fresh.connect(token=mint_token(user).token)
        if time.monotonic() - loaded < 0.5:
            assert early.status_code == 403, "the cached copy is used within the interval"
        time.sleep(0.55)
        late = fresh.connect(token=mint_token(user).token, connection_id=fresh.connection_id)
        assert late.status_code == 200, late.content
    session = WebSocketSession.objects.get(connection_id=fresh.connection_id)
    assert session.gateway_id == draft.pk
