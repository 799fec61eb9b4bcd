"""Run callables in real threads that start together, each thread on its own database connection.

Used by the race tests. Every thread opens its connection *before* the barrier (so connection
set-up does not spread the start out and a connection failure aborts the race instead of hanging
it), runs its share of the tasks after the barrier, and closes its connection in ``finally``.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import connection

#: PostgreSQL allows 100 connections by default; the test database and other clients need a few.
MAX_THREADS = int(os.environ.get("DAGW_RACE_THREADS", "64"))
BARRIER_TIMEOUT = 60.0


@dataclass
class RaceResult:
    results: list[Any]
    errors: list[str] = field(default_factory=list)
    #: The largest number of tasks that were running at the same moment.
    peak_in_flight: int = 0
    threads: int = 0
    seconds: float = 0.0

    def statuses(self) -> list[int]:
        return [getattr(result, "status_code", -1) for result in self.results]


def race(
    count: int,
    task: Callable[[int, Any], Any],
    *,
    prepare: Callable[[int], Any] | None = None,
    threads: int | None = None,
) -> RaceResult:
    """Run ``task(i, prepare(i))`` for ``i`` in ``range(count)`` on up to ``threads`` threads.

    ``prepare`` runs in the worker thread before the barrier (log a client in, build headers);
    ``task`` runs after it. Exceptions are collected with their tracebacks, never swallowed: the
    caller asserts that ``errors`` is empty.
    """
    workers = min(count, threads or MAX_THREADS)
    barrier = threading.Barrier(workers)
    results: list[Any] = [None] * count
    errors: list[str] = []
    lock = threading.Lock()
    in_flight = 0
    peak = 0

    def record_error(index: int | None) -> None:
        with lock:
            errors.append(f"task {index}: {traceback.format_exc()}")

    def worker(worker_index: int) -> None:
        nonlocal in_flight, peak
        mine = list(range(worker_index, count, workers))
        try:
            try:
                connection.ensure_connection()
                prepared = {i: prepare(i) if prepare else None for i in mine}
            except Exception:
                record_error(None)
                barrier.abort()
                return
            try:
                barrier.wait(timeout=BARRIER_TIMEOUT)
            except threading.BrokenBarrierError:
                record_error(None)
                return
            for i in mine:
                with lock:
                    in_flight += 1
                    peak = max(peak, in_flight)
                try:
                    results[i] = task(i, prepared[i])
                except Exception:
                    record_error(i)
                finally:
                    with lock:
                        in_flight -= 1
        finally:
            connection.close()

    started = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(workers)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=BARRIER_TIMEOUT * 2)
    alive = [thread.name for thread in pool if thread.is_alive()]
    if alive:
        errors.append(f"threads still running after the timeout: {alive}")
    return RaceResult(
        results=results,
        errors=errors,
        peak_in_flight=peak,
        threads=workers,
        seconds=time.perf_counter() - started,
    )
