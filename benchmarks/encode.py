"""Target generation speed: kitpose's batched encoders against per-joint reference loops.

    python benchmarks/encode.py [--batch 1 8 64 256] [--joints 17] [--rounds 10] [--calls 8]
                                [--load N] [--policies]

The references draw targets the way the public data loaders do, one joint at a time in
numpy: the quantised Gaussian as a (6 sigma + 1)^2 patch pasted around the rounded centre,
the unbiased (DARK) Gaussian over the whole map around the exact centre, the one-hot
cell (a loop of our own: no public code draws these), the disk, mmpose's Megvii and UDP
combined targets. Same keypoints, same 64x48 maps
(stride 4, sigma 2), CPU, 2 threads. One table per batch size: best and median time of
each side, the speed-up (timed in alternating rounds, see ``_timing.paired_ms``) and the
largest difference between the two sets of targets and weights; then each encoder's
smallest speed-up. ``--load N`` times with N busy processes alongside (a loaded machine);
``--policies`` runs everything under OMP_WAIT_POLICY=ACTIVE and then PASSIVE.
"""
from __future__ import annotations

import math

import numpy as np
import torch

import kitpose
from _timing import codec_arguments, header, paired_ms, run_tables, synced

HEIGHT, WIDTH, STRIDE, SIGMA, RADIUS = 64, 48, 4, 2.0, 15.0


# -- references: one joint at a time -------------------------------------------------------------
def ref_gaussian_quantised(points: np.ndarray, visible: np.ndarray, hoisted: bool = False):
    """HRNet's loop: a (6 sigma + 1)^2 patch around the rounded centre, pasted per joint.

    As published, the patch is recomputed for every joint; ``hoisted=True`` computes it once
    (a faster loop than the public one, printed as a second row).
    """
    batch, joints = points.shape[:2]
    maps = np.zeros((batch, joints, HEIGHT, WIDTH), dtype=np.float32)
    weights = visible.astype(np.float32).copy()
    reach = int(3 * SIGMA)
    size = 2 * reach + 1

    def gaussian_patch() -> np.ndarray:
        grid = np.arange(size, dtype=np.float32)
        return np.exp(-((grid[None, :] - reach) ** 2 + (grid[:, None] - reach) ** 2) / (2 * SIGMA ** 2))

    patch = gaussian_patch() if hoisted else None
    for b in range(batch):
        for k in range(joints):
            mx = math.floor(points[b, k, 0] / STRIDE + 0.5)
            my = math.floor(points[b, k, 1] / STRIDE + 0.5)
            left, top, right, bottom = mx - reach, my - reach, mx + reach + 1, my + reach + 1
            if left >= WIDTH or top >= HEIGHT or right <= 0 or bottom <= 0:
                weights[b, k] = 0
            if weights[b, k] == 0:
                continue
            g = patch if hoisted else gaussian_patch()
            x0, x1 = max(0, left), min(right, WIDTH)
            y0, y1 = max(0, top), min(bottom, HEIGHT)
            maps[b, k, y0:y1, x0:x1] = g[y0 - top:y1 - top, x0 - left:x1 - left]
    return maps, weights


def ref_gaussian_unbiased(points: np.ndarray, visible: np.ndarray):
    """DARK's loop: the whole map filled around the exact centre, joint by joint (grids hoisted)."""
    batch, joints = points.shape[:2]
    maps = np.zeros((batch, joints, HEIGHT, WIDTH), dtype=np.float32)
    weights = visible.astype(np.float32).copy()
    xs = np.arange(WIDTH, dtype=np.float32)
    ys = np.arange(HEIGHT, dtype=np.float32)[:, None]
    reach = 3 * SIGMA
    for b in range(batch):
        for k in range(joints):
            mx, my = points[b, k] / STRIDE
            if mx - reach > WIDTH - 1 or my - reach > HEIGHT - 1 or mx + reach < 0 or my + reach < 0:
                weights[b, k] = 0
            if weights[b, k] > 0:
                maps[b, k] = np.exp(-((xs - mx) ** 2 + (ys - my) ** 2) / (2 * SIGMA ** 2))
    return maps, weights


def ref_one_hot(points: np.ndarray, visible: np.ndarray):
    """A loop of kitpose's own, a bar rather than a reference: no public pose codebase draws
    dense one-hot maps (torchvision's and Detectron2's Keypoint R-CNN targets are flat cell
    indices, computed in torch), so the row is labelled "own loop", like the hoisted Gaussian."""
    batch, joints = points.shape[:2]
    maps = np.zeros((batch, joints, HEIGHT, WIDTH), dtype=np.float32)
    weights = visible.astype(np.float32).copy()
    for b in range(batch):
        for k in range(joints):
            mx = math.floor(points[b, k, 0] / STRIDE + 0.5)
            my = math.floor(points[b, k, 1] / STRIDE + 0.5)
            if 0 <= mx < WIDTH and 0 <= my < HEIGHT and weights[b, k] > 0:
                maps[b, k, my, mx] = 1
            else:
                weights[b, k] = 0
    return maps, weights


def ref_disk(points: np.ndarray, visible: np.ndarray):
    batch, joints = points.shape[:2]
    maps = np.zeros((batch, joints, HEIGHT, WIDTH), dtype=np.float32)
    weights = visible.astype(np.float32).copy()
    xs = np.arange(WIDTH) * STRIDE
    ys = np.arange(HEIGHT)[:, None] * STRIDE
    for b in range(batch):
        for k in range(joints):
            if weights[b, k] == 0:
                continue
            x, y = points[b, k]
            disk = (xs - x) ** 2 + (ys - y) ** 2 <= RADIUS ** 2
            mx, my = math.floor(x / STRIDE + 0.5), math.floor(y / STRIDE + 0.5)
            if 0 <= mx < WIDTH and 0 <= my < HEIGHT:
                disk[my, mx] = True
            maps[b, k] = disk
            weights[b, k] = float(disk.any())
    return maps, weights


