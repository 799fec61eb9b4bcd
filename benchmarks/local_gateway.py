"""Benchmark the local API Gateway: idle connections, latency, Management API throughput, soak.

Run ``python -m benchmarks.local_gateway`` from the repository root (``--quick`` for CI). Every
part runs against real sockets, each side in its own process so that no two share a GIL:

* **gateway**: a :class:`LocalGateway` in a child process, with three deployed APIs built in its
  store: ``idle`` (no routes: connections are accepted without a backend call), ``django``
  (``$default`` two-way to a trivial Django view) and ``echo`` (``$default`` two-way to an aiohttp
  echo backend);
* **clients**: a child process holding raw WebSocket connections (a minimal RFC 6455 client on
  ``asyncio``: handshake, then it counts text frames); the soak and latency parts use the
  ``websockets`` library in this process;
* **Django**: a child process serving a trivial view (echoes the body) with Django's threaded
  WSGI server, the one ``runserver`` uses;
* **echo**: a child process with an aiohttp server echoing each message.

Parts:

1. *idle connections*: ``--connections`` (10,000) clients connect to ``idle``; the gateway's RSS
   is read before and after (after ``gc.collect()``), giving memory per connection;
2. *added latency*: one message at a time, ``--latency-messages`` times, a request to the Django
   view directly (aiohttp client, keep-alive) and the same body as a WebSocket message through the
   gateway (``websockets`` client, two-way route), alternating one by one so both see the same
   load; p50/p99 of each, and their difference (a difference of percentiles: at p99 it is noisy
   and can even be negative);
3. *Management API throughput*: the package's own ``LocalGatewayTransport`` (default options)
   posts one message to every idle connection, ``--post-rounds`` broadcasts in flight together
   (as concurrent requests of a site send them); the clients count the frames they receive, and
   the rate is frames received / time from the first submit to the last frame counted. On a
   2-core machine the three processes share both cores, so the figure drops when anything else
   runs: the table shows the CPU each side spent per POST to read it against;
4. *soak*: ``--soak-clients`` (1,000) ``websockets`` clients each send ``--soak-messages`` (100)
   numbered messages to ``echo``; every reply must come back, in order.

Exit status: 0 when every target was met (or ``--quick``/``--no-check``), 1 when a target was
missed, 2 when a part failed (lost messages, refused connections). The table goes to
``benchmarks/results/local_gateway.md`` (``local_gateway-quick.md`` for ``--quick``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
REGION = "us-east-1"
STAGE = "production"

TARGET_CONNECTIONS = 10_000
TARGET_KIB_PER_CONNECTION = 32.0
TARGET_POSTS_PER_SECOND = 10_000.0


def raise_fd_limit() -> int:
    """As many file descriptors as the hard limit allows (10,000 sockets need 10,000)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        wanted = 65536 if hard == resource.RLIM_INFINITY else hard
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        soft = wanted
    return soft


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def exit_on_stdin_eof() -> None:
    """A server child that reads no commands ends when the parent closes its stdin."""
    import threading

    def watch() -> None:
        sys.stdin.read()
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


# Child: the gateway -------------------------------------------------------------------------------


def serve_gateway(django_url: str, echo_url: str) -> int:
    """The gateway, its APIs, and a stdin command channel (``ids API``, ``rss``, ``count``)."""
    raise_fd_limit()
    from django_aws_api_gateway_websockets.local_gateway import ids
    from django_aws_api_gateway_websockets.local_gateway.config import GatewayConfig
    from django_aws_api_gateway_websockets.local_gateway.dataplane import OPEN
    from django_aws_api_gateway_websockets.local_gateway.server import LocalGateway
    from django_aws_api_gateway_websockets.local_gateway.store import (
        Api,
        Integration,
        Route,
        RouteResponse,
        Stage,
    )

    async def main() -> None:
        gateway = LocalGateway(GatewayConfig())
        store = gateway.store

        def api(name: str, backend: str | None) -> str:
            created = store.add_api(Api(api_id=name, name=name))
            if backend:
                integration = Integration(
                    ids.new_resource_id(), "HTTP_PROXY", f"{backend}/default", "POST"
                )
                created.integrations[integration.integration_id] = integration
                route = Route(
                    ids.new_resource_id(),
                    "$default",
                    target=f"integrations/{integration.integration_id}",
                    route_response_selection_expression="$default",
                )
                response = RouteResponse(ids.new_resource_id(), "$default")
                route.route_responses[response.route_response_id] = response
                created.routes[route.route_id] = route
            created.stages[STAGE] = Stage(STAGE)
            created.stages[STAGE].deployment_id = store.deploy(created).deployment_id
            return name

        await gateway.start()
        apis = {"idle": api("idle", None), "django": api("django", django_url)}
        apis["echo"] = api("echo", echo_url)
        print(
            json.dumps({"http": gateway.http_url, "ws": gateway.ws_url, "apis": apis}), flush=True
        )
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := (await reader.readline()).decode().strip():
            command, _, argument = line.partition(" ")
            if command == "ids":
                answer: Any = [
                    c.connection_id
                    for c in gateway.data_plane.connections.values()
                    if c.api_id == argument and c.state == OPEN
                ]
            elif command == "rss":
                gc.collect()
                answer = rss_kib()
            elif command == "cpu":
                answer = time.process_time()
            else:
                answer = len(gateway.data_plane.connections)
            print(json.dumps(answer), flush=True)
        await gateway.stop()

    asyncio.run(main())
    return 0


