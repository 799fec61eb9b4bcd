"""Background broadcasts, run by a real ``django-tasks-db`` worker.

``send_message(data, background=True)`` enqueues tasks in the database; ``db_worker --batch``
claims them from the table, runs them and stores their results, as it does in production. Most
tests run the worker in this process (it then shares the test database, also SQLite's
``:memory:``); the ``postgres`` test runs it as a separate process against the test database,
sending to the fake Management API server over HTTP; one more runs a fresh interpreter to import
the tasks module under a ``TASKS`` setting without a "default" alias.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone
from django_tasks_db.compat import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from django_aws_api_gateway_websockets import contract
from django_aws_api_gateway_websockets.models import ApiGateway, WebSocketSession
from django_aws_api_gateway_websockets.sending import MessageTooLarge
from django_aws_api_gateway_websockets.tasks import send_message_task
from django_aws_api_gateway_websockets.transports.outbox import outbox
from tests.helpers import worker_database_env
from tests.management_api import ManagementApiServer

ROOT = Path(__file__).resolve().parents[1]
BATCH = 3
OUTBOX = {
    "GATEWAY_SECRETS": [settings.GATEWAY_SECRET],
    "TRANSPORT": "django_aws_api_gateway_websockets.transports.outbox.OutboxTransport",
    "TASK_BATCH_SIZE": BATCH,
}
REPORT_KEYS = {
    "sent",
    "gone",
    "failed",
    "pending_delivered",
    "pending_undelivered",
    "retried",
    "duration",
}

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _outbox() -> Iterator[None]:
    outbox.reset()
    with override_settings(AWS_API_GATEWAY_WEBSOCKETS=OUTBOX):
        yield
    outbox.reset()


def cid(n: int, prefix: str = "conn") -> str:
    """A connection id shaped like API Gateway's (and accepted by the fake server)."""
    return f"{prefix}{n:03d}AAAAAAA="


def make_sessions(
    gateway: ApiGateway, count: int, *, channel: str = "room", prefix: str = "conn", **fields: Any
) -> list[WebSocketSession]:
    # Settled sessions: connected a minute ago, past the connect window, known to be open.
    now = timezone.now()
    fields = {"state": "open", "connected_at": now - timedelta(minutes=1), **fields}
    return [
        WebSocketSession.objects.create(
            connection_id=cid(n, prefix),
            gateway=gateway,
            channel_name=channel,
            last_seen_at=now,
            **fields,
        )
        for n in range(count)
    ]


def run_worker(*args: str) -> None:
    """Run the real worker in this process until the queue is empty.

    ``db_worker`` installs its own SIGINT/SIGTERM handlers; put pytest's back afterwards.
    """
    names = ("SIGINT", "SIGTERM", "SIGQUIT")
    saved = {sig: signal.getsignal(sig) for sig in (getattr(signal, n, None) for n in names) if sig}
    try:
        call_command(
            "db_worker",
            "--batch",
            "--no-startup-delay",
            "--interval",
            "0",
            "--no-reload",
            *args,
            verbosity=0,
        )
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def finished(result: Any) -> Any:
    """``result`` reloaded from the task store; fails with the worker's traceback if it failed."""
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL, (
        result.status,
        [error.traceback for error in result.errors],
    )
    return result


def reports(results: list[Any]) -> list[dict[str, Any]]:
    return [finished(result).return_value for result in results]


# -- enqueueing ------------------------------------------------------------------------------------


def test_enqueue_returns_task_results_and_sends_nothing_until_the_worker_runs(gateway):
    sessions = make_sessions(gateway, 4)

    results = WebSocketSession.objects.all().send_message({"n": 1}, background=True)

    assert isinstance(results, list)
    assert len(results) == 2
    assert all(r.status == TaskResultStatus.READY for r in results)
    assert {r.backend for r in results} == {"default"}
    assert DBTaskResult.objects.filter(status=TaskResultStatus.READY).count() == 2
    assert outbox.total == 0
    assert all(s.connection_id not in outbox.sent for s in sessions)
    for result in results:
        result.refresh()
        assert result.status == TaskResultStatus.READY
        assert result.worker_ids == []


