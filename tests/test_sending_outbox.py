"""Sending, closing, probing and presence through the in-memory outbox transport."""

from __future__ import annotations

import json
import logging
import random
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings

from django_aws_api_gateway_websockets import presence, sending, signals
from django_aws_api_gateway_websockets.models import ApiGateway, WebSocketSession
from django_aws_api_gateway_websockets.transports import Target
from django_aws_api_gateway_websockets.transports.outbox import OutboxTransport, outbox
from tests.helpers import make_sessions, receiver

SERVER_ERROR = "InternalServerErrorException"
SENDING_LOGGER = "django_aws_api_gateway_websockets.sending"
OUTBOX = "django_aws_api_gateway_websockets.transports.outbox.OutboxTransport"
EXPECTED_TARGET = Target(
    "https://abc123def4.execute-api.eu-west-1.amazonaws.com/production", "eu-west-1"
)


def ws_settings(**extra):
    return {"GATEWAY_SECRETS": [settings.GATEWAY_SECRET], "TRANSPORT": OUTBOX, **extra}


@pytest.fixture(autouse=True)
def outbox_transport() -> Iterator[None]:
    with override_settings(AWS_API_GATEWAY_WEBSOCKETS=ws_settings()):
        outbox.reset()
        yield
    outbox.reset()


def make_session(gateway: ApiGateway, **options) -> WebSocketSession:
    return make_sessions(gateway, 1, **options)[0]


def connected_ids() -> set[str]:
    return set(
        WebSocketSession.objects.filter(connected=True).values_list("connection_id", flat=True)
    )


@pytest.fixture
def failures() -> Iterator[list[dict]]:
    with receiver(signals.delivery_failed) as calls:
        yield calls


# -- one session --------------------------------------------------------------------------------


def test_session_send_message_records_the_dict(gateway):
    session = make_session(gateway)
    report = session.send_message({"type": "greeting", "text": "hello"})
    assert outbox.messages(session.connection_id) == [{"type": "greeting", "text": "hello"}]
    assert outbox.sent[session.connection_id] == [b'{"type":"greeting","text":"hello"}']
    assert outbox.targets[session.connection_id] == EXPECTED_TARGET
    assert report.operation == "POST"
    assert report.sent == [session.connection_id]
    assert report.gone == [] and report.failed == {} and report.retried == 0
    assert report.ok


def test_disconnected_session_is_not_sent_to(gateway):
    session = make_session(gateway, connected=False)
    report = session.send_message({"x": 1})
    assert report.total == 0
    assert outbox.total == 0


@pytest.mark.parametrize(
    ("data", "raw"),
    [
        ("plain text", b"plain text"),
        ('{"already":"json"}', b'{"already":"json"}'),
        ("héllo ✓", "héllo ✓".encode()),
        (b"\x00\xffbinary", b"\x00\xffbinary"),
        (b"", b""),
    ],
)
def test_str_and_bytes_pass_through_unchanged(gateway, data, raw):
    session = make_session(gateway)
    session.send_message(data)
    assert outbox.sent[session.connection_id] == [raw]


def test_django_json_encoder_is_used(gateway):
    session = make_session(gateway)
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    when = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=dt_timezone.utc)
    session.send_message({"when": when, "price": Decimal("1.10"), "id": ident, "n": [1, None]})
    assert outbox.messages(session.connection_id) == [
        {
            "when": "2024-01-02T03:04:05.678Z",
            "price": "1.10",
            "id": "12345678-1234-5678-1234-567812345678",
            "n": [1, None],
        }
    ]


def test_unknown_gateway_is_reported_failed(db):
    gateway = ApiGateway.objects.create(
        name="unprovisioned", target_base_endpoint="https://testserver/ws"
    )
    session = make_session(gateway)
    report = session.send_message("hi")
    assert report.failed == {session.connection_id: "UnknownGateway"}
    assert outbox.total == 0


# -- size limit ---------------------------------------------------------------------------------


def test_exactly_128kb_is_sent(gateway):
    session = make_session(gateway)
    report = session.send_message(b"x" * 131072)
    assert report.sent == [session.connection_id]
    assert len(outbox.sent[session.connection_id][0]) == 131072


def test_over_128kb_raises_before_anything_is_recorded(gateway):
    make_sessions(gateway, 3)
    data = {"blob": "x" * 131072}
    size = len(json.dumps(data, separators=(",", ":")))
    with (
        CaptureQueriesContext(connection) as queries,
        pytest.raises(sending.MessageTooLarge) as err,
    ):
        WebSocketSession.objects.send_to_channel("lobby", data)
    assert err.value.size == size == 131083
    assert str(size) in str(err.value)
    assert "131072" in str(err.value)
    assert isinstance(err.value, ValueError)
    assert outbox.total == 0
    assert len(queries) == 0, "the message is encoded before the recipients are read"


