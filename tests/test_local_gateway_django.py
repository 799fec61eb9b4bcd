"""End to end: a browser-like `websockets` client, the local gateway, a real Django server (the
package's `WebSocketView` with tokens and sessions), and the package sending back through the
gateway's Management API with its own transport."""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import LiveServerTestCase
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from django_aws_api_gateway_websockets import contract
from django_aws_api_gateway_websockets.local_gateway.config import GatewayConfig
from django_aws_api_gateway_websockets.local_gateway.server import GatewayThread
from django_aws_api_gateway_websockets.models import ApiGateway, WebSocketSession
from django_aws_api_gateway_websockets.tokens import mint_token
from tests.helpers import LOCAL_TRANSPORT, transport, ws_settings
from tests.local_gateway_support import build_api, management_client, ws_url


class LocalGatewayDjangoTests(LiveServerTestCase):
    def setUp(self) -> None:
        self.gw = GatewayThread(GatewayConfig(integration_timeout=10)).start()
        self.addCleanup(self.gw.stop)
        self.api = build_api(
            self.gw.store,
            self.live_server_url,
            uri_base=self.live_server_url + "/ws",
            two_way=(contract.DEFAULT,),
            request_parameters=contract.integration_request_parameters(settings.GATEWAY_SECRET),
        )
        self.gateway = ApiGateway.objects.create(
            name="local",
            api_id=self.api.api_id,
            region="us-east-1",
            stage="production",
            target_base_endpoint=self.live_server_url + "/ws/",
            default_channel_name="lobby",
        )
        self.user = get_user_model().objects.create_user(username="alice", password="pw")
        self.endpoint = f"{self.gw.http_url}/{self.api.api_id}/production"

    def url(self, **query: str) -> str:
        return ws_url(self.gw, self.api, query=urlencode(query))

    def wait_for(self, predicate, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("condition not met in time")
            time.sleep(0.02)

    def test_connect_message_send_and_disconnect(self):
        token = mint_token(self.user).token
        with connect(
            self.url(ws_token=token, channel="general"),
            additional_headers={"Origin": "http://localhost"},
            user_agent_header="Mozilla/5.0 (e2e)",
        ) as ws:
            session = WebSocketSession.objects.get()
            assert session.connected and session.channel_name == "general"
            assert len(session.connection_id) == 16
            assert session.user_agent == "Mozilla/5.0 (e2e)"

            ws.send(json.dumps({"action": "whoami"}))
            assert ws.recv(timeout=5) == "alice"

            with transport(endpoint_url=self.endpoint):
                WebSocketSession.objects.filter(channel_name="general").send_message(
                    {"type": "news", "text": "hi"}
                )
            assert json.loads(ws.recv(timeout=5)) == {"type": "news", "text": "hi"}

            client = management_client(self.gw, self.api)
            info = client.get_connection(ConnectionId=session.connection_id)
            assert info["Identity"]["UserAgent"] == "Mozilla/5.0 (e2e)"
        self.wait_for(lambda: not WebSocketSession.objects.get().connected)

    def test_a_refused_token_refuses_the_handshake_with_djangos_status(self):
        with pytest.raises(InvalidStatus) as info:
            connect(self.url(ws_token="not-a-token"))
        assert 400 <= info.value.response.status_code < 500
        assert not WebSocketSession.objects.filter(connected=True).exists()

    def test_delete_connection_closes_and_django_sees_disconnect(self):
        token = mint_token(self.user).token
        with connect(self.url(ws_token=token)) as ws:
            session = WebSocketSession.objects.get()
            management_client(self.gw, self.api).delete_connection(
                ConnectionId=session.connection_id
            )
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=5)
        self.wait_for(lambda: not WebSocketSession.objects.get().connected)

    def test_sending_to_a_closed_connection_marks_it_gone(self):
        token = mint_token(self.user).token
        gw = GatewayThread(GatewayConfig(drop_disconnect=True)).start()
        self.addCleanup(gw.stop)
        api = build_api(
            gw.store,
            self.live_server_url,
            uri_base=self.live_server_url + "/ws",
            request_parameters=contract.integration_request_parameters(settings.GATEWAY_SECRET),
        )
        ApiGateway.objects.filter(pk=self.gateway.pk).update(api_id=api.api_id)
        with connect(ws_url(gw, api, query=urlencode({"ws_token": token}))):
            pass
        session = WebSocketSession.objects.get()
        assert session.connected  # $disconnect was dropped, as AWS may drop it
        with ws_settings(
            CONNECT_GRACE_SECONDS=0,
            TRANSPORT=LOCAL_TRANSPORT,
            TRANSPORT_OPTIONS={"endpoint_url": f"{gw.http_url}/{api.api_id}/production"},
        ):
            WebSocketSession.objects.filter(pk=session.pk).send_message({"x": 1})
        session.refresh_from_db()
        assert not session.connected
