"""DARK's Newton step cap: decoding error with ``max_step: 1.0`` and without a cap, by noise.

Not a speed benchmark: it measures what the cap does to accuracy, the measurement behind
the default of ``dark``'s ``max_step`` (see docs/codecs.md). Maps are 64x48 unbiased
Gaussians at random sub-pixel centres (and, in the "two peaks" rows, a second, weaker
Gaussian 5 cells away), plus Gaussian noise of the given standard deviation (the peak is 1). The
DarkPose-style loop of ``decode.py`` (no cap, a step wherever det H != 0) is the reference.

    python benchmarks/dark_step.py
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import kitpose

sys.path.insert(0, str(Path(__file__).resolve().parent))
from decode import HEIGHT, WIDTH, ref_dark  # noqa: E402  (the reference loop of the decode benchmark)

NOISE = (0.0, 0.01, 0.02, 0.05, 0.1)


def maps_at(cells: torch.Tensor, sigma: float, noise: float, second: float, seed: int) -> torch.Tensor:
    """Gaussians at ``cells`` (+ a ``second``-high one 5 cells to the right), plus noise."""
    enc = kitpose.build("encoder", "gaussian", sigma=sigma, heatmap_size=[WIDTH, HEIGHT], unbiased=True,
                        stride=1)
    maps = enc(keypoints=cells)["heatmaps"]
    if second:
        maps = maps + second * enc(keypoints=cells + torch.tensor([5.0, 0.0]))["heatmaps"]
    g = torch.Generator().manual_seed(seed)
    return (maps + noise * torch.randn(maps.shape, generator=g, dtype=maps.dtype)).double()


def errors(maps: torch.Tensor, truth: torch.Tensor) -> dict[str, float]:
    """Mean distance in cells from ``truth`` for the capped, the uncapped and the reference DARK."""
    capped = kitpose.build("decoder", "dark", blur_kernel=11)(heatmaps=maps)["keypoints"]
    free = kitpose.build("decoder", "dark", blur_kernel=11, max_step=None)(heatmaps=maps)["keypoints"]
    reference, _ = ref_dark(maps.numpy(), kernel=11)
    return {name: float((xy - truth).norm(dim=-1).mean())
            for name, xy in (("max_step 1.0", capped), ("no cap", free),
                             ("DarkPose loop", torch.as_tensor(reference)))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--joints", type=int, default=17)
    args = parser.parse_args()
    g = torch.Generator().manual_seed(0)
    cells = 6 + torch.rand(args.batch, args.joints, 2, generator=g) * torch.tensor([WIDTH - 15.0, HEIGHT - 12.0])
    print(f"mean error in cells, {args.batch * args.joints} joints per row, 64x48 maps, blur kernel 11")
    print(f"{'sigma':>5} {'map':>10} {'noise':>6} | {'max_step 1.0':>12} {'no cap':>8} {'DarkPose loop':>13}")
    totals: dict[str, float] = {}
    for sigma in (2.0, 3.0):
        for second, shape in ((0.0, "one peak"), (0.8, "two peaks")):
            for i, noise in enumerate(NOISE):
                row = errors(maps_at(cells.double(), sigma, noise, second, seed=i), cells.double())
                for name, value in row.items():
                    totals[name] = totals.get(name, 0.0) + value
                print(f"{sigma:>5g} {shape:>10} {noise:>6g} | {row['max_step 1.0']:>12.4f} {row['no cap']:>8.4f} "
                      f"{row['DarkPose loop']:>13.4f}")
    rows = 2 * 2 * len(NOISE)
    print("mean over every row: " + ", ".join(f"{name} {value / rows:.4f}" for name, value in totals.items()))


if __name__ == "__main__":
    main()
