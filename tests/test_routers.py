"""Database routers are honoured: with the package's models routed to ``other``, a token, a
rate-limited ``$connect``, the session upsert and a broadcast never touch ``default``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connections
from django.test import Client
from django.test.utils import CaptureQueriesContext

from django_aws_api_gateway_websockets import ratelimits
from django_aws_api_gateway_websockets.models import (
    ApiGateway,
    RateLimitWindow,
    WebSocketSession,
    WebSocketToken,
)
from django_aws_api_gateway_websockets.testing import GatewayClient
from django_aws_api_gateway_websockets.tokens import TokenRejected, consume_token, mint_token
from tests.helpers import make_sessions
from tests.routers import PackageRouter

pytestmark = pytest.mark.django_db(databases=["default", "other"])


@pytest.fixture
def routed() -> Iterator[str]:
    PackageRouter.alias = "other"
    try:
        yield "other"
    finally:
        PackageRouter.alias = None


@pytest.fixture
def other_user(routed, django_user_model):
    return django_user_model.objects.create_user(username="routed", password="pw")


@pytest.fixture
def other_gateway(routed) -> ApiGateway:
    return ApiGateway.objects.create(
        name="routed",
        api_id="rout3d0001",
        region="eu-west-1",
        stage="production",
        target_base_endpoint="https://testserver/ws",
        default_channel_name="lobby",
    )


def test_token_lives_and_is_consumed_on_the_routed_database(other_user):
    minted = mint_token(other_user)
    assert WebSocketToken.objects.using("other").filter(pk=minted.record.pk).exists()
    assert not WebSocketToken.objects.using("default").exists()
    with CaptureQueriesContext(connections["default"]) as on_default:
        assert consume_token(minted.token) == other_user.pk
        with pytest.raises(TokenRejected):
            consume_token(minted.token)
    assert on_default.captured_queries == []


def test_rate_limiter_counts_on_the_routed_database(routed):
    limit = ratelimits.Limit(key="router-test", limit=2, window=3600)
    with CaptureQueriesContext(connections["default"]) as on_default:
        ratelimits.hit([limit])
        ratelimits.hit([limit])
        with pytest.raises(ratelimits.RateLimited):
            ratelimits.hit([limit])
    assert on_default.captured_queries == []
    assert RateLimitWindow.objects.using("other").get(key="router-test").count == 3
    assert not RateLimitWindow.objects.using("default").exists()


def test_connect_and_messages_never_touch_default(other_gateway, other_user):
    ws = GatewayClient(Client(), other_gateway, path="/ws/")
    token = mint_token(other_user).token
    with CaptureQueriesContext(connections["default"]) as on_default:
        assert ws.connect(token=token).status_code == 200
        # A repeated $connect for the same id goes through the session upsert again.
        assert ws.connect(token=mint_token(other_user).token).status_code == 200
        assert ws.message({"action": "default"}).status_code == 200
        assert ws.disconnect().status_code == 200
    assert on_default.captured_queries == [], [q["sql"] for q in on_default.captured_queries]
    session = WebSocketSession.objects.using("other").get(connection_id=ws.connection_id)
    assert session.user_id == other_user.pk
    assert RateLimitWindow.objects.using("other").exists()
    assert not WebSocketSession.objects.using("default").exists()


def test_broadcast_to_a_list_of_sessions_writes_to_the_routed_database(other_gateway, local):
    from django_aws_api_gateway_websockets.sending import send_message

    live, gone = make_sessions(other_gateway, 2)
    local.add_connection(live.connection_id)
    with CaptureQueriesContext(connections["default"]) as on_default:
        report = send_message([live, gone], "hi")
    assert on_default.captured_queries == []
    assert report.sent == [live.connection_id]
    assert report.gone == [gone.connection_id]
    assert not WebSocketSession.objects.using("other").get(pk=gone.pk).connected
