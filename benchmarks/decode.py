"""Decoder speed: kitpose's batched decoders against per-joint reference loops, same run.

    python benchmarks/decode.py [--batch 1 8 64 256] [--joints 17] [--rounds 10] [--calls 8]
                                [--load N] [--policies]

Each reference decodes the way the public reference code does: numpy/OpenCV, one joint at
a time (the DARK reference blurs each map with cv2.GaussianBlur on a zero-padded copy,
rescales, takes the log and solves one Newton step per joint; the arg-max is HRNet's
``get_max_preds``, coordinates and maxima). Both sides decode the same float32 64x48 maps
(unbiased sigma-2 Gaussians plus N(0, 0.01) noise; UDP combined maps for ``udp_offsets``)
on the CPU with 2 threads. One table per batch size: best and median time of each side,
the speed-up (timed in alternating rounds, see ``_timing.paired_ms``), and the largest
coordinate difference (for ``dark``, over the joints both sides refine); then each
decoder's smallest speed-up. ``--load N`` times with N busy processes alongside (a loaded
machine); ``--policies`` runs everything under OMP_WAIT_POLICY=ACTIVE and then PASSIVE.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

import kitpose
from _timing import codec_arguments, header, paired_ms, run_tables, synced

HEIGHT, WIDTH, SIGMA = 64, 48, 2.0


# -- references: one joint at a time -------------------------------------------------------------
def ref_argmax(maps: np.ndarray) -> np.ndarray:
    """Argmax the way reference code does it: one vectorised numpy argmax (first index)."""
    batch, joints = maps.shape[:2]
    index = maps.reshape(batch, joints, -1).argmax(axis=-1)
    return np.stack([index % WIDTH, index // WIDTH], axis=-1).astype(np.float64)


def ref_max_preds(maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """HRNet's ``get_max_preds``: arg-max coordinates and maxima, coordinates zeroed where
    the maximum is not positive."""
    batch, joints = maps.shape[:2]
    flat = maps.reshape(batch, joints, -1)
    index = np.argmax(flat, 2).reshape(batch, joints, 1)
    maxima = np.amax(flat, 2).reshape(batch, joints, 1)
    preds = np.tile(index, (1, 1, 2)).astype(np.float32)
    preds[:, :, 0] = preds[:, :, 0] % WIDTH
    preds[:, :, 1] = np.floor(preds[:, :, 1] / WIDTH)
    preds *= np.tile(np.greater(maxima, 0.0), (1, 1, 2)).astype(np.float32)
    return preds, maxima


def ref_standard(maps: np.ndarray) -> np.ndarray:
    """Quarter-pixel shift towards the higher neighbour, per joint and per axis."""
    coords = ref_argmax(maps)
    for b in range(maps.shape[0]):
        for k in range(maps.shape[1]):
            hm = maps[b, k]
            px, py = int(coords[b, k, 0]), int(coords[b, k, 1])
            if 0 < px < WIDTH - 1:
                coords[b, k, 0] += 0.25 * np.sign(hm[py, px + 1] - hm[py, px - 1])
            if 0 < py < HEIGHT - 1:
                coords[b, k, 1] += 0.25 * np.sign(hm[py + 1, px] - hm[py - 1, px])
    return coords


def ref_dark(maps: np.ndarray, kernel: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """DARK as published: per-joint zero-padded blur, rescale, log, Newton step if det != 0.

    Returns the coordinates and a mask of the joints the step was applied to.
    """
    coords = ref_argmax(maps)
    batch, joints = maps.shape[:2]
    border = (kernel - 1) // 2
    logs = np.empty_like(maps)
    for b in range(batch):
        for k in range(joints):
            top = maps[b, k].max()
            padded = np.zeros((HEIGHT + 2 * border, WIDTH + 2 * border))
            padded[border:-border, border:-border] = maps[b, k]
            blurred = cv2.GaussianBlur(padded, (kernel, kernel), 0)[border:-border, border:-border]
            blurred *= top / blurred.max()
            logs[b, k] = np.log(np.maximum(blurred, 1e-10))
    stepped = np.zeros((batch, joints), dtype=bool)
    for b in range(batch):
        for k in range(joints):
            hm = logs[b, k]
            px, py = int(coords[b, k, 0]), int(coords[b, k, 1])
            if not (1 < px < WIDTH - 2 and 1 < py < HEIGHT - 2):
                continue
            dx = 0.5 * (hm[py, px + 1] - hm[py, px - 1])
            dy = 0.5 * (hm[py + 1, px] - hm[py - 1, px])
            dxx = 0.25 * (hm[py, px + 2] - 2 * hm[py, px] + hm[py, px - 2])
            dyy = 0.25 * (hm[py + 2, px] - 2 * hm[py, px] + hm[py - 2, px])
            dxy = 0.25 * (hm[py + 1, px + 1] - hm[py - 1, px + 1] - hm[py + 1, px - 1] + hm[py - 1, px - 1])
            if dxx * dyy - dxy * dxy != 0:
                hessian = np.array([[dxx, dxy], [dxy, dyy]])
                coords[b, k] -= np.linalg.solve(hessian, np.array([dx, dy]))
                stepped[b, k] = True
    return coords, stepped


def ref_dark_udp(maps: np.ndarray, kernel: int = 11) -> np.ndarray:
    """mmpose's DARK for UDP, organised as mmpose does: OpenCV blur map by map, then the
    clip, log, edge padding and the 3x3 Newton step for all joints of a sample at once."""
    batch, joints = maps.shape[:2]
    coords = ref_argmax(maps)
    border = (kernel - 1) // 2
    eye = np.finfo(np.float32).eps * np.eye(2)
    for b in range(batch):
        logs = np.empty((joints, HEIGHT, WIDTH))
        for k in range(joints):
            padded = np.zeros((HEIGHT + 2 * border, WIDTH + 2 * border))
            padded[border:-border, border:-border] = maps[b, k]
            blurred = cv2.GaussianBlur(padded, (kernel, kernel), 0)[border:-border, border:-border]
            logs[k] = blurred * (maps[b, k].max() / blurred.max())
        logs = np.pad(np.log(np.clip(logs, 1e-3, 50.0)), ((0, 0), (1, 1), (1, 1)), mode="edge")
        x, y, j = coords[b, :, 0].astype(int) + 1, coords[b, :, 1].astype(int) + 1, np.arange(joints)
        at = logs[j, y, x]
        right, left, down, up = logs[j, y, x + 1], logs[j, y, x - 1], logs[j, y + 1, x], logs[j, y - 1, x]
        dxy = 0.5 * (logs[j, y + 1, x + 1] - right - down + 2 * at - left - up + logs[j, y - 1, x - 1])
        hessian = np.stack([right - 2 * at + left, dxy, dxy, down - 2 * at + up], -1).reshape(-1, 2, 2)
        gradient = np.stack([0.5 * (right - left), 0.5 * (down - up)], -1)[..., None]
        coords[b] -= (np.linalg.inv(hessian + eye) @ gradient)[..., 0]
    return coords


def ref_megvii(maps: np.ndarray, kernel: int = 11) -> np.ndarray:
    """mmpose's Megvii decoding: zero-padded OpenCV blur map by map, arg-max, then a quarter
    towards the higher neighbour and half a cell inside the two-cell margin."""
    batch, joints = maps.shape[:2]
    border = (kernel - 1) // 2
    coords = np.zeros((batch, joints, 2))
    for b in range(batch):
        for k in range(joints):
            padded = np.zeros((HEIGHT + 2 * border, WIDTH + 2 * border))
            padded[border:-border, border:-border] = maps[b, k]
            hm = cv2.GaussianBlur(padded, (kernel, kernel), 0)[border:-border, border:-border]
            hm *= maps[b, k].max() / hm.max()
            py, px = np.unravel_index(np.argmax(hm), hm.shape)
            coords[b, k] = (px, py)
            if 1 < px < WIDTH - 1 and 1 < py < HEIGHT - 1:
                coords[b, k] += np.sign([hm[py, px + 1] - hm[py, px - 1], hm[py + 1, px] - hm[py - 1, px]]) * 0.25 + 0.5
    return coords


def ref_com(maps: np.ndarray, window: int = 7, steps: int = 3) -> np.ndarray:
    """Centre of mass in a window re-centred on the estimate, per joint (numpy per window)."""
    coords = ref_argmax(maps)
    reach = window + 2
    for b in range(maps.shape[0]):
        for k in range(maps.shape[1]):
            ax, ay = (int(v) for v in coords[b, k])
            x0, x1 = max(0, ax - reach), min(WIDTH, ax + reach + 1)
            y0, y1 = max(0, ay - reach), min(HEIGHT, ay + reach + 1)
            mass = np.maximum(maps[b, k, y0:y1, x0:x1], 0)
            dx, dy = np.arange(x0, x1) - ax, np.arange(y0, y1) - ay
            centre = np.zeros(2)
            for _ in range(steps + 1):
                wx = np.clip(window + 0.5 - np.abs(dx - centre[0]), 0, 1)
                wy = np.clip(window + 0.5 - np.abs(dy - centre[1]), 0, 1)
                weights = mass * wy[:, None] * wx[None, :]
                total = weights.sum()
                estimate = np.array([(weights.sum(0) * dx).sum(), (weights.sum(1) * dy).sum()]) / total
                centre = np.clip(estimate, -1, 1)
            coords[b, k] += estimate
    return coords


def ref_gaussfit(maps: np.ndarray, window: int = 2) -> np.ndarray:
    """Weighted least-squares fit of a quadratic to log h around the argmax, per joint."""
    coords = ref_argmax(maps)
    for b in range(maps.shape[0]):
        for k in range(maps.shape[1]):
            px, py = int(coords[b, k, 0]), int(coords[b, k, 1])
            x0, x1 = max(0, px - window), min(WIDTH, px + window + 1)
            y0, y1 = max(0, py - window), min(HEIGHT, py + window + 1)
            ys, xs = np.mgrid[y0:y1, x0:x1]
            values = maps[b, k, y0:y1, x0:x1] / maps[b, k, py, px]
            use = values > 0
            dx, dy, v = (xs - px)[use], (ys - py)[use], values[use]
            design = np.stack([np.ones_like(dx), dx, dy, dx * dx, dx * dy, dy * dy], -1).astype(np.float64)
            weights = v * v
            theta = np.linalg.solve(design.T @ (design * weights[:, None]), design.T @ (weights * np.log(v)))
            hessian = np.array([[2 * theta[3], theta[4]], [theta[4], 2 * theta[5]]])
            coords[b, k] -= np.linalg.solve(hessian, theta[1:3])
    return coords


def ref_soft_argmax(maps: np.ndarray, beta: float = 1.0) -> np.ndarray:
    """Softmax expectation per joint."""
    out = np.empty(maps.shape[:2] + (2,))
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    for b in range(maps.shape[0]):
        for k in range(maps.shape[1]):
            e = np.exp(beta * (maps[b, k] - maps[b, k].max()))
            p = e / e.sum()
            out[b, k] = ((p * xs).sum(), (p * ys).sum())
    return out


def ref_udp_combined(maps: np.ndarray, factor: float = 0.0546875, kernel: int = 23) -> np.ndarray:
    """mmpose's UDP combined decoding, map by map: OpenCV blur of the class map (its default
    border), arg-max, the offsets read there times the radius."""
    batch, channels = maps.shape[:2]
    radius = factor * max(HEIGHT, WIDTH)
    coords = np.zeros((batch, channels // 3, 2))
    for b in range(batch):
        for k in range(channels // 3):
            blurred = cv2.GaussianBlur(maps[b, 3 * k], (kernel, kernel), 0)
            py, px = np.unravel_index(np.argmax(blurred), blurred.shape)
            coords[b, k] = (px + maps[b, 3 * k + 1, py, px] * radius, py + maps[b, 3 * k + 2, py, px] * radius)
    return coords


def make_maps(batch: int, joints: int, seed: int = 0, encoder: str = "gaussian") -> torch.Tensor:
    """Targets of random keypoints plus N(0, 0.01) noise: unbiased sigma-2 Gaussians, or
    another encoder's maps."""
    params = {"sigma": SIGMA, "unbiased": True} if encoder == "gaussian" else {}
    enc = kitpose.build("encoder", encoder, heatmap_size=[WIDTH, HEIGHT], **params)
    g = torch.Generator().manual_seed(seed)
    cells = 3 + torch.rand(batch, joints, 2, generator=g) * torch.tensor([WIDTH - 7.0, HEIGHT - 7.0])
    maps = enc(keypoints=enc.to_image(cells))["heatmaps"]
    return maps + 0.01 * torch.randn(maps.shape, generator=g)


