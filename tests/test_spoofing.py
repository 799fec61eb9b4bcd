"""Forged integration requests: anything not from our API Gateway is refused and writes nothing.

The view's URL is public, so anyone can POST to it with made-up ``X-Ws-*`` headers. Only the shared
secret (a static header API Gateway adds) and the API id of a known gateway make a request
genuine. Every forgery below must get 403 and leave all three tables exactly as they were: no
session created, changed or closed, no token spent, no rate-limit window counted.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from django.conf import settings
from django.test import Client, override_settings

from django_aws_api_gateway_websockets import contract, signals
from django_aws_api_gateway_websockets.models import (
    ApiGateway,
    RateLimitWindow,
    WebSocketSession,
    WebSocketToken,
)
from django_aws_api_gateway_websockets.testing import GatewayClient, new_connection_id
from django_aws_api_gateway_websockets.tokens import mint_token
from tests.helpers import receiver

pytestmark = pytest.mark.django_db

SECRET: str = settings.GATEWAY_SECRET
REAL_API_ID = "abc123def4"  # the ``gateway`` fixture's
Mutation = Callable[[dict], None]


def _snapshot() -> dict[str, list[dict]]:
    """Every row of every table a request could write, in full."""
    return {
        model.__name__: list(model.objects.order_by("pk").values())
        for model in (WebSocketSession, WebSocketToken, RateLimitWindow)
    }


def _send(
    ws: GatewayClient,
    route_key: str,
    mutate: Mutation | None = None,
    *,
    query: str = "",
    body: object = None,
    connection_id: str | None = None,
):
    """POST as the integration for ``route_key`` would, after ``mutate`` edits the headers."""
    headers = ws.headers(route_key, connection_id)
    if mutate is not None:
        mutate(headers)
    url = ws.path + contract.route_slug(route_key) + (f"?{query}" if query else "")
    return ws.client.generic(
        contract.INTEGRATION_METHOD,
        url,
        data=json.dumps(body) if body is not None else "",
        content_type="application/json",
        **contract.as_meta(headers),
    )


# Forgeries ---------------------------------------------------------------------------------------


def _secret(value: str) -> Mutation:
    def mutate(headers: dict) -> None:
        headers[contract.GATEWAY_SECRET_HEADER] = value

    return mutate


def _no_secret(headers: dict) -> None:
    del headers[contract.GATEWAY_SECRET_HEADER]


def _api_ids(mapped: str, aws: str) -> Mutation:
    def mutate(headers: dict) -> None:
        headers[contract.API_ID.name] = mapped
        headers[contract.AWS_API_ID_HEADER] = aws
        headers["User-Agent"] = f"AmazonAPIGateway_{aws}"

    return mutate


def _flip_last_byte(value: str) -> str:
    return value[:-1] + chr(ord(value[-1]) ^ 1)


FORGERIES: dict[str, Mutation] = {
    "wrong-secret": _secret("this-is-not-the-gateway-secret"),
    "missing-secret": _no_secret,
    "empty-secret": _secret(""),
    "uppercase-secret": _secret(SECRET.upper()),
    "swapped-case-secret": _secret(SECRET.swapcase()),
    "secret-prefix": _secret(SECRET[:-1]),
    "secret-short-prefix": _secret(SECRET[:8]),
    "secret-suffix": _secret(SECRET[1:]),
    "secret-with-extra-tail": _secret(SECRET + "0"),
    "secret-with-extra-head": _secret("0" + SECRET),
    "secret-with-whitespace": _secret(f" {SECRET} "),
    "secret-twice": _secret(f"{SECRET},{SECRET}"),
    "same-length-wrong-bytes": _secret(_flip_last_byte(SECRET)),
    "same-length-wrong-first-byte": _secret(chr(ord(SECRET[0]) ^ 1) + SECRET[1:]),
    "non-ascii-secret": _secret("tëst-gateway-sécret-0123456789abcdéf"),
    "non-ascii-appended": _secret(SECRET + "é"),
    # What a WSGI server makes of UTF-8 bytes in a header: each byte as one latin-1 character.
    "non-ascii-as-wsgi-latin1": _secret((SECRET + "é").encode().decode("latin-1")),
    "lone-surrogate": _secret(SECRET[:-1] + "\udce9"),
    "wrong-api-id": _api_ids("abc123def5", "abc123def5"),
    "api-id-of-no-gateway": _api_ids("nosuchapi0", "nosuchapi0"),
    "mapped-api-id-wrong-aws-right": _api_ids("nosuchapi0", REAL_API_ID),
    "mapped-api-id-missing-aws-wrong": _api_ids("", "nosuchapi0"),
}

forgeries = pytest.mark.parametrize("mutate", FORGERIES.values(), ids=FORGERIES.keys())


def test_every_forgery_differs_from_the_genuine_request(ws):
    """Guard against a forgery that silently stopped forging (then the tests below prove less)."""
    genuine = ws.headers(contract.CONNECT)
    for name, mutate in FORGERIES.items():
        forged = dict(genuine)
        mutate(forged)
        assert forged != genuine, name


@forgeries
def test_forged_connect(ws, user, mutate):
    token = mint_token(user).token
    before = _snapshot()
    with receiver(signals.connected) as connected:
        response = _send(ws, contract.CONNECT, mutate, query=f"ws_token={token}&channel=general")
    assert response.status_code == 403, response.content
    assert connected == []
    assert _snapshot() == before
    assert WebSocketSession.objects.count() == 0
    assert RateLimitWindow.objects.count() == 0
    assert WebSocketToken.objects.get().used_at is None

    # The token was not spent: the genuine request with it still connects.
    response = _send(ws, contract.CONNECT, query=f"ws_token={token}&channel=general")
    assert response.status_code == 200, response.content
    assert WebSocketSession.objects.get().connection_id == ws.connection_id
    assert WebSocketToken.objects.get().used_at is not None


@forgeries
@override_settings(
    AWS_API_GATEWAY_WEBSOCKETS={"GATEWAY_SECRETS": [SECRET], "LAST_SEEN_UPDATE_INTERVAL": 0}
)
def test_forged_message(ws, token, mutate):
    # LAST_SEEN_UPDATE_INTERVAL=0: an accepted message would write last_seen_at, so a forged
    # one that got through would show up in the snapshot even without a handler side effect.
    assert ws.connect(token=token).status_code == 200
    before = _snapshot()
    with receiver(signals.message_received) as received:
        response = _send(ws, contract.DEFAULT, mutate, body={"action": "echo", "text": "forged"})
    assert response.status_code == 403, response.content
    assert b"forged" not in response.content
    assert received == []
    assert _snapshot() == before

    with receiver(signals.message_received) as received:
        response = _send(ws, contract.DEFAULT, body={"action": "echo", "text": "genuine"})
    assert response.status_code == 200, response.content
    assert [call["handler"] for call in received] == ["echo"]


@forgeries
def test_forged_disconnect(ws, token, mutate):
    assert ws.connect(token=token).status_code == 200
    before = _snapshot()
    with receiver(signals.disconnected) as disconnected:
        response = _send(ws, contract.DISCONNECT, mutate)
    assert response.status_code == 403, response.content
    assert disconnected == []
    assert _snapshot() == before
    assert WebSocketSession.objects.get().connected

    assert _send(ws, contract.DISCONNECT).status_code == 200
    assert not WebSocketSession.objects.get().connected


# Forgeries of a connected session's own connection id -------------------------------------------


def test_forged_message_with_a_live_connection_id_never_runs_a_handler(ws, token):
    assert ws.connect(token=token).status_code == 200
    forger = GatewayClient(Client(), ws.gateway, path="/ws/", secret="guessed-secret")
    calls: list[str] = []

    def receiver(*, handler: str, **kwargs) -> None:
        calls.append(handler)

    signals.message_received.connect(receiver, weak=False)
    try:
        for body in ({"action": "echo"}, {"handler": "whoami"}, "plain text", None):
            response = forger.message(body, connection_id=ws.connection_id)
            assert response.status_code == 403, (body, response.content)
        assert calls == []
        assert ws.message({"handler": "whoami"}).status_code == 200
        assert calls == ["whoami"]
    finally:
        signals.message_received.disconnect(receiver)


@pytest.fixture
def other_gateway(db) -> ApiGateway:
    return ApiGateway.objects.create(
        name="other",
        api_id="zzz999other",
        region="eu-west-1",
        stage="production",
        target_base_endpoint="https://testserver/ws",
        default_channel_name="elsewhere",
    )


def test_connection_id_of_another_gateway_cannot_send_messages(ws, token, other_gateway):
    assert ws.connect(token=token).status_code == 200
    through_other = GatewayClient(Client(), other_gateway, path="/ws/")
    before = _snapshot()
    with receiver(signals.message_received) as received:
        for route_key in (contract.DEFAULT, "echo"):
            response = through_other.message(
                {"action": "echo"}, route_key=route_key, connection_id=ws.connection_id
            )
            assert response.status_code in (403, 404), response.content
        response = through_other.message({"action": "echo"}, connection_id=ws.connection_id)
        assert response.status_code == 403, response.content
    assert received == []
    assert _snapshot() == before

    # Disconnecting through the other gateway is best effort (200) but must not close this one.
    assert through_other.disconnect(connection_id=ws.connection_id).status_code == 200
    session = WebSocketSession.objects.get(connection_id=ws.connection_id)
    assert session.connected and session.gateway_id == ws.gateway.pk
    # The connection still works through its own gateway.
    assert ws.message({"action": "echo"}).status_code == 200


# The per-IP rate limit is keyed on the mapped source IP, nothing a client can set -------------


def _limit_settings(limit: int) -> dict:
    return {"GATEWAY_SECRETS": [SECRET], "CONNECT_LIMIT_PER_IP": limit, "CONNECT_WINDOW": 3600}


def _connect_public(gateway, source_ip: str, **headers: str):
    ws = GatewayClient(Client(), gateway, path="/public/", source_ip=source_ip)
    return ws.connect(headers=headers)


def test_rotating_x_forwarded_for_does_not_reset_the_ip_limit(gateway):
    mapped_ip = "203.0.113.50"
    with override_settings(AWS_API_GATEWAY_WEBSOCKETS=_limit_settings(3)):
        statuses = [
            _connect_public(
                gateway,
                mapped_ip,
                **{
                    "X-Forwarded-For": f"198.51.100.{i}",
                    "X-Real-Ip": f"198.51.100.{i}",
                    "Forwarded": f"for=198.51.100.{i}",
                },
            ).status_code
            for i in range(1, 6)
        ]
    assert statuses == [200, 200, 200, 429, 429]
    assert WebSocketSession.objects.count() == 3
    assert set(WebSocketSession.objects.values_list("source_ip", flat=True)) == {mapped_ip}
    windows = dict(RateLimitWindow.objects.values_list("key", "count"))
    assert windows == {f"connect:ip:{mapped_ip}": 5}


def test_rotating_the_mapped_source_ip_uses_separate_limits(gateway):
    """The control for the test above: the mapped header is what the limit is keyed on."""
    with override_settings(AWS_API_GATEWAY_WEBSOCKETS=_limit_settings(3)):
        statuses = [
            _connect_public(gateway, f"203.0.113.{i}", **{"X-Forwarded-For": "198.51.100.1"})
            for i in range(1, 6)
        ]
    assert [response.status_code for response in statuses] == [200] * 5
    assert WebSocketSession.objects.count() == 5


def test_spellings_of_one_ipv6_address_share_one_limit(gateway):
    spellings = [
        "2001:db8::1",
        "2001:DB8::1",
        "2001:0db8::0001",
        "2001:db8:0:0:0:0:0:1",
        "2001:0db8:0000:0000:0000:0000:0000:0001",
    ]
    with override_settings(AWS_API_GATEWAY_WEBSOCKETS=_limit_settings(3)):
        statuses = [_connect_public(gateway, ip).status_code for ip in spellings]
    assert statuses == [200, 200, 200, 429, 429]
    assert WebSocketSession.objects.count() == 3
    assert dict(RateLimitWindow.objects.values_list("key", "count")) == {
        "connect:ip:2001:db8::/64": 5
    }


def test_forged_requests_do_not_count_against_the_ip_limit(gateway):
    """A forger cannot lock a victim IP out by spending its budget with bad secrets."""
    victim_ip = "203.0.113.60"
    with override_settings(AWS_API_GATEWAY_WEBSOCKETS=_limit_settings(3)):
        forger = GatewayClient(Client(), gateway, path="/public/", source_ip=victim_ip, secret="x")
        assert [forger.connect().status_code for _ in range(10)] == [403] * 10
        assert RateLimitWindow.objects.count() == 0
        statuses = [_connect_public(gateway, victim_ip).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


def test_a_new_connection_id_cannot_be_smuggled_in_through_a_forged_connect(ws, user):
    """Even with a valid token, a forged $connect creates no session for its connection id."""
    token = mint_token(user).token
    smuggled = new_connection_id()
    response = _send(
        ws,
        contract.CONNECT,
        _secret(_flip_last_byte(SECRET)),
        query=f"ws_token={token}",
        connection_id=smuggled,
    )
    assert response.status_code == 403
    assert not WebSocketSession.objects.filter(connection_id=smuggled).exists()
    # And a message naming that id is refused even with the genuine secret.
    reply = ws.message({"action": "echo"}, connection_id=smuggled)
    assert reply.status_code == 403
