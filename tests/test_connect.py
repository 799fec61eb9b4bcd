"""``$connect``: who may open a WebSocket, on which channel, and what the session row records."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from django_aws_api_gateway_websockets import signals
from django_aws_api_gateway_websockets.models import WebSocketSession, WebSocketToken
from django_aws_api_gateway_websockets.testing import GatewayClient, new_connection_id
from django_aws_api_gateway_websockets.tokens import mint_token
from tests.helpers import receiver, ws_settings
from tests.views import AnonymousTokenView, ChatView, PublicView

pytestmark = pytest.mark.django_db


def _grant(user, *codenames: str) -> None:
    for codename in codenames:
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label="auth", codename=codename)
        )


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user(username="sam", password="pw", is_staff=True)


# The session row ---------------------------------------------------------------------------------


def test_connect_with_token_records_the_session(gateway, user, token):
    ws = GatewayClient(Client(), gateway, source_ip="198.51.100.7", user_agent="Firefox/1.0 (x)")
    before = timezone.now()
    # X-Forwarded-For is client-controlled: the mapped source-IP header must win.
    response = ws.connect(token=token, channel="general", headers={"X-Forwarded-For": "192.0.2.1"})
    after = timezone.now()

    assert response.status_code == 200, response.content
    assert response.content == b""
    assert WebSocketSession.objects.count() == 1
    session = WebSocketSession.objects.get()
    assert session.connection_id == ws.connection_id
    assert session.user == user
    assert session.gateway == gateway
    assert session.channel_name == "general"
    assert session.connected is True
    assert session.source_ip == "198.51.100.7"
    assert session.user_agent == "Firefox/1.0 (x)"
    assert before <= session.connected_at <= after
    assert session.last_seen_at == session.connected_at
    assert session.disconnected_at is None


def test_connect_spends_the_token(ws, user):
    minted = mint_token(user)
    assert ws.connect(token=minted.token).status_code == 200
    minted.record.refresh_from_db()
    assert minted.record.used_at is not None


def test_ipv6_source_ip_is_stored_in_canonical_form(gateway, token):
    ws = GatewayClient(Client(), gateway, source_ip="2001:DB8:0:0::1")
    assert ws.connect(token=token).status_code == 200
    assert WebSocketSession.objects.get().source_ip == "2001:db8::1"


def test_missing_source_ip_is_refused_and_writes_nothing(ws, token):
    response = ws.connect(token=token, headers={"X-Ws-Source-Ip": ""})
    assert response.status_code == 400
    assert WebSocketSession.objects.count() == 0


def test_default_channel_comes_from_the_gateway(ws, token):
    assert ws.connect(token=token).status_code == 200
    assert WebSocketSession.objects.get().channel_name == "lobby"


def test_empty_channel_parameter_means_the_default_channel(ws, token):
    assert ws.connect(token=token, channel="").status_code == 200
    assert WebSocketSession.objects.get().channel_name == "lobby"


def test_longest_valid_channel_name_is_accepted(ws, token):
    assert ws.connect(token=token, channel="c" * 100).status_code == 200
    assert WebSocketSession.objects.get().channel_name == "c" * 100


@pytest.mark.parametrize(
    "channel",
    [
        "has space",
        "c" * 101,
        "semi;colon",
        "slash/name",
        "../etc",
        "ünïcode",
        "trailing-newline\n",
        "<script>",
        "quote'",
    ],
)
def test_invalid_channel_name_is_refused_before_the_token_is_spent(ws, user, channel):
    minted = mint_token(user)
    response = ws.connect(token=minted.token, channel=channel)
    assert response.status_code == 400, response.content
    assert WebSocketSession.objects.count() == 0
    minted.record.refresh_from_db()
    assert minted.record.used_at is None


def test_channel_pattern_setting_is_applied(ws, token):
    with ws_settings(CHANNEL_NAME_PATTERN=r"^room-[0-9]+$"):
        assert ws.connect(token=token, channel="general").status_code == 400
        assert WebSocketSession.objects.count() == 0


def test_channel_permission_hook_refuses_staff_channel_for_non_staff(ws, token):
    response = ws.connect(token=token, channel="staff-room")
    assert response.status_code == 403, response.content
    assert WebSocketSession.objects.count() == 0


def test_channel_permission_hook_admits_staff(gateway, staff):
    ws = GatewayClient(Client(), gateway)
    response = ws.connect(token=mint_token(staff).token, channel="staff-room")
    assert response.status_code == 200, response.content
    session = WebSocketSession.objects.get()
    assert session.user == staff and session.channel_name == "staff-room"


# Tokens ------------------------------------------------------------------------------------------


def _expired_token(user) -> str:
    minted = mint_token(user)
    past = timezone.now() - timedelta(seconds=1)
    WebSocketToken.objects.filter(pk=minted.record.pk).update(
        created_at=past - timedelta(seconds=60), expires_at=past
    )
    return minted.token


@pytest.mark.parametrize("kind", ["missing", "empty", "unknown", "too-long", "expired"])
def test_bad_token_is_refused_with_401_and_writes_no_session(ws, user, kind):
    token = {
        "missing": lambda: None,
        "empty": lambda: "",
        "unknown": lambda: "A" * 43,
        "too-long": lambda: "A" * 200,
        "expired": lambda: _expired_token(user),
    }[kind]()
    response = ws.connect(token=token)
    assert response.status_code == 401, response.content
    assert response.json()["error"]
    assert WebSocketSession.objects.count() == 0


def test_used_token_is_refused_on_a_second_connection(ws, token):
    assert ws.connect(token=token).status_code == 200
    second = new_connection_id()
    response = ws.connect(token=token, connection_id=second)
    assert response.status_code == 401
    assert not WebSocketSession.objects.filter(connection_id=second).exists()
    assert WebSocketSession.objects.count() == 1


def test_token_of_a_user_deactivated_after_minting_is_refused(ws, user, token):
    user.is_active = False
    user.save()
    response = ws.connect(token=token)
    assert response.status_code in (401, 403), response.content
    assert WebSocketSession.objects.count() == 0


def test_anonymous_token_is_refused_without_allow_anonymous(ws):
    response = ws.connect(token=mint_token(None).token)
    assert response.status_code == 401
    assert WebSocketSession.objects.count() == 0


def test_anonymous_token_is_accepted_with_allow_anonymous(gateway):
    assert AnonymousTokenView.ALLOW_ANONYMOUS
    ws = GatewayClient(Client(), gateway, path="/anon/")
    response = ws.connect(token=mint_token(None).token)
    assert response.status_code == 200, response.content
    session = WebSocketSession.objects.get()
    assert session.user is None and session.connected


def test_user_token_is_accepted_by_a_view_allowing_anonymous(gateway, user, token):
    ws = GatewayClient(Client(), gateway, path="/anon/")
    assert ws.connect(token=token).status_code == 200
    assert WebSocketSession.objects.get().user == user


def test_allow_anonymous_view_still_requires_some_token(gateway):
    ws = GatewayClient(Client(), gateway, path="/anon/")
    assert ws.connect().status_code == 401
    assert WebSocketSession.objects.count() == 0


def test_public_view_connects_without_a_token(gateway):
    assert PublicView.USE_WS_TOKEN is False
    ws = GatewayClient(Client(), gateway, path="/public/")
    response = ws.connect(channel="news")
    assert response.status_code == 200, response.content
    session = WebSocketSession.objects.get()
    assert session.user is None and session.channel_name == "news"


def test_session_cookie_never_authenticates_a_websocket(gateway, user):
    browser = Client()
    browser.force_login(user)
    ws = GatewayClient(browser, gateway, path="/public/")
    with receiver(signals.connected) as calls:
        response = ws.connect()
    assert response.status_code == 200, response.content
    assert WebSocketSession.objects.get().user is None
    assert len(calls) == 1
    assert calls[0]["request"].user.is_authenticated is False


def test_session_cookie_does_not_replace_a_token(gateway, user):
    browser = Client()
    browser.force_login(user)
    ws = GatewayClient(browser, gateway, path="/ws/")
    assert ws.connect().status_code == 401
    assert WebSocketSession.objects.count() == 0


# Repeated $connect -------------------------------------------------------------------------------


def test_repeated_connection_id_is_idempotent(ws, user):
    first = ws.connect(token=mint_token(user).token, channel="one")
    second = ws.connect(token=mint_token(user).token, channel="two")
    assert (first.status_code, second.status_code) == (200, 200)
    assert WebSocketSession.objects.count() == 1
    session = WebSocketSession.objects.get()
    assert session.channel_name == "two" and session.connected


def test_repeated_connection_id_without_tokens_is_idempotent(gateway):
    ws = GatewayClient(Client(), gateway, path="/public/")
    for _ in range(3):
        assert ws.connect().status_code == 200
    assert WebSocketSession.objects.count() == 1


def test_reconnect_with_a_known_id_revives_a_disconnected_session(ws, user):
    assert ws.connect(token=mint_token(user).token).status_code == 200
    assert ws.disconnect().status_code == 200
    assert ws.connect(token=mint_token(user).token).status_code == 200
    session = WebSocketSession.objects.get()
    assert session.connected is True and session.disconnected_at is None


# Signals -----------------------------------------------------------------------------------------


def test_connected_signal_is_sent_with_the_session(ws, user, token):
    with receiver(signals.connected) as calls:
        assert ws.connect(token=token, channel="general").status_code == 200
    assert len(calls) == 1
    call = calls[0]
    assert call["sender"] is ChatView
    session = call["session"]
    assert session.connection_id == ws.connection_id
    assert session.user_id == user.pk
    assert session.channel_name == "general"
    assert session.pk == WebSocketSession.objects.get().pk
    assert call["request"].user == user


def test_connected_signal_is_not_sent_on_refusal(ws):
    with receiver(signals.connected) as calls:
        assert ws.connect(token="nope").status_code == 401
    assert calls == []


# Permissions -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/anyperm/", "/allperm/"])
def test_permission_views_refuse_anonymous_tokens(gateway, path):
    ws = GatewayClient(Client(), gateway, path=path)
    assert ws.connect(token=mint_token(None).token).status_code == 401
    assert WebSocketSession.objects.count() == 0


@pytest.mark.parametrize("path", ["/anyperm/", "/allperm/"])
def test_permission_views_refuse_users_without_permissions(gateway, token, path):
    ws = GatewayClient(Client(), gateway, path=path)
    assert ws.connect(token=token).status_code == 403
    assert WebSocketSession.objects.count() == 0


def test_one_permission_passes_any_of(gateway, user, token):
    _grant(user, "view_user")
    ws = GatewayClient(Client(), gateway, path="/anyperm/")
    assert ws.connect(token=token).status_code == 200
    assert WebSocketSession.objects.get().user == user


def test_one_permission_fails_all_of(gateway, user, token):
    _grant(user, "view_user")
    ws = GatewayClient(Client(), gateway, path="/allperm/")
    assert ws.connect(token=token).status_code == 403
    assert WebSocketSession.objects.count() == 0


def test_both_permissions_pass_all_of(gateway, user, token):
    _grant(user, "view_user", "change_user")
    ws = GatewayClient(Client(), gateway, path="/allperm/")
    assert ws.connect(token=token).status_code == 200
    assert WebSocketSession.objects.get().user == user


def test_superuser_passes_all_of(gateway, django_user_model):
    boss = django_user_model.objects.create_superuser(username="boss", password="pw")
    ws = GatewayClient(Client(), gateway, path="/allperm/")
    assert ws.connect(token=mint_token(boss).token).status_code == 200
    assert WebSocketSession.objects.count() == 1
