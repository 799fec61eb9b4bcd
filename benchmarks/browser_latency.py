"""End-to-end latency from one browser's send to another browser's receive, through the demo.

Two Chromium pages (alice and bob) sit in the same room of the demo chat (``example/``), run for
real: the local gateway (``run_local_gateway``) and Django (``runserver``) as child processes on
a SQLite file. Alice sends a line; the gateway calls Django's ``chat`` handler, which saves it and
broadcasts it through the gateway's Management API; Bob's page receives it. Each line carries its
send time and Bob's page stamps its arrival, both from ``performance.timeOrigin +
performance.now()`` (one machine, one clock). Lines are sent one at a time, each after the
previous one arrived, so this measures latency, not throughput.

    python -m benchmarks.browser_latency               # 200 messages
    python -m benchmarks.browser_latency --messages 50

Writes benchmarks/results/browser_latency.md.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
from pathlib import Path

from tests.browser_support import DemoStack, launch_chromium, sign_in, wait_state

RESULTS = Path(__file__).resolve().parent / "results" / "browser_latency.md"

RECORD_ARRIVALS = """() => {
  window.__arrivals = [];
  window.chat.client.on("chat_message", (message) => {
    if (message.text.startsWith("latency ")) {
      window.__arrivals.push([message.text, performance.timeOrigin + performance.now()]);
    }
  });
}"""

SEND = """(index) => {
  const sentAt = performance.timeOrigin + performance.now();
  window.chat.client.send({ action: "chat", text: `latency ${index} ${sentAt}` });
}"""


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5)))
    return ordered[rank - 1]


def measure(count: int) -> list[float]:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as workdir:
        stack = DemoStack(Path(workdir)).start()
        try:
            with sync_playwright() as playwright:
                browser = launch_chromium(playwright)
                alice = sign_in(browser, stack, "alice")
                bob = sign_in(browser, stack, "bob")
                wait_state(alice, "open")
                wait_state(bob, "open")
                bob.evaluate(RECORD_ARRIVALS)
                # Warm up (first queries, connection pools) outside the measurement.
                for index in range(5):
                    alice.evaluate(SEND, -1 - index)
                bob.wait_for_function("window.__arrivals.length >= 5", timeout=30_000)
                bob.evaluate("window.__arrivals = []")
                for index in range(count):
                    alice.evaluate(SEND, index)
                    bob.wait_for_function(
                        f"window.__arrivals.length >= {index + 1}", timeout=30_000, polling=1
                    )
                arrivals = bob.evaluate("window.__arrivals")
                browser.close()
        finally:
            stack.stop()
    latencies = []
    for index, (text, received_at) in enumerate(arrivals):
        _, number, sent_at = text.split(" ")
        if int(number) != index:
            raise SystemExit(f"Line {index} arrived as {number}: out of order or lost.")
        latencies.append(received_at - float(sent_at))
    return latencies


def table(latencies: list[float]) -> str:
    rows = [
        ("messages", f"{len(latencies)}"),
        ("p50", f"{percentile(latencies, 0.50):.1f} ms"),
        ("p90", f"{percentile(latencies, 0.90):.1f} ms"),
        ("p99", f"{percentile(latencies, 0.99):.1f} ms"),
        ("max", f"{max(latencies):.1f} ms"),
        ("mean", f"{statistics.fmean(latencies):.1f} ms"),
    ]
    lines = [
        "# Browser to browser latency through the local gateway",
        "",
        f"Chromium → local gateway → Django (runserver, SQLite) → Management API → local "
        f"gateway → Chromium; Python {platform.python_version()}, {platform.machine()}, "
        f"{platform.system()}.",
        "",
        "| measure | value |",
        "|---|---|",
        *(f"| {name} | {value} |" for name, value in rows),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="50 messages")
    args = parser.parse_args(argv)
    count = 50 if args.quick else args.messages
    latencies = measure(count)
    report = table(latencies)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(report)
    print(report)
    print(f"Written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
