"""What the JavaScript client relies on from the server: refusal reasons it can look up after a
failed handshake, request/reply envelopes, the keep-alive ping, and the config template tag."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.template import Context, Template
from django.test import Client, RequestFactory, override_settings
from django.urls import reverse

from django_aws_api_gateway_websockets.models import WebSocketSession, WebSocketToken
from django_aws_api_gateway_websockets.testing import GatewayClient
from django_aws_api_gateway_websockets.tokens import hash_token, mint_token, token_status

pytestmark = pytest.mark.django_db


@pytest.fixture
def status_url() -> str:
    return reverse("django_aws_api_gateway_websockets:token_status")


@pytest.fixture
def browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _status(browser: Client, url: str, token: str) -> dict:
    response = browser.post(url, {"token": token})
    assert "no-store" in response["Cache-Control"]
    return response.json()


# Refusal reasons ---------------------------------------------------------------------------------


def test_unused_token_reports_unused(browser, status_url, user):
    token = mint_token(user).token
    assert _status(browser, status_url, token) == {"state": "unused"}


def test_accepted_connection_reports_accepted(browser, status_url, user, ws):
    token = mint_token(user).token
    assert ws.connect(token=token).status_code == 200
    assert _status(browser, status_url, token) == {"state": "accepted"}


def test_forbidden_channel_is_recorded_with_its_reason(browser, status_url, user, ws):
    token = mint_token(user).token
    response = ws.connect(token=token, channel="staff-room")
    assert response.status_code == 403
    body = _status(browser, status_url, token)
    assert body == {"state": "refused", "status": 403, "reason": "You may not join this channel."}
    assert not WebSocketSession.objects.exists()


def test_missing_permission_is_recorded(browser, status_url, user, gateway):
    token = mint_token(user).token
    anyperm = GatewayClient(Client(), gateway, path="/anyperm/")
    assert anyperm.connect(token=token).status_code == 403
    body = _status(browser, status_url, token)
    assert body["state"] == "refused"
    assert body["status"] == 403
    assert body["reason"]


def test_token_for_another_channel_is_refused_unused_and_recorded(browser, status_url, user, ws):
    from django_aws_api_gateway_websockets.tokens import Audience

    token = mint_token(user, Audience(channel_name="lobby")).token
    assert ws.connect(token=token, channel="other").status_code == 401
    body = _status(browser, status_url, token)
    assert body == {"state": "refused", "status": 401, "reason": "Missing, used or expired token."}
    assert WebSocketToken.objects.get().used_at is None


def test_replayed_token_does_not_overwrite_the_first_answer(browser, status_url, user, ws):
    token = mint_token(user).token
    assert ws.connect(token=token).status_code == 200
    replay = GatewayClient(Client(), ws.gateway, path="/ws/")
    assert replay.connect(token=token).status_code == 401
    assert _status(browser, status_url, token) == {"state": "accepted"}


def test_expired_token_reports_expired(browser, status_url, user):
    minted = mint_token(user)
    WebSocketToken.objects.update(expires_at=minted.record.created_at - timedelta(seconds=1))
    assert _status(browser, status_url, minted.token) == {"state": "expired"}


def test_another_users_token_is_unknown(status_url, user, django_user_model):
    token = mint_token(user).token
    mallory = Client()
    mallory.force_login(django_user_model.objects.create_user(username="mallory"))
    response = mallory.post(status_url, {"token": token})
    assert response.status_code == 404
    assert response.json() == {"state": "unknown"}


def test_anonymous_asker_cannot_read_a_users_token(status_url, user):
    token = mint_token(user).token
    assert Client().post(status_url, {"token": token}).status_code == 404


def test_anonymous_token_is_reported_to_its_holder(status_url):
    token = mint_token(None).token
    assert Client().post(status_url, {"token": token}).json() == {"state": "unused"}


@pytest.mark.parametrize("token", ["", "nope", "x" * 500])
def test_unknown_or_malformed_token_is_404(browser, status_url, token):
    response = browser.post(status_url, {"token": token})
    assert response.status_code == 404
    assert response.json() == {"state": "unknown"}


def test_status_endpoint_requires_csrf(user, status_url):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post(status_url, {"token": mint_token(user).token}).status_code == 403


def test_status_endpoint_refuses_get(browser, status_url):
    assert browser.get(status_url).status_code == 405


def test_token_status_function_stores_only_hashes(user):
    minted = mint_token(user)
    assert WebSocketToken.objects.filter(token_hash=hash_token(minted.token)).exists()
    assert token_status(minted.token, None).state == "unknown"
    assert token_status(minted.token, user).state == "unused"


# Request/reply ------------------------------------------------------------------------------------


def test_request_id_wraps_the_handler_answer(ws, token):
    assert ws.connect(token=token).status_code == 200
    response = ws.message({"action": "echo", "request_id": "r7", "text": "hi"})
    assert response.status_code == 200
    assert response.json() == {
        "type": "reply",
        "request_id": "r7",
        "ok": True,
        "data": {"handler": "echo", "data": {"action": "echo", "request_id": "r7", "text": "hi"}},
    }


def test_request_id_wraps_a_string_answer(ws, token):
    ws.connect(token=token)
    reply = ws.message({"action": "whoami", "request_id": 3}).json()
    assert reply == {"type": "reply", "request_id": 3, "ok": True, "data": "alice"}


def test_without_request_id_the_answer_is_unchanged(ws, token):
    ws.connect(token=token)
    assert ws.message({"action": "whoami"}).content == b"alice"


def test_refused_request_names_its_id(ws):
    response = ws.message({"action": "whoami", "request_id": "r1"})  # never connected
    assert response.status_code == 403
    assert response.json() == {
        "type": "reply",
        "request_id": "r1",
        "ok": False,
        "status": 403,
        "error": "Unknown or closed connection.",
    }


@pytest.mark.parametrize("bad", [True, None, "", "x" * 65, 1.5, ["r"], {"a": 1}])
def test_unusable_request_ids_get_no_envelope(ws, token, bad):
    ws.connect(token=token)
    assert ws.message({"action": "whoami", "request_id": bad}).content == b"alice"


# Keep-alive -------------------------------------------------------------------------------------


def test_ping_is_answered_with_nothing_and_refreshes_last_seen(ws, token):
    ws.connect(token=token)
    WebSocketSession.objects.update(
        last_seen_at=WebSocketSession.objects.get().connected_at - timedelta(minutes=5)
    )
    response = ws.message({"action": "ping"})
    assert response.status_code == 200
    assert response.content == b""
    session = WebSocketSession.objects.get()
    assert session.last_seen_at > session.connected_at
    assert session.state == "open"


def test_ping_from_an_unknown_connection_is_refused(ws):
    assert ws.message({"action": "ping"}).status_code == 403


# The config template tag ------------------------------------------------------------------------


def _render(source: str, user=None, **context) -> str:
    request = RequestFactory().get("/")
    request.user = user
    return Template("{% load websockets %}" + source).render(
        Context({"request": request, **context})
    )


def _config(html: str, element_id: str = "websocket-config") -> dict:
    start = html.index(f'id="{element_id}"')
    body = html[html.index(">", start) + 1 : html.index("</script>", start)]
    return json.loads(body)


def test_config_tag_renders_what_the_client_needs(gateway, user):
    config = _config(_render('{% websocket_config gateway=gw channel="lobby" %}', user, gw=gateway))
    assert config["url"] == "wss://abc123def4.execute-api.eu-west-1.amazonaws.com/production"
    assert config["channel"] == "lobby"
    assert config["apiId"] == "abc123def4"
    assert config["tokenUrl"] == "/websockets/token/"
    assert config["tokenStatusUrl"] == "/websockets/token/status/"
    assert config["csrfHeaderName"] == "X-CSRFTOKEN"
    assert len(config["csrfToken"]) == 64
    assert config["keepAliveSeconds"] < 600
    assert config["maxConnectionSeconds"] < 7200


@override_settings(CSRF_HEADER_NAME="HTTP_X_MY_CSRF")
def test_config_tag_follows_csrf_header_setting(gateway, user):
    config = _config(_render("{% websocket_config gateway=gw %}", user, gw=gateway))
    assert config["csrfHeaderName"] == "X-MY-CSRF"
    assert config["channel"] == "lobby"  # the gateway's default channel


def test_config_tag_accepts_a_gateway_name_an_url_and_an_element_id(gateway, user):
    html = _render(
        '{% websocket_config gateway="chat" url="ws://127.0.0.1:9/local" element_id="cfg" '
        "keep_alive_seconds=30 %}",
        user,
    )
    config = _config(html, "cfg")
    assert config["url"] == "ws://127.0.0.1:9/local"
    assert config["keepAliveSeconds"] == 30


def test_config_tag_escapes_html(gateway, user):
    html = _render("{% websocket_config gateway=gw channel=c %}", user, gw=gateway, c="</script>x")
    assert "</script>x" not in html
    assert _config(html)["channel"] == "</script>x"


def test_config_tag_with_an_unknown_gateway_name_fails_loudly(db, user):
    from django.template import TemplateSyntaxError

    with pytest.raises(TemplateSyntaxError, match="nope"):
        _render('{% websocket_config gateway="nope" %}', user)


def test_client_module_and_types_ship_as_static_files():
    from importlib.resources import files

    static = (
        files("django_aws_api_gateway_websockets") / "static" / "django_aws_api_gateway_websockets"
    )
    for name in ("websocket-client.js", "websocket-client.d.ts"):
        assert (static / name).is_file(), name
