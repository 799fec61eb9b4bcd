"""Messages (``$default`` and custom routes): which handler runs, for whom, and what it returns."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from django_aws_api_gateway_websockets import contract, signals
from django_aws_api_gateway_websockets.models import (
    ApiGateway,
    ApiGatewayAdditionalRoute,
    WebSocketSession,
)
from django_aws_api_gateway_websockets.testing import GatewayClient, new_connection_id
from django_aws_api_gateway_websockets.tokens import mint_token
from tests.helpers import receiver, ws_settings
from tests.views import ChatView

pytestmark = pytest.mark.django_db

EXTRA_URLS = override_settings(ROOT_URLCONF="tests.urls_extra")


@pytest.fixture
def live(ws, token) -> GatewayClient:
    """A ChatView connection of ``user`` (alice) on the ``gateway`` fixture."""
    response = ws.connect(token=token)
    assert response.status_code == 200, response.content
    return ws


@pytest.fixture
def extra_urls() -> Iterator[None]:
    with EXTRA_URLS:
        yield


@pytest.fixture
def inspect(extra_urls, gateway, user) -> GatewayClient:
    ws = GatewayClient(Client(), gateway, path="/inspect/")
    assert ws.connect(token=mint_token(user).token).status_code == 200
    return ws


def _handler(response) -> str:
    assert response.status_code == 200, response.content
    return response.json()["handler"]


# Handler selection -------------------------------------------------------------------------------


def test_handler_key_selects_the_handler(live):
    assert _handler(live.message({"handler": "echo"})) == "echo"


def test_action_key_selects_the_handler(live):
    assert _handler(live.message({"action": "echo"})) == "echo"


def test_handler_key_wins_over_action(live):
    response = live.message({"handler": "whoami", "action": "echo"})
    assert response.status_code == 200
    assert response.content == b"alice"


def test_non_string_handler_falls_through_to_action(live):
    assert _handler(live.message({"handler": 5, "action": "echo"})) == "echo"


def test_message_without_a_handler_runs_default(live):
    response = live.message({"text": "hi"})
    assert response.json() == {"handler": "default", "user": "alice"}


def test_unknown_handler_runs_default(live):
    assert _handler(live.message({"action": "does_not_exist"})) == "default"


@pytest.mark.parametrize(
    "body",
    ["hello", "{not json", "", "   ", "null", "42", '"echo"', "[1, 2]", '[{"action": "echo"}]'],
)
def test_non_object_bodies_run_default(live, body):
    assert _handler(live.message(body)) == "default"


def test_json_array_runs_default(live):
    assert _handler(live.message([{"action": "echo"}])) == "default"


def test_public_method_not_allowed_never_runs(live):
    with receiver(signals.message_received) as calls:
        assert _handler(live.message({"action": "secret_method"})) == "default"
    assert [call["handler"] for call in calls] == ["default"]


@pytest.mark.parametrize(
    "name",
    [
        "_message",
        "_connect",
        "_touch",
        "_disconnect",
        "__init__",
        "__class__",
        "dispatch",
        "setup",
        "http_method_not_allowed",
        "as_view",
        "options",
        "post",
        "has_channel_permission",
        "message",
    ],
)
@pytest.mark.parametrize("key", ["handler", "action"])
def test_machinery_names_run_default(live, key, name):
    assert _handler(live.message({key: name})) == "default"
    assert WebSocketSession.objects.get().connected is True


@pytest.mark.parametrize("name", ["dispatch", "setup", "_connect", "_message", "as_view"])
def test_machinery_listed_in_allowed_handlers_still_runs_default(extra_urls, gateway, name):
    ws = GatewayClient(Client(), gateway, path="/misc/")
    assert ws.connect().status_code == 200
    assert _handler(ws.message({"action": "echo"})) == "echo"
    assert _handler(ws.message({"action": name})) == "default"


def test_websocket_handler_decorator_allows_a_method(live):
    response = live.message({"action": "whoami"})
    assert response.status_code == 200
    assert response.content == b"alice"


# Replies -----------------------------------------------------------------------------------------


def test_dict_reply_is_a_json_body(live):
    response = live.message({"action": "echo", "n": 1})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content) == {"handler": "echo", "data": {"action": "echo", "n": 1}}


def test_str_reply_is_a_text_body(live):
    response = live.message({"action": "whoami"})
    assert response["Content-Type"].startswith("text/plain")
    assert response.content == b"alice"


def test_none_reply_is_an_empty_200(gateway):
    ws = GatewayClient(Client(), gateway, path="/public/")
    assert ws.connect().status_code == 200
    response = ws.message({"anything": 1})
    assert response.status_code == 200
    assert response.content == b""


def test_list_reply_is_a_json_body(inspect):
    response = inspect.message({"action": "as_list"})
    assert response.status_code == 200
    assert response.json() == [1, "two"]


def test_handler_raising_bad_event_is_a_400_with_its_reason(inspect):
    response = inspect.message({"action": "raise_bad_event"})
    assert response.status_code == 400
    assert response.json() == {"error": "x"}
    assert WebSocketSession.objects.get().connected is True


# Session and user --------------------------------------------------------------------------------


def test_session_and_user_are_set_from_the_session(inspect, user):
    response = inspect.message({"text": "hi"})
    assert response.status_code == 200, response.content
    assert response.json() == {
        "connection_id": inspect.connection_id,
        "session_user_id": user.pk,
        "user": "alice",
        "authenticated": True,
        "same_user": True,
    }


def test_public_session_user_is_anonymous_even_with_a_session_cookie(extra_urls, gateway, user):
    browser = Client()
    browser.force_login(user)
    ws = GatewayClient(browser, gateway, path="/pubinspect/")
    assert ws.connect().status_code == 200
    body = ws.message({"text": "hi"}).json()
    assert body["authenticated"] is False
    assert body["session_user_id"] is None
    assert body["connection_id"] == ws.connection_id


def test_one_query_per_message(live, django_assert_num_queries):
    for body in ({"action": "whoami"}, {"text": "hi"}, "not json"):
        with django_assert_num_queries(1):
            response = live.message(body)
        assert response.status_code == 200


def test_one_query_per_message_with_session_and_user(inspect, django_assert_num_queries):
    with django_assert_num_queries(1):
        response = inspect.message({"x": 1})
    assert response.json()["same_user"] is True


def test_unknown_connection_is_refused(live):
    with receiver(signals.message_received) as calls:
        response = live.message({"action": "echo"}, connection_id=new_connection_id())
    assert response.status_code == 403
    assert calls == []


def test_disconnected_session_is_refused(live):
    assert live.disconnect().status_code == 200
    with receiver(signals.message_received) as calls:
        response = live.message({"action": "echo"})
    assert response.status_code == 403
    assert calls == []


def test_inactive_users_session_is_refused(live, user):
    user.is_active = False
    user.save()
    with receiver(signals.message_received) as calls:
        response = live.message({"action": "whoami"})
    assert response.status_code == 403
    assert calls == []


def test_session_of_another_gateway_is_refused(live, db):
    other = ApiGateway.objects.create(
        name="other", api_id="zzz999", target_base_endpoint="https://testserver/ws/"
    )
    ws_other = GatewayClient(Client(), other)
    response = ws_other.message({"action": "echo"}, connection_id=live.connection_id)
    assert response.status_code == 403


# Routes ------------------------------------------------------------------------------------------


def test_unknown_route_slug_is_404(live):
    response = live.message({"action": "echo"}, route_key="nope")
    assert response.status_code == 404


def test_custom_route_is_handled_once_registered(live, gateway):
    assert live.message({"action": "echo"}, route_key="sendmessage").status_code == 404
    ApiGatewayAdditionalRoute.objects.create(gateway=gateway, route_key="sendmessage")
    response = live.message({"action": "echo"}, route_key="sendmessage")
    assert response.status_code == 200
    assert response.json()["handler"] == "echo"
    assert _handler(live.message({"x": 1}, route_key="sendmessage")) == "default"


def test_custom_route_with_its_own_slug(live, gateway):
    ApiGatewayAdditionalRoute.objects.create(
        gateway=gateway, route_key="chat.send", route_slug="chat-send"
    )
    response = live.message({"action": "echo"}, route_key="chat.send", route_slug="chat-send")
    assert _handler(response) == "echo"


def test_custom_route_sent_elsewhere_is_not_a_message_route_here(live, gateway):
    ApiGatewayAdditionalRoute.objects.create(
        gateway=gateway, route_key="upload", integration_uri="https://elsewhere.example/upload"
    )
    assert live.message({"action": "echo"}, route_key="upload").status_code == 404


def test_custom_route_of_another_gateway_is_404(live):
    other = ApiGateway.objects.create(
        name="other", api_id="zzz999", target_base_endpoint="https://testserver/ws/"
    )
    ApiGatewayAdditionalRoute.objects.create(gateway=other, route_key="sendmessage")
    assert live.message({"action": "echo"}, route_key="sendmessage").status_code == 404


def test_custom_route_deleted_is_404_again(live, gateway):
    route = ApiGatewayAdditionalRoute.objects.create(gateway=gateway, route_key="sendmessage")
    assert live.message({}, route_key="sendmessage").status_code == 200
    route.delete()
    assert live.message({}, route_key="sendmessage").status_code == 404


# Bodies ------------------------------------------------------------------------------------------


def test_body_of_exactly_128_kb_is_accepted(live):
    body = "x" * contract.MAX_MESSAGE_BYTES
    assert _handler(live.message(body)) == "default"


def test_body_over_128_kb_is_413(live):
    with receiver(signals.message_received) as calls:
        response = live.message("x" * (contract.MAX_MESSAGE_BYTES + 1))
    assert response.status_code == 413
    assert calls == []


def test_json_body_over_128_kb_is_413(live):
    response = live.message({"action": "echo", "text": "é" * (70 * 1024)})
    assert response.status_code == 413


def test_invalid_utf8_body_is_400(live):
    with receiver(signals.message_received) as calls:
        response = live.message(b'{"action": "echo", "x": "\xff\xfe"}')
    assert response.status_code == 400
    assert calls == []


def test_deeply_nested_json_runs_default(live):
    assert _handler(live.message("[" * 60_000 + "]" * 60_000)) == "default"


# Signal and bookkeeping --------------------------------------------------------------------------


def test_message_received_signal(live, user):
    with receiver(signals.message_received) as calls:
        assert live.message({"action": "echo", "n": 2}).status_code == 200
    assert len(calls) == 1
    call = calls[0]
    assert call["sender"] is ChatView
    assert call["session"].connection_id == live.connection_id
    assert call["handler"] == "echo"
    assert call["data"] == {"action": "echo", "n": 2}
    assert call["request"].user == user


def _age_last_seen(seconds: float) -> WebSocketSession:
    stamp = timezone.now() - timedelta(seconds=seconds)
    WebSocketSession.objects.update(last_seen_at=stamp)
    return WebSocketSession.objects.get()


def test_last_seen_is_not_written_within_the_interval(live, django_assert_num_queries):
    before = _age_last_seen(30)
    with django_assert_num_queries(1):
        assert live.message({"x": 1}).status_code == 200
    assert WebSocketSession.objects.get().last_seen_at == before.last_seen_at


def test_last_seen_is_written_after_the_interval(live, django_assert_num_queries):
    before = _age_last_seen(61)
    with django_assert_num_queries(2):
        assert live.message({"x": 1}).status_code == 200
    after = WebSocketSession.objects.get().last_seen_at
    assert after > before.last_seen_at
    assert timezone.now() - after < timedelta(seconds=5)
    # The next message within the interval does not write again.
    with django_assert_num_queries(1):
        assert live.message({"x": 2}).status_code == 200
    assert WebSocketSession.objects.get().last_seen_at == after


def test_last_seen_interval_setting_is_honoured(live, django_assert_num_queries):
    _age_last_seen(10)
    with ws_settings(LAST_SEEN_UPDATE_INTERVAL=5), django_assert_num_queries(2):
        assert live.message({"x": 1}).status_code == 200
    _age_last_seen(10)
    with ws_settings(LAST_SEEN_UPDATE_INTERVAL=3600), django_assert_num_queries(1):
        assert live.message({"x": 1}).status_code == 200


def test_last_seen_interval_zero_writes_every_message(live, django_assert_num_queries):
    with ws_settings(LAST_SEEN_UPDATE_INTERVAL=0):
        for _ in range(2):
            with django_assert_num_queries(2):
                assert live.message({"x": 1}).status_code == 200
