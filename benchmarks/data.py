"""Data pipeline speed: synthetic samples per second on one core, against the 1,000/s target.

Measures the training pipeline of ``recipes/base/synthetic.yaml`` (the synthetic
dataset, its transforms, batching) and the ``gaussian`` encoder on the batches, on
one thread, in stages. Throughput is counted per CPU second of this process (what
one core delivers, even on a busy machine) and per wall second; each stage runs
``--repeat`` times and the best run counts, as timeit does.

    .venv/bin/python benchmarks/data.py [--size 128] [--samples 2000] [--modality depth]
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

TARGET = 1000.0  # samples per second per core
ROOT = Path(__file__).resolve().parents[1]


def timed(work: Callable[[], int]) -> tuple[float, float, int]:
    """(cpu seconds, wall seconds, samples) of one call of ``work``."""
    cpu, wall = time.process_time(), time.perf_counter()
    n = work()
    return time.process_time() - cpu, time.perf_counter() - wall, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128, help="image size (default 128)")
    parser.add_argument("--samples", type=int, default=2000, help="samples per stage (default 2000)")
    parser.add_argument("--modality", default="depth", choices=("depth", "grey", "colour"))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3, help="runs per stage; the best counts (default 3)")
    parser.add_argument("--recipe", default=str(ROOT / "recipes" / "base" / "synthetic.yaml"))
    args = parser.parse_args()

    import cv2
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    import kitpose
    from kitpose.data import build_split, collate, parse_split
    from kitpose.recipe import load_recipe

    n, size = args.samples, args.size
    overrides = [f"vars.image_size={size}", f"vars.modality={args.modality}", f"data.train.dataset.size={n}"]
    registry = kitpose.get_registry()
    spec = parse_split(load_recipe(args.recipe, overrides), registry, "train")
    pipeline = build_split(spec, registry, seed=0)
    dataset = pipeline.dataset
    names = ", ".join(t.name for t in spec.transforms) or "none"
    try:
        encoder = kitpose.build("encoder", "gaussian", sigma=1.0, stride=4, heatmap_size=[size // 4, size // 4],
                                unbiased=True)
    except kitpose.errors.KitposeError as exc:  # type: ignore[attr-defined]
        encoder = None
        print(f"encoder 'gaussian' not available ({exc}); encoding is not measured")

    # a first pass poses every figure chunk and fills caches, as the first epoch does
    for i in range(0, n, 256):
        dataset[i]

    def render() -> int:
        for i in range(n):
            dataset[i]
        return n

    def transformed() -> int:
        for i in range(n):
            pipeline[i]
        return n

    def batched() -> int:
        for start in range(0, n - args.batch + 1, args.batch):
            collate([pipeline[i] for i in range(start, start + args.batch)])
        return n - n % args.batch

    def encoded() -> int:
        done = 0
        for start in range(0, n - args.batch + 1, args.batch):
            batch = collate([pipeline[i] for i in range(start, start + args.batch)])
            if encoder is not None:
                encoder(keypoints=batch["keypoints"], visible=batch["visible"])
            done += args.batch
        return done

    print(f"synthetic {size}x{size} {args.modality}, transforms: {names}; {n} samples per stage, 1 thread, "
          f"best of {max(1, args.repeat)}")
    print(f"{'stage':<34} {'samples/s (cpu)':>16} {'samples/s (wall)':>17} {'x target':>9}")
    stages = [("dataset", render), ("+ transforms", transformed), ("+ collate", batched),
              ("+ gaussian encoder" if encoder is not None else "+ (no encoder)", encoded)]
    final = 0.0
    for label, work in stages:
        runs = [timed(work) for _ in range(max(1, args.repeat))]
        cpu, wall, done = min(r[0] for r in runs), min(r[1] for r in runs), runs[0][2]
        per_cpu, per_wall = done / max(cpu, 1e-9), done / max(wall, 1e-9)
        final = per_cpu
        print(f"{label:<34} {per_cpu:16.0f} {per_wall:17.0f} {per_cpu / TARGET:9.2f}")
    verdict = "meets" if final >= TARGET else "misses"
    print(f"full pipeline: {final:.0f} samples/s per core = {final / TARGET:.2f} x the {TARGET:.0f}/s target "
          f"({verdict} it)")


if __name__ == "__main__":
    main()
