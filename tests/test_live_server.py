"""AWS-shaped requests through a real WSGI server with the full middleware stack.

Django's test client skips what a real server does (latin-1 header decoding, CSRF enforcement,
``LoginRequiredMiddleware`` redirects), which hid two findings of the outside review. These tests
send the requests API Gateway sends, as bytes on a socket, to Django's live server.
"""

from __future__ import annotations

import http.client
import json
import time
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import LiveServerTestCase, override_settings

from django_aws_api_gateway_websockets import contract
from django_aws_api_gateway_websockets.models import ApiGateway, WebSocketSession, WebSocketToken
from django_aws_api_gateway_websockets.testing import (
    HandshakeRejected,
    LocalGatewayMixin,
    new_connection_id,
)
from django_aws_api_gateway_websockets.tokens import mint_token

#: Printable ASCII with every punctuation character API Gateway can quote (no single quote).
PUNCTUATED_SECRET = 'Ab0~!@#$%^&*()_+-=[]{}|;:,.<>?/`\\"' + "z" * 20


class Wire:
    """One simulated connection, posting to the live server as API Gateway would."""

    def __init__(self, url: str, gateway: ApiGateway, secret: str | None = None) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port
        self.gateway = gateway
        self.connection_id = new_connection_id()
        self.secret = settings.GATEWAY_SECRET if secret is None else secret

    def post(
        self,
        path: str,
        route_key: str,
        body: bytes = b"",
        *,
        query: str = "",
        extra: dict[str, bytes] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        headers = contract.integration_headers(
            connection_id=self.connection_id,
            api_id=self.gateway.api_id or "",
            route_key=route_key,
            source_ip="198.51.100.20",
            secret=None,
            stage=self.gateway.stage,
        )
        raw: dict[str, bytes] = {name: value.encode("ascii") for name, value in headers.items()}
        if self.secret:
            raw[contract.GATEWAY_SECRET_HEADER] = self.secret.encode("utf-8")
        raw.update(extra or {})
        connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            connection.putrequest("POST", path + (f"?{query}" if query else ""))
            for name, value in raw.items():
                connection.putheader(name, value)
            connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()


class LiveServerTests(LiveServerTestCase):
    def setUp(self) -> None:
        self.user = get_user_model().objects.create_user(username="alice", password="pw")
        self.gateway = ApiGateway.objects.create(
            name="live",
            api_id="live0api01",
            stage="production",
            target_base_endpoint=self.live_server_url + "/ws/",
        )

    def test_login_required_middleware_does_not_redirect_callbacks(self):
        """Finding 3: with LoginRequiredMiddleware every callback went to the login page, with the
        single-use token in ``next``."""
        assert "django.contrib.auth.middleware.LoginRequiredMiddleware" in settings.MIDDLEWARE
        wire = Wire(self.live_server_url, self.gateway)
        token = mint_token(self.user).token
        status, headers, _ = wire.post("/ws/connect", contract.CONNECT, query=f"ws_token={token}")
        assert status == 200
        assert token not in json.dumps(headers)

    @override_settings(ROOT_URLCONF="tests.urls_noanon")
    def test_the_token_endpoint_answers_json_401_never_a_redirect(self):
        parts = urlsplit(self.live_server_url)
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        # A real browser flow: fetch the CSRF cookie from the login-exempt endpoint is not possible
        # with POST only, so send a matching cookie and header as the JS client does.
        csrf = "a" * 32
        connection.request(
            "POST",
            "/websockets/token/",
            body=b"",
            headers={
                "Cookie": f"csrftoken={csrf}",
                "X-CSRFToken": csrf,
                "Origin": self.live_server_url,
                "Referer": self.live_server_url + "/",
            },
        )
        response = connection.getresponse()
        body = response.read()
        assert response.status == 401
        assert response.getheader("Location") is None
        assert json.loads(body) == {"error": "Sign in to open a WebSocket connection."}

    def test_the_token_endpoint_enforces_csrf_on_a_real_server(self):
        parts = urlsplit(self.live_server_url)
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        connection.request("POST", "/websockets/token/", body=b"")
        response = connection.getresponse()
        response.read()
        assert response.status == 403
        assert not WebSocketToken.objects.exists()

    def test_a_punctuated_ascii_secret_matches_through_wsgi(self):
        with override_settings(AWS_API_GATEWAY_WEBSOCKETS={"GATEWAY_SECRETS": [PUNCTUATED_SECRET]}):
            wire = Wire(self.live_server_url, self.gateway, secret=PUNCTUATED_SECRET)
            status, _, _ = wire.post(
                "/ws/connect", contract.CONNECT, query=f"ws_token={mint_token(self.user).token}"
            )
        assert status == 200

    def test_non_ascii_secret_bytes_are_refused_with_403_not_500(self):
        """Finding 10: a WSGI server decodes header bytes as latin-1, so a non-ASCII secret
        never matched, although the system check let it through. The check now refuses it,
        such a secret is never used, and non-ASCII bytes in the header are simply refused."""
        from django_aws_api_gateway_websockets.checks import check_settings

        secret = "sécret-" + "x" * 40
        with override_settings(AWS_API_GATEWAY_WEBSOCKETS={"GATEWAY_SECRETS": [secret]}):
            assert [m.id for m in check_settings()] == ["dagw.E008"]
            wire = Wire(self.live_server_url, self.gateway, secret=secret)
            query = f"ws_token={mint_token(self.user).token}"
            status, _, body = wire.post("/ws/connect", contract.CONNECT, query=query)
        assert status == 403
        assert json.loads(body) == {"error": "Gateway authentication is not configured."}

        # A valid secret configured, non-ASCII bytes sent: refused, not a 500.
        wire = Wire(self.live_server_url, self.gateway, secret=settings.GATEWAY_SECRET + "é")
        query = f"ws_token={mint_token(self.user).token}"
        status, _, body = wire.post("/ws/connect", contract.CONNECT, query=query)
        assert status == 403
        assert json.loads(body) == {"error": "Gateway authentication failed."}
        assert not WebSocketSession.objects.exists()

    def test_oversized_and_binary_bodies_are_4xx_through_a_real_server(self):
        wire = Wire(self.live_server_url, self.gateway)
        query = f"ws_token={mint_token(self.user).token}"
        assert wire.post("/ws/connect", contract.CONNECT, query=query)[0] == 200
        status, _, _ = wire.post(
            "/ws/default", contract.DEFAULT, b"x" * (contract.MAX_MESSAGE_BYTES + 1)
        )
        assert status == 413
        status, _, _ = wire.post("/ws/default", contract.DEFAULT, b"\xff\xfe not utf-8")
        assert status == 400


class ThroughTheLocalGateway(LocalGatewayMixin, LiveServerTestCase):
    """The same server behind the local gateway, with the test helpers users get: a browser-like
    WebSocket client instead of hand-made integration requests."""

    def setUp(self) -> None:
        super().setUp()
        self.user = get_user_model().objects.create_user(username="alice", password="pw")
        self.gateway = ApiGateway.objects.create(
            name="live",
            api_id="live0api01",
            stage="production",
            target_base_endpoint="https://www.example.com/ws/",
        )

    def test_connect_message_disconnect_through_a_real_server(self):
        token = mint_token(self.user).token
        query = {"ws_token": token, "channel": "general"}
        with self.websocket_client(self.gateway, query=query) as ws:
            ws.send_json({"action": "whoami"})
            assert ws.receive() == "alice"
        deadline = time.monotonic() + 5
        while WebSocketSession.objects.get().connected and time.monotonic() < deadline:
            time.sleep(0.02)
        session = WebSocketSession.objects.get()
        assert (session.channel_name, session.connected) == ("general", False)

    def test_the_token_is_single_use_through_the_gateway(self):
        token = mint_token(self.user).token
        with self.websocket_client(self.gateway, query={"ws_token": token}):
            pass
        with self.assertRaises(HandshakeRejected) as refused:
            self.websocket_client(self.gateway, query={"ws_token": token}).connect()
        assert refused.exception.status in (401, 403)
        assert WebSocketSession.objects.count() == 1
