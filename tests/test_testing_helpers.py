"""The test helpers users get (``testing``): proved by using them against the local gateway in
front of a live Django server, with real WebSocket connections (the ``websockets`` library)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, LiveServerTestCase

from django_aws_api_gateway_websockets import contract
from django_aws_api_gateway_websockets.local_gateway.config import GatewayConfig
from django_aws_api_gateway_websockets.local_gateway.server import GatewayThread
from django_aws_api_gateway_websockets.models import ApiGateway, WebSocketSession
from django_aws_api_gateway_websockets.testing import (
    AsyncWebSocketTestClient,
    GatewayClient,
    HandshakeRejected,
    LiveGateway,
    LocalGatewayMixin,
    WebSocketTestClient,
)
from django_aws_api_gateway_websockets.tokens import mint_token
from tests.local_gateway_support import RecordingBackend, build_api


def wait_until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


class LocalGatewayMixinTests(LocalGatewayMixin, LiveServerTestCase):
    """The mixin as a user's ``LiveServerTestCase`` would use it."""

    local_gateway_options = {"idle_timeout": 60}

    def setUp(self) -> None:
        super().setUp()
        self.user = get_user_model().objects.create_user(username="alice", password="pw")
        # A record as production has it: a public endpoint; the gateway calls the live server.
        self.gateway = ApiGateway.objects.create(
            name="live",
            api_id="live0api01",
            region="eu-west-1",
            stage="production",
            target_base_endpoint="https://www.example.com/ws/",
        )

    def test_connect_message_send_from_django_and_close(self) -> None:
        token = mint_token(self.user).token
        with self.websocket_client(
            self.gateway, query={"ws_token": token, "channel": "general"}
        ) as ws:
            session = WebSocketSession.objects.get()
            assert (session.channel_name, session.user) == ("general", self.user)
            assert session.gateway == self.gateway and len(session.connection_id) == 16

            ws.send_json({"action": "whoami"})  # $default is two-way
            assert ws.receive() == "alice"
            ws.send_json({"action": "echo", "text": "hi"})
            assert ws.receive_json()["handler"] == "echo"

            report = session.send_message({"hello": "from django"})  # Management API
            assert ws.receive_json() == {"hello": "from django"}
            assert report is not None

            session.close()
            ws.expect_close()
        wait_until(lambda: not WebSocketSession.objects.get().connected)

    def test_a_refused_connect_is_the_handshake_status(self) -> None:
        client = self.websocket_client(self.gateway, query={"ws_token": "not-a-token"})
        with self.assertRaises(HandshakeRejected) as raised:
            client.connect()
        assert raised.exception.status in (401, 403)
        assert not WebSocketSession.objects.exists()

    def test_the_record_is_not_changed_by_loading_it(self) -> None:
        before = ApiGateway.objects.values().get(pk=self.gateway.pk)
        loaded = self.local_gateway.ensure_loaded(self.gateway)
        after = ApiGateway.objects.values().get(pk=self.gateway.pk)
        assert before == after
        assert loaded.api_id == "live0api01"
        assert loaded.websocket_url == f"{self.local_gateway.running.ws_url}/live0api01/production"
        # Django finds the gateway by settings: the transport and the browser URL are local.
        assert self.gateway.websocket_url == loaded.websocket_url


# -- the pytest plugin (registered as a pytest11 entry point) ---------------------------------


def test_pytest_fixtures_connect_through_the_gateway(local_gateway, websocket_client):
    user = get_user_model().objects.create_user(username="bob", password="pw")
    gateway = ApiGateway.objects.create(
        name="plugin", api_id="plugin0001", target_base_endpoint="https://example.org/ws/"
    )
    ws = websocket_client(gateway, query={"ws_token": mint_token(user).token})
    ws.send_json({"action": "whoami"})
    assert ws.receive() == "bob"
    WebSocketSession.objects.get().send_message("plain text")
    assert ws.receive() == "plain text"
    assert gateway.websocket_url.startswith(local_gateway.running.ws_url)


def test_websocket_client_expects_a_close_code_and_refuses_messages_instead(local_gateway):
    gateway = ApiGateway.objects.create(
        name="public", api_id="public0001", target_base_endpoint="https://example.org/public/"
    )
    with local_gateway.client(gateway) as ws:
        ws.send("x" * (129 * 1024))  # over API Gateway's 128 KB message limit
        code, _ = ws.expect_close(1009)
        assert code == 1009
    with local_gateway.client(gateway) as ws:
        ws.send_json({"action": "anything"})  # PublicView answers nothing
        ws.expect_nothing(timeout=0.3)
        with pytest.raises(AssertionError, match="did not close"):
            ws.expect_close(timeout=0.3)
        WebSocketSession.objects.connected().send_message({"n": 1})
        with pytest.raises(AssertionError, match="Expected the connection to close"):
            ws.expect_close(timeout=5)


def test_async_websocket_client(local_gateway):
    gateway = ApiGateway.objects.create(
        name="async", api_id="async00001", target_base_endpoint="https://example.org/public/"
    )
    url = local_gateway.websocket_url(gateway)

    async def scenario() -> tuple[int, str]:
        async with AsyncWebSocketTestClient(url) as ws:
            await ws.send(b"\x00binary")  # AWS refuses binary frames
            return await ws.expect_close()

    assert asyncio.run(scenario())[0] == 1003
    with pytest.raises(HandshakeRejected) as refused:
        WebSocketTestClient(url.rsplit("/", 1)[0] + "/nostage").connect()
    assert refused.value.status == 403


