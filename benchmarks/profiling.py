"""Profile the events and a single send with cProfile: where does the CPU of one event go?

Run ``python -m benchmarks.profiling`` from the repository root (SQLite by default,
``DAGW_TEST_DATABASE=postgresql`` for PostgreSQL). It plays the same events as
``benchmarks.events`` (same settings, client, bare views) and the same single send as
``benchmarks.sends``, each under its own :class:`cProfile.Profile` after a warm-up, and prints
the top entries per event type, sorted by own time (``tottime``) and by cumulative time, with the
profiled time per event. ``--output FILE`` also writes them as Markdown. This is the tool behind
``benchmarks/results/profile_before.md`` and ``profile_after.md``: profiled times are inflated by
the profiler; compare entries, not absolute figures.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import database_label, run_on_test_database

DEFAULT_EVENTS = 1000
DEFAULT_TOP = 15


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profiling", description=__doc__)
    parser.add_argument("--events", type=int, default=DEFAULT_EVENTS, help="events per type")
    parser.add_argument("--top", type=int, default=DEFAULT_TOP, help="entries per table")
    parser.add_argument("--only", action="append", help="profile only this event type (repeat)")
    parser.add_argument("--no-sends", action="store_true", help="skip the single send")
    parser.add_argument("--output", type=Path, help="also write the tables here (Markdown)")
    return parser.parse_args(argv)


def table(profile: cProfile.Profile, sort: str, top: int) -> str:
    stream = io.StringIO()
    stats = pstats.Stats(profile, stream=stream)
    stats.strip_dirs().sort_stats(sort).print_stats(top)
    lines = stream.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls"))
    return "\n".join(line.rstrip() for line in lines[start:] if line.strip())


def total_time(profile: cProfile.Profile) -> float:
    return pstats.Stats(profile).total_tt  # type: ignore[attr-defined,no-any-return]


def section(title: str, profile: cProfile.Profile, n: int, top: int) -> str:
    per_event = total_time(profile) / n * 1e6
    return (
        f"## {title}\n\n{n} calls, {per_event:,.0f} µs each under the profiler\n\n"
        f"By own time:\n\n```\n{table(profile, 'tottime', top)}\n```\n\n"
        f"By cumulative time:\n\n```\n{table(profile, 'cumulative', top)}\n```\n"
    )


def profile_events(args: argparse.Namespace) -> list[str]:
    from benchmarks import events

    bench_args = events.parse_args(["--events", str(args.events), "--rounds", "1"])
    bench = events.Bench(bench_args)
    sections = []
    with bench.environment():
        bench.play_round(events.WARMUP_EVENTS, record=False)
        steps = bench.steps(args.events)
        for kind in events.KINDS:
            if args.only and kind.key not in args.only:
                continue
            profile = cProfile.Profile()
            profile.runcall(steps[kind.key])
            sections.append(section(kind.label, profile, args.events, args.top))
    return sections


def profile_single_send(args: argparse.Namespace) -> list[str]:
    from benchmarks import sends

    bench = sends.Bench(sends.parse_args(["--quick"]))
    from django_aws_api_gateway_websockets.models import ApiGateway, WebSocketSession

    bench.gateway = ApiGateway.objects.create(
        name="profile-sends",
        api_id="profile0sends",
        region=sends.REGION,
        stage="production",
        target_base_endpoint="https://testserver/ws",
    )
    bench.insert("single", 1)
    bench.session = WebSocketSession.objects.get(channel_name="single")
    server = sends.FakeServer(0.0)
    try:
        with bench.transport_settings(server.url):
            bench.single(sends.WARMUP_SENDS)
            profile, loop_profile = cProfile.Profile(), cProfile.Profile()
            on_loop(loop_profile.enable)
            profile.runcall(bench.single, args.events)
            on_loop(loop_profile.disable)
    finally:
        server.close()
    return [
        section("one `session.send_message()`: caller's thread", profile, args.events, args.top),
        section(
            "one `session.send_message()`: the transport's event-loop thread",
            loop_profile,
            args.events,
            args.top,
        ),
    ]


def on_loop(call: Callable[[], Any]) -> None:
    """Run ``call`` on the transport's event-loop thread (a profiler covers one thread)."""
    import concurrent.futures

    from django_aws_api_gateway_websockets.transports.aws import _loop_thread

    done: concurrent.futures.Future[None] = concurrent.futures.Future()

    def run() -> None:
        call()
        done.set_result(None)

    _loop_thread.get().call_soon_threadsafe(run)
    done.result(timeout=10)


def run(args: argparse.Namespace) -> int:
    sections = profile_events(args)
    if not args.no_sends:
        sections += profile_single_send(args)
    text = f"# cProfile on {database_label()}\n\n" + "\n".join(sections)
    print(text)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text, encoding="utf-8")
        print(f"Written to {args.output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from benchmarks.fanout import FAKE_CREDENTIALS

    os.environ.update(FAKE_CREDENTIALS)
    for name in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE"):
        os.environ.pop(name, None)
    return run_on_test_database("dagw_profile", lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
