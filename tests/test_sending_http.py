"""Sending, closing and probing over real HTTP, against the fake Management API server."""

from __future__ import annotations

import datetime as dt
import os
import random
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import suppress
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from unittest import mock

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from botocore.exceptions import NoCredentialsError

from django_aws_api_gateway_websockets import contract, presence, sending, signals
from django_aws_api_gateway_websockets.gateways import gateway_cache
from django_aws_api_gateway_websockets.models import ApiGateway, WebSocketSession
from django_aws_api_gateway_websockets.testing import new_connection_id
from django_aws_api_gateway_websockets.transports import (
    POST,
    Outcome,
    Target,
    get_transport,
)
from django_aws_api_gateway_websockets.transports import aws as aws_transport
from django_aws_api_gateway_websockets.transports.http import ConnectionPool
from tests.helpers import LOCAL_TRANSPORT as LOCAL
from tests.helpers import last_active, make_sessions, receiver, transport
from tests.management_api import ManagementApiServer

MANAGEMENT = "django_aws_api_gateway_websockets.transports.aws.ManagementApiTransport"
ENV_ACCESS_KEY = "AKIAENVEXAMPLE000001"
ENV_SECRET_KEY = "env/secret/key+example0000000000000000000"
ENV_TOKEN = "FwoGZXIvYXdzEXAMPLEsessiontoken=="


