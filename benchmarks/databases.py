"""Put the events benchmark's results on SQLite, PostgreSQL and MariaDB side by side.

``scripts/bench`` runs ``benchmarks.events`` once per database, each writing
``benchmarks/results/events-<vendor>.md`` (``events-<vendor>-quick.md`` with ``--quick``, which
this program takes too); this reads their tables (queries per event and
events per second for each event type) and writes ``benchmarks/results/databases.md``. A
database whose results file is missing is left out (and named).
"""

from __future__ import annotations

import sys
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DATABASES = (("sqlite", "SQLite"), ("postgresql", "PostgreSQL"), ("mysql", "MariaDB"))


def read_table(path: Path) -> dict[str, tuple[str, str]]:
    """``{event label: (queries, events/s)}`` from an events results file."""
    rows: dict[str, tuple[str, str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 8 or cells[0] in ("event", "") or set(cells[0]) <= {"-", ":"}:
            continue
        rows[cells[0]] = (cells[1], cells[3])
        if len(rows) and cells[0].startswith("---"):
            break
    return rows


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    suffix = "-quick" if "--quick" in args else ""
    found = {}
    missing = []
    for vendor, label in DATABASES:
        path = RESULTS_DIR / f"events-{vendor}{suffix}.md"
        if path.exists():
            found[label] = read_table(path)
        else:
            missing.append(label)
    if not found:
        print("No events results to compare.", file=sys.stderr)
        return 1
    events = list(next(iter(found.values())))
    labels = list(found)
    lines = [
        "# WebSocket events: databases side by side",
        "",
        "Queries per event and events per second, from `benchmarks/results/events-*.md` "
        "of the same `scripts/bench` run.",
        "",
        "| event | " + " | ".join(f"{db} queries | {db} events/s" for db in labels) + " |",
        "|---|" + "--:|--:|" * len(labels),
    ]
    for event in events:
        cells = []
        for db in labels:
            queries, rate = found[db].get(event, ("—", "—"))
            cells += [queries, rate]
        lines.append(f"| {event} | " + " | ".join(cells) + " |")
    if missing:
        lines += ["", "Not measured in this run: " + ", ".join(missing) + "."]
    text = "\n".join(lines) + "\n"
    print(text)
    (RESULTS_DIR / f"databases{suffix}.md").write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