def test_batches_of_task_batch_size_cover_every_connected_session_once(gateway):
    sessions = make_sessions(gateway, 7)

    results = WebSocketSession.objects.all().send_message({"n": 1}, background=True)

    assert len(results) == 3
    batches = [result.args[0] for result in results]
    assert sorted(len(batch) for batch in batches) == [1, 3, 3]
    ids = [pk for batch in batches for pk in batch]
    assert sorted(ids) == sorted(s.pk for s in sessions)
    # The message travels already serialised, as the text that will be sent.
    assert {result.args[1] for result in results} == {'{"n":1}'}
    assert all(result.kwargs == {} for result in results)


def test_empty_queryset_enqueues_nothing(gateway):
    make_sessions(gateway, 2, channel="elsewhere")

    assert WebSocketSession.objects.in_channel("nobody").send_message("x", background=True) == []
    assert DBTaskResult.objects.count() == 0


def test_disconnected_sessions_are_not_enqueued(gateway):
    live = make_sessions(gateway, 4, prefix="live")
    dead = make_sessions(gateway, 3, prefix="dead", connected=False)

    results = WebSocketSession.objects.all().send_message({"n": 1}, background=True)

    assert len(results) == 2
    enqueued = {pk for result in results for pk in result.args[0]}
    assert enqueued == {s.pk for s in live}
    assert enqueued.isdisjoint(s.pk for s in dead)


@pytest.mark.parametrize("kind", [str, bytes])
def test_oversized_data_raises_message_too_large_at_enqueue_and_enqueues_nothing(gateway, kind):
    make_sessions(gateway, 4)
    data = "x" * (contract.MAX_MESSAGE_BYTES + 1)
    data = data.encode() if kind is bytes else data

    with pytest.raises(MessageTooLarge) as caught:
        WebSocketSession.objects.all().send_message(data, background=True)

    assert caught.value.size == contract.MAX_MESSAGE_BYTES + 1
    assert DBTaskResult.objects.count() == 0
    run_worker()
    assert outbox.total == 0


def test_oversized_json_raises_message_too_large_at_enqueue(gateway):
    make_sessions(gateway, 1)
    data = {"blob": "y" * contract.MAX_MESSAGE_BYTES}

    with pytest.raises(MessageTooLarge):
        WebSocketSession.objects.all().send_message(data, background=True)

    assert DBTaskResult.objects.count() == 0


def test_largest_allowed_message_is_enqueued_and_delivered(gateway):
    (session,) = make_sessions(gateway, 1)
    data = "z" * contract.MAX_MESSAGE_BYTES

    (result,) = WebSocketSession.objects.all().send_message(data, background=True)
    run_worker()

    assert finished(result).return_value["sent"] == 1
    assert outbox.sent[session.connection_id] == [data.encode()]


def test_non_utf8_bytes_raise_value_error_at_enqueue(gateway):
    make_sessions(gateway, 4)

    with pytest.raises(ValueError, match="UTF-8") as caught:
        WebSocketSession.objects.all().send_message(b"\xff\xfe\x00binary", background=True)

    assert not isinstance(caught.value, MessageTooLarge)
    assert DBTaskResult.objects.count() == 0
    run_worker()
    assert outbox.total == 0


# -- running -------------------------------------------------------------------------------------


def test_worker_delivers_to_every_connected_session_exactly_once(gateway):
    sessions = make_sessions(gateway, 7)
    data = {"hello": "world", "n": 7}

    results = WebSocketSession.objects.all().send_message(data, background=True)
    run_worker()

    for session in sessions:
        assert outbox.messages(session.connection_id) == [data]
    assert outbox.total == 7
    assert sorted(report["sent"] for report in reports(results)) == [1, 3, 3]
    assert DBTaskResult.objects.filter(status=TaskResultStatus.SUCCESSFUL).count() == 3
    # Running the worker again finds nothing to do: nothing is sent twice.
    run_worker()
    assert outbox.total == 7
    for session in sessions:
        assert len(outbox.sent[session.connection_id]) == 1


