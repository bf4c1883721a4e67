"""Decoding error of `median` next to kitpose's built-in decoders, on noisy Gaussian maps.

    python scripts/compare_decoders.py [--maps 64] [--seed 0]

Maps are 64 x 48 (h x w) with sigma-2 Gaussians at random sub-pixel centres, plus
N(0, noise^2) per pixel. Prints the mean distance (heatmap pixels) to the true centre.
"""
from __future__ import annotations

import argparse

import torch

import kitpose
from kitpose.testing import gaussians

DECODERS = {"argmax": {}, "com": {}, "dark": {}, "median": {}, "median (window 3)": {"window": 3},
            "median (whole map)": {"window": None}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maps", type=int, default=64, help="samples of 16 maps each")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(args.seed)
    truth = torch.stack([8 + 32 * torch.rand(args.maps, 16, generator=generator),
                         8 + 48 * torch.rand(args.maps, 16, generator=generator)], dim=-1)
    clean = gaussians(truth, (64, 48), sigma=2.0)
    noises = (0.0, 0.02, 0.05)
    print("| decoder | " + " | ".join(f"noise {n:g}" for n in noises) + " |")
    print("|---|" + "---:|" * len(noises))
    maps = {n: clean + n * torch.randn(clean.shape, generator=generator) for n in noises}
    for label, params in DECODERS.items():
        decoder = kitpose.build("decoder", label.split()[0], **params)
        errors = [float((decoder(heatmaps=maps[n])["keypoints"] - truth).norm(dim=-1).mean()) for n in noises]
        print(f"| {label} | " + " | ".join(f"{e:.3f}" for e in errors) + " |")


if __name__ == "__main__":
    main()