@pytest.mark.parametrize("data", ["é" * 65537, b"y" * 131073])
def test_over_128kb_str_and_bytes_raise(gateway, data):
    session = make_session(gateway)
    with pytest.raises(sending.MessageTooLarge) as err:
        session.send_message(data)
    assert err.value.size > 131072
    assert outbox.total == 0


# -- querysets and manager shortcuts ------------------------------------------------------------


def test_queryset_send_reaches_only_the_channels_connected_sessions(gateway):
    lobby = make_sessions(gateway, 5)
    lobby_gone = make_sessions(gateway, 2, connected=False)
    other = make_sessions(gateway, 3, channel="other")
    report = WebSocketSession.objects.in_channel("lobby").send_message({"n": 1})
    assert sorted(report.sent) == sorted(s.connection_id for s in lobby)
    for session in lobby:
        assert outbox.messages(session.connection_id) == [{"n": 1}]
    for session in lobby_gone + other:
        assert outbox.messages(session.connection_id) == []
    assert outbox.total == 5


def test_sliced_queryset_send_reaches_the_slice(gateway):
    """``order_by(...)[:n].send_message()`` is a natural way to reach "the n newest sessions"."""
    sessions = make_sessions(gateway, 5)
    newest = WebSocketSession.objects.order_by("-pk")[:3]
    report = newest.send_message("x")
    assert sorted(report.sent) == sorted(s.connection_id for s in sessions[2:])
    assert outbox.total == 3


def test_send_to_channel(gateway):
    lobby = make_sessions(gateway, 3)
    make_sessions(gateway, 2, channel="other")
    make_sessions(gateway, 1, connected=False)
    report = WebSocketSession.objects.send_to_channel("lobby", "hi")
    assert sorted(report.sent) == sorted(s.connection_id for s in lobby)
    assert outbox.total == 3


def test_send_to_user(gateway, user, django_user_model):
    bob = django_user_model.objects.create_user(username="bob", password="pw")
    alice_sessions = make_sessions(gateway, 2, user=user) + make_sessions(
        gateway, 1, user=user, channel="other"
    )
    make_sessions(gateway, 1, user=user, connected=False)
    make_sessions(gateway, 2, user=bob)
    make_sessions(gateway, 2)
    report = WebSocketSession.objects.send_to_user(user, {"dm": True})
    assert sorted(report.sent) == sorted(s.connection_id for s in alice_sessions)
    assert outbox.total == 3


def test_broadcast_reaches_everyone_connected(gateway):
    live = make_sessions(gateway, 3) + make_sessions(gateway, 4, channel="other")
    make_sessions(gateway, 2, connected=False)
    report = WebSocketSession.objects.broadcast("all")
    assert sorted(report.sent) == sorted(s.connection_id for s in live)
    assert outbox.total == 7


# -- gone, throttled, failing -------------------------------------------------------------------


def test_gone_is_reported_and_marked_disconnected(gateway):
    live, dead = make_sessions(gateway, 2)
    outbox.gone(dead.connection_id)
    report = WebSocketSession.objects.send_to_channel("lobby", "hi")
    assert report.sent == [live.connection_id]
    assert report.gone == [dead.connection_id]
    assert report.failed == {}
    dead.refresh_from_db()
    live.refresh_from_db()
    assert not dead.connected and dead.disconnected_at is not None
    assert live.connected and live.disconnected_at is None
    assert outbox.messages(dead.connection_id) == []


def test_gone_marking_is_one_update_per_thousand(gateway):
    sessions = make_sessions(gateway, 2500)
    outbox.gone(*(s.connection_id for s in sessions))
    with CaptureQueriesContext(connection) as queries:
        report = WebSocketSession.objects.send_to_channel("lobby", "hi")
    updates = [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith("UPDATE")]
    assert len(updates) == 3
    assert len(report.gone) == 2500
    assert not WebSocketSession.objects.filter(connected=True).exists()


def test_gone_marking_with_small_chunks_is_still_batched(gateway):
    sessions = make_sessions(gateway, 1200)
    outbox.gone(*(s.connection_id for s in sessions))
    small_chunks = override_settings(AWS_API_GATEWAY_WEBSOCKETS=ws_settings(SEND_CHUNK_SIZE=100))
    with small_chunks, CaptureQueriesContext(connection) as queries:
        report = WebSocketSession.objects.broadcast("hi")
    updates = [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith("UPDATE")]
    assert len(updates) == 2
    assert len(report.gone) == 1200
    assert not WebSocketSession.objects.filter(connected=True).exists()


