"""The connect window: API Gateway answers 410 to a connection until its ``$connect`` has returned.

A 410 in that window must never mark the new session gone; sends to it are retried in the
background until the socket opens (``report.pending``). The fake Management API plays API
Gateway: :meth:`~tests.management_api.ManagementApiServer.add_connecting` answers 410 for an id
until the test calls ``open_connection`` after the view's ``$connect`` answered 200.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_aws_api_gateway_websockets import presence, signals
from django_aws_api_gateway_websockets.models import ApiGateway, WebSocketSession
from django_aws_api_gateway_websockets.pending import NOT_OPENED_REASON, pending_deliveries
from django_aws_api_gateway_websockets.testing import GatewayClient, new_connection_id
from django_aws_api_gateway_websockets.tokens import mint_token
from django_aws_api_gateway_websockets.transports.outbox import outbox
from tests.helpers import LOCAL_TRANSPORT, receiver, ws_settings
from tests.management_api import ManagementApiServer

ROOT = Path(__file__).resolve().parents[1]
OUTBOX = "django_aws_api_gateway_websockets.transports.outbox.OutboxTransport"


def configured(path: str = LOCAL_TRANSPORT, options: dict | None = None, **extra):
    return ws_settings(TRANSPORT=path, TRANSPORT_OPTIONS=options or {}, **extra)


@pytest.fixture
def local(local) -> Iterator[ManagementApiServer]:
    """The shared fixture, checking that no pending delivery is left behind."""
    yield local
    assert pending_deliveries.join(10), "pending deliveries left behind"


def make_session(
    gateway: ApiGateway,
    *,
    age: timedelta = timedelta(0),
    state: str = "connecting",
    channel: str = "lobby",
) -> WebSocketSession:
    now = timezone.now()
    return WebSocketSession.objects.create(
        connection_id=new_connection_id(),
        gateway=gateway,
        channel_name=channel,
        state=state,
        connected_at=now - age,
        last_seen_at=now - age,
    )


def open_later(server: ManagementApiServer, connection_id: str, seconds: float) -> threading.Timer:
    timer = threading.Timer(seconds, server.open_connection, args=(connection_id,))
    timer.start()
    return timer


def row(connection_id: str) -> WebSocketSession:
    return WebSocketSession.objects.get(connection_id=connection_id)


# -- the race, with two real threads (PostgreSQL) -------------------------------------------------


@pytest.mark.concurrent
@pytest.mark.django_db(transaction=True)
def test_broadcast_racing_a_connect_reaches_the_new_session(local, gateway, user):
    """Thread A runs ``$connect`` through the view; while its ``connected`` receiver runs,
    thread B broadcasts to the channel and gets API Gateway's 410 for the new connection.
    The session must not be marked gone: B's report lists it as pending, the message arrives
    once API Gateway opens the socket, and the connection's next message is accepted."""
    settled = make_session(gateway, age=timedelta(minutes=5), state="open")
    local.add_connection(settled.connection_id)
    ws = GatewayClient(Client(), gateway, path="/ws/")
    local.add_connecting(ws.connection_id)
    token = mint_token(user).token
    in_connect, answered = threading.Event(), threading.Event()
    out: dict = {}
    errors: list[BaseException] = []

    def during_connect(sender, session, **kwargs) -> None:
        if session.connection_id == ws.connection_id:
            in_connect.set()
            assert answered.wait(10), "the broadcast never got its answer"

    def thread_a() -> None:
        try:
            out["connect"] = ws.connect(token=token)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    def thread_b() -> None:
        try:
            assert in_connect.wait(10), "$connect never reached its receiver"
            out["report"] = WebSocketSession.objects.in_channel("lobby").send_message({"n": 1})
        except BaseException as exc:
            errors.append(exc)
        finally:
            answered.set()
            connection.close()

    signals.connected.connect(during_connect, weak=False)
    try:
        threads = [threading.Thread(target=thread_a), threading.Thread(target=thread_b)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        signals.connected.disconnect(during_connect)
    assert not errors, errors
    assert out["connect"].status_code == 200
    report = out["report"]
    # B's 410 came while A was still inside $connect.
    assert local.status_counts[410] >= 1
    assert report.sent == [settled.connection_id]
    assert report.gone == [] and report.failed == {}
    assert report.pending == [ws.connection_id]
    assert row(ws.connection_id).connected, "a 410 in the connect window marked it gone"

    local.open_connection(ws.connection_id)  # $connect answered 200: API Gateway opens it
    assert report.wait_pending(10)
    assert report.pending_delivered == [ws.connection_id]
    assert report.pending_undelivered == [] and report.ok
    assert local.received[ws.connection_id] == [b'{"n":1}']
    session = row(ws.connection_id)
    assert session.connected and session.state == "open"
    reply = ws.message({"action": "echo", "text": "still here"})
    assert reply.status_code == 200, reply.content


# -- a welcome message from the connection's own $connect ----------------------------------------


@pytest.mark.django_db(transaction=True)
def test_welcome_sent_during_connect_arrives_once_the_socket_opens(local, gateway, user):
    ws = GatewayClient(Client(), gateway, path="/ws/")
    local.add_connecting(ws.connection_id)
    reports = []

    def welcome(sender, session, **kwargs) -> None:
        reports.append(session.send_message({"type": "welcome"}))

    signals.connected.connect(welcome, weak=False)
    try:
        started = time.monotonic()
        response = ws.connect(token=mint_token(user).token)
    finally:
        signals.connected.disconnect(welcome)
    assert response.status_code == 200
    assert time.monotonic() - started < 2, "the welcome must not hold up $connect"
    (report,) = reports
    assert report.pending == [ws.connection_id]
    assert report.sent == [] and report.gone == [] and report.failed == {}
    assert not report.wait_pending(0), "still waiting for the socket"
    assert row(ws.connection_id).state == "connecting"

    local.open_connection(ws.connection_id)
    assert report.wait_pending(10)
    assert report.pending_delivered == [ws.connection_id]
    assert local.received[ws.connection_id] == [b'{"type":"welcome"}']
    assert row(ws.connection_id).state == "open"
    assert ws.message({"action": "echo"}).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_pending_messages_to_one_connection_arrive_in_order(local, gateway):
    session = make_session(gateway)
    local.add_connecting(session.connection_id)
    reports = [session.send_message({"n": n}) for n in range(4)]
    assert all(r.pending == [session.connection_id] for r in reports)
    open_later(local, session.connection_id, 0.3)
    assert all(r.wait_pending(10) for r in reports)
    assert local.received[session.connection_id] == [b'{"n":0}', b'{"n":1}', b'{"n":2}', b'{"n":3}']


# -- what a 410 means, by the session's age and state ---------------------------------------------


def test_410_within_the_grace_period_is_never_gone(local, gateway, caplog):
    """Even a session already marked open, a few seconds old: undelivered, reported and
    signalled, but left connected."""
    session = make_session(gateway, age=timedelta(seconds=5), state="open")
    local.remove_connection(session.connection_id)
    with (
        configured(options={"endpoint_url": local.url}, PENDING_DELIVERY_TIMEOUT=0.3),
        receiver(signals.delivery_failed) as failures,
        caplog.at_level(logging.WARNING, logger="django_aws_api_gateway_websockets.sending"),
    ):
        report = WebSocketSession.objects.broadcast("x")
        assert report.pending == [session.connection_id] and report.gone == []
        assert report.wait_pending(5)
    assert report.pending_undelivered == [session.connection_id]
    assert report.failed == {session.connection_id: NOT_OPENED_REASON}
    assert not report.ok and report.total == 1
    assert len(failures) == 1 and failures[0]["report"] is report
    assert any(session.connection_id in r.getMessage() for r in caplog.records)
    assert row(session.connection_id).connected
    assert local.method_counts["POST"] > 2, "it was retried"


def test_410_after_the_grace_period_is_gone_even_while_connecting(local, gateway):
    """``$connect`` cannot take longer than 29 s: a session that still says connecting after
    the grace period and answers 410 never opened."""
    stale = make_session(gateway, age=timedelta(seconds=31))
    report = stale.send_message("x")
    assert report.gone == [stale.connection_id] and report.pending == []
    assert not row(stale.connection_id).connected


def test_grace_period_is_a_setting(local, gateway):
    session = make_session(gateway, age=timedelta(seconds=5), state="open")
    with configured(options={"endpoint_url": local.url}, CONNECT_GRACE_SECONDS=1):
        report = session.send_message("x")
    assert report.gone == [session.connection_id]


def test_pending_delivery_timeout_zero_gives_up_at_once(local, gateway):
    session = make_session(gateway)
    local.add_connecting(session.connection_id)
    with configured(options={"endpoint_url": local.url}, PENDING_DELIVERY_TIMEOUT=0):
        report = session.send_message("x")
    assert report.pending == [session.connection_id]
    assert report.pending_undelivered == [session.connection_id]
    assert report.failed == {session.connection_id: NOT_OPENED_REASON}
    assert report.wait_pending(0)
    assert local.method_counts == {"POST": 1}
    assert row(session.connection_id).connected


# -- an answered send opens the session -----------------------------------------------------------


def test_a_delivered_send_marks_connecting_sessions_open(local, gateway):
    connecting = [make_session(gateway) for _ in range(3)]
    for session in connecting:
        local.add_connection(session.connection_id)
    report = WebSocketSession.objects.broadcast("x")
    assert sorted(report.sent) == sorted(s.connection_id for s in connecting)
    assert {row(s.connection_id).state for s in connecting} == {"open"}


def test_no_extra_query_when_no_recipient_is_connecting(local, gateway):
    settled = [make_session(gateway, age=timedelta(minutes=2), state="open") for _ in range(3)]
    for session in settled:
        local.add_connection(session.connection_id)
    WebSocketSession.objects.broadcast("warm the gateway cache")
    with CaptureQueriesContext(connection) as queries:
        report = WebSocketSession.objects.broadcast("x")
    assert len(report.sent) == 3
    assert len(queries) == 1, [q["sql"] for q in queries]


# -- probes and closes in the window ---------------------------------------------------------------


def test_is_connected_in_the_connect_window_is_true_and_not_marked(local, gateway):
    session = make_session(gateway)
    local.add_connecting(session.connection_id)
    assert session.is_connected() is True
    assert row(session.connection_id).connected
    assert local.method_counts == {"GET": 1}


def test_reconcile_leaves_connecting_sessions_alone(local, gateway):
    connecting = make_session(gateway)
    stale = make_session(gateway, age=timedelta(hours=1), state="open")
    local.add_connecting(connecting.connection_id)
    report = presence.reconcile(WebSocketSession.objects.all())
    assert report.pending == [connecting.connection_id]
    assert report.gone == [stale.connection_id]
    assert row(connecting.connection_id).connected
    assert not row(stale.connection_id).connected


@pytest.mark.django_db(transaction=True)
def test_closing_a_connecting_session_closes_the_socket_once_it_opens(local, gateway):
    session = make_session(gateway)
    local.add_connecting(session.connection_id)
    report = session.close()
    assert report.pending == [session.connection_id]
    assert not session.connected and not row(session.connection_id).connected
    open_later(local, session.connection_id, 0.2)
    assert report.wait_pending(10)
    assert report.pending_delivered == [session.connection_id]
    assert not local.is_connected(session.connection_id)
    assert local.method_counts["DELETE"] >= 2


# -- the outbox simulates the window too -----------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_outbox_connecting_then_open(gateway):
    session = make_session(gateway)
    with configured(OUTBOX):
        outbox.reset()
        outbox.connecting(session.connection_id)
        report = session.send_message({"hi": 1})
        assert report.pending == [session.connection_id]
        assert outbox.messages(session.connection_id) == []
        outbox.open(session.connection_id)
        assert report.wait_pending(5)
        assert outbox.messages(session.connection_id) == [{"hi": 1}]
        assert row(session.connection_id).state == "open"
        outbox.reset()


# -- a process that exits waits for its pending deliveries ----------------------------------------

EXITING = r"""
import os, sys
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
from django.conf import settings
settings.DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": sys.argv[2]}}
settings.AWS_API_GATEWAY_WEBSOCKETS = {
    **settings.AWS_API_GATEWAY_WEBSOCKETS,
    "TRANSPORT": "django_aws_api_gateway_websockets.transports.aws.LocalGatewayTransport",
    "TRANSPORT_OPTIONS": {"endpoint_url": sys.argv[1]},
    "PENDING_DELIVERY_TIMEOUT": 10,
}
import django
django.setup()
from django.core.management import call_command
from django.utils import timezone
from django_aws_api_gateway_websockets.models import ApiGateway, WebSocketSession
call_command("migrate", verbosity=0)
gateway = ApiGateway.objects.create(
    name="g", api_id="abc123def4", target_base_endpoint="https://testserver/ws"
)
now = timezone.now()
session = WebSocketSession.objects.create(
    connection_id=sys.argv[3], gateway=gateway, channel_name="c", connected_at=now,
    last_seen_at=now,
)
report = session.send_message("bye")
print(report.pending, flush=True)
"""


def test_an_exiting_process_delivers_its_pending_messages_first(server, tmp_path):
    connection_id = new_connection_id()
    server.add_connecting(connection_id)
    child = subprocess.Popen(
        [sys.executable, "-c", EXITING, server.url, str(tmp_path / "db.sqlite3"), connection_id],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert json.loads(child.stdout.readline().replace("'", '"')) == [connection_id]
    time.sleep(0.5)
    assert child.poll() is None, "the process exited with a message still pending"
    server.open_connection(connection_id)
    _out, err = child.communicate(timeout=20)
    assert child.returncode == 0, err
    assert server.received[connection_id] == [b"bye"]
    assert "Could not mark" not in err, err  # the worker recorded the open socket too


# -- the same window through the local gateway (which answers 410 until $connect returns) ------


def test_welcome_during_connect_arrives_through_the_local_gateway(local_gateway, websocket_client):
    """No fake server: the local gateway holds the socket in $connect as AWS does, the welcome
    gets its 410, and the pending delivery reaches the browser once the socket opens."""
    user = get_user_model().objects.create_user(username="erin", password="pw")
    gateway = ApiGateway.objects.create(
        name="window", api_id="window0001", target_base_endpoint="https://www.example.com/ws/"
    )
    reports = []

    def welcome(sender, session, **kwargs) -> None:
        reports.append(session.send_message({"type": "welcome"}))

    signals.connected.connect(welcome, weak=False)
    try:
        ws = websocket_client(gateway, query={"ws_token": mint_token(user).token})
    finally:
        signals.connected.disconnect(welcome)
    assert ws.receive_json(timeout=10) == {"type": "welcome"}
    (report,) = reports
    assert report.pending and report.wait_pending(10)
    assert report.pending_delivered == report.pending
    assert WebSocketSession.objects.get().state == "open"
    ws.send_json({"action": "echo"})
    assert ws.receive_json()["handler"] == "echo"
