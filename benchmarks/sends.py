"""Benchmark the CPU one send costs: ``session.send_message()`` alone, and per broadcast recipient.

Run ``python -m benchmarks.sends`` from the repository root (``scripts/bench`` runs it once, on
SQLite). The program configures Django with ``tests.settings``, creates its own test database,
inserts sessions and sends through :class:`~django_aws_api_gateway_websockets.transports.aws.
ManagementApiTransport` to the fake Management API of ``tests/management_api.py``, run in a child
process (as ``benchmarks.fanout`` does) so its CPU is not counted here.

Measured, after a warm-up (connections open, gateway cache and credentials loaded, as in a
process that has been sending for a while):

* **single send**: ``session.send_message(message)`` on a session instance, one after the other;
  the figure is this process's CPU time (``time.process_time()``: every thread, the transport's
  event loop included) divided by the number of sends, median over rounds;
* **broadcast**: ``WebSocketSession.objects.filter(channel_name=...).send_message(message)`` to
  a channel of N sessions; CPU divided by N, median over rounds.

Every send must be delivered (the report is checked, and the fake's counters); otherwise the run
stops. Exit status: 0 when both targets are met (or ``--quick``), 1 when one is missed, 2 when a
send was not delivered or the run failed.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.common import (
    BenchmarkError,
    database_description,
    database_label,
    run_on_test_database,
)
from benchmarks.fanout import FAKE_CREDENTIALS, MESSAGE, REGION, TRANSPORT, FakeServer

RESULTS_DIR = Path(__file__).resolve().parent / "results"

#: Targets (CPU): one single send, and one recipient of a broadcast.
TARGET_SINGLE_US = 300.0
TARGET_RECIPIENT_US = 100.0

DEFAULT_SENDS, DEFAULT_RECIPIENTS, DEFAULT_ROUNDS = 2000, 5000, 5
QUICK_SENDS, QUICK_RECIPIENTS, QUICK_ROUNDS = 300, 1000, 3
WARMUP_SENDS = 50


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sends", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short run (CI)")
    parser.add_argument("--sends", type=int, help="single sends per round (2000; quick 300)")
    parser.add_argument("--recipients", type=int, help="broadcast size (5000; quick 1000)")
    parser.add_argument("--rounds", type=int, help="rounds (5; quick 3)")
    args = parser.parse_args(argv)
    args.sends = args.sends or (QUICK_SENDS if args.quick else DEFAULT_SENDS)
    args.recipients = args.recipients or (QUICK_RECIPIENTS if args.quick else DEFAULT_RECIPIENTS)
    args.rounds = args.rounds or (QUICK_ROUNDS if args.quick else DEFAULT_ROUNDS)
    if min(args.sends, args.recipients, args.rounds) < 1:
        parser.error("--sends, --recipients and --rounds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.update(FAKE_CREDENTIALS)
    for name in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE"):
        os.environ.pop(name, None)
    return run_on_test_database("dagw_sends", lambda: Bench(args).run())


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.single_cpu: list[float] = []  # µs per send, per round
        self.single_wall: list[float] = []
        self.broadcast_cpu: list[float] = []  # µs per recipient, per round
        self.broadcast_wall: list[float] = []

    def run(self) -> int:
        from django_aws_api_gateway_websockets.models import ApiGateway, WebSocketSession

        self.gateway = ApiGateway.objects.create(
            name="sends",
            api_id="sends0api",
            region=REGION,
            stage="production",
            target_base_endpoint="https://testserver/ws",
        )
        self.insert("single", 1)
        self.insert("broadcast", self.args.recipients)
        self.session = WebSocketSession.objects.get(channel_name="single")
        server = FakeServer(0.0)
        try:
            with self.transport_settings(server.url):
                self.measure(server)
        finally:
            server.close()
        return self.report()

    def insert(self, channel: str, count: int) -> None:
        from django.utils import timezone as dj_timezone

        from django_aws_api_gateway_websockets.models import WebSocketSession
        from django_aws_api_gateway_websockets.testing import new_connection_id

        now = dj_timezone.now()
        WebSocketSession.objects.bulk_create(
            [
                WebSocketSession(
                    connection_id=new_connection_id(),
                    gateway=self.gateway,
                    channel_name=channel,
                    state=WebSocketSession.State.OPEN,
                    connected_at=now,
                    last_seen_at=now,
                    source_ip="203.0.113.7",
                    user_agent="benchmark",
                )
                for _ in range(count)
            ],
            batch_size=500,
        )

    @contextmanager
    def transport_settings(self, url: str) -> Iterator[None]:
        from django.conf import settings
        from django.test import override_settings

        from django_aws_api_gateway_websockets.gateways import gateway_cache

        ws = {
            **settings.AWS_API_GATEWAY_WEBSOCKETS,
            "TRANSPORT": TRANSPORT,
            "TRANSPORT_OPTIONS": {"endpoint_url": url},
        }
        with override_settings(AWS_API_GATEWAY_WEBSOCKETS=ws):
            gateway_cache.clear()
            yield
        gateway_cache.clear()

    def single(self, n: int) -> None:
        session, message = self.session, MESSAGE
        for _ in range(n):
            report = session.send_message(message)
            if report.sent != [session.connection_id]:
                raise BenchmarkError(f"single send: {report} ({dict(report.failed)})")

    def broadcast(self) -> None:
        from django_aws_api_gateway_websockets.models import WebSocketSession

        report = WebSocketSession.objects.filter(channel_name="broadcast").send_message(MESSAGE)
        if len(report.sent) != self.args.recipients:
            raise BenchmarkError(f"broadcast: {report} ({list(report.failed.items())[:3]})")

    def measure(self, server: FakeServer) -> None:
        self.single(WARMUP_SENDS)
        self.broadcast()
        before = server.command("stats")
        for _ in range(self.args.rounds):
            gc.collect()
            cpu, wall = time.process_time(), time.perf_counter()
            self.single(self.args.sends)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            self.single_cpu.append(cpu / self.args.sends * 1e6)
            self.single_wall.append(wall / self.args.sends * 1e6)
            gc.collect()
            cpu, wall = time.process_time(), time.perf_counter()
            self.broadcast()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            self.broadcast_cpu.append(cpu / self.args.recipients * 1e6)
            self.broadcast_wall.append(wall / self.args.recipients * 1e6)
        after = server.command("stats")
        delivered = after["status"].get("200", 0) - before["status"].get("200", 0)
        expected = self.args.rounds * (self.args.sends + self.args.recipients)
        if delivered != expected:
            raise BenchmarkError(f"the fake answered 200 {delivered} times, expected {expected}")

    def report(self) -> int:
        import django

        now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        single = statistics.median(self.single_cpu)
        recipient = statistics.median(self.broadcast_cpu)
        rows = [
            (
                "one `session.send_message()`",
                self.single_cpu,
                self.single_wall,
                TARGET_SINGLE_US,
                single,
            ),
            (
                f"broadcast to {self.args.recipients:,}, per recipient",
                self.broadcast_cpu,
                self.broadcast_wall,
                TARGET_RECIPIENT_US,
                recipient,
            ),
        ]
        lines = [
            f"# CPU per send on {database_label()}",
            "",
            f"- Python {platform.python_version()}, Django {django.get_version()}, "
            f"{database_description()}",
            f"- {platform.system()} {platform.machine()}, {os.cpu_count()} CPUs; {now}",
            f"- `ManagementApiTransport` to the fake Management API in a child process (0 ms); "
            f"{self.args.rounds} rounds of {self.args.sends:,} single sends and one broadcast to "
            f"{self.args.recipients:,}; CPU is this process's `time.process_time()` (all "
            "threads), median over rounds" + (" (quick run)" if self.args.quick else ""),
            "",
            "| send | CPU µs (median) | CPU µs per round | wall µs (median) | target | result |",
            "|---|--:|---|--:|--:|---|",
        ]
        missed = []
        for label, cpu, wall, target, value in rows:
            met = value <= target
            if not met:
                missed.append(f"{label}: {value:.0f} µs > {target:.0f} µs")
            result = "PASS" if met else "FAIL"
            if self.args.quick:
                result = f"({result})"
            lines.append(
                f"| {label} | {value:,.0f} | {' / '.join(f'{c:.0f}' for c in cpu)} "
                f"| {statistics.median(wall):,.0f} | ≤ {target:.0f} | {result} |"
            )
        lines += [
            "",
            "Targets are checked on the full run; a quick run shows them in parentheses.",
        ]
        text = "\n".join(lines) + "\n"
        print(text)
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        path = RESULTS_DIR / ("sends-quick.md" if self.args.quick else "sends.md")
        path.write_text(text, encoding="utf-8")
        print(f"Written to {path}")
        if missed and not self.args.quick:
            print("FAIL: " + "; ".join(missed))
            return 1
        return 0


if __name__ == "__main__":
    sys.exit(main())