# -- GatewayClient sends what the gateway (and AWS) sends ------------------------------------


@pytest.fixture
def recorded_gateway() -> Iterator[tuple[GatewayThread, RecordingBackend, str]]:
    backend = RecordingBackend().start()
    thread = GatewayThread(GatewayConfig()).start()
    try:
        api = build_api(thread.store, backend.url + "/ws/")
        yield thread, backend, api.api_id
    finally:
        thread.stop()
        backend.stop()


#: Headers an HTTP client library adds to its own request, not part of what API Gateway adds.
TRANSPORT_HEADERS = {"host", "content-length", "content-type", "accept", "accept-encoding"}


#: A browser offers permessage-deflate; the library client in this test does not.
NEGOTIATED = {"sec-websocket-extensions"}


def _names(headers: dict[str, str]) -> set[str]:
    return {name.lower() for name in headers} - TRANSPORT_HEADERS - NEGOTIATED


@pytest.mark.django_db
def test_gateway_client_headers_match_what_the_gateway_sends(recorded_gateway):
    thread, backend, api_id = recorded_gateway
    handshake = {
        "Origin": "https://www.example.com",
        "Cookie": "sessionid=abc; csrftoken=def",
        "X-Forwarded-For": "10.9.8.7",
        "Accept-Language": "en-GB,en;q=0.9",
    }
    ws = WebSocketTestClient(
        f"{thread.ws_url}/{api_id}/production", query={"channel": "x"}, headers=handshake
    )
    with ws:
        ws.send_json({"action": "hi"})
        sent = backend.wait_for(lambda r: len(r) >= 2)
    connect = next(r for r in sent if r.path == "/ws/connect")
    message = next(r for r in sent if r.path == "/ws/default")

    record = ApiGateway(
        name="x",
        api_id=api_id,
        stage="production",
        target_base_endpoint="https://www.example.com/ws/",
    )
    django_client = Client()
    django_client.cookies["sessionid"] = "abc"
    django_client.cookies["csrftoken"] = "def"
    helper = GatewayClient(
        django_client,
        record,
        source_ip="127.0.0.1",
        forwarded_for="10.9.8.7",
        user_agent=ws.user_agent,
        origin="https://www.example.com",
        secret=None,
    )
    ours = helper.headers(contract.CONNECT)
    # The handshake's own Sec-WebSocket-* values differ; the names must be the same.
    assert _names(ours) == _names(connect.headers)
    for name in (
        "Origin",
        "Cookie",
        "User-Agent",
        "X-Forwarded-For",
        "X-Forwarded-Proto",
        "X-Forwarded-Port",
        contract.AWS_API_ID_HEADER,
        contract.SOURCE_IP.name,
        contract.EVENT_TYPE.name,
    ):
        assert ours[name] == connect.header(name), name
    assert ours["X-Forwarded-For"] == "10.9.8.7, 127.0.0.1"
    assert ours["X-Amzn-Trace-Id"].startswith("Root=1-")
    assert ours[contract.REQUEST_ID.name] != ours[contract.CONNECTION_ID.name]

    message_headers = helper.headers(contract.DEFAULT)
    assert _names(message_headers) == _names(message.headers)
    assert "Cookie" not in message_headers and "Origin" not in message_headers
    assert message_headers["User-Agent"] == f"AmazonAPIGateway_{api_id}"


@pytest.mark.django_db
def test_gateway_client_requests_carry_the_integration_host_and_cookies_on_connect_only(
    gateway, user
):
    client = Client()
    client.force_login(user)
    ws = GatewayClient(client, gateway, path="/ws/", forwarded_for="1.2.3.4")
    seen = []
    original = client.generic

    def spy(method, path, **extra):
        response = original(method, path, **extra)
        seen.append(response.wsgi_request)
        return response

    client.generic = spy  # type: ignore[method-assign]
    token = mint_token(user).token
    assert ws.connect(token=token).status_code == 200
    ws.message({"action": "whoami"})
    connect_request, message_request = seen
    assert connect_request.get_host() == "testserver"  # the integration URI's host
    assert connect_request.is_secure()
    assert connect_request.COOKIES.get("sessionid")
    assert message_request.COOKIES == {}
    assert connect_request.headers["X-Forwarded-For"] == f"1.2.3.4, {ws.source_ip}"
    assert connect_request.headers[contract.REQUEST_ID.name] != ws.connection_id
    assert connect_request.headers["User-Agent"].startswith("Mozilla/5.0")
    assert message_request.headers["User-Agent"] == f"AmazonAPIGateway_{gateway.api_id}"


def test_live_gateway_outside_a_test_case_restores_the_settings(live_server, transactional_db):
    from django_aws_api_gateway_websockets.conf import ws_settings

    with LiveGateway(live_server.url) as running:
        assert running.url == ws_settings.LOCAL_GATEWAY_URL
    assert ws_settings.LOCAL_GATEWAY_URL == ""


def test_live_gateway_options_reach_the_gateway(live_server, transactional_db):
    """``LiveGateway(idle_timeout=1)``: the idle close (1001) and its $disconnect in a second."""
    gateway = ApiGateway.objects.create(
        name="idle", api_id="idle000001", target_base_endpoint="https://example.org/public/"
    )
    with LiveGateway(live_server.url, idle_timeout=1) as running:
        started = time.monotonic()
        with running.client(gateway) as ws:
            code, _ = ws.expect_close(timeout=10)
        assert code == 1001
        assert 0.9 < time.monotonic() - started < 8
        wait_until(lambda: not WebSocketSession.objects.get().connected)
