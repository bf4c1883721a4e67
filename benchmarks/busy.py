"""Training on a busy machine: the default recipe's training loop next to CPU-bound neighbours.

Each setting trains the same steps twice in a fresh process: on a quiet machine and with
``--load`` busy processes (pure-Python loops) alongside. It prints the throughput of both
and their ratio; on 2 cores with one neighbour, a fair share is about 0.5 (half the cores)
and anything far below it means kitpose's threads fight each other rather than the neighbour.

    python benchmarks/busy.py [--steps 20] [--load 1]

The settings: torch's defaults (as many threads as cores, OpenMP's own wait policy),
``OMP_WAIT_POLICY=PASSIVE`` (idle threads sleep at once instead of spinning), and kitpose's
``threads: auto`` (the threads the run uses are the cores left free by the load when
it starts).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _timing import load  # noqa: E402

SETTINGS = {
    "torch defaults": ({}, []),
    "OMP_WAIT_POLICY=PASSIVE": ({"OMP_WAIT_POLICY": "PASSIVE"}, []),
    "threads=auto": ({}, ["threads=auto"]),
}


def child(steps: int, batch: int, extra: list[str]) -> None:
    """Train ``steps`` steps of the default recipe in this process; print images/s as JSON."""
    from engine import overrides  # benchmarks/engine.py: the same loop, no monitors

    from kitpose.engine import Run
    from kitpose.plan import check_recipe

    plan = check_recipe(str(HERE.parent / "recipes" / "hrnet_dark.yaml"), [*overrides(steps, batch), *extra])
    with tempfile.TemporaryDirectory() as tmp:
        run = Run(plan, run_dir=Path(tmp) / "run")
        run.build()
        run.apply_threads()
        start = time.perf_counter()
        run.train(run.epochs())
        seconds = time.perf_counter() - start
    import torch

    print(json.dumps({"images_per_s": steps * batch / seconds, "threads": torch.get_num_threads()}))


def measure(env: dict[str, str], extra: list[str], steps: int, batch: int) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", "--steps", str(steps), "--batch", str(batch), *extra]
    done = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--load", type=int, default=1, help="busy processes alongside (default 1)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args, extra = parser.parse_known_args()
    if args.child:
        child(args.steps, args.batch, extra)
        return
    print(f"{os.cpu_count()} cores; {args.steps} steps of batch {args.batch}; {args.load} busy process(es) "
          "alongside in the loaded runs")
    print(f"{'setting':<26}{'quiet img/s':>12}{'loaded img/s':>14}{'loaded / quiet':>16}{'threads':>10}")
    for name, (env, extra_args) in SETTINGS.items():
        quiet = measure(env, extra_args, args.steps, args.batch)
        with load(args.load):
            loaded = measure(env, extra_args, args.steps, args.batch)
        threads = f"{quiet['threads']:.0f} / {loaded['threads']:.0f}"
        print(f"{name:<26}{quiet['images_per_s']:>12.1f}{loaded['images_per_s']:>14.1f}"
              f"{loaded['images_per_s'] / quiet['images_per_s']:>16.2f}{threads:>10}")


if __name__ == "__main__":
    main()
