"""Timing shared by the benchmark scripts."""
from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable


def paired_ms(ours: Callable[[], object], reference: Callable[[], object], rounds: int,
              calls: int) -> tuple[tuple[float, float], tuple[float, float], float]:
    """Time both sides in alternating rounds; returns their (best, median) ms and the speed-up.

    Each round times ``calls`` calls of ``ours`` (the fast side) and one of ``reference``,
    so a burst of load from elsewhere hits both sides alike. The speed-up is the median over
    rounds of ``reference / fastest call of ours in that round``.
    """
    ours(), reference()
    mine: list[float] = []
    theirs: list[float] = []
    ratios = []
    for _ in range(rounds):
        batch = []
        for _ in range(calls):
            start = time.perf_counter()
            ours()
            batch.append(time.perf_counter() - start)
        start = time.perf_counter()
        reference()
        theirs.append(time.perf_counter() - start)
        mine += batch
        ratios.append(theirs[-1] / min(batch))

    def summary(times: list[float]) -> tuple[float, float]:
        return 1e3 * min(times), 1e3 * statistics.median(times)

    return summary(mine), summary(theirs), statistics.median(ratios)


def wait_policy() -> str:
    """How idle OpenMP threads wait, for the header line.

    Measured as users run it: the OpenMP default (spin briefly, then sleep) unless the
    environment says otherwise. On a machine whose cores are busy with other work, run with
    ``OMP_WAIT_POLICY=PASSIVE`` (set before the start, it is read when torch loads): spinning
    threads then wait for each other for whole time slices. PASSIVE makes every parallel
    torch call pay a thread wake-up, which slows small batched calls down by 2-3x.
    """
    return f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset (OpenMP default)')}"


def codec_arguments(description: str) -> argparse.Namespace:
    """The command line the codec benchmarks share: batch shape, rounds, calls and threads."""
    def positive(text: str) -> int:
        value = int(text)
        if value < 1:
            raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
        return value

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--batch", type=positive, default=64)
    parser.add_argument("--joints", type=positive, default=17)
    parser.add_argument("--rounds", type=positive, default=10, help="timing rounds (default 10)")
    parser.add_argument("--calls", type=positive, default=8, help="kitpose calls per round (default 8)")
    parser.add_argument("--threads", type=positive, default=2, help="torch CPU threads (default 2)")
    return parser.parse_args()
