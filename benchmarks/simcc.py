"""SimCC speed: kitpose's batched simcc encoder and decoder against per-joint reference loops.

    python benchmarks/simcc.py [--batch 1 8 64 256] [--joints 17] [--rounds 10] [--calls 8]
                               [--load N] [--policies]

The references follow mmpose's SimCCLabel step by step, one sample and one joint at a time
in numpy: the labels (the rounded bin, mmpose's out-of-range rule, a Gaussian over every
bin, normalised), the arg-max decoding (first maximum, score = the smaller maximum) and
the 1-D DARK refinement (a zero-padded OpenCV blur per vector, rescale, clip, log, edge
padding, one Newton step). Input 192x256 px, split ratio 2 (384 and 512 bins), sigma
(4.9, 5.66), CPU, 2 torch threads. One table per batch size: best and median time of each
side, the speed-up (reference / kitpose, timed in alternating rounds, see
``_timing.paired_ms``) and the largest difference between the two results; then each
case's smallest speed-up. The encoders draw keypoints up to 10 px off the input (some get
weight 0); the decoders read the labels of keypoints at least 10 px inside it plus uniform
noise of 0.002 (a tenth of a percent of the peak's 0.07), both sides in float32 as a
network gives them. ``--load N`` and ``--policies`` as in ``decode.py``.
"""
from __future__ import annotations

import argparse

import cv2
import numpy as np
import torch

import kitpose
from _timing import codec_arguments, header, paired_ms, run_tables

WIDTH, HEIGHT, RATIO, SIGMA = 192, 256, 2.0, (4.9, 5.66)
BINS = (int(np.around(WIDTH * RATIO)), int(np.around(HEIGHT * RATIO)))