def test_throttled_once_is_delivered_and_counted_as_retried(gateway):
    throttled, fine = make_sessions(gateway, 2)
    outbox.throttle(throttled.connection_id, times=1)
    report = WebSocketSession.objects.send_to_channel("lobby", {"a": 1})
    assert sorted(report.sent) == sorted([throttled.connection_id, fine.connection_id])
    assert report.retried == 1
    assert outbox.messages(throttled.connection_id) == [{"a": 1}]
    assert outbox.messages(fine.connection_id) == [{"a": 1}]


def test_failing_past_max_attempts_is_reported_signalled_and_logged(gateway, failures, caplog):
    doomed, recovers, fine = make_sessions(gateway, 3)
    outbox.fail(doomed.connection_id, status=500, reason=SERVER_ERROR, times=3)
    outbox.fail(recovers.connection_id, status=503, reason="ServiceUnavailableException", times=2)
    options = {"max_attempts": 3}
    three_attempts = override_settings(
        AWS_API_GATEWAY_WEBSOCKETS=ws_settings(TRANSPORT_OPTIONS=options)
    )
    with three_attempts, caplog.at_level(logging.WARNING, logger=SENDING_LOGGER):
        report = WebSocketSession.objects.send_to_channel("lobby", "hi")
    assert report.failed == {doomed.connection_id: SERVER_ERROR}
    assert sorted(report.sent) == sorted([recovers.connection_id, fine.connection_id])
    assert report.retried == 2
    assert not report.ok
    assert len(failures) == 1
    assert failures[0]["report"] is report
    assert failures[0]["sender"] is OutboxTransport
    records = [r for r in caplog.records if r.name == SENDING_LOGGER]
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING
    assert doomed.connection_id in records[0].getMessage()
    assert SERVER_ERROR in records[0].getMessage()
    doomed.refresh_from_db()
    assert doomed.connected, "a failure is not a disconnection"
    assert outbox.messages(doomed.connection_id) == []


def test_non_retryable_error_fails_after_one_attempt(gateway, failures):
    session = make_session(gateway)
    outbox.fail(session.connection_id, status=403, reason="ForbiddenException", times=1)
    report = session.send_message("x")
    assert report.failed == {session.connection_id: "ForbiddenException"}
    assert report.retried == 0
    assert len(failures) == 1


def test_no_signal_or_warning_when_everything_is_delivered(gateway, failures, caplog):
    sessions = make_sessions(gateway, 3)
    outbox.gone(sessions[0].connection_id)
    outbox.throttle(sessions[1].connection_id)
    with caplog.at_level(logging.WARNING, logger=SENDING_LOGGER):
        report = WebSocketSession.objects.broadcast("x")
    assert report.ok
    assert failures == []
    assert [r for r in caplog.records if r.name.startswith("django_aws")] == []


def test_report_counts_total_and_duration(gateway):
    sessions = make_sessions(gateway, 5)
    outbox.gone(sessions[0].connection_id)
    outbox.fail(sessions[1].connection_id, status=403, reason="ForbiddenException")
    report = WebSocketSession.objects.broadcast("x")
    assert report.counts == {"sent": 3, "gone": 1, "failed": 1, "pending": 0}
    assert report.total == 5
    assert report.duration > 0
    assert str(report).startswith("POST: 3 ok, 1 gone, 1 failed, 0 retried in ")


def test_fault_injection_200_recipients(gateway):
    """The issue's scenario: 10 % gone, 5 % throttled once, 1 % failing with a 500 once."""
    sessions = make_sessions(gateway, 200)
    ids = [s.connection_id for s in sessions]
    shuffled = random.Random(20240102).sample(ids, len(ids))
    gone, throttled, erroring = shuffled[:20], shuffled[20:30], shuffled[30:32]
    outbox.gone(*gone)
    outbox.throttle(*throttled, times=1)
    outbox.fail(*erroring, status=500, reason=SERVER_ERROR, times=1)
    live = sorted(set(ids) - set(gone))

    message = {"type": "news", "n": 42}
    report = WebSocketSession.objects.send_to_channel("lobby", message)

    assert sorted(report.sent) == live
    assert len(report.sent) == 180
    assert sorted(report.gone) == sorted(gone)
    assert report.failed == {}
    assert report.retried == 12
    for connection_id in live:
        assert outbox.messages(connection_id) == [message]
    for connection_id in gone:
        assert outbox.messages(connection_id) == []
    assert outbox.total == 180
    assert connected_ids() == set(live)
    assert not WebSocketSession.objects.filter(connected=False, disconnected_at=None).exists()


