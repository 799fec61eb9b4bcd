"""The local gateway's data plane against a recording HTTP backend, with real `websockets` clients.

Every behaviour of reference §9: the held handshake, what the backend receives, route selection,
two-way routes, error frames, limits and close codes, timeouts, `$disconnect`, and isolation.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from django_aws_api_gateway_websockets import contract
from django_aws_api_gateway_websockets.local_gateway.config import GatewayConfig
from django_aws_api_gateway_websockets.local_gateway.server import GatewayThread
from tests.local_gateway_support import (
    RecordingBackend,
    Reply,
    add_route,
    build_api,
    connection_id_of,
    management_client,
    redeploy,
    ws_url,
)

ID_SHAPE = re.compile(r"^[A-Za-z0-9_-]{15}=$")


@pytest.fixture(scope="module")
def backend() -> Iterator[RecordingBackend]:
    server = RecordingBackend().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _fresh(backend: RecordingBackend) -> None:
    backend.reset()


@pytest.fixture(scope="module")
def lgw() -> Iterator[GatewayThread]:
    with GatewayThread(GatewayConfig(integration_timeout=1.0)) as gateway:
        yield gateway


def closed_code(ws) -> int:
    with pytest.raises(ConnectionClosed) as info:
        for _ in range(10):
            ws.recv(timeout=5)
    assert info.value.rcvd is not None
    return info.value.rcvd.code


# $connect -----------------------------------------------------------------------------------------


def test_connect_is_held_until_the_backend_answers(lgw, backend):
    backend.replies["/connect"] = Reply(delay=0.4)
    api = build_api(lgw.store, backend.url)
    start = time.monotonic()
    with connect(ws_url(lgw, api)) as ws:
        assert time.monotonic() - start >= 0.4
        ws.send("{}")
    backend.wait_for(lambda rs: any(r.path == "/disconnect" for r in rs))


@pytest.mark.parametrize("status", [400, 401, 403, 500])
def test_connect_refused_with_the_backends_status_and_no_disconnect(lgw, backend, status):
    backend.replies["/connect"] = Reply(status=status, body=b"no")
    api = build_api(lgw.store, backend.url)
    with pytest.raises(InvalidStatus) as info:
        connect(ws_url(lgw, api))
    assert info.value.response.status_code == status
    time.sleep(0.2)
    assert backend.paths() == ["/connect"]


def test_connect_timeout_is_504_and_unreachable_is_502(lgw, backend):
    backend.replies["/connect"] = Reply(delay=3)
    api = build_api(lgw.store, backend.url, timeout_in_millis=300)
    with pytest.raises(InvalidStatus) as info:
        connect(ws_url(lgw, api))
    assert info.value.response.status_code == 504

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    api = build_api(lgw.store, dead)
    with pytest.raises(InvalidStatus) as info:
        connect(ws_url(lgw, api))
    assert info.value.response.status_code == 502


def test_no_connect_route_accepts(lgw, backend):
    api = build_api(lgw.store, backend.url, routes=(contract.DEFAULT,))
    with connect(ws_url(lgw, api)) as ws:
        ws.send('{"action": "x"}')
    backend.wait_for(lambda rs: [r.path for r in rs] == ["/default"])


def test_non_proxy_http_connect_accepts_whatever_the_status(lgw, backend):
    """Reference §1.1: with a non-proxy HTTP integration the status does not reject."""
    backend.replies["/connect"] = Reply(status=400)
    api = build_api(lgw.store, backend.url, integration_type="HTTP")
    with connect(ws_url(lgw, api)) as ws:
        ws.send("{}")


def test_unknown_api_or_stage_is_403(lgw, backend):
    api = build_api(lgw.store, backend.url)
    for url in (ws_url(lgw, api, stage="nostage"), f"{lgw.ws_url}/nosuchapi/production"):
        with pytest.raises(InvalidStatus) as info:
            connect(url)
        assert info.value.response.status_code == 403
    assert backend.paths() == []


def test_undeployed_routes_do_nothing_until_deployed(lgw, backend):
    """A stage serves its last deployment: a route added later is not there yet."""
    api = build_api(lgw.store, backend.url, routes=(contract.DEFAULT,))
    add_route(lgw.store, api, contract.CONNECT, backend.url)
    with connect(ws_url(lgw, api)) as ws:
        ws.send("{}")
    backend.wait_for(lambda rs: any(r.path == "/default" for r in rs))
    assert "/connect" not in backend.paths()

    redeploy(lgw.store, api)
    with connect(ws_url(lgw, api)):
        pass
    assert "/connect" in backend.paths()


def test_api_never_deployed_refuses(lgw, backend):
    api = build_api(lgw.store, backend.url, deploy=False)
    with pytest.raises(InvalidStatus) as info:
        connect(ws_url(lgw, api))
    assert info.value.response.status_code == 403


def test_subprotocol_chosen_by_the_backend_is_returned(lgw, backend):
    backend.replies["/connect"] = Reply(headers={"Sec-WebSocket-Protocol": "chat"})
    api = build_api(lgw.store, backend.url)
    with connect(ws_url(lgw, api), subprotocols=["chat", "other"]) as ws:
        assert ws.subprotocol == "chat"
    sent = backend.on("/connect")[0]
    assert sent.header("Sec-WebSocket-Protocol") == "chat, other"


# What the backend receives ------------------------------------------------------------------------


def test_connect_request_carries_what_aws_sends(lgw, backend):
    api = build_api(
        lgw.store,
        backend.url,
        stage_variables={"host": f"127.0.0.1:{backend.port}"},
        uri_base="http://${stageVariables.host}/ws",
    )
    url = ws_url(lgw, api, query="ws_token=abc&channel=general")
    headers = {
        "Origin": "https://example.com",
        "Cookie": "sessionid=xyz",
        "X-Forwarded-For": "203.0.113.9",
        "User-Agent": "Mozilla/5.0 (test)",
    }
    with connect(url, additional_headers=headers, user_agent_header=None):
        pass
    request = backend.wait_for(lambda rs: any(r.path == "/ws/connect" for r in rs))[0]
    assert request.method == "POST"
    assert request.path == "/ws/connect"  # stage variable substituted
    assert request.query == "ws_token=abc&channel=general"
    assert request.body == b""
    header = request.header
    assert header("Origin") == "https://example.com"
    assert header("Cookie") == "sessionid=xyz"
    assert header("Sec-WebSocket-Key") and header("Sec-WebSocket-Version") == "13"
    assert header("Upgrade") is None and header("Connection") in (None, "keep-alive")
    assert header(contract.AWS_API_ID_HEADER) == api.api_id
    assert header("User-Agent") == "Mozilla/5.0 (test)"
    assert header("X-Forwarded-For") == "203.0.113.9, 127.0.0.1"
    assert header("X-Forwarded-Proto") == "https" and header("X-Forwarded-Port") == "443"
    assert re.match(r"^Root=1-[0-9a-f]{8}-[0-9a-f]{24}$", header("X-Amzn-Trace-Id"))
    assert header("Host") == f"127.0.0.1:{backend.port}"
    # The contract's RequestParameters, evaluated from context variables:
    assert ID_SHAPE.match(header(contract.CONNECTION_ID.name))
    assert header(contract.API_ID.name) == api.api_id
    assert header(contract.STAGE.name) == "production"
    assert header(contract.ROUTE_KEY.name) == "$connect"
    assert header(contract.EVENT_TYPE.name) == "CONNECT"
    assert ID_SHAPE.match(header(contract.REQUEST_ID.name))
    assert header(contract.REQUEST_ID.name) != header(contract.CONNECTION_ID.name)
    assert header(contract.SOURCE_IP.name) == "127.0.0.1"
    assert header(contract.USER_AGENT.name) == "Mozilla/5.0 (test)"


def test_message_and_disconnect_carry_no_client_headers(lgw, backend):
    api = build_api(lgw.store, backend.url)
    with connect(
        ws_url(lgw, api), additional_headers={"Origin": "https://x", "Cookie": "a=1"}
    ) as ws:
        ws.send('{"action": "hello", "text": "héllo"}')
        backend.wait_for(lambda rs: any(r.path == "/default" for r in rs))
    requests = backend.wait_for(lambda rs: any(r.path == "/disconnect" for r in rs))
    message = next(r for r in requests if r.path == "/default")
    disconnect = next(r for r in requests if r.path == "/disconnect")
    assert message.body == '{"action": "hello", "text": "héllo"}'.encode()
    assert disconnect.body == b""
    for request in (message, disconnect):
        assert request.header("Origin") is None and request.header("Cookie") is None
        assert request.header("Sec-WebSocket-Key") is None
        assert request.header("User-Agent") == f"AmazonAPIGateway_{api.api_id}"
        assert request.query == ""
    assert message.header(contract.EVENT_TYPE.name) == "MESSAGE"
    assert message.header(contract.ROUTE_KEY.name) == "$default"
    assert disconnect.header(contract.EVENT_TYPE.name) == "DISCONNECT"
    ids = {r.header(contract.CONNECTION_ID.name) for r in requests}
    assert len(ids) == 1


def test_request_parameters_from_context_stage_route_and_body(lgw, backend):
    params = {
        "integration.request.header.connectionId": "context.connectionId",
        "integration.request.header.X-Connected-At": "context.connectedAt",
        "integration.request.header.X-Epoch": "context.requestTimeEpoch",
        "integration.request.header.X-Env": "stageVariables.env",
        "integration.request.header.X-Static": "'fixed'",
        "integration.request.header.X-Token": "route.request.querystring.token",
        "integration.request.header.X-Origin": "route.request.header.Origin",
        "integration.request.querystring.user": "route.request.body.user.name",
        "integration.request.header.X-Domain": "context.domainName",
    }
    api = build_api(
        lgw.store, backend.url, request_parameters=params, stage_variables={"env": "dev"}
    )
    with connect(
        ws_url(lgw, api, query="token=t1"), additional_headers={"Origin": "https://o"}
    ) as ws:
        ws.send('{"user": {"name": "ann"}}')
        backend.wait_for(lambda rs: any(r.path == "/default" for r in rs))
    connect_request = backend.on("/connect")[0]
    message = backend.on("/default")[0]
    assert connect_request.header("X-Token") == "t1"
    assert connect_request.header("X-Origin") == "https://o"
    assert (
        connect_request.header("X-Env") == "dev" and connect_request.header("X-Static") == "fixed"
    )
    assert int(connect_request.header("X-Connected-At")) > 1_600_000_000_000
    assert connect_request.header("X-Domain") == f"127.0.0.1:{lgw.port}"
    assert message.query == "user=ann"
    assert message.header("X-Token") is None  # route.request.* only on $connect
    assert message.header("connectionId") == connect_request.header("connectionId")
    assert int(message.header("X-Epoch")) >= int(connect_request.header("X-Connected-At"))


# Routes, two-way, error frames --------------------------------------------------------------------


def test_route_selection_and_two_way(lgw, backend):
    backend.replies["/sendmessage"] = Reply(body=b'{"sent": true}')
    backend.replies["/default"] = Reply(body=b"default-reply")
    api = build_api(
        lgw.store,
        backend.url,
        routes=(contract.DEFAULT, "sendmessage", "oneway"),
        two_way=("sendmessage",),
    )
    with connect(ws_url(lgw, api)) as ws:
        ws.send('{"action": "sendmessage"}')
        assert ws.recv(timeout=5) == '{"sent": true}'
        ws.send('{"action": "oneway"}')
        ws.send("not json")  # -> $default, one-way: nothing comes back
        ws.send('{"action": "SENDMESSAGE"}')  # case-sensitive -> $default
        backend.wait_for(lambda rs: len(rs) == 4)
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.3)
    assert backend.paths() == ["/sendmessage", "/oneway", "/default", "/default"]


def test_no_match_and_no_default_sends_forbidden_frame(lgw, backend):
    api = build_api(lgw.store, backend.url, routes=(contract.CONNECT,))
    add_route(lgw.store, api, "known", backend.url)
    redeploy(lgw.store, api)
    with connect(ws_url(lgw, api)) as ws:
        ws.send('{"action": "unknown"}')
        frame = json.loads(ws.recv(timeout=5))
    assert frame["message"] == "Forbidden"
    assert frame["connectionId"] == connection_id_of(backend)
    assert ID_SHAPE.match(frame["requestId"])


def test_integration_failure_and_timeout_error_frames(lgw, backend):
    backend.replies["/default"] = Reply(delay=3)
    api = build_api(lgw.store, backend.url, timeout_in_millis=300)
    with connect(ws_url(lgw, api)) as ws:
        ws.send("{}")
        frame = json.loads(ws.recv(timeout=5))
        assert frame["message"] == "Endpoint request timed out"
        assert frame["connectionId"] == connection_id_of(backend)
    api = build_api(
        lgw.store, backend.url, routes=(contract.DEFAULT,), integration_type="AWS_PROXY"
    )
    with connect(ws_url(lgw, api)) as ws:
        ws.send("{}")
        assert json.loads(ws.recv(timeout=5))["message"] == "Internal server error"


def test_messages_reach_the_backend_in_order(lgw, backend):
    backend.replies["/default"] = lambda r: Reply(delay=0.01 if int(r.body) % 3 == 0 else 0)
    api = build_api(lgw.store, backend.url, routes=(contract.DEFAULT,))
    with connect(ws_url(lgw, api)) as ws:
        for number in range(30):
            ws.send(str(number))
        backend.wait_for(lambda rs: len(rs) == 30)
    assert [int(r.body) for r in backend.requests] == list(range(30))


# Limits and close codes ---------------------------------------------------------------------------


def test_limits_frame_message_binary(lgw, backend):
    api = build_api(lgw.store, backend.url, routes=(contract.DEFAULT, contract.DISCONNECT))
    with connect(ws_url(lgw, api), max_size=None) as ws:
        ws.send("x" * 32 * 1024)  # exactly 32 KB in one frame: accepted
        ws.send(iter(["a" * 30_000] * 4))  # 120,000 bytes in 30 KB fragments: accepted
        backend.wait_for(lambda rs: len(rs) == 2)
        ws.send("x" * (32 * 1024 + 1))  # one frame above 32 KB
        assert closed_code(ws) == 1009
    backend.wait_for(lambda rs: any(r.path == "/disconnect" for r in rs))
    assert [len(r.body) for r in backend.on("/default")] == [32 * 1024, 120_000]

    with connect(ws_url(lgw, api)) as ws:
        ws.send(iter(["a" * 30_000] * 5))  # 150,000 bytes: message above 128 KB
        assert closed_code(ws) == 1009
    with connect(ws_url(lgw, api)) as ws:
        ws.send(b"\x00\x01")
        assert closed_code(ws) == 1003
    backend.wait_for(lambda rs: len([r for r in rs if r.path == "/disconnect"]) == 3)


def test_a_message_of_exactly_128_kib_is_accepted(lgw, backend):
    api = build_api(lgw.store, backend.url, routes=(contract.DEFAULT,))
    with connect(ws_url(lgw, api)) as ws:
        ws.send(iter(["b" * 32 * 1024] * 4))
        backend.wait_for(lambda rs: len(rs) == 1)
    assert len(backend.requests[0].body) == 128 * 1024


def _raw_handshake(lgw, api) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", lgw.port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /{api.api_id}/production HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 101")
    return sock


def test_malformed_frames_and_handshakes_are_refused_not_crashing(lgw, backend):
    api = build_api(lgw.store, backend.url, routes=(contract.DEFAULT,))
    # An unmasked client frame is a protocol error (1002).
    sock = _raw_handshake(lgw, api)
    sock.sendall(b"\x81\x02hi")
    data = sock.recv(64)
    assert data[0] == 0x88 and int.from_bytes(data[2:4], "big") == 1002
    sock.close()
    # Invalid UTF-8 in a text frame: 1007.
    sock = _raw_handshake(lgw, api)
    mask = b"\x00\x00\x00\x00"
    sock.sendall(b"\x81\x82" + mask + b"\xff\xfe")
    data = sock.recv(64)
    assert data[0] == 0x88 and int.from_bytes(data[2:4], "big") == 1007
    sock.close()
    # Handshakes: a plain GET, a missing key, garbage.
    for raw in (
        f"GET /{api.api_id}/production HTTP/1.1\r\nHost: x\r\n\r\n",
        f"GET /{api.api_id}/production HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n",
        "BLAH\r\n\r\n",
    ):
        with socket.create_connection(("127.0.0.1", lgw.port), timeout=5) as sock:
            sock.sendall(raw.encode())
            status = sock.recv(4096).split(b" ", 2)[1]
            assert status in (b"400", b"403"), raw
    # The gateway still serves.
    with connect(ws_url(lgw, api)) as ws:
        ws.send("{}")
    backend.wait_for(lambda rs: len(rs) == 1)


def test_pings_are_answered(lgw, backend):
    api = build_api(lgw.store, backend.url, routes=())
    with connect(ws_url(lgw, api)) as ws:
        ws.ping().wait(5)


def test_idle_timeout_and_max_duration_close_1001_then_disconnect(backend):
    with GatewayThread(GatewayConfig(idle_timeout=0.5, max_duration=60)) as lgw:
        api = build_api(lgw.store, backend.url)
        with connect(ws_url(lgw, api)) as ws:
            time.sleep(0.3)
            ws.send("{}")  # activity resets the idle timer
            time.sleep(0.3)
            ws.send("{}")
            start = time.monotonic()
            assert closed_code(ws) == 1001
            assert 0.3 <= time.monotonic() - start < 2.5
        backend.wait_for(lambda rs: any(r.path == "/disconnect" for r in rs))
    with GatewayThread(GatewayConfig(idle_timeout=60, max_duration=0.6)) as lgw:
        api = build_api(lgw.store, backend.url)
        with connect(ws_url(lgw, api)) as ws:
            for _ in range(3):
                ws.send("{}")
                time.sleep(0.1)
            assert closed_code(ws) == 1001


def test_drop_disconnect_never_calls_disconnect(backend):
    with GatewayThread(GatewayConfig(drop_disconnect=True)) as lgw:
        api = build_api(lgw.store, backend.url)
        with connect(ws_url(lgw, api)) as ws:
            ws.send("{}")
            backend.wait_for(lambda rs: any(r.path == "/default" for r in rs))
        time.sleep(0.3)
    assert "/disconnect" not in backend.paths()


def test_connection_ids_are_unique_and_aws_shaped(lgw, backend):
    api = build_api(lgw.store, backend.url)
    for _ in range(5):
        with connect(ws_url(lgw, api)):
            pass
    ids = [r.header(contract.CONNECTION_ID.name) for r in backend.on("/connect")]
    assert len(set(ids)) == 5 and all(ID_SHAPE.match(i) for i in ids)


def test_post_during_connect_is_gone(lgw, backend):
    """The id exists while $connect runs, but posting to it answers 410 (reference §1.1)."""
    results = {}
    api = build_api(lgw.store, backend.url)
    client = management_client(lgw, api)

    def post_back(request):
        connection_id = request.header(contract.CONNECTION_ID.name)

        def attempt():
            try:
                client.post_to_connection(ConnectionId=connection_id, Data=b"early")
            except client.exceptions.GoneException:
                results["early"] = "gone"

        thread = threading.Thread(target=attempt)
        thread.start()
        thread.join(5)
        return Reply()

    backend.replies["/connect"] = post_back
    with connect(ws_url(lgw, api)) as ws:
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.2)
        client.post_to_connection(ConnectionId=connection_id_of(backend), Data=b"now")
        assert ws.recv(timeout=5) == "now"
    assert results == {"early": "gone"}


def test_a_failing_backend_does_not_affect_other_connections(backend):
    with GatewayThread(GatewayConfig()) as lgw:
        _isolation(lgw, backend)


def _isolation(lgw: GatewayThread, backend: RecordingBackend) -> None:
    backend.replies["/slow/default"] = Reply(delay=6)
    slow = build_api(lgw.store, backend.url, uri_base=backend.url + "/slow", timeout_in_millis=5000)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    broken = build_api(lgw.store, dead, routes=(contract.DEFAULT,))
    fine = build_api(lgw.store, backend.url, two_way=("$default",), routes=(contract.DEFAULT,))
    backend.replies["/default"] = Reply(body=b"pong")
    with (
        connect(ws_url(lgw, slow)) as ws_slow,
        connect(ws_url(lgw, broken)) as ws_broken,
        connect(ws_url(lgw, fine)) as ws_fine,
    ):
        ws_slow.send("{}")
        ws_broken.send("{}")
        start = time.monotonic()
        for _ in range(20):
            ws_fine.send("{}")
            assert ws_fine.recv(timeout=5) == "pong"
        assert time.monotonic() - start < 3.0  # the slow backend holds its request for 5 s
        assert json.loads(ws_broken.recv(timeout=5))["message"] == "Internal server error"


def test_client_leaving_during_connect_gets_disconnect_and_nothing_breaks(lgw, backend):
    backend.replies["/connect"] = Reply(delay=0.4)
    api = build_api(lgw.store, backend.url)
    sock = socket.create_connection(("127.0.0.1", lgw.port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /{api.api_id}/production HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    time.sleep(0.1)
    sock.close()
    backend.wait_for(lambda rs: any(r.path == "/disconnect" for r in rs))
    with connect(ws_url(lgw, api)) as ws:
        ws.send("{}")
    backend.wait_for(lambda rs: len([r for r in rs if r.path == "/disconnect"]) == 2)


def test_unenforced_authorizer_is_logged_once(lgw, backend, caplog):
    api = build_api(lgw.store, backend.url)
    route = next(r for r in api.routes.values() if r.route_key == contract.CONNECT)
    route.authorization_type = "AWS_IAM"
    route.api_key_required = True
    redeploy(lgw.store, api)
    with caplog.at_level("WARNING", logger="django_aws_api_gateway_websockets.local_gateway"):
        for _ in range(2):
            with connect(ws_url(lgw, api)):
                pass
    warnings = [r.getMessage() for r in caplog.records if "does not enforce" in r.getMessage()]
    assert len(warnings) == 1
    assert "AuthorizationType AWS_IAM and ApiKeyRequired" in warnings[0]


def test_connect_query_string_reaches_the_backend_as_the_client_encoded_it(lgw, backend):
    api = build_api(lgw.store, backend.url)
    raw_query = "ws_token=a%2Bb%26c%3D&channel=caf%C3%A9&empty="
    with connect(ws_url(lgw, api, query=raw_query)):
        pass
    request = backend.wait_for(lambda rs: any(r.path == "/connect" for r in rs))[0]
    assert request.query == raw_query


def test_stopping_the_gateway_closes_1001_and_calls_disconnect(backend):
    lgw = GatewayThread(GatewayConfig()).start()
    api = build_api(lgw.store, backend.url)
    with connect(ws_url(lgw, api)) as ws:
        ws.send("{}")
        backend.wait_for(lambda rs: any(r.path == "/default" for r in rs))
        lgw.stop()
        assert closed_code(ws) == 1001
    backend.wait_for(lambda rs: any(r.path == "/disconnect" for r in rs))