# -- references: one joint at a time -------------------------------------------------------------
def ref_encode(points: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gaussian SimCC labels joint by joint (mmpose's ``_generate_gaussian``), normalised."""
    batch, joints = points.shape[:2]
    target_x = np.zeros((batch, joints, BINS[0]), dtype=np.float32)
    target_y = np.zeros((batch, joints, BINS[1]), dtype=np.float32)
    weights = visible.copy()
    centres = np.around(points * RATIO).astype(np.int64)
    sigma = np.array(SIGMA)
    grid_x, grid_y = np.arange(BINS[0], dtype=np.float32), np.arange(BINS[1], dtype=np.float32)
    for b in range(batch):
        for k in range(joints):
            if visible[b, k] < 0.5:
                continue
            left, top = centres[b, k] - 3 * sigma
            right, bottom = centres[b, k] + 3 * sigma + 1
            if left >= BINS[0] or top >= BINS[1] or right < 0 or bottom < 0:
                weights[b, k] = 0
                continue
            mu_x, mu_y = centres[b, k]
            target_x[b, k] = np.exp(-((grid_x - mu_x) ** 2) / (2 * SIGMA[0] ** 2))
            target_y[b, k] = np.exp(-((grid_y - mu_y) ** 2) / (2 * SIGMA[1] ** 2))
    target_x /= SIGMA[0] * np.sqrt(2 * np.pi)
    target_y /= SIGMA[1] * np.sqrt(2 * np.pi)
    return target_x, target_y, weights


def ref_dark_step(location: float, vector: np.ndarray, kernel: int) -> float:
    """mmpose's 1-D DARK for one vector."""
    border = (kernel - 1) // 2
    padded = np.zeros((1, vector.size + 2 * border), dtype=vector.dtype)
    padded[0, border:-border] = vector
    blurred = cv2.GaussianBlur(padded, (kernel, 1), 0)[0, border:-border]
    blurred *= vector.max() / blurred.max()
    f = np.pad(np.log(np.clip(blurred, 1e-3, 50.0)), 2, mode="edge")
    p = int(location + 2.5)
    dx = 0.5 * (f[p + 1] - f[p - 1])
    dxx = 1e-9 + 0.25 * (f[p + 2] - 2 * f[p] + f[p - 2])
    return location - dx / dxx


def ref_decode(simcc_x: np.ndarray, simcc_y: np.ndarray, kernels: tuple[int, int] | None = None) -> np.ndarray:
    """Arg-max decoding joint by joint; with ``kernels`` the DARK step per vector."""
    batch, joints = simcc_x.shape[:2]
    keypoints = np.zeros((batch, joints, 2))
    for b in range(batch):
        for k in range(joints):
            x, y = float(np.argmax(simcc_x[b, k])), float(np.argmax(simcc_y[b, k]))
            if kernels is not None:
                x = ref_dark_step(x, simcc_x[b, k], kernels[0])
                y = ref_dark_step(y, simcc_y[b, k], kernels[1])
            keypoints[b, k] = (x, y)
    return keypoints


def main() -> None:
    args = codec_arguments(__doc__.splitlines()[0])
    torch.set_num_threads(args.threads)
    run_tables(table, args)


def table(batch: int, args: argparse.Namespace, ratios: dict[str, dict[int, float]]) -> None:
    """Time the encoder and both decoders at one batch size and print their table."""
    enc = kitpose.build("encoder", "simcc", input_size=[WIDTH, HEIGHT], split_ratio=RATIO, sigma=list(SIGMA))
    dec = kitpose.build("decoder", "simcc_peak", sigma=list(SIGMA))
    dark = kitpose.build("decoder", "simcc_peak", refine="dark", sigma=list(SIGMA))
    g = torch.Generator().manual_seed(batch)
    points = torch.rand(batch, args.joints, 2, generator=g) * torch.tensor([WIDTH + 20.0, HEIGHT + 20.0]) - 10.0
    visible = (torch.rand(batch, args.joints, generator=g) > 0.1).float()
    array, shown = points.numpy(), visible.numpy()
    inner = 10.0 + torch.rand(batch, args.joints, 2, generator=g) * torch.tensor([WIDTH - 20.0, HEIGHT - 20.0])
    labels = enc(keypoints=inner)  # decoders read vectors with a peak on them, plus noise
    simcc_x = labels["simcc_x"] + 0.002 * torch.rand(labels["simcc_x"].shape, generator=g)
    simcc_y = labels["simcc_y"] + 0.002 * torch.rand(labels["simcc_y"].shape, generator=g)
    vx, vy = simcc_x.numpy(), simcc_y.numpy()  # float32, as a network's output
    cases = [
        ("encoder", lambda: enc(keypoints=points, visible=visible), lambda: ref_encode(array, shown)),
        ("decoder", lambda: dec(simcc_x=simcc_x, simcc_y=simcc_y), lambda: ref_decode(vx, vy)),
        ("decoder dark", lambda: dark(simcc_x=simcc_x, simcc_y=simcc_y),
         lambda: ref_decode(vx, vy, dark.blur_kernel)),
    ]
    print(header("simcc", batch, args, f" input {WIDTH}x{HEIGHT} px, {BINS[0]} + {BINS[1]} bins"))
    print(f"{'case':<22}{'kitpose ms':>18}{'reference ms':>20}{'speed-up':>10}{'max |diff|':>12}")
    print(f"{'':<22}{'best / median':>18}{'best / median':>20}{'(median)':>10}")
    for name, ours, reference in cases:
        mine, theirs, speedup = paired_ms(ours, reference, args.rounds, args.calls)
        ratios.setdefault(name, {})[batch] = speedup
        got, want = ours(), reference()
        if name == "encoder":
            diff = max(float(np.abs(got[key].numpy() - value).max())
                       for key, value in zip(("simcc_x", "simcc_y", "weights"), want))
        else:
            diff = float(np.abs(got["keypoints"].numpy() - want).max())
        print(f"{name:<22}{mine[0]:>9.3f} /{mine[1]:>7.3f}{theirs[0]:>11.3f} /{theirs[1]:>7.3f}"
              f"{speedup:>9.1f}x{diff:>12.1e}")
    print()


if __name__ == "__main__":
    main()
