"""Timing shared by the benchmark scripts."""
from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


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


def synced(fn: Callable[[], Any], device: str) -> Callable[[], Any]:
    """``fn``, waiting for the device to finish its work (CUDA runs asynchronously)."""
    if not str(device).startswith("cuda"):
        return fn
    import torch

    def call() -> Any:
        out = fn()
        torch.cuda.synchronize()
        return out

    return call


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
    """The command line the codec benchmarks share: batch sizes, rounds, calls, threads, load.

    With ``--policies`` the script reruns itself once per OpenMP wait policy (ACTIVE, then
    PASSIVE) in a child process, since the policy is read when torch loads, and exits.
    """
    def positive(text: str) -> int:
        value = int(text)
        if value < 1:
            raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
        return value

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--batch", type=positive, nargs="+", default=[1, 8, 64, 256],
                        help="batch sizes, one table each (default 1 8 64 256)")
    parser.add_argument("--joints", type=positive, default=17)
    parser.add_argument("--rounds", type=positive, default=10, help="timing rounds (default 10)")
    parser.add_argument("--calls", type=positive, default=8, help="kitpose calls per round (default 8)")
    parser.add_argument("--threads", type=positive, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--load", type=int, default=0, metavar="N",
                        help="keep N busy processes running while timing: a loaded machine (default 0)")
    parser.add_argument("--device", default="cpu",
                        help="where kitpose's side runs: cpu (default) or cuda; the references stay on the CPU")
    parser.add_argument("--policies", action="store_true",
                        help="run once with OMP_WAIT_POLICY=ACTIVE and once with PASSIVE")
    parser.add_argument("--heap", choices=("kept", "default"), default="kept",
                        help="kept (default): freed memory stays in the process, as in kitpose run "
                             "(kitpose.memory); default: glibc's own thresholds")
    args = parser.parse_args()
    if args.heap == "kept":
        from kitpose.memory import keep_freed_memory

        args.heap_outcome = keep_freed_memory()
    else:
        args.heap_outcome = "glibc's default thresholds"
    if args.policies:
        argv = [a for a in sys.argv[1:] if a != "--policies"]
        codes = [subprocess.run([sys.executable, sys.argv[0], *argv],
                                env={**os.environ, "OMP_WAIT_POLICY": policy}).returncode
                 for policy in ("ACTIVE", "PASSIVE")]
        sys.exit(max(codes))
    return args


def _spin(stop: Any) -> None:
    """Busy work for a load process: pure Python arithmetic until told to stop."""
    total = 0
    while not stop.is_set():
        for i in range(10_000):
            total += i * i


@contextmanager
def load(processes: int) -> Iterator[None]:
    """``processes`` busy processes for the duration of the block (none for 0)."""
    if processes <= 0:
        yield
        return
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    workers = [context.Process(target=_spin, args=(stop,), daemon=True) for _ in range(processes)]
    for worker in workers:
        worker.start()
    time.sleep(0.5)  # let them get going
    try:
        yield
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=5)
            if worker.is_alive():
                worker.terminate()


def header(what: str, batch: int, args: argparse.Namespace, extra: str = "") -> str:
    """The first line of a table: the shape, threads, wait policy, load and timing scheme."""
    busy = f", {args.load} busy processes alongside" if args.load else ""
    where = f", kitpose on {args.device}" if args.device != "cpu" else ""
    return (f"{what} B={batch} K={args.joints}{extra}{where}, torch threads {args.threads} ({wait_policy()}){busy}, "
            f"heap: {args.heap_outcome}, "
            f"{args.rounds} rounds of {args.calls} kitpose calls and 1 reference call; "
            f"speed-up = median over rounds of reference / kitpose's best call in the round")


def slowest(ratios: dict[str, dict[int, float]]) -> str:
    """A closing summary: per case, its smallest speed-up over the batch sizes and where."""
    lines = ["smallest speed-up over the batch sizes (< 1.0x: the reference is faster)"]
    for name, by_batch in ratios.items():
        batch, ratio = min(by_batch.items(), key=lambda item: item[1])
        lines.append(f"  {name.strip():<22}{ratio:>6.1f}x  at B={batch}")
    return "\n".join(lines)


def run_tables(table: Callable[[int, argparse.Namespace, dict[str, dict[int, float]]], None],
               args: argparse.Namespace) -> None:
    """Print ``table(batch, args, ratios)`` for every batch size (under ``--load``), then the
    smallest speed-up of each case."""
    ratios: dict[str, dict[int, float]] = {}
    with load(args.load):
        for batch in args.batch:
            table(batch, args, ratios)
    print(slowest(ratios))