# -- close --------------------------------------------------------------------------------------


def test_session_close(gateway):
    session, other = make_sessions(gateway, 2)
    report = session.close()
    assert report.operation == "DELETE"
    assert report.sent == [session.connection_id]
    assert outbox.closed == {session.connection_id}
    assert not session.connected and session.disconnected_at is not None
    session.refresh_from_db()
    assert not session.connected and session.disconnected_at is not None
    other.refresh_from_db()
    assert other.connected
    # Closed: a later send goes nowhere.
    assert session.send_message("x").total == 0
    assert outbox.total == 0


def test_closing_a_gone_connection_marks_it_disconnected(gateway):
    session = make_session(gateway)
    outbox.gone(session.connection_id)
    report = session.close()
    assert report.gone == [session.connection_id]
    assert not session.connected
    session.refresh_from_db()
    assert not session.connected


def test_queryset_close(gateway):
    lobby = make_sessions(gateway, 3)
    other = make_sessions(gateway, 2, channel="other")
    make_sessions(gateway, 1, connected=False)
    report = WebSocketSession.objects.in_channel("lobby").close()
    assert sorted(report.sent) == sorted(s.connection_id for s in lobby)
    assert outbox.closed == {s.connection_id for s in lobby}
    assert connected_ids() == {s.connection_id for s in other}


def test_a_stale_instance_sending_after_close_gets_gone(gateway):
    session = make_session(gateway)
    stale = WebSocketSession.objects.get(pk=session.pk)
    session.close()
    report = stale.send_message("late")
    assert report.gone == [session.connection_id]
    assert outbox.messages(session.connection_id) == []


# -- is_connected -------------------------------------------------------------------------------


def test_is_connected_true_for_a_live_connection(gateway):
    session = make_session(gateway)
    assert session.is_connected() is True
    session.refresh_from_db()
    assert session.connected


def test_is_connected_false_marks_gone_disconnected(gateway):
    session = make_session(gateway)
    outbox.gone(session.connection_id)
    assert session.is_connected() is False
    assert not session.connected and session.disconnected_at is not None
    session.refresh_from_db()
    assert not session.connected and session.disconnected_at is not None


def test_is_connected_false_without_asking_for_a_disconnected_row(gateway):
    session = make_session(gateway, connected=False)
    outbox.fail(session.connection_id, status=403, reason="ForbiddenException")
    assert session.is_connected() is False


def test_is_connected_raises_when_aws_does_not_answer(gateway):
    session = make_session(gateway)
    outbox.fail(session.connection_id, status=403, reason="ForbiddenException")
    with pytest.raises(sending.ConnectionProbeFailed, match="ForbiddenException"):
        session.is_connected()
    session.refresh_from_db()
    assert session.connected


# -- presence -----------------------------------------------------------------------------------


def test_channel_presence_counts_connections_and_distinct_users(
    gateway, user, django_user_model, django_assert_num_queries
):
    bob = django_user_model.objects.create_user(username="bob", password="pw")
    carol = django_user_model.objects.create_user(username="carol", password="pw")
    make_sessions(gateway, 2, user=user)  # two tabs, one user
    make_sessions(gateway, 1, user=bob)
    make_sessions(gateway, 3)  # anonymous
    make_sessions(gateway, 1, user=carol, connected=False)
    make_sessions(gateway, 2, user=carol, channel="other")

    with django_assert_num_queries(2):
        lobby = presence.channel_presence("lobby")
    assert lobby.channel_name == "lobby"
    assert lobby.connection_count == 6
    assert lobby.user_count == 2
    assert sorted(lobby.user_ids) == sorted([user.pk, bob.pk])
    assert lobby.sessions.count() == 6

    empty = presence.channel_presence("nobody-here")
    assert (empty.connection_count, empty.user_count) == (0, 0)


def test_reconcile_probes_only_idle_sessions(gateway):
    idle_live = make_sessions(gateway, 2, idle=timedelta(minutes=20))
    idle_gone = make_sessions(gateway, 2, idle=timedelta(minutes=20))
    recent_gone = make_sessions(gateway, 2, idle=timedelta(minutes=1))
    make_sessions(gateway, 1, idle=timedelta(minutes=30), connected=False)
    outbox.gone(*(s.connection_id for s in idle_gone + recent_gone))

    report = presence.reconcile()

    assert report.operation == "GET"
    assert sorted(report.sent) == sorted(s.connection_id for s in idle_live)
    assert sorted(report.gone) == sorted(s.connection_id for s in idle_gone)
    assert report.total == 4
    # Recent sessions were not asked about, so they stay connected even though AWS lost them.
    assert connected_ids() == {s.connection_id for s in idle_live + recent_gone}