def test_each_task_sends_only_to_its_own_batch(gateway):
    make_sessions(gateway, 7)

    results = WebSocketSession.objects.all().send_message("ping", background=True)
    run_worker("--max-tasks", "1")

    for result in results:
        result.refresh()
    done = [r for r in results if r.status == TaskResultStatus.SUCCESSFUL]
    assert sorted(r.status for r in results) == sorted(
        [TaskResultStatus.READY, TaskResultStatus.READY, TaskResultStatus.SUCCESSFUL]
    )
    assert len(done) == 1
    expected = WebSocketSession.objects.filter(pk__in=done[0].args[0])
    assert set(outbox.sent) == {s.connection_id for s in expected}
    assert outbox.total == len(done[0].args[0])


def test_disconnected_sessions_are_not_sent_to(gateway):
    live = make_sessions(gateway, 4, prefix="live")
    dead = make_sessions(gateway, 3, prefix="dead", connected=False)

    results = WebSocketSession.objects.all().send_message({"n": 1}, background=True)
    run_worker()

    assert {s.connection_id for s in live} == set(outbox.sent)
    assert all(s.connection_id not in outbox.sent for s in dead)
    assert sum(report["sent"] for report in reports(results)) == 4


def test_session_that_disconnects_between_enqueue_and_run_is_skipped(gateway):
    sessions = make_sessions(gateway, 5)
    leaving = sessions[1]

    results = WebSocketSession.objects.all().send_message({"n": 1}, background=True)
    WebSocketSession.objects.filter(pk=leaving.pk).mark_closed()
    run_worker()

    assert leaving.connection_id not in outbox.sent
    assert {s.connection_id for s in sessions if s is not leaving} == set(outbox.sent)
    done = reports(results)
    assert sum(report["sent"] for report in done) == 4
    assert all(leaving.connection_id not in report["gone"] for report in done)
    assert all(leaving.connection_id not in report["failed"] for report in done)


def test_session_deleted_between_enqueue_and_run_is_skipped(gateway):
    sessions = make_sessions(gateway, 4)

    results = WebSocketSession.objects.all().send_message("hi", background=True)
    WebSocketSession.objects.filter(pk=sessions[0].pk).delete()
    run_worker()

    assert set(outbox.sent) == {s.connection_id for s in sessions[1:]}
    assert sum(report["sent"] for report in reports(results)) == 3


def test_gone_connections_found_by_the_worker_are_marked_disconnected(gateway):
    sessions = make_sessions(gateway, 5)
    gone = [sessions[0], sessions[4]]
    outbox.gone(*(s.connection_id for s in gone))

    results = WebSocketSession.objects.all().send_message({"n": 1}, background=True)
    before = timezone.now()
    run_worker()

    for session in gone:
        session.refresh_from_db()
        assert session.connected is False
        assert session.disconnected_at is not None
        assert session.disconnected_at >= before
    for session in sessions[1:4]:
        session.refresh_from_db()
        assert session.connected is True
        assert session.disconnected_at is None
        assert outbox.messages(session.connection_id) == [{"n": 1}]
    done = reports(results)
    assert sorted(c for report in done for c in report["gone"]) == sorted(
        s.connection_id for s in gone
    )
    assert sum(report["sent"] for report in done) == 3