# Child: raw WebSocket clients ---------------------------------------------------------------------


class RawClient(asyncio.Protocol):
    """A minimal WebSocket client: sends the handshake, then counts the text frames it receives.

    ``websockets`` costs ~15 KiB and a task per connection on the client side; this lets one
    process hold 10,000 connections and count 10,000+ frames/s without becoming the bottleneck.
    """

    counted = 0

    def __init__(self, path: str, host: str, opened: asyncio.Future[bool]) -> None:
        self.path, self.host, self.opened = path, host, opened
        self.buffer = b""
        self.upgraded = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        key = base64.b64encode(os.urandom(16)).decode()
        self.transport.write(
            (
                f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buffer
                return
            ok = buffer.startswith(b"HTTP/1.1 101")
            if not self.opened.done():
                self.opened.set_result(ok)
            self.upgraded = True
            buffer = buffer[end + 4 :]
        pos, n = 0, len(buffer)
        while n - pos >= 2:
            length = buffer[pos + 1] & 0x7F
            head = 2 + (2 if length == 126 else 8 if length == 127 else 0)
            if n - pos < head:
                break
            if length == 126:
                length = int.from_bytes(buffer[pos + 2 : pos + 4], "big")
            elif length == 127:
                length = int.from_bytes(buffer[pos + 2 : pos + 10], "big")
            if n - pos < head + length:
                break
            if buffer[pos] & 0x0F == 0x1:
                RawClient.counted += 1
            pos += head + length
        self.buffer = buffer[pos:]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_result(False)


def serve_clients() -> int:
    """Commands on stdin: ``connect URL N`` -> connected count; ``count`` -> frames received."""
    raise_fd_limit()
    from urllib.parse import urlsplit

    async def main() -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        clients: list[RawClient] = []
        while line := (await reader.readline()).decode().strip():
            command, *args = line.split()
            if command == "connect":
                url, count = urlsplit(args[0]), int(args[1])
                connected = 0
                for start in range(0, count, 500):
                    opened = []
                    for _ in range(min(500, count - start)):
                        future: asyncio.Future[bool] = loop.create_future()
                        host = f"{url.hostname}:{url.port}"
                        _, client = await loop.create_connection(
                            lambda f=future, h=host, p=url.path: RawClient(p, h, f),
                            url.hostname,
                            url.port,
                        )
                        clients.append(client)
                        opened.append(future)
                    connected += sum(await asyncio.gather(*opened))
                answer: Any = connected
            elif command == "count":
                answer = RawClient.counted
            elif command == "cpu":
                answer = time.process_time()
            else:
                answer = None
            print(json.dumps(answer), flush=True)
        for client in clients:
            if client.transport is not None:
                client.transport.close()

    asyncio.run(main())
    return 0


# Child: Django and the echo backend ---------------------------------------------------------------


def trivial_view(request: Any) -> Any:
    from django.http import HttpResponse

    return HttpResponse(request.body, content_type="application/json")


def _urlpatterns() -> list[Any]:
    from django.urls import path

    return [path("default", trivial_view)]


def serve_django() -> int:
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["*"],
        SECRET_KEY="local-gateway-benchmark",
        ROOT_URLCONF="benchmarks.local_gateway_urls",
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
        USE_TZ=True,
    )
    django.setup()
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    exit_on_stdin_eof()
    server = ThreadedWSGIServer(("127.0.0.1", 0), QuietHandler)
    server.set_app(WSGIHandler())
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()
    return 0


def serve_echo() -> int:
    from aiohttp import web

    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await request.read())

    exit_on_stdin_eof()

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/default", echo)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        print(f"http://127.0.0.1:{port}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())
    return 0