@pytest.fixture
def no_aws_environment(monkeypatch, tmp_path) -> None:
    """No credentials anywhere boto3 looks, unless a test sets them."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "missing-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "missing-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def env_credentials(no_aws_environment, monkeypatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ENV_ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", ENV_SECRET_KEY)
    monkeypatch.setenv("AWS_SESSION_TOKEN", ENV_TOKEN)


@pytest.fixture
def failures_log() -> Iterator[list[dict]]:
    with receiver(signals.delivery_failed) as calls:
        yield calls


def connected_ids() -> set[str]:
    return set(
        WebSocketSession.objects.filter(connected=True).values_list("connection_id", flat=True)
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- sending ------------------------------------------------------------------------------------


def test_session_send_message(local, gateway):
    (session,) = make_sessions(gateway, 1, local)
    report = session.send_message({"hello": "world"})
    assert report.sent == [session.connection_id]
    assert report.retried == 0
    assert local.received[session.connection_id] == [b'{"hello":"world"}']


def test_ids_with_equals_signs_arrive_intact(local, gateway):
    sessions = make_sessions(gateway, 20, local)
    assert any("=" in s.connection_id for s in sessions)
    report = WebSocketSession.objects.broadcast("x")
    assert len(report.sent) == 20
    assert set(local.received) == {s.connection_id for s in sessions}


def test_str_and_bytes_are_posted_unchanged(local, gateway):
    (session,) = make_sessions(gateway, 1, local)
    session.send_message("héllo")
    session.send_message(b"\x00\xff")
    session.send_message(b"z" * contract.MAX_MESSAGE_BYTES)
    assert local.received[session.connection_id] == [
        "héllo".encode(),
        b"\x00\xff",
        b"z" * 131072,
    ]


def test_channel_send_skips_other_channels_and_disconnected_rows(local, gateway):
    lobby = make_sessions(gateway, 4, local)
    other = make_sessions(gateway, 3, local, channel="other")
    stale = make_sessions(gateway, 2, local, connected=False)
    report = WebSocketSession.objects.send_to_channel("lobby", {"n": 1})
    assert sorted(report.sent) == sorted(s.connection_id for s in lobby)
    assert set(local.received) == {s.connection_id for s in lobby}
    assert not set(local.received) & {s.connection_id for s in other + stale}


def test_gone_is_marked_disconnected(local, gateway):
    live = make_sessions(gateway, 3, local)
    unknown = make_sessions(gateway, 2)  # never connected on the server
    closed = make_sessions(gateway, 2, local)
    local.gone([s.connection_id for s in closed])
    report = WebSocketSession.objects.broadcast("x")
    assert sorted(report.sent) == sorted(s.connection_id for s in live)
    assert sorted(report.gone) == sorted(s.connection_id for s in unknown + closed)
    assert report.failed == {}
    assert connected_ids() == {s.connection_id for s in live}


@pytest.mark.parametrize("path", [LOCAL, MANAGEMENT])
def test_fault_injection_500_recipients(server, gateway, env_credentials, path):
    sessions = make_sessions(gateway, 500, server)
    ids = [s.connection_id for s in sessions]
    shuffled = random.Random(500).sample(ids, len(ids))
    gone, throttled, erroring = shuffled[:50], shuffled[50:75], shuffled[75:80]
    server.gone(gone)
    server.throttle_once(throttled)
    server.error_once(erroring)
    live = sorted(set(ids) - set(gone))

    with transport(path, endpoint_url=server.url, base_backoff=0.005):
        report = WebSocketSession.objects.send_to_channel("lobby", {"type": "news"})

    assert sorted(report.sent) == live
    assert sorted(report.gone) == sorted(gone)
    assert report.failed == {}
    assert report.retried == 30
    assert report.counts == {"sent": 450, "gone": 50, "failed": 0, "pending": 0}
    for connection_id in live:
        assert server.received[connection_id] == [b'{"type":"news"}']
    assert not set(server.received) & set(gone)
    assert server.stats()["messages"] == 450
    assert server.status_counts[429] == 25
    assert server.status_counts[500] == 5
    assert server.status_counts[410] == 50
    assert connected_ids() == set(live)


def test_throttled_recipients_do_not_hold_up_the_others(server, gateway, monkeypatch):
    """With a fixed 4 s back-off, 20 throttled recipients would take 80 s one after another;
    run concurrently, everyone else is answered long before the first retry (the window is
    wide so a busy CI machine cannot fail it)."""
    backoff = 4.0
    monkeypatch.setattr(aws_transport.random, "uniform", lambda low, high: high)
    server.latency = 0.02
    ids = [new_connection_id() for _ in range(100)]
    for connection_id in ids:
        server.add_connection(connection_id)
    throttled = set(ids[::5])
    server.throttle_once(throttled)

    with transport(endpoint_url=server.url, base_backoff=backoff, max_backoff=backoff):
        batch = get_transport().open(POST, b"hi")
        started = time.perf_counter()
        batch.submit(Target(server.url, "eu-west-1"), ids)
        early = []
        while len(early) < 80 and time.perf_counter() - started < backoff / 2:
            early += batch.completed()
            time.sleep(0.005)
        early_elapsed = time.perf_counter() - started
        late = batch.completed() + batch.finish()
        total = time.perf_counter() - started

    assert {r.connection_id for r in early} == set(ids) - throttled, early_elapsed
    assert all(r.outcome is Outcome.OK and r.attempts == 1 for r in early)
    assert {r.connection_id for r in late} == throttled
    assert all(r.outcome is Outcome.OK and r.attempts == 2 for r in late)
    assert backoff <= total < len(throttled) * backoff / 4
    assert all(server.received[cid] == [b"hi"] for cid in ids)


# -- errors that are not retried ----------------------------------------------------------------


def test_payload_too_large_from_the_server(local, gateway):
    (session,) = make_sessions(gateway, 1, local)
    big = b"x" * (contract.MAX_MESSAGE_BYTES + 1)
    with pytest.raises(sending.MessageTooLarge):
        session.send_message(big)  # refused client-side
    assert local.requests == 0

    batch = get_transport().open(POST, big)
    batch.submit(gateway_cache.target(gateway.pk), [session.connection_id])
    results = batch.completed() + batch.finish()
    assert len(results) == 1
    (result,) = results
    assert result.outcome is Outcome.FAILED
    assert result.reason == "PayloadTooLargeException"
    assert result.attempts == 1
    assert local.status_counts[413] == 1
    assert local.received == {}


@pytest.mark.parametrize("wrong", ["", "/prod", "/production/extra"])
def test_wrong_base_path_is_forbidden_and_not_retried(server, gateway, wrong, failures_log):
    sessions = make_sessions(gateway, 3, server)
    with transport(endpoint_url=server.origin + wrong, base_backoff=0.005):
        report = WebSocketSession.objects.broadcast("x")
        results = get_transport().call(
            "GET", gateway_cache.target(gateway.pk), [sessions[0].connection_id]
        )
    assert report.failed == dict.fromkeys((s.connection_id for s in sessions), "ForbiddenException")
    assert report.retried == 0
    assert [(r.outcome, r.reason, r.attempts) for r in results] == [
        (Outcome.FAILED, "ForbiddenException", 1)
    ]
    assert server.status_counts == {403: 4}
    assert connected_ids() == {s.connection_id for s in sessions}
    assert len(failures_log) == 1 and failures_log[0]["report"] is report


# -- GetConnection ------------------------------------------------------------------------------


def test_is_connected_updates_last_seen_from_last_active_at(local, gateway):
    (session,) = make_sessions(gateway, 1, local, idle=timedelta(hours=1))
    expected = last_active(local, session.connection_id, 30)
    assert session.is_connected() is True
    assert session.last_seen_at == expected
    session.refresh_from_db()
    assert session.last_seen_at == expected
    assert session.connected
    assert local.method_counts == {"GET": 1}


def test_is_connected_never_moves_last_seen_backwards(local, gateway):
    (session,) = make_sessions(gateway, 1, local)
    before = session.last_seen_at
    last_active(local, session.connection_id, 3600)
    assert session.is_connected() is True
    session.refresh_from_db()
    assert session.last_seen_at == before


def test_is_connected_false_for_gone(local, gateway):
    (session,) = make_sessions(gateway, 1, local)
    local.remove_connection(session.connection_id)
    assert session.is_connected() is False
    session.refresh_from_db()
    assert not session.connected and session.disconnected_at is not None


def test_is_connected_raises_when_forbidden(server, gateway):
    (session,) = make_sessions(gateway, 1, server)
    wrong = transport(endpoint_url=server.origin + "/wrong-stage")
    with wrong, pytest.raises(sending.ConnectionProbeFailed, match="ForbiddenException"):
        session.is_connected()


def test_reconcile_updates_last_seen_and_marks_gone(local, gateway):
    idle_live = make_sessions(gateway, 3, local, idle=timedelta(minutes=30))
    idle_gone = make_sessions(gateway, 2, local, idle=timedelta(minutes=30))
    recent = make_sessions(gateway, 2, local)
    expected = {s.connection_id: last_active(local, s.connection_id, 60) for s in idle_live}
    local.gone([s.connection_id for s in idle_gone])
    local.gone([recent[0].connection_id])  # not idle: not probed, so still connected

    report = presence.reconcile()

    assert sorted(report.sent) == sorted(expected)
    assert sorted(report.gone) == sorted(s.connection_id for s in idle_gone)
    assert local.method_counts == {"GET": 5}
    for session in idle_live:
        session.refresh_from_db()
        assert session.last_seen_at == expected[session.connection_id]
    assert connected_ids() == {s.connection_id for s in idle_live + recent}


# -- DeleteConnection ---------------------------------------------------------------------------


def test_close_then_send_is_gone(local, gateway):
    session, other = make_sessions(gateway, 2, local)
    stale = WebSocketSession.objects.get(pk=session.pk)  # e.g. held by another process
    report = session.close()
    assert report.sent == [session.connection_id]
    assert local.status_counts == {204: 1}
    assert not local.is_connected(session.connection_id)
    assert not session.connected
    session.refresh_from_db()
    assert not session.connected and session.disconnected_at is not None

    late = stale.send_message("late")
    assert late.gone == [session.connection_id]
    assert session.connection_id not in local.received
    other.refresh_from_db()
    assert other.connected


def test_queryset_close(local, gateway):
    lobby = make_sessions(gateway, 3, local)
    other = make_sessions(gateway, 2, local, channel="other")
    report = WebSocketSession.objects.in_channel("lobby").close()
    assert sorted(report.sent) == sorted(s.connection_id for s in lobby)
    assert local.method_counts == {"DELETE": 3}
    assert connected_ids() == {s.connection_id for s in other}
    assert all(not local.is_connected(s.connection_id) for s in lobby)


# -- network failures ---------------------------------------------------------------------------


def test_unreachable_endpoint_fails_every_recipient_without_raising(gateway, failures_log):
    sessions = make_sessions(gateway, 10)
    url = f"http://127.0.0.1:{closed_port()}/production"
    with transport(endpoint_url=url, max_attempts=2, base_backoff=0.001, timeout=0.5):
        report = WebSocketSession.objects.broadcast({"x": 1})
    assert report.sent == [] and report.gone == []
    assert report.failed == dict.fromkeys(
        (s.connection_id for s in sessions), "ConnectionRefusedError"
    )
    assert report.retried == 10
    assert connected_ids() == {s.connection_id for s in sessions}
    assert len(failures_log) == 1


def test_slow_server_times_out_after_max_attempts(server, gateway):
    sessions = make_sessions(gateway, 3, server)
    server.latency = 0.5
    with transport(endpoint_url=server.url, max_attempts=2, base_backoff=0.001, timeout=0.1):
        report = WebSocketSession.objects.broadcast("x")
    assert report.failed == dict.fromkeys((s.connection_id for s in sessions), "TimeoutError")
    assert report.retried == 3


def _run_in_thread(batch_call, seconds: float) -> list:
    """Run ``batch_call`` in a daemon thread; its results, or ``None`` if it did not return."""
    out: list = []
    thread = threading.Thread(target=lambda: out.append(batch_call()), daemon=True)
    thread.start()
    thread.join(seconds)
    return out[0] if out else None


def test_unexpected_error_for_one_recipient_does_not_hang_the_batch(local, monkeypatch):
    """Anything ``_attempt`` did not foresee must fail that recipient, not kill its worker and
    leave ``finish()`` waiting for ever."""
    ids = [new_connection_id() for _ in range(3)]
    for connection_id in ids:
        local.add_connection(connection_id)
    real_request = aws_transport.request

    async def flaky(pool, head, body, timeout):
        if ids[0].replace("=", "%3D").encode() in head:
            raise RuntimeError("unforeseen")
        return await real_request(pool, head, body, timeout)

    monkeypatch.setattr(aws_transport, "request", flaky)
    active = get_transport()
    results = _run_in_thread(lambda: active.call(POST, Target(local.url, "eu-west-1"), ids), 5)
    assert results is not None, "the batch never finished"
    outcomes = {r.connection_id: r.outcome for r in results}
    assert outcomes == {ids[0]: Outcome.FAILED, ids[1]: Outcome.OK, ids[2]: Outcome.OK}


def test_non_ascii_custom_domain_does_not_hang_the_batch(gateway):
    """An internationalised custom domain typed into the admin: the request head cannot be
    encoded as latin-1; the send must still come back with a result per recipient."""
    with transport(LOCAL, endpoint_url="https://例え.example/chat", max_attempts=1, timeout=1):
        active = get_transport()
        target = Target("https://例え.example/chat", "eu-west-1")
        results = _run_in_thread(lambda: active.call(POST, target, ["abc=", "def="]), 10)
    assert results is not None, "the batch never finished"
    assert sorted(r.connection_id for r in results) == ["abc=", "def="]


@pytest.fixture
def unresponsive_port() -> Iterator[int]:
    """A port whose listen backlog is full: the kernel drops new SYNs, so connect() hangs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        with suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.1)
    yield port
    for filler in fillers:
        filler.close()
    listener.close()


