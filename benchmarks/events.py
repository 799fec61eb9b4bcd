"""Benchmark the WebSocket events API Gateway sends to Django: SQL queries and events per second.

Run ``python -m benchmarks.events`` from the repository root (``scripts/bench`` runs it on SQLite
and on PostgreSQL). The program configures Django with ``tests.settings``, creates its own test
database, drives :class:`~django_aws_api_gateway_websockets.views.WebSocketView` in process with
:class:`~django_aws_api_gateway_websockets.testing.GatewayClient` and Django's test ``Client``,
and destroys the database at the end. ``DAGW_TEST_DATABASE=postgresql`` selects PostgreSQL (the
database is ``test_`` + ``DAGW_PG_NAME``, default ``test_dagw_bench``).

For each event type it measures

* the SQL statements one event runs (transaction statements excluded), the maximum over a few
  events on a warmed-up process, checked against a target on PostgreSQL;
* events per second through the test client, in rounds interleaved with a baseline: a bare Django
  view doing one trivial query through the same client, so the rate can be read as a ratio.

Exit status: 0 when every response was 200 and (on PostgreSQL) every query target was met, 1 when
a target was missed, 2 when an event was refused or the run failed.
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import json
import os
import platform
import re
import statistics
import sys
import time
import types
from collections.abc import Callable, Iterator
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

RESULTS_DIR = Path(__file__).resolve().parent / "results"

#: Statements that only delimit transactions; they are not counted as queries.
TRANSACTION_STATEMENT_RE = re.compile(
    r"^\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE\s+SAVEPOINT)\b", re.IGNORECASE
)
TABLE_PREFIX = "django_aws_api_gateway_websockets_"

#: Events per type: full run and ``--quick`` run (split into rounds).
DEFAULT_EVENTS, DEFAULT_ROUNDS = 2000, 10
QUICK_EVENTS, QUICK_ROUNDS = 500, 5
#: Events per type played (and thrown away) before anything is measured.
WARMUP_EVENTS = 50
#: Events per type whose queries are captured; the table reports the maximum.
CAPTURED_EVENTS = 5

MESSAGE_BODY = {"action": "echo"}
GATEWAY_API_ID = "bench0api0id"


@dataclass(frozen=True)
class Kind:
    key: str
    label: str
    #: Most queries allowed per event on PostgreSQL (``None``: no target).
    target: int | None


KINDS = (
    Kind("bare", "bare Django view (baseline, 1 trivial query)", None),
    Kind("connect_public", "`$connect` without token (/public/)", 2),
    Kind("connect_token", "`$connect` with token (/ws/)", 3),
    Kind("message", 'message `{"action": "echo"}` (/ws/)', 1),
    Kind("disconnect", "`$disconnect` (/ws/)", 1),
)


@dataclass
class Measured:
    queries: list[list[str]] = field(default_factory=list)  # statements per captured event
    elapsed_ns: list[int] = field(default_factory=list)  # per round
    events: list[int] = field(default_factory=list)  # per round

    @property
    def max_queries(self) -> int:
        return max(len(q) for q in self.queries)

    @property
    def worst(self) -> list[str]:
        return max(self.queries, key=len)

    @property
    def rate(self) -> float:
        return sum(self.events) / (sum(self.elapsed_ns) / 1e9)

    @property
    def mean_us(self) -> float:
        return sum(self.elapsed_ns) / sum(self.events) / 1e3

    def round_rates(self) -> list[float]:
        return [n / (ns / 1e9) for n, ns in zip(self.events, self.elapsed_ns, strict=True)]


def is_transaction_statement(sql: str) -> bool:
    return bool(TRANSACTION_STATEMENT_RE.match(sql))


def summarize_statement(sql: str) -> str:
    """``UPDATE websockettoken … RETURNING``: the verb, the table and what makes it special."""
    text = " ".join(sql.split())
    verb = text.split(" ", 1)[0].upper()
    patterns = {
        "SELECT": r"\bFROM\s+(\S+)",
        "INSERT": r"^INSERT\s+INTO\s+(\S+)",
        "UPDATE": r"^UPDATE\s+(\S+)",
        "DELETE": r"^DELETE\s+FROM\s+(\S+)",
    }
    match = re.search(patterns.get(verb, r"$^"), text, re.IGNORECASE)
    table = match.group(1).strip('"`').removeprefix(TABLE_PREFIX) if match else ""
    parts = [verb, table] if table else [verb]
    upper = text.upper()
    if " JOIN " in upper:
        parts.append("JOIN")
    if "ON CONFLICT" in upper:
        parts.append("ON CONFLICT")
    if " RETURNING " in upper:
        parts.append("RETURNING")
    return " ".join(parts)


def shorten_sql(sql: str, limit: int = 400) -> str:
    """One line, without the table prefix and a long ``SELECT`` column list."""
    text = " ".join(sql.split()).replace(TABLE_PREFIX, "…_")
    text = re.sub(r"^SELECT (.{80,}?) FROM ", "SELECT … FROM ", text)
    return text if len(text) <= limit else text[:limit] + " …"


def reply_of(response: Any) -> Any:
    try:
        return json.loads(response.content)
    except ValueError:
        return None


def ip_addresses(start: str = "2001:db8::1") -> Iterator[str]:
    """Distinct client addresses (documentation range; only header values, never contacted),
    so each ``$connect`` counts against its own IP window."""
    address = ipaddress.IPv6Address(start)
    while True:
        yield str(address)
        address += 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.events", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short run (for CI)")
    parser.add_argument("--events", type=int, help="events per type (default 2000, quick 500)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 10, quick 5)")
    args = parser.parse_args(argv)
    if args.events is None:
        args.events = QUICK_EVENTS if args.quick else DEFAULT_EVENTS
    if args.rounds is None:
        args.rounds = QUICK_ROUNDS if args.quick else DEFAULT_ROUNDS
    if args.rounds < 1 or args.events < args.rounds:
        parser.error("--events must be at least --rounds, and --rounds at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_on_test_database("dagw_bench", lambda: Bench(args).run())


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.results = {kind.key: Measured() for kind in KINDS}
        self.ips = ip_addresses()

    # Set-up ------------------------------------------------------------------------------------

    def run(self) -> int:
        with self.environment():
            self.play_round(WARMUP_EVENTS, record=False)
            self.capture_queries()
            per_round = self.args.events // self.args.rounds
            for _ in range(self.args.rounds):
                self.play_round(per_round, record=True)
        return self.report()

    @contextmanager
    def environment(self) -> Iterator[None]:
        """The benchmark's settings, gateway, user and clients, for the duration of the block."""
        from django.conf import settings
        from django.contrib.auth import get_user_model
        from django.test import Client, override_settings

        from django_aws_api_gateway_websockets.gateways import gateway_cache
        from django_aws_api_gateway_websockets.models import ApiGateway
        from django_aws_api_gateway_websockets.testing import GatewayClient

        # Generous (but active) limits: every $connect still pays for its rate-limit check, and
        # none is refused. GATEWAY_SECRETS and the rest come from tests.settings.
        ws_overrides = {
            **settings.AWS_API_GATEWAY_WEBSOCKETS,
            "CONNECT_LIMIT_PER_IP": 10**9,
            "CONNECT_LIMIT_PER_USER": 10**9,
            "TOKEN_LIFETIME": 3600,
        }
        with override_settings(
            AWS_API_GATEWAY_WEBSOCKETS=ws_overrides, ROOT_URLCONF=self._urlconf()
        ):
            gateway_cache.clear()
            self.gateway = ApiGateway.objects.create(
                name="bench",
                api_id=GATEWAY_API_ID,
                region="eu-west-1",
                stage="production",
                target_base_endpoint="https://testserver/ws",
                default_channel_name="lobby",
            )
            self.user = get_user_model().objects.create_user(username="bench", password="pw")
            client = Client()
            self.public = GatewayClient(client, self.gateway, path="/public/")
            self.chat = GatewayClient(client, self.gateway, path="/ws/")
            self.bare_meta = self._bare_meta()
            self.client = client
            self.gateway_cache = gateway_cache
            try:
                yield
            finally:
                gateway_cache.clear()

    def _urlconf(self) -> str:
        """The test URLs plus the baseline view, as a module ``ROOT_URLCONF`` can name."""
        from django.contrib.auth.decorators import login_not_required
        from django.http import HttpResponse
        from django.urls import path
        from django.views.decorators.csrf import csrf_exempt

        from django_aws_api_gateway_websockets.models import ApiGateway
        from tests.urls import urlpatterns

        @login_not_required  # the same middleware stack runs; the baseline is not redirected
        @csrf_exempt
        def bare_view(request: Any) -> HttpResponse:
            ApiGateway.objects.filter(pk=1).exists()
            return HttpResponse(b"", content_type="text/plain; charset=utf-8")

        module = types.ModuleType("benchmarks._urls")
        module.urlpatterns = [*urlpatterns, path("bench/bare", bare_view)]  # type: ignore[attr-defined]
        sys.modules[module.__name__] = module
        return module.__name__

    def _bare_meta(self) -> dict[str, str]:
        """The headers of a message event, so the baseline request is the same size."""
        from django_aws_api_gateway_websockets import contract

        return contract.as_meta(self.chat.headers(contract.DEFAULT))

    # Events ------------------------------------------------------------------------------------

    @staticmethod
    def check(response: Any, what: str) -> None:
        if response.status_code != 200:
            raise BenchmarkError(
                f"{what} answered {response.status_code}: {response.content[:300]!r}"
            )

    def bare(self) -> Any:
        return self.client.generic(
            "POST", "/bench/bare", data="", content_type="application/json", **self.bare_meta
        )

    def fresh_ids(self, n: int) -> list[str]:
        from django_aws_api_gateway_websockets.testing import new_connection_id

        return [new_connection_id() for _ in range(n)]

    def mint(self, n: int) -> list[str]:
        from django_aws_api_gateway_websockets.tokens import mint_token

        return [mint_token(self.user).token for _ in range(n)]

    def steps(self, n: int) -> dict[str, Callable[[], None]]:
        """``n`` events of each type, with everything they need prepared outside the timing."""
        public_ids, chat_ids = self.fresh_ids(n), self.fresh_ids(n)
        public_ips = [next(self.ips) for _ in range(n)]
        chat_ips = [next(self.ips) for _ in range(n)]
        tokens = self.mint(n)
        public, chat, check = self.public, self.chat, self.check

        def bare() -> None:
            for _ in range(n):
                check(self.bare(), "the bare view")

        def connect_public() -> None:
            for cid, ip in zip(public_ids, public_ips, strict=True):
                public.source_ip = ip
                check(public.connect(connection_id=cid), "$connect without token")

        def connect_token() -> None:
            for cid, ip, token in zip(chat_ids, chat_ips, tokens, strict=True):
                chat.source_ip = ip
                check(chat.connect(token=token, connection_id=cid), "$connect with token")

        def message() -> None:
            for cid in chat_ids:
                response = chat.message(MESSAGE_BODY, connection_id=cid)
                check(response, "the message")
                if reply_of(response) != {"handler": "echo", "data": MESSAGE_BODY}:
                    raise BenchmarkError(f"unexpected reply {response.content[:300]!r}")

        def disconnect() -> None:
            for cid in chat_ids:
                check(chat.disconnect(connection_id=cid), "$disconnect")

        return {
            "bare": bare,
            "connect_public": connect_public,
            "connect_token": connect_token,
            "message": message,
            "disconnect": disconnect,
        }

    def play_round(self, n: int, *, record: bool) -> None:
        for key, step in self.steps(n).items():
            gc.collect()
            start = time.perf_counter_ns()
            step()
            elapsed = time.perf_counter_ns() - start
            if record:
                self.results[key].elapsed_ns.append(elapsed)
                self.results[key].events.append(n)

    def capture_queries(self) -> None:
        """The statements of a few events of each type, on the warmed-up process."""
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        ids = self.fresh_ids(CAPTURED_EVENTS)
        public_ids = self.fresh_ids(CAPTURED_EVENTS)
        tokens = self.mint(CAPTURED_EVENTS)
        events: dict[str, Callable[[int], Any]] = {
            "bare": lambda i: self.bare(),
            "connect_public": lambda i: self.public.connect(connection_id=public_ids[i]),
            "connect_token": lambda i: self.chat.connect(token=tokens[i], connection_id=ids[i]),
            "message": lambda i: self.chat.message(MESSAGE_BODY, connection_id=ids[i]),
            "disconnect": lambda i: self.chat.disconnect(connection_id=ids[i]),
        }
        for key, event in events.items():
            for i in range(CAPTURED_EVENTS):
                self.public.source_ip = self.chat.source_ip = next(self.ips)
                self.gateway_cache.get(GATEWAY_API_ID)  # keep the gateway cache warm
                with CaptureQueriesContext(connection) as captured:
                    response = event(i)
                self.check(response, key)
                statements = [q["sql"] for q in captured if not is_transaction_statement(q["sql"])]
                self.results[key].queries.append(statements)

    # Report ------------------------------------------------------------------------------------

    def report(self) -> int:
        from django.db import connection

        enforce = connection.vendor == "postgresql"
        bare = self.results["bare"]
        lines = [f"# WebSocket events on {database_label()}", "", *self.versions(), ""]
        lines += [
            "| event | queries (max) | statements | events/s | µs/event "
            "| ratio to bare view | target | result |",
            "|---|--:|---|--:|--:|--:|--:|---|",
        ]
        missed = []
        for kind in KINDS:
            measured = self.results[kind.key]
            statements = "; ".join(summarize_statement(s) for s in measured.worst) or "none"
            ratio = measured.rate / bare.rate
            if kind.target is None:
                target, result = "—", "—"
            else:
                met = measured.max_queries <= kind.target
                target = f"≤ {kind.target}"
                result = "PASS" if met else "FAIL"
                if not enforce:
                    result = f"({result})"
                elif not met:
                    missed.append(kind)
            lines.append(
                f"| {kind.label} | {measured.max_queries} | {statements} "
                f"| {measured.rate:,.0f} | {measured.mean_us:,.0f} | {ratio:.2f}x "
                f"| {target} | {result} |"
            )
        lines += ["", *self.notes(enforce), "", *self.spread(), "", *self.statements()]
        if missed:
            lines += [
                "",
                "**Targets missed on PostgreSQL:** "
                + ", ".join(
                    f"{k.label} ({self.results[k.key].max_queries} > {k.target})" for k in missed
                ),
            ]
        text = "\n".join(lines) + "\n"
        print(text)
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        path = RESULTS_DIR / f"events-{connection.vendor}.md"
        path.write_text(text, encoding="utf-8")
        print(f"Written to {path}")
        return 1 if missed else 0

    def versions(self) -> list[str]:
        import django

        database = database_description()
        per_round = self.args.events // self.args.rounds
        now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        return [
            f"- Python {platform.python_version()}, Django {django.get_version()}, {database}",
            f"- {platform.system()} {platform.machine()}, {os.cpu_count()} CPUs; {now}",
            f"- {per_round * self.args.rounds} events per type in {self.args.rounds} rounds of "
            f"{per_round}, interleaved with the baseline; queries: max over "
            f"{CAPTURED_EVENTS} events" + (" (quick run)" if self.args.quick else ""),
        ]

    @staticmethod
    def notes(enforce: bool) -> list[str]:
        checked = (
            "Targets are enforced on PostgreSQL."
            if enforce
            else "Targets are enforced on PostgreSQL only; here the result is informational."
        )
        return [
            "Queries exclude BEGIN/COMMIT/ROLLBACK/SAVEPOINT/RELEASE SAVEPOINT. Events/s and"
            " µs/event are in-process through Django's test client (no network, no WSGI server);"
            " read them as the ratio to the bare view measured in the same rounds."
            f" {checked}"
        ]

    def spread(self) -> list[str]:
        bare_rates = self.results["bare"].round_rates()
        lines = ["Ratio to the bare view per round (min / median / max):", ""]
        for kind in KINDS[1:]:
            ratios = [
                rate / base
                for rate, base in zip(self.results[kind.key].round_rates(), bare_rates, strict=True)
            ]
            lines.append(
                f"- {kind.label}: {min(ratios):.2f} / {statistics.median(ratios):.2f} / "
                f"{max(ratios):.2f}"
            )
        return lines

    def statements(self) -> list[str]:
        lines = [
            f"Statements of the event with the most queries (table prefix `{TABLE_PREFIX}`"
            " shortened to `…_`, long column lists to `…`):",
            "",
        ]
        for kind in KINDS:
            lines.append(f"- {kind.label}:")
            lines += [f"  - `{shorten_sql(sql)}`" for sql in self.results[kind.key].worst]
        return lines


if __name__ == "__main__":
    sys.exit(main())