def test_task_result_holds_the_delivery_report(gateway):
    sessions = make_sessions(gateway, 3)
    ok, throttled, refused = (s.connection_id for s in sessions)
    outbox.throttle(throttled, times=2)
    outbox.fail(refused, status=403, reason="ForbiddenException")

    (result,) = WebSocketSession.objects.all().send_message("hi", background=True)
    run_worker()

    fetched = send_message_task.get_result(result.id)
    assert fetched.id == result.id
    assert fetched.status == TaskResultStatus.SUCCESSFUL, [e.traceback for e in fetched.errors]
    assert fetched.is_finished
    assert len(fetched.worker_ids) == 1
    report = fetched.return_value
    assert set(report) == REPORT_KEYS
    assert report["sent"] == 2
    assert report["gone"] == []
    assert report["failed"] == {refused: "ForbiddenException"}
    assert report["retried"] == 1
    assert isinstance(report["duration"], float)
    assert report["duration"] >= 0
    # The same report, through the result returned at enqueue time.
    assert finished(result).return_value == report
    # The failure does not mark the session disconnected (only "gone" does).
    assert WebSocketSession.objects.get(connection_id=refused).connected is True
    assert outbox.messages(ok) == ["hi"]
    assert outbox.messages(throttled) == ["hi"]
    assert refused not in outbox.sent


def test_text_and_utf8_bytes_are_sent_verbatim(gateway):
    (session,) = make_sessions(gateway, 1)

    WebSocketSession.objects.all().send_message("plain text, not JSON", background=True)
    WebSocketSession.objects.all().send_message("héllo ✓".encode(), background=True)
    run_worker()

    assert sorted(outbox.sent[session.connection_id]) == sorted(
        [b"plain text, not JSON", "héllo ✓".encode()]
    )


def test_data_is_serialised_with_djangos_encoder_at_enqueue_time(gateway):
    (session,) = make_sessions(gateway, 1)
    data = {"at": datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt_timezone.utc), "price": Decimal("1.50")}

    (result,) = WebSocketSession.objects.all().send_message(data, background=True)
    data["price"] = Decimal("999")  # changing the object afterwards changes nothing
    run_worker()

    finished(result)
    (raw,) = outbox.sent[session.connection_id]
    assert json.loads(raw) == {"at": "2024-01-02T03:04:05Z", "price": "1.50"}


def test_send_to_channel_in_background(gateway):
    inside = make_sessions(gateway, 4, channel="x", prefix="inx")
    outside = make_sessions(gateway, 2, channel="y", prefix="iny")
    make_sessions(gateway, 1, channel="x", prefix="offx", connected=False)

    results = WebSocketSession.objects.send_to_channel("x", {"to": "x"}, background=True)

    assert len(results) == 2
    assert outbox.total == 0
    run_worker()
    assert set(outbox.sent) == {s.connection_id for s in inside}
    for session in inside:
        assert outbox.messages(session.connection_id) == [{"to": "x"}]
    assert all(s.connection_id not in outbox.sent for s in outside)
    assert sum(report["sent"] for report in reports(results)) == 4


def test_broadcast_and_send_to_user_in_background(gateway, user):
    mine = make_sessions(gateway, 2, prefix="mine", user=user)
    others = make_sessions(gateway, 2, prefix="them")

    (to_user,) = WebSocketSession.objects.send_to_user(user, "yours", background=True)
    to_all = WebSocketSession.objects.broadcast("everyone", background=True)
    run_worker()

    assert finished(to_user).return_value["sent"] == 2
    assert sum(report["sent"] for report in reports(to_all)) == 4
    for session in mine:
        assert sorted(outbox.messages(session.connection_id)) == ["everyone", "yours"]
    for session in others:
        assert outbox.messages(session.connection_id) == ["everyone"]


def test_task_backend_setting_chooses_the_backend(gateway):
    (session,) = make_sessions(gateway, 1)
    tasks = {
        "default": {"BACKEND": "django_tasks_db.DatabaseBackend"},
        "broadcasts": {"BACKEND": "django_tasks_db.DatabaseBackend"},
    }
    with override_settings(
        TASKS=tasks, AWS_API_GATEWAY_WEBSOCKETS={**OUTBOX, "TASK_BACKEND": "broadcasts"}
    ):
        (result,) = WebSocketSession.objects.all().send_message("hi", background=True)
        assert result.backend == "broadcasts"
        run_worker()  # the default backend's worker leaves it alone
        result.refresh()
        assert result.status == TaskResultStatus.READY
        assert outbox.total == 0
        run_worker("--backend", "broadcasts")
        assert finished(result).return_value["sent"] == 1
    assert outbox.messages(session.connection_id) == ["hi"]