def test_timeout_covers_connecting(unresponsive_port):
    """``timeout`` bounds the whole request, including the TCP connect, not only the wait for
    the response; otherwise a black-holed endpoint holds a broadcast for the OS connect
    timeout (minutes) per attempt."""
    url = f"http://127.0.0.1:{unresponsive_port}/production"
    with transport(LOCAL, endpoint_url=url, max_attempts=2, base_backoff=0.001, timeout=0.3):
        active = get_transport()
        target = Target(url, "eu-west-1")
        started = time.perf_counter()
        results = _run_in_thread(lambda: active.call(POST, target, ["abc="]), 5)
    assert results is not None, "still connecting after 5 s with timeout=0.3"
    assert time.perf_counter() - started < 5
    assert [(r.outcome, r.reason, r.attempts) for r in results] == [
        (Outcome.FAILED, "TimeoutError", 2)
    ]


# -- credentials --------------------------------------------------------------------------------


class _Capture(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.seen.append((self.command, self.path, dict(self.headers), body))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_GET = do_DELETE = _answer

    def log_message(self, *args) -> None:
        """Keep the test output quiet: nothing to log."""


@pytest.fixture
def capture() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
    httpd.seen = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def test_management_api_transport_signs_with_environment_credentials(
    capture, gateway, env_credentials
):
    (session,) = make_sessions(gateway, 1)
    port = capture.server_address[1]
    with transport(MANAGEMENT, endpoint_url=f"http://127.0.0.1:{port}/production"):
        report = session.send_message({"hi": 1})
    assert report.sent == [session.connection_id]
    ((method, path, headers, body),) = capture.seen
    assert (method, body) == ("POST", b'{"hi":1}')
    assert path == "/production/@connections/" + session.connection_id.replace("=", "%3D")
    assert headers["X-Amz-Security-Token"] == ENV_TOKEN
    assert headers["Authorization"].startswith(
        f"AWS4-HMAC-SHA256 Credential={ENV_ACCESS_KEY}/{headers['X-Amz-Date'][:8]}/eu-west-1/"
        "execute-api/aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-token, "
    )
    # The signature is botocore's for the environment's secret key.
    request = AWSRequest(
        method="POST",
        url=f"http://{headers['Host']}{path}",
        data=body,
        headers={"Host": headers["Host"]},
    )
    when = dt.datetime.strptime(headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
    credentials = BotoCredentials(ENV_ACCESS_KEY, ENV_SECRET_KEY, ENV_TOKEN)
    with mock.patch("botocore.auth.get_current_datetime", return_value=when):
        SigV4Auth(credentials, "execute-api", "eu-west-1").add_auth(request)
    assert headers["Authorization"] == request.headers["Authorization"]


def test_management_api_transport_against_the_fake_server(server, gateway, env_credentials):
    sessions = make_sessions(gateway, 5, server)
    with transport(MANAGEMENT, endpoint_url=server.url, base_backoff=0.005):
        report = WebSocketSession.objects.broadcast("x")
    assert sorted(report.sent) == sorted(s.connection_id for s in sessions)
    assert server.stats()["messages"] == 5


def test_management_api_transport_without_credentials(server, gateway, no_aws_environment):
    (session,) = make_sessions(gateway, 1, server)
    with transport(MANAGEMENT, endpoint_url=server.url), pytest.raises(NoCredentialsError):
        session.send_message("x")
    assert server.requests == 0


def test_credentials_are_not_needed_when_there_is_nobody_to_send_to(
    server, gateway, no_aws_environment
):
    make_sessions(gateway, 2, server, connected=False)
    with transport(MANAGEMENT, endpoint_url=server.url):
        report = WebSocketSession.objects.broadcast("x")
    assert report.total == 0
    assert server.requests == 0


def test_local_gateway_transport_needs_no_credentials(local, gateway, no_aws_environment):
    (session,) = make_sessions(gateway, 1, local)
    assert session.send_message("x").sent == [session.connection_id]


# -- the gateway's own endpoint -----------------------------------------------------------------


def test_management_endpoint_url_forms():
    execute_api = contract.management_endpoint_url(
        api_id="abc123def4", region="eu-west-1", stage="production"
    )
    assert execute_api == "https://abc123def4.execute-api.eu-west-1.amazonaws.com/production"
    mapped = contract.management_endpoint_url(
        api_id="abc123def4",
        region="eu-west-1",
        stage="production",
        custom_domain="ws.example.com",
        mapping_key="chat",
    )
    assert mapped == "https://ws.example.com/chat"
    root = contract.management_endpoint_url(
        api_id="abc123def4", region="eu-west-1", stage="production", custom_domain="ws.example.com"
    )
    assert root == "https://ws.example.com"


def test_gateway_cache_target_forms(gateway):
    assert gateway_cache.target(gateway.pk) == Target(
        "https://abc123def4.execute-api.eu-west-1.amazonaws.com/production", "eu-west-1"
    )
    assert gateway.management_endpoint_url == gateway_cache.target(gateway.pk).endpoint_url
    mapped = ApiGateway.objects.create(
        name="mapped",
        api_id="zzz999yyy8",
        region="us-east-2",
        stage="live",
        target_base_endpoint="https://testserver/ws",
        custom_domain_name="ws.example.com",
        api_mapping_key="chat",
    )
    root = ApiGateway.objects.create(
        name="root",
        api_id="rrr111sss2",
        region="ap-south-1",
        stage="live",
        target_base_endpoint="https://testserver/ws",
        custom_domain_name="ws2.example.com",
    )
    unprovisioned = ApiGateway.objects.create(
        name="new", target_base_endpoint="https://testserver/ws"
    )
    assert gateway_cache.target(mapped.pk) == Target("https://ws.example.com/chat", "us-east-2")
    assert gateway_cache.target(root.pk) == Target("https://ws2.example.com", "ap-south-1")
    assert gateway_cache.target(unprovisioned.pk) is None


@pytest.mark.parametrize(
    ("custom_domain", "mapping_key", "base_path", "host"),
    [
        ("", "", "/production", "abc123def4.execute-api.eu-west-1.amazonaws.com"),
        ("ws.example.com", "chat", "/chat", "ws.example.com"),
        ("ws.example.com", "", "", "ws.example.com"),
    ],
)
def test_management_api_transport_uses_the_gateways_own_endpoint(
    gateway, env_credentials, custom_domain, mapping_key, base_path, host
):
    """Without ``endpoint_url`` the request goes to the gateway's host, with its stage or
    mapping path; the TCP connection is redirected to the fake server to observe it."""
    gateway.custom_domain_name = custom_domain
    gateway.api_mapping_key = mapping_key
    gateway.save()
    dialled: list = []
    with ManagementApiServer(base_path) as fake:
        (session,) = make_sessions(gateway, 1, fake)
        with transport(MANAGEMENT, base_backoff=0.005):
            active = get_transport()

            def pool(key):
                dialled.append(key)
                return ConnectionPool("127.0.0.1", fake.port, False)

            active.pool = pool
            report = session.send_message("to the gateway")
        assert report.sent == [session.connection_id]
        assert fake.received[session.connection_id] == [b"to the gateway"]
    assert dialled == [(host, 443, True)]
