"""Timing shared by the benchmark scripts (imported as a sibling module: ``python benchmarks/bench_x.py``
puts this folder on ``sys.path``)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def timed(fn: Callable[[], object], reps: int) -> tuple[float, float]:
    """Median wall and median CPU seconds of ``reps`` calls of ``fn`` (CPU time is this process's only,
    so it is the figure to read on a shared machine)."""
    walls, cpus = [], []
    for _ in range(reps):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus)
