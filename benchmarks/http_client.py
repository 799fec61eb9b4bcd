"""Benchmark the Management API's HTTP client: the hand-written parser it had, ``httptools``
(what it has now) and aiohttp's client, side by side in one run.

Run ``python -m benchmarks.http_client`` from the repository root (``--quick`` for CI). Each
client sends ``--requests`` (default 10,000) signed ``POST @connections/{id}`` requests to the fake
Management API (``tests/management_api.py``, in a child process so its CPU is not ours) with
20 ms added to every answer, 256 in flight over keep-alive connections. Measured per client:
wall time, sends per second, and this process's CPU time per send (``time.process_time``, all
threads). The clients run in alternating order, ``--repeat`` times (median shown).

Two more rows run the whole transport (``ManagementApiTransport.open(POST)``: signing, the
concurrency and rate caps, retries, results) to 10,000 recipients, with its default
``max_rate`` (10,000/s) and uncapped: the target is at least 10,000 sends/s from one process.

Every answer must be a 200, otherwise the run stops (exit status 2); exit status 1 when the
transport misses the target (not with ``--quick``/``--no-check``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from urllib.parse import urlsplit

from benchmarks import legacy_http
from benchmarks.common import BenchmarkError
from benchmarks.fanout import FAKE_CREDENTIALS, FakeServer
from django_aws_api_gateway_websockets.transports import POST, Target
from django_aws_api_gateway_websockets.transports import http as new_http
from django_aws_api_gateway_websockets.transports.sigv4 import Credentials, Signer, payload_hash

RESULTS_DIR = Path(__file__).resolve().parent / "results"
LATENCY = 0.020
IN_FLIGHT = 256
REGION = "eu-west-1"
PAYLOAD = b'{"type":"announcement","text":"The meeting starts in five minutes.","id":12345}'
TARGET_SENDS_PER_SECOND = 10_000


@dataclass
class Sample:
    wall: float
    cpu: float
    count: int
    server_cpu: float = 0.0

    @property
    def rate(self) -> float:
        return self.count / self.wall

    @property
    def cpu_us(self) -> float:
        return self.cpu / self.count * 1e6

    @property
    def server_cpu_us(self) -> float:
        return self.server_cpu / self.count * 1e6


def _ids(count: int) -> list[str]:
    return [f"bench{i:09d}AA=" for i in range(count)]


class _Requests:
    """Signed request heads for the fake, built the way the transport builds them."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.host_header = f"{self.host}:{self.port}"
        self.base = parts.path.rstrip("/")
        self.signer = Signer(
            Credentials(
                FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"], FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
            ),
            REGION,
        )
        self.body_hash = payload_hash(PAYLOAD)

    def headers(self, connection_id: str) -> tuple[str, list[tuple[str, str]]]:
        path = f"{self.base}/@connections/{connection_id}"
        signed = self.signer.headers(
            POST, self.host_header, path, self.body_hash, self.signer.amz_date()
        )
        return path, [*signed, ("Content-Length", str(len(PAYLOAD)))]

    def head(self, connection_id: str) -> bytes:
        path, headers = self.headers(connection_id)
        lines = [f"POST {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers), "\r\n"]
        return "\r\n".join(lines).encode("latin-1")


async def _fan(ids: list[str], send: Callable[[str], Awaitable[int]]) -> Sample:
    """Warm the pool (one request per slot, untimed), then time ``ids`` with 256 in flight."""
    await asyncio.gather(*(send(connection_id) for connection_id in ids[:IN_FLIGHT]))
    cpu, wall = time.process_time(), time.perf_counter()
    queue = iter(ids)
    bad: list[int] = []

    async def worker() -> None:
        for connection_id in queue:
            status = await send(connection_id)
            if status != 200:
                bad.append(status)

    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    sample = Sample(time.perf_counter() - wall, time.process_time() - cpu, len(ids))
    if bad:
        raise BenchmarkError(f"{len(bad)} answers were not 200 (first: {bad[0]})")
    return sample


Client = Callable[[list[str]], Awaitable[Sample]]


def _with_pool(module: ModuleType, requests: _Requests) -> Client:
    async def run(ids: list[str]) -> Sample:
        pool = module.ConnectionPool(requests.host, requests.port, False)

        async def send(connection_id: str) -> int:
            response = await module.request(pool, requests.head(connection_id), PAYLOAD, 10.0)
            return response.status

        try:
            return await _fan(ids, send)
        finally:
            pool.close()

    return run


def _aiohttp(requests: _Requests, url: str) -> Client:
    async def run(ids: list[str]) -> Sample:
        import aiohttp

        connector = aiohttp.TCPConnector(limit=IN_FLIGHT)
        async with aiohttp.ClientSession(connector=connector) as session:
            origin = f"http://{requests.host_header}"

            async def send(connection_id: str) -> int:
                path, headers = requests.headers(connection_id)
                async with session.post(
                    origin + path, data=PAYLOAD, headers=dict(headers)
                ) as response:
                    await response.read()
                    return response.status

            return await _fan(ids, send)

    return run


def measure_client(run: Client, ids: list[str]) -> Sample:
    return asyncio.run(run(ids))


def measure_transport(url: str, ids: list[str], max_rate: float | None) -> Sample:
    from django_aws_api_gateway_websockets.transports.aws import ManagementApiTransport

    transport = ManagementApiTransport(endpoint_url=url, max_rate=max_rate)
    target = Target(url, REGION)
    # Warm the loop thread, the pool and the credential chain, as a running process has them.
    warm = transport.open(POST, PAYLOAD)
    warm.submit(target, ids[: IN_FLIGHT + 44])
    warm.finish()
    cpu, wall = time.process_time(), time.perf_counter()
    batch = transport.open(POST, PAYLOAD)
    batch.submit(target, ids)
    results = batch.finish()
    sample = Sample(time.perf_counter() - wall, time.process_time() - cpu, len(ids))
    failed = [r for r in results if r.outcome.value != "ok"]
    if len(results) != len(ids) or failed:
        raise BenchmarkError(f"transport: {len(failed)} of {len(results)} not delivered")
    return sample


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2,000 requests, one round")
    parser.add_argument("--no-check", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.requests, args.repeat = 2_000, 1
    os.environ.update(FAKE_CREDENTIALS)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()

    ids = _ids(args.requests)
    server = FakeServer(LATENCY)
    try:
        requests = _Requests(server.url)
        clients = {
            "old: hand-written parser": _with_pool(legacy_http, requests),
            "new: httptools": _with_pool(new_http, requests),
            "aiohttp client": _aiohttp(requests, server.url),
        }
        samples: dict[str, list[Sample]] = {name: [] for name in clients}
        transports = {
            "transport, max_rate 10,000/s (default)": 10_000.0,
            "transport, max_rate none": None,
        }
        samples.update({name: [] for name in transports})
        measure_client(clients["new: httptools"], ids[:500])  # warm-up
        for round_ in range(args.repeat):
            order = list(clients) if round_ % 2 == 0 else list(reversed(clients))
            for name in order:
                before = server.command("stats")["cpu"]
                samples[name].append(measure_client(clients[name], ids))
                samples[name][-1].server_cpu = server.command("stats")["cpu"] - before
                print(
                    f"round {round_ + 1}: {name}: {samples[name][-1].rate:,.0f}/s", file=sys.stderr
                )
            for name, rate in transports.items():
                before = server.command("stats")["cpu"]
                samples[name].append(measure_transport(server.url, ids, rate))
                samples[name][-1].server_cpu = server.command("stats")["cpu"] - before
                print(
                    f"round {round_ + 1}: {name}: {samples[name][-1].rate:,.0f}/s", file=sys.stderr
                )
    except BenchmarkError as error:
        print(f"Benchmark aborted: {error}", file=sys.stderr)
        return 2
    finally:
        server.close()

    import aiohttp
    import httptools

    lines = [
        "# HTTP client: old parser, httptools, aiohttp",
        "",
        f"{args.requests:,} signed POSTs per run to the fake Management API (child process), "
        f"{LATENCY * 1000:.0f} ms per answer, {IN_FLIGHT} in flight, keep-alive; median of "
        f"{args.repeat}. Python {platform.python_version()}, httptools {httptools.__version__}, "
        f"aiohttp {aiohttp.__version__}, {os.cpu_count()} CPUs.",
        "",
        "| client | wall (s) | sends/s | CPU per send (µs) | fake server's CPU per send (µs) |",
        "|---|---:|---:|---:|---:|",
    ]
    medians: dict[str, Sample] = {}
    for name, runs in samples.items():
        med = Sample(
            statistics.median(s.wall for s in runs),
            statistics.median(s.cpu for s in runs),
            runs[0].count,
            statistics.median(s.server_cpu for s in runs),
        )
        medians[name] = med
        lines.append(
            f"| {name} | {med.wall:.2f} | {med.rate:,.0f} | {med.cpu_us:.0f} "
            f"| {med.server_cpu_us:.0f} |"
        )
    old, new = medians["old: hand-written parser"], medians["new: httptools"]
    lines += [
        "",
        f"httptools vs the hand-written parser: {new.cpu_us / old.cpu_us - 1:+.0%} CPU per send; "
        f"aiohttp: {medians['aiohttp client'].cpu_us / new.cpu_us:.1f}x httptools' CPU per send.",
    ]
    default = medians["transport, max_rate 10,000/s (default)"]
    met = (
        default.rate >= TARGET_SENDS_PER_SECOND
        or medians["transport, max_rate none"].rate >= TARGET_SENDS_PER_SECOND
    )
    lines.append(
        f"Target: the transport sends at least {TARGET_SENDS_PER_SECOND:,}/s from one process: "
        f"{'met' if met else 'MISSED'} (default {default.rate:,.0f}/s)."
    )
    table = "\n".join(lines) + "\n"
    print(table)
    RESULTS_DIR.mkdir(exist_ok=True)
    name = "http-client-quick.md" if args.quick else "http-client.md"
    (RESULTS_DIR / name).write_text(table)
    return 0 if met or args.quick or args.no_check else 1


if __name__ == "__main__":
    sys.exit(main())
