"""``$disconnect``: the session is marked gone in one statement, only for its own gateway."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from django_aws_api_gateway_websockets import signals
from django_aws_api_gateway_websockets.models import ApiGateway, WebSocketSession
from django_aws_api_gateway_websockets.testing import GatewayClient, new_connection_id
from django_aws_api_gateway_websockets.tokens import mint_token
from tests.helpers import receiver
from tests.views import ChatView

pytestmark = pytest.mark.django_db


@pytest.fixture
def live(ws, token) -> GatewayClient:
    assert ws.connect(token=token).status_code == 200
    return ws


@pytest.fixture
def other_gateway(db) -> ApiGateway:
    return ApiGateway.objects.create(
        name="other", api_id="zzz999", target_base_endpoint="https://testserver/ws/"
    )


def test_disconnect_marks_the_session_in_one_query(live, django_assert_num_queries):
    before = timezone.now()
    with django_assert_num_queries(1):
        response = live.disconnect()
    after = timezone.now()
    assert response.status_code == 200
    assert response.content == b""
    session = WebSocketSession.objects.get()
    assert session.connected is False
    assert before <= session.disconnected_at <= after
    assert WebSocketSession.objects.count() == 1


def test_disconnect_leaves_other_sessions_alone(live, user):
    other = GatewayClient(Client(), live.gateway)
    assert other.connect(token=mint_token(user).token).status_code == 200
    assert live.disconnect().status_code == 200
    assert WebSocketSession.objects.get(connection_id=live.connection_id).connected is False
    assert WebSocketSession.objects.get(connection_id=other.connection_id).connected is True


def test_unknown_connection_id_is_200_and_writes_nothing(live):
    response = live.disconnect(connection_id=new_connection_id())
    assert response.status_code == 200
    session = WebSocketSession.objects.get()
    assert session.connected is True and session.disconnected_at is None


def test_repeated_disconnect_keeps_the_first_timestamp(live):
    assert live.disconnect().status_code == 200
    first = WebSocketSession.objects.get().disconnected_at
    assert live.disconnect().status_code == 200
    session = WebSocketSession.objects.get()
    assert session.connected is False and session.disconnected_at == first


def test_disconnected_signal(live, gateway):
    with receiver(signals.disconnected) as calls:
        assert live.disconnect().status_code == 200
    assert len(calls) == 1
    call = calls[0]
    assert call["sender"] is ChatView
    assert call["connection_id"] == live.connection_id
    assert call["gateway_id"] == gateway.pk
    assert "request" in call


def test_disconnected_signal_is_sent_for_an_unknown_id(ws):
    unknown = new_connection_id()
    with receiver(signals.disconnected) as calls:
        assert ws.disconnect(connection_id=unknown).status_code == 200
    assert [call["connection_id"] for call in calls] == [unknown]


def test_disconnect_through_another_gateway_does_nothing(live, other_gateway):
    forger = GatewayClient(Client(), other_gateway)
    response = forger.disconnect(connection_id=live.connection_id)
    assert response.status_code == 200
    session = WebSocketSession.objects.get()
    assert session.connected is True and session.disconnected_at is None
    # The connection still works on its own gateway.
    assert live.message({"action": "echo"}).status_code == 200


def test_disconnect_with_a_bad_secret_does_nothing(live):
    forger = GatewayClient(Client(), live.gateway, secret="wrong-secret")
    assert forger.disconnect(connection_id=live.connection_id).status_code == 403
    assert WebSocketSession.objects.get().connected is True
