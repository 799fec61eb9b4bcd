"""A large background broadcast shared by two real worker processes.

``send_message(..., background=True)`` splits the recipients into batches, one task each; two
workers (separate processes, each capped at half the account's rate: its share) run them against
the fake Management API over HTTP. Every live recipient must get the message exactly once, the
gone ones must be marked, and the combined report must be exact.

Two task backends: the database one (``django-tasks-db``, two ``db_worker`` processes; marked
``concurrent``: PostgreSQL and MariaDB runs) and Celery through ``django-tasks-celery`` on Redis
(two ``celery worker`` processes; marked ``celery``: the Celery leg, which sets
``DAGW_SHARDED_RECIPIENTS=100000``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from django_aws_api_gateway_websockets.models import (
    ApiGateway,
    BroadcastBatch,
    WebSocketSession,
)
from django_aws_api_gateway_websockets.testing import new_connection_id
from tests.helpers import worker_database_env, ws_settings
from tests.management_api import ManagementApiServer

ROOT = Path(__file__).resolve().parents[1]
RECIPIENTS = int(os.environ.get("DAGW_SHARDED_RECIPIENTS", "4000"))
BATCH = max(500, RECIPIENTS // 20)
GONE_EVERY = 50
#: The account's rate limit for this test, shared equally by the two workers.
ACCOUNT_RATE = 10_000
WORKERS = 2
SHARE = ACCOUNT_RATE / WORKERS
MESSAGE = "sharded"


def _sessions(gateway: ApiGateway, count: int) -> list[str]:
    now = timezone.now()
    rows = [
        WebSocketSession(
            connection_id=new_connection_id(),
            gateway=gateway,
            channel_name="everyone",
            state="open",
            connected_at=now - timedelta(minutes=5),
            last_seen_at=now,
        )
        for _ in range(count)
    ]
    WebSocketSession.objects.bulk_create(rows, batch_size=5000)
    return [row.connection_id for row in rows]


def _worker_env(server: ManagementApiServer, backend: str, queue: str) -> dict[str, str]:
    return {
        **os.environ,
        **worker_database_env(),
        "DJANGO_SETTINGS_MODULE": "tests.settings_celery",
        "DAGW_WORKER_TRANSPORT_URL": server.url,
        "DAGW_WORKER_MAX_RATE": str(SHARE),
        "DAGW_WORKER_TASK_BACKEND": backend,
        "DAGW_WORKER_BATCH_SIZE": str(BATCH),
        "DAGW_CELERY_QUEUE": queue,
        "PYTHONPATH": str(ROOT),
    }


def _start_workers(kind: str, env: dict[str, str], queue: str) -> list[subprocess.Popen]:
    workers = []
    for n in range(WORKERS):
        if kind == "celery":
            command = [
                sys.executable, "-m", "celery", "-A", "tests.celery_app", "worker",
                "--pool", "solo", "--concurrency", "1", "-Q", queue, "-n", f"dagw{n}-{queue}@%h",
                "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "WARNING",
            ]  # fmt: skip
        else:
            command = [
                sys.executable, "-m", "django", "db_worker", "--batch", "--no-startup-delay",
                "--interval", "0.1", "--no-reload",
            ]  # fmt: skip
        workers.append(
            subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
        )
    return workers


def _stop(workers: list[subprocess.Popen]) -> str:
    output = []
    for worker in workers:
        if worker.poll() is None:
            worker.terminate()
        try:
            out, _ = worker.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            out, _ = worker.communicate()
        output.append(out.decode(errors="replace")[-3000:])
    return "\n".join(output)


def _run(kind: str, gateway: ApiGateway) -> None:
    ids = _sessions(gateway, RECIPIENTS)
    gone = set(ids[::GONE_EVERY])
    live = [cid for cid in ids if cid not in gone]
    queue = f"dagw-test-{uuid.uuid4().hex[:12]}"
    backend = "celery" if kind == "celery" else "default"
    with ManagementApiServer("/production") as server:
        for cid in live:
            server.add_connection(cid)
        env = _worker_env(server, backend, queue)
        os.environ["DAGW_CELERY_QUEUE"] = queue  # the enqueuing side's Celery app
        with ws_settings(TASK_BACKEND=backend, TASK_BATCH_SIZE=BATCH):
            started = time.perf_counter()
            results = WebSocketSession.objects.filter(channel_name="everyone").send_message(
                MESSAGE, background=True
            )
        assert len(results) == -(-RECIPIENTS // BATCH)
        workers = _start_workers(kind, env, queue)
        try:
            deadline = time.monotonic() + 600
            while not results.report()["finished"]:
                assert time.monotonic() < deadline, results.report()
                # Celery workers run until stopped; db_worker --batch exits once the queue is
                # empty, which must not happen before every batch has finished.
                if kind == "celery" or all(w.poll() is not None for w in workers):
                    assert all(w.poll() is None for w in workers) or results.report()["finished"], (
                        _stop(workers)
                    )
                time.sleep(0.5)
            wall = time.perf_counter() - started
        finally:
            logs = _stop(workers)
        report = results.report()
        received = dict(server.received)

    assert report["errors"] == [], logs
    assert report["batches_finished"] == report["batches"] == len(results)
    assert report["sent"] == len(live), logs
    assert sorted(report["gone"]) == sorted(gone)
    assert report["failed"] == {}
    # Exactly once: every live recipient got one copy; the gone ones got nothing.
    assert len(received) == len(live)
    assert all(received[cid] == [MESSAGE.encode()] for cid in live)
    assert not gone & set(received)
    assert not WebSocketSession.objects.filter(connection_id__in=gone, connected=True).exists()
    assert WebSocketSession.objects.filter(connected=True).count() == len(live)
    batches = list(BroadcastBatch.objects.filter(broadcast=results.broadcast))
    # Both workers took a share, and each kept under its share of the rate limit.
    assert len({batch.worker for batch in batches}) == WORKERS, [b.worker for b in batches]
    for batch in batches:
        if batch.sent >= 1000:
            assert batch.sent / batch.duration <= SHARE * 1.25, (batch.sent, batch.duration)
    print(
        f"\n{kind}: {RECIPIENTS:,} recipients, {len(batches)} batches, {WORKERS} workers: "
        f"{wall:.1f} s, {len(live) / wall:,.0f} sends/s"
    )


@pytest.mark.concurrent
@pytest.mark.django_db(transaction=True)
def test_database_backend_two_db_workers(gateway):
    _run("db", gateway)


@pytest.mark.celery
@pytest.mark.django_db(transaction=True)
def test_celery_backend_two_celery_workers(gateway):
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=5).close()
    except OSError as exc:
        pytest.fail(f"The Celery leg needs Redis on 127.0.0.1:6379: {exc}")
    _run("celery", gateway)