def test_reconcile_with_an_explicit_queryset(gateway):
    lobby = make_sessions(gateway, 2)
    other = make_sessions(gateway, 2, channel="other")
    outbox.gone(*(s.connection_id for s in lobby + other))
    report = presence.reconcile(WebSocketSession.objects.in_channel("lobby"))
    assert sorted(report.gone) == sorted(s.connection_id for s in lobby)
    assert connected_ids() == {s.connection_id for s in other}


def test_reconcile_command_output(gateway):
    sessions = make_sessions(gateway, 3, idle=timedelta(seconds=1))
    make_sessions(gateway, 1, connected=False, idle=timedelta(seconds=1))
    outbox.gone(sessions[0].connection_id)
    out = StringIO()
    call_command("reconcile_websockets", "--idle-seconds", "0", stdout=out)
    assert out.getvalue() == (
        "Probed 3 session(s): 2 still connected, 1 marked disconnected, 0 without an answer.\n"
    )
    assert connected_ids() == {s.connection_id for s in sessions[1:]}


def test_reconcile_command_default_leaves_recent_sessions_alone(gateway):
    sessions = make_sessions(gateway, 2)
    outbox.gone(*(s.connection_id for s in sessions))
    out = StringIO()
    call_command("reconcile_websockets", stdout=out)
    assert out.getvalue().startswith("Probed 0 session(s): 0 still connected")
    assert connected_ids() == {s.connection_id for s in sessions}


# -- one message per socket, however the queryset joins ------------------------------------------


@pytest.fixture
def two_group_member(gateway, user):
    """``user`` in two groups that both match, with one open connection; plus a bystander."""
    from django.contrib.auth.models import Group

    staff, editors = Group.objects.create(name="staff"), Group.objects.create(name="editors")
    user.groups.add(staff, editors)
    session = make_session(gateway, user=user)
    make_session(gateway)  # anonymous, in no group
    return session


def group_members():
    return WebSocketSession.objects.filter(user__groups__name__in=["staff", "editors"])


def test_many_to_many_join_sends_once_per_connection(two_group_member):
    assert group_members().count() == 2, "the join repeats the row, as in the finding"
    report = group_members().send_message({"n": 1})
    assert report.sent == [two_group_member.connection_id]
    assert outbox.messages(two_group_member.connection_id) == [{"n": 1}]
    assert outbox.total == 1


def test_many_to_many_join_closes_and_probes_once(two_group_member):
    probe = presence.reconcile(group_members())
    assert probe.sent == [two_group_member.connection_id] and probe.total == 1
    report = group_members().close()
    assert report.sent == [two_group_member.connection_id] and report.total == 1
    assert outbox.closed == {two_group_member.connection_id}


def test_sliced_and_union_querysets_send_once_per_connection(two_group_member, gateway):
    other = make_session(gateway, channel="other")
    sliced = group_members().order_by("pk")[:5]
    assert len(list(sliced)) == 2
    assert sliced.send_message("a").sent == [two_group_member.connection_id]
    union = group_members().union(WebSocketSession.objects.filter(channel_name="other"), all=True)
    report = union.send_message("b")
    assert sorted(report.sent) == sorted([two_group_member.connection_id, other.connection_id])
    assert outbox.messages(two_group_member.connection_id) == ["a", "b"]
    assert outbox.messages(other.connection_id) == ["b"]


def test_a_list_with_one_session_twice_sends_once(gateway):
    session = make_session(gateway)
    report = sending.send_message([session, session], "x")
    assert report.sent == [session.connection_id]
    assert outbox.total == 1


def test_no_distinct_without_a_multivalued_join(gateway, user):
    make_sessions(gateway, 2, user=user)
    with CaptureQueriesContext(connection) as queries:
        WebSocketSession.objects.filter(user__username="alice").send_message("x")
    selects = [q["sql"] for q in queries if "websocketsession" in q["sql"].lower()]
    assert selects and not any("DISTINCT" in sql.upper() for sql in selects), selects
    with CaptureQueriesContext(connection) as queries:
        group_members().send_message("x")
    assert any("DISTINCT" in q["sql"].upper() for q in queries)
