"""A one-recipient send from synchronous code: first attempt from the caller's thread, over a
real socket to the fake Management API; retries through the transport's event loop."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from django_aws_api_gateway_websockets.transports import GET, POST, Outcome, Target, get_transport
from django_aws_api_gateway_websockets.transports import aws as aws_transport
from django_aws_api_gateway_websockets.transports.blocking import (
    BlockingPool,
    StaleConnection,
    read_response,
)
from django_aws_api_gateway_websockets.transports.http import ProtocolError
from tests.helpers import make_sessions, transport


@pytest.fixture
def loop_requests(monkeypatch) -> list[bytes]:
    """The heads of the requests the event loop made (the direct path makes none there)."""
    heads: list[bytes] = []
    real = aws_transport.request

    async def spy(pool, head, body, timeout):
        heads.append(head)
        return await real(pool, head, body, timeout)

    monkeypatch.setattr(aws_transport, "request", spy)
    return heads


def test_single_send_goes_direct_and_reuses_its_socket(local, gateway, loop_requests):
    (session,) = make_sessions(gateway, 1, local)
    for n in range(3):
        report = session.send_message({"n": n})
        assert report.sent == [session.connection_id]
    assert local.received[session.connection_id] == [b'{"n":0}', b'{"n":1}', b'{"n":2}']
    assert loop_requests == []
    pools = list(get_transport()._blocking_pools.values())
    assert len(pools) == 1 and len(pools[0]._idle) == 1, "one keep-alive socket, reused"


def test_broadcast_still_goes_through_the_event_loop(local, gateway, loop_requests):
    from django_aws_api_gateway_websockets.models import WebSocketSession

    make_sessions(gateway, 3, local)
    report = WebSocketSession.objects.broadcast("x")
    assert len(report.sent) == 3
    assert len(loop_requests) == 3


def test_throttled_direct_send_is_retried_on_the_event_loop(local, gateway, loop_requests):
    (session,) = make_sessions(gateway, 1, local)
    local.throttle_once(session.connection_id)
    report = session.send_message("hi")
    assert report.sent == [session.connection_id]
    assert report.retried == 1
    assert len(loop_requests) == 1, "the second attempt was the loop's"
    assert local.received[session.connection_id] == [b"hi"]


def test_direct_send_failing_every_attempt_is_reported(local, gateway):
    (session,) = make_sessions(gateway, 1, local)
    local.fail(session.connection_id, 500, times=100)
    with transport(endpoint_url=local.url, base_backoff=0.001, max_attempts=3):
        report = session.send_message("hi")
    assert report.failed == {session.connection_id: "InternalServerErrorException"}
    assert report.retried == 1


def test_gone_on_the_direct_path_marks_the_session_closed(local, gateway):
    (session,) = make_sessions(gateway, 1, local)
    local.gone(session.connection_id)
    session.connected_at = session.connected_at.replace(year=2000)  # outside the connect window
    session.save()
    report = session.send_message("hi")
    assert report.gone == [session.connection_id]
    session.refresh_from_db()
    assert not session.connected


def test_probe_reads_the_answer_on_the_direct_path(local, gateway, loop_requests):
    (session,) = make_sessions(gateway, 1, local)
    results = get_transport().call(GET, Target(local.url, "eu-west-1"), [session.connection_id])
    assert [(r.outcome, type(r.data)) for r in results] == [(Outcome.OK, dict)]
    assert loop_requests == []


def test_option_off_sends_through_the_event_loop(local, gateway, loop_requests):
    (session,) = make_sessions(gateway, 1, local)
    with transport(endpoint_url=local.url, direct_single_sends=False):
        assert session.send_message("hi").sent == [session.connection_id]
    assert len(loop_requests) == 1


def test_no_free_token_under_max_rate_falls_back_to_the_event_loop(local, gateway, loop_requests):
    (session,) = make_sessions(gateway, 1, local)
    with transport(endpoint_url=local.url, max_rate=1):
        active = get_transport()
        while active.rate_limiter.try_acquire():  # spend the burst: no token free now
            pass
        assert session.send_message("hi").sent == [session.connection_id]
    assert len(loop_requests) == 1, "waited for its token on the loop instead of skipping it"


def test_direct_send_to_a_closed_port_is_retried_then_fails(gateway):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/production"
    with transport(endpoint_url=url, max_attempts=2, base_backoff=0.001, timeout=1):
        results = get_transport().call(POST, Target(url, "eu-west-1"), ["abc="], b"x")
    assert [(r.outcome, r.reason, r.attempts) for r in results] == [
        (Outcome.FAILED, "ConnectionRefusedError", 2)
    ]


# -- the blocking reader ----------------------------------------------------------------------


class _Scripted(BaseHTTPRequestHandler):
    """Answers with the raw bytes the test put in ``server.answers`` (one per request)."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.wfile.write(self.server.answers.pop(0))  # type: ignore[attr-defined]
        self.wfile.flush()
        if self.server.close_after:  # type: ignore[attr-defined]
            self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def scripted() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Scripted)
    server.answers = []  # type: ignore[attr-defined]
    server.close_after = False  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _post(pool: BlockingPool) -> bytes:
    head = b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nx"
    response = pool.request(head, 5)
    return f"{response.status} {response.body!r}".encode()


def test_reader_content_length_and_chunked(scripted):
    scripted.answers += [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 410 Gone\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\n",
    ]
    pool = BlockingPool("127.0.0.1", scripted.server_address[1], False)
    assert [_post(pool) for _ in range(3)] == [b"200 b'hello'", b"410 b'abcde'", b"204 b''"]
    assert len(pool._idle) == 1


def test_reader_body_until_close_is_not_kept(scripted):
    scripted.answers.append(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbye")
    scripted.close_after = True
    pool = BlockingPool("127.0.0.1", scripted.server_address[1], False)
    assert _post(pool) == b"200 b'bye'"
    assert pool._idle == []


def test_stale_kept_alive_socket_is_replaced_once(scripted):
    scripted.answers += [b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"]
    pool = BlockingPool("127.0.0.1", scripted.server_address[1], False)
    dead, peer = socket.socketpair()
    peer.close()  # the "server" closed the idle socket
    pool._idle.append(dead)
    assert _post(pool) == b"200 b'a'"


def test_reader_refuses_garbage():
    left, right = socket.socketpair()
    with left, right:
        right.sendall(b"NOT HTTP\r\n\r\n")
        with pytest.raises(ProtocolError):
            read_response(left)
    left, right = socket.socketpair()
    with left, right:
        right.close()
        with pytest.raises(StaleConnection):
            read_response(left)