NO_DEFAULT_ALIAS_SCRIPT = """
import json

import django
from django.conf import settings

import tests.settings as base

overrides = {
    "DATABASES": {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    "TASKS": {"broadcasts": {"BACKEND": "django_tasks_db.DatabaseBackend"}},
    "AWS_API_GATEWAY_WEBSOCKETS": {**%(outbox)r, "TASK_BACKEND": "broadcasts"},
}
settings.configure(**{**{name: getattr(base, name) for name in dir(base) if name.isupper()},
                      **overrides})
django.setup()

from django.core.management import call_command
from django.utils import timezone

from django_aws_api_gateway_websockets.models import ApiGateway, WebSocketSession
from django_aws_api_gateway_websockets.transports.outbox import outbox

call_command("migrate", verbosity=0)
gateway = ApiGateway.objects.create(
    name="g", api_id="abc123def4", target_base_endpoint="https://testserver/ws"
)
now = timezone.now()
WebSocketSession.objects.create(
    connection_id="conn000AAAAAAA=",
    gateway=gateway,
    channel_name="room",
    connected_at=now,
    last_seen_at=now,
)
results = WebSocketSession.objects.all().send_message("hi", background=True)
call_command("db_worker", "--batch", "--no-startup-delay", "--backend", "broadcasts", verbosity=0)
for result in results:
    result.refresh()
print(json.dumps({
    "backends": [result.backend for result in results],
    "statuses": [str(result.status) for result in results],
    "sent": {k: [m.decode() for m in v] for k, v in outbox.sent.items()},
}))
"""


