"""Timing shared by the benchmark scripts."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def timings_ms(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(best, median) wall time in ms over ``repeat`` calls after one warm-up call.

    The best time is the one to compare (as ``timeit`` advises): on a shared machine the
    others include time spent waiting for the CPU.
    """
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * min(times), 1e3 * statistics.median(times)