def ref_megvii(points: np.ndarray, visible: np.ndarray, kernel: int = 11):
    """mmpose's Megvii loop: a one at the keypoint's cell, OpenCV's blur of the whole map,
    scaled to 255 at that cell; joint by joint."""
    import cv2

    batch, joints = points.shape[:2]
    maps = np.zeros((batch, joints, HEIGHT, WIDTH), dtype=np.float32)
    weights = visible.astype(np.float32).copy()
    for b in range(batch):
        for k in range(joints):
            if visible[b, k] < 0.5:
                continue
            kx, ky = math.floor(points[b, k, 0] / STRIDE), math.floor(points[b, k, 1] / STRIDE)
            if not (0 <= kx < WIDTH and 0 <= ky < HEIGHT):
                weights[b, k] = 0
                continue
            maps[b, k, ky, kx] = 1.0
            maps[b, k] = cv2.GaussianBlur(maps[b, k], (kernel, kernel), 0)
            maps[b, k] *= 255.0 / maps[b, k, ky, kx]
    return maps, weights


def ref_udp_combined(points: np.ndarray, visible: np.ndarray, factor: float = 0.0546875):
    """mmpose's UDP combined loop: UDP scaling, then per joint a disk and offset maps over the
    whole map; as kitpose, a joint whose disk misses the map gets weight 0."""
    batch, joints = points.shape[:2]
    maps = np.zeros((batch, joints, 3, HEIGHT, WIDTH), dtype=np.float32)
    weights = visible.astype(np.float32).copy()
    scale = np.array([(WIDTH * STRIDE - 1) / (WIDTH - 1), (HEIGHT * STRIDE - 1) / (HEIGHT - 1)])
    radius = factor * max(WIDTH, HEIGHT)
    xs, ys = np.arange(WIDTH), np.arange(HEIGHT)[:, None]
    for b in range(batch):
        for k in range(joints):
            if visible[b, k] < 0.5:
                continue
            mu = points[b, k] / scale
            dx, dy = (mu[0] - xs) / radius, (mu[1] - ys) / radius
            disk = dx ** 2 + dy ** 2 <= 1
            if not disk.any():
                weights[b, k] = 0
                continue
            maps[b, k, 0], maps[b, k, 1], maps[b, k, 2] = disk, dx, dy
    return maps.reshape(batch, joints * 3, HEIGHT, WIDTH), weights


def main() -> None:
    args = codec_arguments(__doc__.splitlines()[0])
    torch.set_num_threads(args.threads)
    run_tables(table, args)


def table(batch: int, args, ratios: dict[str, dict[int, float]]) -> None:
    """Time every encoder at one batch size and print its table."""
    g = torch.Generator().manual_seed(0)
    points = torch.rand(batch, args.joints, 2, generator=g) * torch.tensor(
        [WIDTH * STRIDE + 40.0, HEIGHT * STRIDE + 40.0]) - 20.0  # some joints off the map
    visible = (torch.rand(batch, args.joints, generator=g) > 0.1).float()
    array, shown = points.numpy(), visible.numpy()
    common = {"stride": STRIDE, "heatmap_size": [WIDTH, HEIGHT]}
    cases = [
        ("gaussian (quantised)", "gaussian", {"sigma": SIGMA, "unbiased": False}, ref_gaussian_quantised),
        ("  reference hoisted", "gaussian", {"sigma": SIGMA, "unbiased": False},
         lambda p, v: ref_gaussian_quantised(p, v, hoisted=True)),
        ("gaussian (unbiased)", "gaussian", {"sigma": SIGMA, "unbiased": True}, ref_gaussian_unbiased),
        ("one_hot (own loop)", "one_hot", {}, ref_one_hot),
        ("disk", "disk", {"radius": RADIUS}, ref_disk),
        ("megvii", "megvii", {"kernel": 11}, ref_megvii),
        ("udp_combined", "udp_combined", {}, ref_udp_combined),
    ]
    print(header("encode", batch, args, f" {HEIGHT}x{WIDTH}"))
    print(f"{'encoder':<22}{'kitpose ms':>18}{'reference ms':>20}{'speed-up':>10}{'max |diff|':>12}"
          "  (maps: relative to their peak)")
    print(f"{'':<22}{'best / median':>18}{'best / median':>20}{'(median)':>10}")
    for label, name, params, reference in cases:
        enc = kitpose.build("encoder", name, **common, **params)
        placed, seen = points.to(args.device), visible.to(args.device)
        ours, theirs, speedup = paired_ms(synced(lambda: enc(keypoints=placed, visible=seen), args.device),
                                          lambda: reference(array, shown), args.rounds, args.calls)
        ratios.setdefault(label, {})[batch] = speedup
        got = {k: v.cpu() for k, v in enc(keypoints=placed, visible=seen).items()}
        want_maps, want_weights = reference(array, shown)
        peak = max(1.0, float(np.abs(want_maps).max()))  # megvii's maps peak at 255: compare in float32 steps
        diff = max(np.abs(got["heatmaps"].numpy() - want_maps).max() / peak,
                   np.abs(got["weights"].numpy() - want_weights).max())
        print(f"{label:<22}{ours[0]:>9.2f} /{ours[1]:>7.2f}{theirs[0]:>11.2f} /{theirs[1]:>7.2f}"
              f"{speedup:>9.1f}x{diff:>12.1e}")
    print()


if __name__ == "__main__":
    main()