def test_background_sending_works_without_a_default_task_backend():
    """TASKS may have no "default" alias when TASK_BACKEND names the one to use.

    Needs a fresh interpreter: the task is created when the tasks module is first imported.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGW_", "DJANGO_"))}
    env["PYTHONPATH"] = str(ROOT)
    script = NO_DEFAULT_ALIAS_SCRIPT % {"outbox": OUTBOX}
    run = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    outcome = json.loads(run.stdout.strip().splitlines()[-1])
    assert outcome == {
        "backends": ["broadcasts"],
        "statuses": ["SUCCESSFUL"],
        "sent": {"conn000AAAAAAA=": ["hi"]},
    }


# -- a worker in another process -------------------------------------------------------------------


@pytest.mark.concurrent
def test_worker_subprocess_sends_through_the_management_api(gateway):
    sessions = make_sessions(gateway, 7)
    gone = sessions[2]
    with ManagementApiServer() as server:
        for session in sessions:
            if session is not gone:
                server.add_connection(session.connection_id)

        results = WebSocketSession.objects.all().send_message({"from": "worker"}, background=True)
        assert len(results) == 3
        assert server.requests == 0

        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings_worker",
            "DAGW_WORKER_TRANSPORT_URL": server.url,
            **worker_database_env(),
            "PYTHONPATH": str(ROOT),
        }
        worker = subprocess.run(
            [sys.executable, "-m", "django", "db_worker", "--batch", "--no-startup-delay"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert worker.returncode == 0, worker.stdout + worker.stderr

        for session in sessions:
            expected = [] if session is gone else [b'{"from":"worker"}']
            assert server.received.get(session.connection_id, []) == expected
        assert server.stats()["messages"] == 6
        assert server.status_counts[410] == 1

    # The worker process had its own transport: nothing went through this process's outbox.
    assert outbox.total == 0
    done = reports(results)
    assert sum(report["sent"] for report in done) == 6
    assert [c for report in done for c in report["gone"]] == [gone.connection_id]
    assert all(report["failed"] == {} for report in done)
    assert all(len(send_message_task.get_result(r.id).worker_ids) == 1 for r in results)
    gone.refresh_from_db()
    assert gone.connected is False
    assert gone.disconnected_at is not None
    assert WebSocketSession.objects.filter(connected=True).count() == 6


def test_background_batches_hold_each_connection_once_for_a_many_to_many_join(gateway, user):
    from django.contrib.auth.models import Group

    user.groups.add(Group.objects.create(name="a"), Group.objects.create(name="b"))
    (session,) = make_sessions(gateway, 1, user=user)
    members = WebSocketSession.objects.filter(user__groups__name__in=["a", "b"])
    assert members.count() == 2

    results = members.send_message({"n": 1}, background=True)
    assert [result.args[0] for result in results] == [[session.pk]]
    run_worker()
    assert outbox.messages(session.connection_id) == [{"n": 1}]


# -- the combined report ---------------------------------------------------------------------------


def test_broadcast_record_combines_every_batch_into_one_report(gateway):
    from django_aws_api_gateway_websockets.models import Broadcast, BroadcastBatch
    from django_aws_api_gateway_websockets.signals import broadcast_finished
    from tests.helpers import receiver

    sessions = make_sessions(gateway, 8)
    gone, refused = sessions[1].connection_id, sessions[6].connection_id
    outbox.gone(gone)
    outbox.fail(refused, status=403, reason="ForbiddenException")

    results = WebSocketSession.objects.all().send_message("hi", background=True)
    assert len(results) == 3
    broadcast = results.broadcast
    assert (broadcast.recipients, broadcast.batches, broadcast.finished) == (8, 3, False)
    assert results.report()["batches_finished"] == 0
    with receiver(broadcast_finished) as calls:
        run_worker()
    report = results.report()
    assert report["finished"] is True
    assert (report["batches"], report["batches_finished"]) == (3, 3)
    assert report["sent"] == 6
    assert report["gone"] == [gone]
    assert report["failed"] == {refused: "ForbiddenException"}
    assert report["errors"] == []
    assert sum(finished(r).return_value["sent"] for r in results) == 6
    # One signal, from the batch that finished last, with the same combined report.
    assert len(calls) == 1
    assert calls[0]["broadcast"].pk == broadcast.pk
    assert calls[0]["report"] == report
    assert Broadcast.objects.get(pk=broadcast.pk).finished_at is not None
    assert set(BroadcastBatch.objects.values_list("state", flat=True)) == {"done"}
    assert not WebSocketSession.objects.get(connection_id=gone).connected


def test_a_batch_delivered_twice_is_sent_once(gateway):
    """Queues deliver at least once: a second run of the same task sends nothing and returns
    the outcome stored by the first."""
    sessions = make_sessions(gateway, 2)
    results = WebSocketSession.objects.all().send_message("once", background=True)
    run_worker()
    (result,) = results
    first = finished(result).return_value
    again = send_message_task.func(*result.args)
    assert again == first
    for session in sessions:
        assert outbox.messages(session.connection_id) == ["once"]
    assert results.report()["sent"] == 2


def test_a_missing_batch_row_is_an_error_not_a_silent_skip(gateway):
    from django_aws_api_gateway_websockets.tasks import BatchNotFound

    make_sessions(gateway, 1)
    with pytest.raises(BatchNotFound):
        send_message_task.func([1], "x", 999_999, 0)
    assert outbox.total == 0


def test_a_batch_that_raises_is_recorded_and_still_finishes_the_broadcast(gateway, monkeypatch):
    from django_aws_api_gateway_websockets import tasks

    make_sessions(gateway, 4)
    results = WebSocketSession.objects.all().send_message("x", background=True)
    calls = {"n": 0}
    real = tasks.send_message

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom")
        return real(*args, **kwargs)

    monkeypatch.setattr(tasks, "send_message", flaky)
    run_worker()
    report = results.report()
    assert report["finished"] is True
    assert report["batches_finished"] == 2
    assert report["sent"] == 1
    assert [e["error"] for e in report["errors"]] == ["RuntimeError: boom"]