# The parent ---------------------------------------------------------------------------------------


class Child:
    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.local_gateway", *args],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )

    def line(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"child {self.process.args} ended")
        return line.strip()

    def ask(self, command: str) -> Any:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return json.loads(self.line())

    def stop(self) -> None:
        if self.process.poll() is None:
            if self.process.stdin is not None:
                self.process.stdin.close()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def measure_latency(gateway: dict[str, Any], django_url: str, count: int) -> dict[str, float]:
    import aiohttp
    from websockets.asyncio.client import connect

    body = json.dumps({"action": "ping", "text": "x" * 64})

    async def main() -> dict[str, float]:
        direct: list[float] = []
        through: list[float] = []
        url = f"{gateway['ws']}/{gateway['apis']['django']}/{STAGE}"
        async with aiohttp.ClientSession() as session, connect(url) as ws:
            for _ in range(20):  # warm-up: keep-alive connections, Django's URL resolver
                async with session.post(f"{django_url}/default", data=body) as response:
                    await response.read()
                await ws.send(body)
                await ws.recv()
            # Alternate one by one, so both paths see the same machine load.
            for _ in range(count):
                start = time.perf_counter()
                async with session.post(f"{django_url}/default", data=body) as response:
                    await response.read()
                direct.append(time.perf_counter() - start)
                start = time.perf_counter()
                await ws.send(body)
                reply = await ws.recv()
                through.append(time.perf_counter() - start)
                if reply != body:
                    raise RuntimeError(f"wrong reply {reply!r}")
        ms = 1000.0
        return {
            "direct_p50": percentile(direct, 0.5) * ms,
            "direct_p99": percentile(direct, 0.99) * ms,
            "gateway_p50": percentile(through, 0.5) * ms,
            "gateway_p99": percentile(through, 0.99) * ms,
        }

    return asyncio.run(main())


def measure_posts(
    gateway: dict[str, Any],
    gateway_child: Child,
    clients: Child,
    ids: list[str],
    rounds: int,
    concurrency: int = 0,
) -> dict[str, float]:
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(INSTALLED_APPS=[], USE_TZ=True)
        django.setup()
    from django_aws_api_gateway_websockets.transports import POST, Outcome, Target
    from django_aws_api_gateway_websockets.transports.aws import LocalGatewayTransport

    endpoint = f"{gateway['http']}/{gateway['apis']['idle']}/{STAGE}"
    options = {"max_concurrency": concurrency} if concurrency else {}
    transport = LocalGatewayTransport(endpoint_url=endpoint, **options)
    target = Target(endpoint, REGION)
    payload = json.dumps({"type": "broadcast", "text": "hello"}).encode()

    def broadcast() -> int:
        batch = transport.open(POST, payload)
        batch.submit(target, ids)
        results = batch.completed() + batch.finish()
        return sum(1 for r in results if r.outcome is Outcome.OK)

    def broadcasts(count: int) -> int:
        """``count`` broadcasts in flight together, as concurrent requests of a site send."""
        batches = [transport.open(POST, payload) for _ in range(count)]
        for batch in batches:
            batch.submit(target, ids)
        results = [r for batch in batches for r in batch.completed() + batch.finish()]
        return sum(1 for r in results if r.outcome is Outcome.OK)

    broadcast()  # warm-up: fills the transport's connection pool
    before = clients.ask("count")
    cpu = (time.process_time(), gateway_child.ask("cpu"), clients.ask("cpu"))
    expected = len(ids) * rounds
    start = time.perf_counter()
    ok = broadcasts(rounds)
    deadline = time.monotonic() + 30
    received = clients.ask("count") - before
    while received < expected and time.monotonic() < deadline:
        time.sleep(0.01)
        received = clients.ask("count") - before
    wall = time.perf_counter() - start
    per_post = 1e6 / max(1, expected)
    return {
        "posts": expected,
        "ok": ok,
        "received": received,
        "wall": wall,
        "cpu_sender": (time.process_time() - cpu[0]) * per_post,
        "cpu_gateway": (gateway_child.ask("cpu") - cpu[1]) * per_post,
        "cpu_clients": (clients.ask("cpu") - cpu[2]) * per_post,
    }