def main() -> None:
    args = codec_arguments(__doc__.splitlines()[0])
    torch.set_num_threads(args.threads)
    run_tables(table, args)


def table(batch: int, args, ratios: dict[str, dict[int, float]]) -> None:
    """Time every decoder at one batch size and print its table."""
    maps = make_maps(batch, args.joints)
    array = maps.numpy()
    combined = make_maps(batch, args.joints, encoder="udp_combined")
    cases = [
        ("argmax", {}, maps, lambda: ref_max_preds(array)[0]),
        ("standard", {}, maps, lambda: ref_standard(array)),
        ("dark", {"blur_kernel": 11}, maps, lambda: ref_dark(array)[0]),
        ("dark_udp", {"blur_kernel": 11}, maps, lambda: ref_dark_udp(array)),
        ("megvii_peak", {"kernel": 11}, maps, lambda: ref_megvii(array)),
        ("udp_offsets", {}, combined, lambda: ref_udp_combined(combined.numpy())),
        ("com", {}, maps, lambda: ref_com(array)),
        ("gaussfit", {}, maps, lambda: ref_gaussfit(array)),
        ("soft_argmax", {}, maps, lambda: ref_soft_argmax(array)),
    ]
    print(header("decode", batch, args, f" {HEIGHT}x{WIDTH}"))
    print(f"{'decoder':<13}{'kitpose ms':>18}{'reference ms':>20}{'speed-up':>10}{'max |diff| px':>15}")
    print(f"{'':<13}{'best / median':>18}{'best / median':>20}{'(median)':>10}")
    for name, params, inputs, reference in cases:
        dec = kitpose.build("decoder", name, **params)
        placed = inputs.to(args.device)
        ours, theirs, speedup = paired_ms(synced(lambda: dec(heatmaps=placed), args.device), reference,
                                          args.rounds, args.calls)
        ratios.setdefault(name, {})[batch] = speedup
        got = dec(heatmaps=placed)["keypoints"].double().cpu().numpy()
        note = ""
        if name == "dark":  # compared where the reference takes its Newton step
            want, stepped = ref_dark(array)
            diff = np.abs(got - want)[stepped]
            note = f"  (the {stepped.sum()} of {stepped.size} joints the reference refines)"
        else:
            diff = np.abs(got - reference())
        print(f"{name:<13}{ours[0]:>9.2f} /{ours[1]:>7.2f}{theirs[0]:>11.2f} /{theirs[1]:>7.2f}"
              f"{speedup:>9.1f}x{diff.max():>15.1e}{note}")
    print()


if __name__ == "__main__":
    main()
