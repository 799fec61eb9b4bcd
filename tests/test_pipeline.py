"""The pluggable event pipeline: authenticators, throttles and permissions composed on a view,
and the findings of the outside review that needed those hooks (issue 6, items 2 and 3)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.db import IntegrityError, connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext

from django_aws_api_gateway_websockets import contract
from django_aws_api_gateway_websockets.models import (
    ApiGatewayAdditionalRoute,
    RateLimitWindow,
    WebSocketSession,
    WebSocketToken,
)
from django_aws_api_gateway_websockets.testing import GatewayClient
from django_aws_api_gateway_websockets.tokens import Audience, mint_token
from django_aws_api_gateway_websockets.transports.outbox import outbox
from tests.helpers import ws_settings

pytestmark = pytest.mark.django_db

OUTBOX = "django_aws_api_gateway_websockets.transports.outbox.OutboxTransport"


def _client(gateway, path: str, **kwargs) -> GatewayClient:
    return GatewayClient(Client(), gateway, path=path, **kwargs)


def _grant(user, codename: str) -> None:
    user.user_permissions.add(
        Permission.objects.get(content_type__app_label="auth", codename=codename)
    )


# Composition on a view ---------------------------------------------------------------------------


def test_a_view_authenticator_admits_what_the_shared_secret_would_refuse(gateway, token):
    ws = _client(gateway, "/custom/", secret="wrong-secret-" + "x" * 30)
    assert ws.connect(token=token).status_code == 403
    ws = _client(gateway, "/custom/", secret="wrong-secret-" + "x" * 30)
    response = ws.connect(
        token=mint_token(WebSocketToken.objects.get().user).token, headers={"X-Test-Gateway": "yes"}
    )
    assert response.status_code == 200


def test_the_shared_secret_still_admits_on_a_view_with_two_authenticators(gateway, token):
    assert _client(gateway, "/custom/").connect(token=token).status_code == 200


def test_view_throttles_replace_the_settings_and_share_one_upsert(gateway, user):
    statuses = []
    for _ in range(3):
        ws = _client(gateway, "/custom/")
        statuses.append(ws.connect(token=mint_token(user).token, channel="room").status_code)
    assert statuses == [200, 200, 429]
    keys = set(RateLimitWindow.objects.values_list("key", flat=True))
    # The per-user throttle of the settings is not on this view's list.
    assert keys == {"connect:channel:room", "connect:ip:203.0.113.10"}

    ws = _client(gateway, "/custom/")
    with CaptureQueriesContext(connection) as queries:
        assert ws.connect(token=mint_token(user).token, channel="other").status_code == 200
    upserts = [q["sql"] for q in queries if "INSERT INTO" in q["sql"] and "ratelimit" in q["sql"]]
    assert len(upserts) == 1


def test_permission_classes_run_in_order_with_their_reasons(gateway, django_user_model):
    blocked = django_user_model.objects.create_user(username="blocked-bob")
    response = _client(gateway, "/custom/").connect(token=mint_token(blocked).token)
    assert response.status_code == 403
    assert response.json() == {"error": "You are blocked."}
    assert not WebSocketSession.objects.exists()


def test_setting_permission_classes_apply_to_every_view(gateway, django_user_model):
    staff = django_user_model.objects.create_user(username="sam", is_staff=True)
    plain = django_user_model.objects.create_user(username="pat")
    with ws_settings(PERMISSION_CLASSES=["django_aws_api_gateway_websockets.permissions.IsStaff"]):
        assert _client(gateway, "/ws/").connect(token=mint_token(plain).token).status_code == 403
        assert _client(gateway, "/ws/").connect(token=mint_token(staff).token).status_code == 200


def test_a_subclass_overriding_the_stage_getters_without_super_keeps_required_permissions(
    gateway, user
):
    from tests.views import AnyPermissionView

    class Careless(AnyPermissionView):
        def get_throttles(self):
            return []

    view = Careless()
    permissions = view.get_permissions()
    assert type(permissions[-1]).__name__ == "RequiredPermissions"


# Finding 7: access on messages --------------------------------------------------------------------


def test_revoked_permission_stops_messages_when_the_view_asks(gateway, user):
    _grant(user, "view_user")
    ws = _client(gateway, "/permmsg/")
    assert ws.connect(token=mint_token(user).token).status_code == 200
    assert ws.message({"action": "x"}).status_code == 200
    user.user_permissions.clear()
    response = ws.message({"action": "x"})
    assert response.status_code == 403
    assert response.json() == {"error": "Permission denied."}


@pytest.fixture
def outbox_transport():
    with ws_settings(TRANSPORT=OUTBOX):
        outbox.reset()
        yield outbox
    outbox.reset()


@pytest.mark.django_db(transaction=True)
def test_deleting_a_user_closes_and_removes_their_sessions(gateway, user, outbox_transport):
    ws = _client(gateway, "/ws/")
    assert ws.connect(token=mint_token(user).token).status_code == 200
    user.delete()
    assert outbox_transport.closed == {ws.connection_id}
    assert not WebSocketSession.objects.exists()
    # Messages on the old socket find no session: refused, never served as anonymous.
    assert ws.message({"action": "whoami"}).status_code == 403


@pytest.mark.django_db(transaction=True)
def test_deactivating_a_user_closes_their_sockets(gateway, user, outbox_transport):
    ws = _client(gateway, "/ws/")
    assert ws.connect(token=mint_token(user).token).status_code == 200
    other = _client(gateway, "/ws/")
    assert other.connect(token=mint_token(user).token).status_code == 200
    user.is_active = False
    user.save(update_fields=["is_active"])
    assert outbox_transport.closed == {ws.connection_id, other.connection_id}
    assert not WebSocketSession.objects.filter(connected=True).exists()
    assert ws.message({"action": "whoami"}).status_code == 403


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_deactivation_closes_nothing(gateway, user, outbox_transport):
    ws = _client(gateway, "/ws/")
    assert ws.connect(token=mint_token(user).token).status_code == 200
    with pytest.raises(RuntimeError), transaction.atomic():
        user.is_active = False
        user.save()
        raise RuntimeError
    assert outbox_transport.closed == set()
    assert WebSocketSession.objects.get().connected


# Finding 8: token audience ------------------------------------------------------------------------


def test_a_token_for_one_view_does_not_open_another(gateway, user):
    token = mint_token(user, Audience(view="dashboard")).token
    assert _client(gateway, "/ws/").connect(token=token).status_code == 401
    # Refused by the same UPDATE that would consume it: still usable where it belongs.
    assert _client(gateway, "/audience/").connect(token=token).status_code == 200


def test_a_view_with_an_audience_refuses_tokens_minted_for_none(gateway, user):
    assert _client(gateway, "/audience/").connect(token=mint_token(user).token).status_code == 401


def test_a_token_for_one_channel_opens_no_other(gateway, user):
    token = mint_token(user, Audience(channel_name="room-1")).token
    assert _client(gateway, "/ws/").connect(token=token, channel="room-2").status_code == 401
    assert _client(gateway, "/ws/").connect(token=token).status_code == 401  # default channel
    assert _client(gateway, "/ws/").connect(token=token, channel="room-1").status_code == 200


def test_a_token_for_one_api_opens_no_other(gateway, user):
    from django_aws_api_gateway_websockets.models import ApiGateway

    other = ApiGateway.objects.create(
        name="other", api_id="zzz999yyy8", target_base_endpoint="https://testserver/ws/"
    )
    token = mint_token(user, Audience(gateway_id=other.pk)).token
    assert _client(gateway, "/ws/").connect(token=token).status_code == 401
    assert _client(other, "/ws/").connect(token=token).status_code == 200


def test_a_bad_channel_does_not_spend_the_token(gateway, user):
    token = mint_token(user).token
    assert _client(gateway, "/ws/").connect(token=token, channel="bad channel!").status_code == 400
    assert _client(gateway, "/ws/").connect(token=token).status_code == 200


def test_the_token_endpoint_binds_the_audience(gateway, user):
    client = Client()
    client.force_login(user)
    response = client.post(
        "/websockets/token/",
        {"channel": "room-1", "api_id": gateway.api_id, "audience": "dashboard"},
    )
    assert response.status_code == 200
    record = WebSocketToken.objects.get()
    assert (record.channel_name, record.gateway_id, record.audience) == (
        "room-1",
        gateway.pk,
        "dashboard",
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [("channel", "no spaces allowed"), ("api_id", "unknown0id"), ("audience", "x" * 201)],
)
def test_the_token_endpoint_refuses_a_bad_audience_with_400(gateway, user, field, value):
    client = Client()
    client.force_login(user)
    response = client.post("/websockets/token/", {field: value})
    assert response.status_code == 400
    assert not WebSocketToken.objects.exists()


# Finding 9: reserved route keys and slugs ---------------------------------------------------------


@pytest.mark.parametrize(
    ("route_key", "route_slug"),
    [("connect", ""), ("disconnect", ""), ("default", ""), ("chat", "connect"), ("$connect", "x")],
)
def test_the_database_refuses_reserved_route_keys_and_slugs(gateway, route_key, route_slug):
    with pytest.raises(IntegrityError), transaction.atomic():
        ApiGatewayAdditionalRoute.objects.create(
            gateway=gateway, route_key=route_key, route_slug=route_slug
        )


def test_a_message_on_the_connect_slug_is_refused_and_rewrites_nothing(gateway, user, token):
    ws = _client(gateway, "/ws/")
    assert ws.connect(token=token, channel="general").status_code == 200
    # A custom route keyed "connect" (legal in AWS) calling the connect slug with a message.
    response = ws.message({"action": "connect"}, route_key="connect", route_slug="connect")
    assert response.status_code == 400
    response = ws.message({"action": "x"}, route_key="disconnect", route_slug="disconnect")
    assert response.status_code == 400
    session = WebSocketSession.objects.get()
    assert session.connected and session.channel_name == "general"


@pytest.mark.parametrize(
    ("slug", "route_key", "event_type"),
    [
        ("connect", "$default", "CONNECT"),
        ("connect", "$connect", "MESSAGE"),
        ("disconnect", "$disconnect", "CONNECT"),
        ("default", "$connect", "CONNECT"),
        ("default", "$default", "DISCONNECT"),
        ("default", "chat", "MESSAGE"),
    ],
)
def test_route_key_and_event_type_must_match_the_slug(gateway, token, slug, route_key, event_type):
    ws = _client(gateway, "/ws/")
    assert ws.connect(token=token).status_code == 200
    headers = {contract.ROUTE_KEY.name: route_key, contract.EVENT_TYPE.name: event_type}
    response = ws._post(slug, {"action": "x"}, "", ws.headers(route_key, **headers))
    assert response.status_code == 400
    assert WebSocketSession.objects.get().connected


def test_events_without_route_key_or_event_type_are_refused(gateway, token):
    ws = _client(gateway, "/ws/")
    headers = ws.headers(contract.CONNECT)
    del headers[contract.EVENT_TYPE.name]
    response = ws._post("connect", None, f"ws_token={token}", headers)
    assert response.status_code == 400
    assert not WebSocketSession.objects.exists()


# Finding 1 (the view side): the lifecycle state ----------------------------------------------


def test_sessions_move_from_connecting_to_open_to_closed(gateway, token):
    ws = _client(gateway, "/ws/")
    assert ws.connect(token=token).status_code == 200
    assert WebSocketSession.objects.get().state == WebSocketSession.State.CONNECTING
    with ws_settings(LAST_SEEN_UPDATE_INTERVAL=0):
        assert ws.message({"action": "whoami"}).status_code == 200
    assert WebSocketSession.objects.get().state == WebSocketSession.State.OPEN
    assert ws.disconnect().status_code == 200
    session = WebSocketSession.objects.get()
    assert (session.state, session.connected) == (WebSocketSession.State.CLOSED, False)


def test_state_and_connected_cannot_disagree_in_the_database(gateway):
    from django.utils import timezone

    now = timezone.now()
    with pytest.raises(IntegrityError), transaction.atomic():
        WebSocketSession.objects.bulk_create(
            [
                WebSocketSession(
                    connection_id="AAAAAAAAAAAAAAA=",
                    gateway=gateway,
                    channel_name="x",
                    state=WebSocketSession.State.OPEN,
                    connected=False,
                    connected_at=now,
                    last_seen_at=now,
                )
            ]
        )