def measure_soak(gateway: dict[str, Any], clients_count: int, messages: int) -> dict[str, Any]:
    from websockets.asyncio.client import connect

    url = f"{gateway['ws']}/{gateway['apis']['echo']}/{STAGE}"

    async def client(number: int) -> tuple[int, int]:
        async with connect(url, open_timeout=60, max_queue=None) as ws:

            async def send() -> None:
                for seq in range(messages):
                    await ws.send(json.dumps({"action": "soak", "client": number, "seq": seq}))

            sender = asyncio.create_task(send())
            received = out_of_order = 0
            expected = 0
            try:
                while received < messages:
                    reply = json.loads(await asyncio.wait_for(ws.recv(), 60))
                    received += 1
                    if reply["seq"] != expected or reply["client"] != number:
                        out_of_order += 1
                    expected = reply["seq"] + 1
            except TimeoutError:
                pass
            await sender
            return received, out_of_order

    async def main() -> dict[str, Any]:
        start = time.perf_counter()
        results = []
        # connect in waves so 1,000 handshakes don't all queue at once
        tasks = []
        for number in range(clients_count):
            tasks.append(asyncio.create_task(client(number)))
            if number % 200 == 199:
                await asyncio.sleep(0.05)
        results = await asyncio.gather(*tasks)
        wall = time.perf_counter() - start
        received = sum(r for r, _ in results)
        return {
            "sent": clients_count * messages,
            "received": received,
            "lost": clients_count * messages - received,
            "out_of_order": sum(o for _, o in results),
            "wall": wall,
        }

    return asyncio.run(main())


