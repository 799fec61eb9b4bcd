"""Benchmark fan-out: one message to 1,000 and 10,000 connections through the Management API.

Run ``python -m benchmarks.fanout`` from the repository root (``--quick`` for CI). The program
configures Django with ``tests.settings``, creates its own test database (SQLite in memory, or
PostgreSQL with ``DAGW_TEST_DATABASE=postgresql``; the database is ``test_`` + ``DAGW_PG_NAME``,
default ``test_dagw_fanout``), inserts the sessions, and sends to them through the fake Management
API of ``tests/management_api.py`` running in a child process (so its CPU does not share this
process's GIL), once with no added latency and once with 20 ms per response.

Two implementations are measured in the same run, in alternating order:

* **ours**: ``WebSocketSession.objects.filter(channel_name=...).send_message({...})`` with
  ``ManagementApiTransport`` pointed at the fake (``TRANSPORT_OPTIONS = {"endpoint_url": ...}``,
  every other option at its default) and fake AWS credentials in the environment: recipients
  streamed from the database, signed requests, gone marking and the delivery report;
* **baseline**: what the previous package did: one shared
  ``boto3.client("apigatewaymanagementapi")`` used by a ``ThreadPoolExecutor(max_workers=10)``
  calling ``post_to_connection`` for every connection id read from the same rows.

Each scenario (latency, recipients, clean or with 5 % of the recipients throttled once with 429
``LimitExceededException``) is measured ``--repeat`` times (default 3) after one warm-up broadcast
per implementation; the table shows the medians. Every broadcast must reach every recipient (the
fake's own counters are checked too), otherwise the run stops: a broadcast that did not reach
everyone must not pass for a fast one.

Exit status: 0 when every target was met (or ``--no-check``/``--quick``), 1 when a target was
missed, 2 when a broadcast did not reach every recipient or the run failed.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmarks.common import (
    BenchmarkError,
    database_description,
    database_label,
    run_on_test_database,
)

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"

SIZES = (1_000, 10_000)
QUICK_SIZES = (1_000,)
LATENCIES = (0.0, 0.020)
REPEAT = 3
#: Recipients of the warm-up broadcast: more than ``max_concurrency`` (256), so the transport's
#: connection pool is as full after it as in a process that has been sending for a while.
WARMUP_RECIPIENTS = 300
THROTTLED_FRACTION = 0.05
BASELINE_WORKERS = 10
REGION = "eu-west-1"
MESSAGE = {"type": "announcement", "text": "The meeting starts in five minutes.", "id": 12345}
TRANSPORT = "django_aws_api_gateway_websockets.transports.aws.ManagementApiTransport"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "AKIDFANOUTBENCHMARK0",
    "AWS_SECRET_ACCESS_KEY": "fanout-benchmark-not-a-secret",
    "AWS_DEFAULT_REGION": REGION,
}

#: Targets (full run): ours/baseline at 0 ms, 10,000 recipients; ours 10,000 at 20 ms; throttled
#: vs clean (ours, 20 ms, 10,000).
TARGET_RATIO = 10.0
TARGET_WALL_20MS = 1.5
TARGET_THROTTLED_SLOWDOWN = 0.20

OURS, BASELINE = "ours", "baseline"
IMPLEMENTATIONS = (OURS, BASELINE)
IMPLEMENTATION_LABELS = {
    OURS: "ours (`ManagementApiTransport`)",
    BASELINE: f"baseline (boto3 + {BASELINE_WORKERS} threads)",
}


def slower(wall: float, reference: float) -> str:
    """``"5.8 % slower"`` (or ``"faster"``): ``wall`` compared with ``reference``."""
    change = wall / reference - 1
    return f"{abs(change):.1%} {'slower' if change >= 0 else 'faster'}"


# The fake server, in a child process --------------------------------------------------------------


def serve(latency: float) -> int:
    """Child process: the fake Management API, controlled through stdin.

    ``tests/management_api.py``'s command line has no way to inject faults, so the benchmark runs
    the same :class:`ManagementApiServer` itself: the first stdout line is the URL, then every
    stdin line is a JSON command answered by one JSON line (``throttle`` ids once, ``clear``
    faults, ``stats``). End of input stops the server.
    """
    from tests.management_api import ManagementApiServer

    server = ManagementApiServer(
        "/production", auto_connect=True, record=False, latency=latency
    ).start()
    print(server.url, flush=True)
    try:
        for line in sys.stdin:
            command = json.loads(line)
            op = command.get("op")
            answer: dict[str, Any] = {"ok": True}
            if op == "throttle":
                server.throttle_once(command["ids"])
            elif op == "clear":
                server.clear_faults()
            elif op == "stats":
                answer = {**server.stats(), "cpu": time.process_time()}
            else:
                answer = {"ok": False, "error": f"unknown op {op!r}"}
            print(json.dumps(answer), flush=True)
    finally:
        server.stop()
    return 0


class FakeServer:
    """The parent's handle on the child process running the fake."""

    def __init__(self, latency: float) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), *sys.path]))}
        self.latency = latency
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.fanout", "--serve", "--latency", str(latency)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        if not self.url.startswith("http://"):
            self.close()
            raise BenchmarkError(f"the fake Management API did not start (said {self.url!r})")
        self._lock = threading.Lock()

    def command(self, op: str, **fields: Any) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        with self._lock:
            self.process.stdin.write(json.dumps({"op": op, **fields}) + "\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
        if not line:
            raise BenchmarkError(f"the fake Management API exited (status {self.process.poll()})")
        answer = json.loads(line)
        if answer.get("ok") is False:
            raise BenchmarkError(f"the fake refused {op}: {answer}")
        return answer

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# Measurements -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    latency: float
    recipients: int
    throttled: bool

    @property
    def label(self) -> str:
        state = "throttled 5 %" if self.throttled else "clean"
        return f"{self.latency * 1000:.0f} ms, {self.recipients:,}, {state}"


@dataclass
class Sample:
    wall: float
    cpu: float
    server_cpu: float


@dataclass
class Measured:
    recipients: int
    samples: list[Sample] = field(default_factory=list)

    @property
    def wall(self) -> float:
        return statistics.median(s.wall for s in self.samples)

    @property
    def rate(self) -> float:
        return self.recipients / self.wall

    @property
    def cpu_us(self) -> float:
        return statistics.median(s.cpu for s in self.samples) / self.recipients * 1e6

    @property
    def server_cpu_us(self) -> float:
        """The fake's CPU per recipient (its requests, retries included)."""
        return statistics.median(s.server_cpu for s in self.samples) / self.recipients * 1e6


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fanout", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1,000 recipients only (CI)")
    parser.add_argument("--no-check", action="store_true", help="report targets, exit 0 anyway")
    parser.add_argument("--repeat", type=int, default=REPEAT, help="runs per measurement (3)")
    parser.add_argument(
        "--max-rate",
        metavar="RATE",
        help="TRANSPORT_OPTIONS max_rate for ours ('none': uncapped; default: the package's)",
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--latency", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.max_rate is not None:
        try:
            args.max_rate = None if args.max_rate.lower() == "none" else float(args.max_rate)
        except ValueError:
            parser.error("--max-rate takes a number of sends per second or 'none'")
        args.custom_rate = True
    else:
        args.custom_rate = False
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve:
        return serve(args.latency)
    os.environ.update(FAKE_CREDENTIALS)
    for name in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE"):
        os.environ.pop(name, None)
    return run_on_test_database("dagw_fanout", lambda: Bench(args).run())


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.sizes = QUICK_SIZES if args.quick else SIZES
        self.results: dict[tuple[Scenario, str], Measured] = {}
        self.first: dict[tuple[float, str], float] = {}
        self.client_setup: dict[float, float] = {}
        self.retry_mode = ""
        self.started = time.perf_counter()

    # Set-up ------------------------------------------------------------------------------------

    def run(self) -> int:
        from django_aws_api_gateway_websockets.models import ApiGateway

        self.gateway = ApiGateway.objects.create(
            name="fanout",
            api_id="fanout0api",
            region=REGION,
            stage="production",
            target_base_endpoint="https://testserver/ws",
        )
        self.ids = {WARMUP_RECIPIENTS: self.insert("fanout-warmup", WARMUP_RECIPIENTS)}
        for size in self.sizes:
            self.ids[size] = self.insert(f"fanout-{size}", size)
        for latency in LATENCIES:
            self.run_latency(latency)
        return self.report()

    def insert(self, channel: str, count: int) -> list[str]:
        from django.utils import timezone as dj_timezone

        from django_aws_api_gateway_websockets.models import WebSocketSession
        from django_aws_api_gateway_websockets.testing import new_connection_id

        now = dj_timezone.now()
        ids = [new_connection_id() for _ in range(count)]
        WebSocketSession.objects.bulk_create(
            [
                WebSocketSession(
                    connection_id=cid,
                    gateway=self.gateway,
                    channel_name=channel,
                    state=WebSocketSession.State.OPEN,
                    connected_at=now,
                    last_seen_at=now,
                    source_ip="203.0.113.7",
                    user_agent="benchmark",
                )
                for cid in ids
            ],
            batch_size=500,
        )
        return ids

    @staticmethod
    def channel(recipients: int) -> str:
        return "fanout-warmup" if recipients == WARMUP_RECIPIENTS else f"fanout-{recipients}"

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
        if self.args.custom_rate:
            ws["TRANSPORT_OPTIONS"]["max_rate"] = self.args.max_rate
        with override_settings(AWS_API_GATEWAY_WEBSOCKETS=ws):
            gateway_cache.clear()
            yield
        gateway_cache.clear()

    def run_latency(self, latency: float) -> None:
        import boto3

        server = FakeServer(latency)
        try:
            with self.transport_settings(server.url):
                started = time.perf_counter()
                client = boto3.client(
                    "apigatewaymanagementapi", endpoint_url=server.url, region_name=REGION
                )
                self.client_setup[latency] = time.perf_counter() - started
                self.retry_mode = client.meta.config.retries.get("mode", "legacy")
                senders: dict[str, Callable[[int], int]] = {
                    OURS: self.send_ours,
                    BASELINE: lambda n: self.send_baseline(client, n),
                }
                # One warm-up broadcast per implementation: connections are opened, the gateway
                # cache and boto3's credentials loaded. Its time is the "first broadcast".
                for name, send in senders.items():
                    sample = self.measure(server, name, send, WARMUP_RECIPIENTS, [])
                    self.first[(latency, name)] = sample.wall
                for size in self.sizes:
                    self.run_size(server, senders, latency, size)
        finally:
            server.close()

    def run_size(
        self,
        server: FakeServer,
        senders: dict[str, Callable[[int], int]],
        latency: float,
        size: int,
    ) -> None:
        """``--repeat`` rounds; each round runs every (implementation, clean/throttled) pair once,
        in an order that alternates, so that the ratios compare runs made close in time."""
        scenarios = [Scenario(latency, size, throttled) for throttled in (False, True)]
        runs = [(s, name) for name in IMPLEMENTATIONS for s in scenarios]
        for key in runs:
            self.results[key] = Measured(size)
        throttle = self.throttled_ids(size)
        for index in range(self.args.repeat):
            for scenario, name in runs if index % 2 == 0 else runs[::-1]:
                ids = throttle if scenario.throttled else []
                sample = self.measure(server, name, senders[name], size, ids)
                self.results[(scenario, name)].samples.append(sample)
            for scenario in scenarios:
                self.progress(scenario, index)

    def throttled_ids(self, size: int) -> list[str]:
        count = int(size * THROTTLED_FRACTION)
        return random.Random(size).sample(self.ids[size], count)

    def progress(self, scenario: Scenario, index: int) -> None:
        ours = self.results[(scenario, OURS)].samples[-1].wall
        base = self.results[(scenario, BASELINE)].samples[-1].wall
        print(
            f"[{time.perf_counter() - self.started:6.1f}s] {scenario.label} run {index + 1}: "
            f"ours {ours:.3f}s, baseline {base:.3f}s",
            file=sys.stderr,
            flush=True,
        )

    # One broadcast -----------------------------------------------------------------------------

    def measure(
        self,
        server: FakeServer,
        name: str,
        send: Callable[[int], int],
        size: int,
        throttle: list[str],
    ) -> Sample:
        """Time one broadcast to the ``size`` channel; check everyone got it exactly as planned."""
        if throttle:
            server.command("throttle", ids=throttle)
        before = server.command("stats")
        gc.collect()
        cpu = time.process_time()
        wall = time.perf_counter()
        delivered = send(size)
        wall = time.perf_counter() - wall
        cpu = time.process_time() - cpu
        after = server.command("stats")
        server.command("clear")
        if delivered != size:
            raise BenchmarkError(f"{name}: {delivered} of {size} recipients reached")
        statuses = {
            code: after["status"].get(code, 0) - before["status"].get(code, 0)
            for code in set(after["status"]) | set(before["status"])
        }
        expected = {"200": size, **({"429": len(throttle)} if throttle else {})}
        if {code: n for code, n in statuses.items() if n} != expected:
            raise BenchmarkError(f"{name}: the fake answered {statuses}, expected {expected}")
        return Sample(wall, cpu, after["cpu"] - before["cpu"])

    def send_ours(self, size: int) -> int:
        from django_aws_api_gateway_websockets.models import WebSocketSession

        report = WebSocketSession.objects.filter(channel_name=self.channel(size)).send_message(
            MESSAGE
        )
        if report.failed or report.gone:
            sample = list(report.failed.items())[:3]
            raise BenchmarkError(f"ours: {report} (first failures: {sample})")
        return len(report.sent)

    def send_baseline(self, client: Any, size: int) -> int:
        from django_aws_api_gateway_websockets.models import WebSocketSession

        ids = list(
            WebSocketSession.objects.filter(channel_name=self.channel(size), connected=True)
            .order_by()
            .values_list("connection_id", flat=True)
        )
        data = json.dumps(MESSAGE)

        def post(connection_id: str) -> str:
            try:
                client.post_to_connection(ConnectionId=connection_id, Data=data)
            except Exception as exc:
                error = getattr(exc, "response", {}).get("Error", {}).get("Code")
                return error or type(exc).__name__
            return ""

        with ThreadPoolExecutor(max_workers=BASELINE_WORKERS) as pool:
            outcomes = list(pool.map(post, ids))
        errors = [outcome for outcome in outcomes if outcome]
        if errors:
            raise BenchmarkError(
                f"baseline: {len(errors)} of {len(ids)} failed (first: {errors[:3]})"
            )
        return len(outcomes)

    # Report ------------------------------------------------------------------------------------

    def targets(self) -> list[tuple[str, str, bool]]:
        """``(target, measured, met)``; none in ``--quick`` runs, where only delivery is checked."""
        if self.args.quick:
            return []
        big = max(self.sizes)
        ours0 = self.results[(Scenario(0.0, big, False), OURS)]
        base0 = self.results[(Scenario(0.0, big, False), BASELINE)]
        clean20 = self.results[(Scenario(0.020, big, False), OURS)]
        throttled20 = self.results[(Scenario(0.020, big, True), OURS)]
        ratio = ours0.rate / base0.rate
        slowdown = throttled20.wall / clean20.wall - 1
        return [
            (
                f"ours ≥ {TARGET_RATIO:.0f}x baseline sends/s at 0 ms, {big:,} recipients",
                f"{ratio:.1f}x",
                ratio >= TARGET_RATIO,
            ),
            (
                f"ours sends to {big:,} recipients at 20 ms in ≤ {TARGET_WALL_20MS} s",
                f"{clean20.wall:.3f} s",
                clean20.wall <= TARGET_WALL_20MS,
            ),
            (
                f"throttled ≤ {TARGET_THROTTLED_SLOWDOWN:.0%} slower than clean "
                f"(ours, 20 ms, {big:,})",
                f"{slowdown:+.1%}",
                slowdown <= TARGET_THROTTLED_SLOWDOWN,
            ),
        ]

    def report(self) -> int:
        from django.db import connection

        lines = [f"# Fan-out on {database_label()}", "", *self.versions(), ""]
        lines += [
            "| scenario | implementation | wall time (s) | sends/s | CPU per send (µs) "
            "| ours / baseline sends/s | runs (s) | fake server CPU per send (µs) |",
            "|---|---|--:|--:|--:|--:|---|--:|",
        ]
        for latency in LATENCIES:
            for size in self.sizes:
                for throttled in (False, True):
                    scenario = Scenario(latency, size, throttled)
                    base = self.results[(scenario, BASELINE)]
                    for name in IMPLEMENTATIONS:
                        measured = self.results[(scenario, name)]
                        ratio = f"**{measured.rate / base.rate:.1f}x**" if name == OURS else ""
                        runs = " / ".join(f"{s.wall:.3f}" for s in measured.samples)
                        lines.append(
                            f"| {scenario.label} | {IMPLEMENTATION_LABELS[name]} "
                            f"| {measured.wall:.3f} | {measured.rate:,.0f} "
                            f"| {measured.cpu_us:,.0f} | {ratio} | {runs} "
                            f"| {measured.server_cpu_us:,.0f} |"
                        )
        lines += ["", *self.summary(), ""]
        targets = self.targets()
        missed = [t for t in targets if not t[2]]
        if targets:
            lines += ["| target | measured | result |", "|---|--:|---|"]
            lines += [f"| {t} | {m} | {'PASS' if ok else 'FAIL'} |" for t, m, ok in targets]
        else:
            lines.append(
                "Quick run: targets are checked on the full run only; every broadcast reached "
                "every recipient (PASS)."
            )
        text = "\n".join(lines) + "\n"
        print(text)
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        suffix = "-quick" if self.args.quick else ""
        if self.args.custom_rate:
            rate = "none" if self.args.max_rate is None else f"{self.args.max_rate:g}"
            suffix += f"-max-rate-{rate}"
        path = RESULTS_DIR / f"fanout-{connection.vendor}{suffix}.md"
        path.write_text(text, encoding="utf-8")
        print(f"Written to {path}")
        if missed and not self.args.no_check:
            print("FAIL: " + "; ".join(f"{t} (measured {m})" for t, m, _ in missed))
            return 1
        print("PASS" if not missed else "FAIL (ignored: --no-check)")
        return 0

    def summary(self) -> list[str]:
        lines = []
        big = max(self.sizes)
        for latency in LATENCIES:
            clean = self.results[(Scenario(latency, big, False), OURS)]
            throttled = self.results[(Scenario(latency, big, True), OURS)]
            base_clean = self.results[(Scenario(latency, big, False), BASELINE)]
            base_throttled = self.results[(Scenario(latency, big, True), BASELINE)]
            lines.append(
                f"- At {latency * 1000:.0f} ms, {big:,} recipients: throttled is "
                f"{slower(throttled.wall, clean.wall)} than clean for ours "
                f"({slower(base_throttled.wall, base_clean.wall)} for the baseline)."
            )
        for latency in LATENCIES:
            lines.append(
                f"- First broadcast at {latency * 1000:.0f} ms ({WARMUP_RECIPIENTS} recipients, "
                f"no open connections yet): ours {self.first[(latency, OURS)]:.3f} s, baseline "
                f"{self.first[(latency, BASELINE)]:.3f} s (plus {self.client_setup[latency]:.3f} s"
                " to create its boto3 client)."
            )
        return lines

    def versions(self) -> list[str]:
        import boto3
        import django

        from django_aws_api_gateway_websockets.transports.aws import ManagementApiTransport

        database = database_description()
        now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        transport = ManagementApiTransport()
        interval = transport.rate_limiter.interval
        rate = self.args.max_rate if self.args.custom_rate else (1 / interval if interval else None)
        rate_text = "uncapped" if rate is None else f"max_rate {rate:,.0f}/s"
        return [
            f"- Python {platform.python_version()}, Django {django.get_version()}, {database}, "
            f"boto3 {boto3.__version__} (retry mode: {self.retry_mode})",
            f"- {platform.system()} {platform.machine()}, {os.cpu_count()} CPUs; {now}",
            "- ours: `ManagementApiTransport`, `TRANSPORT_OPTIONS` `endpoint_url`"
            + (f" and `max_rate={self.args.max_rate}`" if self.args.custom_rate else " only")
            + f" (max_concurrency {transport.max_concurrency}, {rate_text}); baseline: "
            f"`ThreadPoolExecutor(max_workers={BASELINE_WORKERS})`, one shared boto3 client",
            f"- Fake Management API (`tests/management_api.py`) in a child process; median of "
            f"{self.args.repeat} runs per row after one warm-up broadcast per implementation, "
            "ours and baseline alternating; CPU is this process's `time.process_time()`"
            + (" (quick run)" if self.args.quick else ""),
        ]


if __name__ == "__main__":
    sys.exit(main())
