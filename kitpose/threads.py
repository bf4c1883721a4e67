"""How many CPU threads a run's torch uses (the ``threads`` setting).

Torch starts one intra-op thread per core. On a machine where other work holds some cores,
those threads wait for each other at every parallel operation, each wait as long as a time
slice of the neighbour: training slows down far more than its share of the machine
(``benchmarks/busy.py`` measures it). ``threads: auto`` counts the cores other processes keep
busy when the run starts and uses the rest.
"""
from __future__ import annotations

import os
import statistics
import time
from typing import Any


#: why the command line chose OMP_WAIT_POLICY=PASSIVE, for the run to say (an environment
#: variable: the choice is made before torch loads, and DDP ranks inherit it)
PASSIVE_REASON = "KITPOSE_PASSIVE_WAIT_BECAUSE"


#: why a run keeps torch's own thread count: the recipe sets no ``threads``
DEFAULT_REASON = "torch's default"


def passive_wait_reason() -> str | None:
    """Why idle OpenMP threads sleep at once in this run, when kitpose chose it; else None."""
    reason = os.environ.get(PASSIVE_REASON)
    return reason if reason and os.environ.get("OMP_WAIT_POLICY") == "PASSIVE" else None


def busy_cores(reads: int = 7, interval: float = 0.03) -> int | None:
    """How many cores other processes keep busy now: the runnable tasks in ``/proc/stat``
    besides this one, the median of a few reads (None where there is no ``/proc/stat``)."""
    counts = []
    for i in range(reads):
        try:
            with open("/proc/stat", encoding="ascii") as handle:
                running = next((int(line.split()[1]) for line in handle if line.startswith("procs_running")), None)
        except (OSError, ValueError):
            return None
        if running is None:
            return None
        counts.append(max(0, running - 1))
        if i + 1 < reads:
            time.sleep(interval)
    return int(statistics.median(counts))


def choose(setting: Any, current: int) -> tuple[int, str]:
    """The thread count for ``setting`` (null, a number or ``auto``) and why, given torch's
    ``current`` count; null keeps it."""
    if setting is None:
        return current, DEFAULT_REASON
    if setting != "auto":
        return int(setting), "threads setting"
    cores = os.cpu_count() or current
    busy = busy_cores()
    if busy is None:  # no way to tell: keep torch's choice
        return current, "auto: the load cannot be read here"
    free = max(1, min(current, cores - busy))
    return free, f"auto: {busy} of {cores} cores busy with other work"