def run(args: argparse.Namespace) -> int:
    raise_fd_limit()
    quick = args.quick
    connections = args.connections or (1_000 if quick else TARGET_CONNECTIONS)
    soak_clients = args.soak_clients or (100 if quick else 1_000)
    soak_messages = args.soak_messages or (20 if quick else 100)
    latency_messages = args.latency_messages or (200 if quick else 2_000)
    rounds = args.post_rounds or (5 if quick else 10)

    load_before = os.getloadavg()[0]
    children: list[Child] = []
    try:
        django_child = Child("--serve-django")
        echo_child = Child("--serve-echo")
        children += [django_child, echo_child]
        django_url, echo_url = django_child.line(), echo_child.line()
        gateway_child = Child("--serve-gateway", django_url, echo_url)
        children.append(gateway_child)
        gateway = json.loads(gateway_child.line())
        clients = Child("--serve-clients")
        children.append(clients)

        print(f"idle connections: {connections} ...", file=sys.stderr, flush=True)
        rss_before = gateway_child.ask("rss")
        start = time.perf_counter()
        connected = clients.ask(
            f"connect {gateway['ws']}/{gateway['apis']['idle']}/{STAGE} {connections}"
        )
        connect_wall = time.perf_counter() - start
        time.sleep(0.5)
        rss_after = gateway_child.ask("rss")
        ids = gateway_child.ask(f"ids {gateway['apis']['idle']}")
        kib_per_connection = (rss_after - rss_before) / max(1, connected)

        print("Management API throughput ...", file=sys.stderr, flush=True)
        posts = measure_posts(
            gateway, gateway_child, clients, ids, rounds, args.transport_concurrency
        )
        posts_per_second = posts["received"] / posts["wall"]

        print("latency ...", file=sys.stderr, flush=True)
        latency = measure_latency(gateway, django_url, latency_messages)

        print("soak ...", file=sys.stderr, flush=True)
        soak = measure_soak(gateway, soak_clients, soak_messages)
    finally:
        for child in reversed(children):
            child.stop()

    failures = []
    if connected < connections:
        failures.append(f"{connections - connected} connections refused")
    if posts["received"] < posts["posts"]:
        failures.append(f"{posts['posts'] - posts['received']} posted messages not received")
    if soak["lost"] or soak["out_of_order"]:
        failures.append(f"soak lost {soak['lost']}, out of order {soak['out_of_order']}")
    cpu_per_post = posts["cpu_sender"] + posts["cpu_gateway"] + posts["cpu_clients"]
    ceiling = (os.cpu_count() or 1) * 1e6 / max(cpu_per_post, 1e-9)
    missed = []
    if connections >= TARGET_CONNECTIONS and kib_per_connection >= TARGET_KIB_PER_CONNECTION:
        missed.append("memory per connection")
    if posts_per_second < TARGET_POSTS_PER_SECOND:
        missed.append("Management API throughput")

    def ok(good: bool, checked: bool = True) -> str:
        if not checked:
            return "not checked (short run)"
        return "met" if good else "**missed**"

    rows = [
        (
            "Concurrent idle connections held",
            f"{connected:,} of {connections:,}",
            f"≥ {TARGET_CONNECTIONS:,}",
            ok(connected >= TARGET_CONNECTIONS, connections >= TARGET_CONNECTIONS),
        ),
        (
            "Gateway memory per idle connection",
            f"{kib_per_connection:.1f} KiB "
            f"(RSS {rss_before / 1024:.0f} → {rss_after / 1024:.0f} MiB)",
            f"< {TARGET_KIB_PER_CONNECTION:.0f} KiB",
            ok(kib_per_connection < TARGET_KIB_PER_CONNECTION),
        ),
        ("Time to open them", f"{connect_wall:.1f} s ({connected / connect_wall:,.0f}/s)", "", ""),
        (
            "Management API POSTs delivered (package transport → live sockets)",
            f"{posts_per_second:,.0f}/s ({posts['received']:,} frames in {posts['wall']:.2f} s)",
            f"≥ {TARGET_POSTS_PER_SECOND:,.0f}/s",
            ok(posts_per_second >= TARGET_POSTS_PER_SECOND, not quick),
        ),
        (
            "CPU per POST: sender (transport) / gateway / receiving clients",
            f"{posts['cpu_sender']:.0f} / {posts['cpu_gateway']:.0f} / "
            f"{posts['cpu_clients']:.0f} µs (all three on this machine's "
            f"{os.cpu_count()} cores: at most {ceiling:,.0f}/s if nothing else ran)",
            "",
            "",
        ),
        (
            "Message to trivial Django view, direct HTTP (p50 / p99)",
            f"{latency['direct_p50']:.2f} / {latency['direct_p99']:.2f} ms",
            "",
            "",
        ),
        (
            "Same message through the gateway, round trip (p50 / p99)",
            f"{latency['gateway_p50']:.2f} / {latency['gateway_p99']:.2f} ms",
            "",
            "",
        ),
        (
            "Added by the gateway (p50 / p99)",
            f"{latency['gateway_p50'] - latency['direct_p50']:.2f} / "
            f"{latency['gateway_p99'] - latency['direct_p99']:.2f} ms",
            "",
            "",
        ),
        (
            f"Soak: {soak_clients:,} clients x {soak_messages} messages (echo backend)",
            f"{soak['received']:,} of {soak['sent']:,} replies, {soak['lost']} lost, "
            f"{soak['out_of_order']} out of order, {soak['wall']:.1f} s",
            "0 lost, order kept",
            ok(not soak["lost"] and not soak["out_of_order"]),
        ),
    ]
    lines = [
        f"# Local gateway benchmark{' (quick)' if quick else ''}",
        "",
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, {platform.machine()}; load average before / after the run: "
        f"{load_before:.2f} / {os.getloadavg()[0]:.2f} (other work on the machine lowers the "
        "POST rate: read it with the CPU per POST)",
        "",
        "| measure | result | target | |",
        "|---|---|---|---|",
        *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows],
        "",
    ]
    table = "\n".join(lines)
    print(table)
    RESULTS_DIR.mkdir(exist_ok=True)
    name = "local_gateway-quick.md" if quick else "local_gateway.md"
    (RESULTS_DIR / name).write_text(table)
    if failures:
        print("FAILED: " + "; ".join(failures), file=sys.stderr)
        return 2
    if missed and not (quick or args.no_check):
        print("Targets missed: " + ", ".join(missed), file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short run, targets not checked")
    parser.add_argument("--no-check", action="store_true", help="exit 0 even if a target is missed")
    parser.add_argument("--connections", type=int, default=0)
    parser.add_argument("--soak-clients", type=int, default=0)
    parser.add_argument("--soak-messages", type=int, default=0)
    parser.add_argument("--latency-messages", type=int, default=0)
    parser.add_argument("--post-rounds", type=int, default=0)
    parser.add_argument(
        "--transport-concurrency",
        type=int,
        default=0,
        help="max_concurrency of the transport (default: the package default, 256)",
    )
    parser.add_argument("--serve-gateway", nargs=2, metavar=("DJANGO_URL", "ECHO_URL"))
    parser.add_argument("--serve-clients", action="store_true")
    parser.add_argument("--serve-django", action="store_true")
    parser.add_argument("--serve-echo", action="store_true")
    args = parser.parse_args(argv)
    if args.serve_gateway:
        return serve_gateway(*args.serve_gateway)
    if args.serve_clients:
        return serve_clients()
    if args.serve_django:
        return serve_django()
    if args.serve_echo:
        return serve_echo()
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
