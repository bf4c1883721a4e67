"""Timing shared by the benchmark scripts."""
from __future__ import annotations

import os
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


def wait_policy() -> str:
    """How idle OpenMP threads wait, for the header line.

    Measured as users run it: the OpenMP default (spin briefly, then sleep) unless the
    environment says otherwise. On a machine whose cores are busy with other work, run with
    ``OMP_WAIT_POLICY=PASSIVE`` (set before the start, it is read when torch loads): spinning
    threads then wait for each other for whole time slices. PASSIVE makes every parallel
    torch call pay a thread wake-up, which slows small batched calls down by 2-3x.
    """
    return f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset (OpenMP default)')}"
