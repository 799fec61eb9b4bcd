"""Benchmark a sharded background broadcast: 100,000 recipients, one worker process vs two.

Run ``DAGW_TEST_DATABASE=postgresql python -m benchmarks.sharded`` (or ``mysql``; SQLite's
in-memory database cannot be shared with worker processes). The program creates its own test
database, inserts the sessions, starts the fake Management API in a child process (every
recipient connected, 20 ms per answer by default), then for 1 and 2 workers: enqueues
``send_message(..., background=True)`` (batches of ``--batch`` recipients, one task each on the
``django-tasks-db`` backend), starts that many ``manage.py db_worker`` processes, and times from
enqueue until the combined report (:class:`~.models.Broadcast`) says every batch finished. Each
worker runs with ``max_rate`` ``--max-rate`` (default: uncapped, to show what the processes
themselves can do; in production each worker gets its share of the account's limit).

Every run must deliver to every recipient (the report and the fake's counters are checked),
otherwise the run stops with exit status 2.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from benchmarks.common import (
    BenchmarkError,
    database_description,
    database_label,
    run_on_test_database,
)
from benchmarks.fanout import FakeServer

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--latency", type=float, default=0.020)
    parser.add_argument("--max-rate", default="none", help="per worker; 'none': uncapped")
    parser.add_argument("--quick", action="store_true", help="10,000 recipients")
    args = parser.parse_args(argv)
    if args.quick:
        args.recipients = 10_000
    return args


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rows: list[tuple[int, float, int, int]] = []

    def insert(self) -> Any:
        from django.utils import timezone

        from django_aws_api_gateway_websockets.models import ApiGateway, WebSocketSession
        from django_aws_api_gateway_websockets.testing import new_connection_id

        gateway = ApiGateway.objects.create(
            name="bench",
            api_id="sh4rd3d001",
            region="eu-west-1",
            stage="production",
            target_base_endpoint="https://testserver/ws",
        )
        now = timezone.now()
        WebSocketSession.objects.bulk_create(
            (
                WebSocketSession(
                    connection_id=new_connection_id(),
                    gateway=gateway,
                    channel_name="everyone",
                    state="open",
                    connected_at=now - timedelta(minutes=5),
                    last_seen_at=now,
                )
                for _ in range(self.args.recipients)
            ),
            batch_size=5000,
        )
        return gateway

    def run(self) -> int:
        from tests.helpers import ws_settings

        self.insert()
        server = FakeServer(self.args.latency)
        try:
            for workers in (1, 2):
                with ws_settings(TASK_BACKEND="default", TASK_BATCH_SIZE=self.args.batch):
                    self.rows.append(self.broadcast(server, workers))
        finally:
            server.close()
        return self.report()

    def broadcast(self, server: FakeServer, workers: int) -> tuple[int, float, int, int]:
        from django_aws_api_gateway_websockets.models import WebSocketSession
        from tests.helpers import worker_database_env

        before = server.command("stats")["status"].get("200", 0)
        env = {
            **os.environ,
            **worker_database_env(),
            "DJANGO_SETTINGS_MODULE": "tests.settings_celery",
            "DAGW_WORKER_TRANSPORT_URL": server.url,
            "DAGW_WORKER_MAX_RATE": "" if self.args.max_rate == "none" else self.args.max_rate,
            "DAGW_WORKER_BATCH_SIZE": str(self.args.batch),
            "PYTHONPATH": str(ROOT),
        }
        # Start the workers first and let them settle, so their start-up is not timed.
        command = [
            sys.executable, "-m", "django", "db_worker", "--interval", "0.05", "--no-reload",
            "--no-startup-delay",
        ]  # fmt: skip
        processes = [
            subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
            for _ in range(workers)
        ]
        try:
            time.sleep(4)
            started = time.perf_counter()
            results = WebSocketSession.objects.filter(channel_name="everyone").send_message(
                {"type": "bench"}, background=True
            )
            while not results.report()["finished"]:
                if any(p.poll() is not None for p in processes):
                    raise BenchmarkError("a worker exited early")
                time.sleep(0.05)
            wall = time.perf_counter() - started
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(30)
        report = results.report()
        # The fake records no bodies here; a 200 answer is one delivered message.
        delivered = server.command("stats")["status"].get("200", 0) - before
        if report["sent"] != self.args.recipients or delivered != self.args.recipients:
            raise BenchmarkError(f"{workers} workers: sent {report['sent']}, fake got {delivered}")
        print(f"{workers} worker(s): {wall:.2f} s", file=sys.stderr)
        return workers, wall, report["sent"], report["batches"]

    def report(self) -> int:
        import django

        lines = [
            f"# Sharded background broadcast on {database_label()}",
            "",
            f"- Python {platform.python_version()}, Django {django.get_version()}, "
            f"{database_description()}, {os.cpu_count()} CPUs",
            f"- {self.args.recipients:,} recipients in batches of {self.args.batch:,} "
            f"(django-tasks-db, `db_worker` processes), fake Management API in a child process "
            f"at {self.args.latency * 1000:.0f} ms per answer; per-worker max_rate: "
            f"{self.args.max_rate}",
            "- Timed from enqueue until the combined report says every batch finished.",
            "",
            "| workers | batches | wall (s) | sends/s | speed-up |",
            "|--:|--:|--:|--:|--:|",
        ]
        one = self.rows[0][1]
        for workers, wall, sent, batches in self.rows:
            lines.append(
                f"| {workers} | {batches} | {wall:.2f} | {sent / wall:,.0f} | {one / wall:.2f}x |"
            )
        text = "\n".join(lines) + "\n"
        print(text)
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        from django.db import connection

        (RESULTS_DIR / f"sharded-{connection.vendor}.md").write_text(text, encoding="utf-8")
        return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.environ.get("DAGW_TEST_DATABASE") not in ("postgresql", "mysql"):
        print("benchmarks.sharded needs DAGW_TEST_DATABASE=postgresql or mysql", file=sys.stderr)
        return 2
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    return run_on_test_database("dagw_sharded", lambda: Bench(args).run())


if __name__ == "__main__":
    sys.exit(main())
