"""Integral regression speed: kitpose's soft-argmax, debiased soft-argmax and DSNT regulariser
against per-joint reference loops, same run.

    python benchmarks/integral.py [--batch 1 8 64 256] [--joints 17] [--rounds 10] [--calls 8]
                                  [--load N] [--policies]

The references do what the papers' formulas say one joint at a time in numpy:
the softmax expectation; the debiased expectation ``(C J - N c) / (C - N)`` (Gu et al., 2021);
dsntnn's Jensen-Shannon regulariser (normalised coordinates ``(2 i + 1) / n - 1``, a Gaussian
of ``2 sigma / n``, ``eps = 1e-24``) averaged over the joints. Both sides are timed on
float32 maps, as a network gives them; the differences are taken against the references
run in float64. Maps: 64x48 unbiased sigma-2 Gaussians plus N(0, 0.01) noise, on the CPU
with 2 threads. One table per batch size: best and median time of each side, the speed-up
(timed in alternating rounds, see ``_timing.paired_ms``), and the largest difference (cells
for the decoders, the loss value for the regulariser); then each component's smallest
speed-up. ``--load N`` and ``--policies`` as in ``decode.py``. Last, an accuracy line: how
far plain and debiased soft-argmax land from the true centres of clean maps.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

import kitpose
from _timing import codec_arguments, header, paired_ms, run_tables

HEIGHT, WIDTH, SIGMA, REG_SIGMA = 64, 48, 2.0, 1.0
YS, XS = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)


# -- references: one joint at a time -------------------------------------------------------------
def ref_soft_argmax(maps: np.ndarray) -> np.ndarray:
    """Softmax expectation per joint."""
    out = np.empty(maps.shape[:2] + (2,))
    for b in range(maps.shape[0]):
        for k in range(maps.shape[1]):
            e = np.exp(maps[b, k] - maps[b, k].max())
            p = e / e.sum()
            out[b, k] = ((p * XS).sum(), (p * YS).sum())
    return out


def ref_debiased(maps: np.ndarray) -> np.ndarray:
    """The paper's compensation per joint: ``(C J - N c) / (C - N)``, C the sum of exp(h)."""
    out = np.empty(maps.shape[:2] + (2,))
    n = HEIGHT * WIDTH
    centre = np.array([(WIDTH - 1) / 2, (HEIGHT - 1) / 2])
    for b in range(maps.shape[0]):
        for k in range(maps.shape[1]):
            e = np.exp(maps[b, k])
            c_sum = e.sum()
            p = e / c_sum
            expected = np.array([(p * XS).sum(), (p * YS).sum()])
            out[b, k] = (c_sum * expected - n * centre) / (c_sum - n)
    return out


def ref_dsnt_reg(logits: np.ndarray, cells: np.ndarray, sigma: float = REG_SIGMA) -> float:
    """dsntnn's js_reg_losses and average_loss, per joint."""
    eps = 1e-24
    xn = (2 * np.arange(WIDTH) + 1) / WIDTH - 1
    yn = (2 * np.arange(HEIGHT) + 1) / HEIGHT - 1
    total = 0.0
    for b in range(logits.shape[0]):
        for k in range(logits.shape[1]):
            e = np.exp(logits[b, k] - logits[b, k].max())
            p = e / e.sum()
            mx = (2 * cells[b, k, 0] + 1) / WIDTH - 1
            my = (2 * cells[b, k, 1] + 1) / HEIGHT - 1
            gx = np.exp(-0.5 * ((xn - mx) / (2 * sigma / WIDTH)) ** 2)
            gy = np.exp(-0.5 * ((yn - my) / (2 * sigma / HEIGHT)) ** 2)
            gauss = gy[:, None] * gx[None, :]
            q = gauss / (gauss.sum() + eps)
            m = 0.5 * (p + q)
            js = 0.5 * (p * (np.log(p + eps) - np.log(m + eps))).sum() \
                + 0.5 * (q * (np.log(q + eps) - np.log(m + eps))).sum()
            total += js
    return total / max(logits.shape[0] * logits.shape[1], 1)


def make_maps(batch: int, joints: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    enc = kitpose.build("encoder", "gaussian", sigma=SIGMA, heatmap_size=[WIDTH, HEIGHT], unbiased=True)
    g = torch.Generator().manual_seed(seed)
    cells = 6 + torch.rand(batch, joints, 2, generator=g) * torch.tensor([WIDTH - 12.0, HEIGHT - 12.0])
    maps = enc(keypoints=enc.to_image(cells))["heatmaps"]
    return maps + 0.01 * torch.randn(maps.shape, generator=g), cells


def main() -> None:
    args = codec_arguments(__doc__.splitlines()[0])
    torch.set_num_threads(args.threads)
    run_tables(table, args)
    print(clean_map_errors())


def clean_map_errors() -> str:
    """Accuracy, not speed: the pull towards the map centre on clean maps, and what the
    debiased form leaves of it (136 joints, sigma 2, at least 10 cells from the border)."""
    enc = kitpose.build("encoder", "gaussian", sigma=SIGMA, unbiased=True, heatmap_size=[WIDTH, HEIGHT])
    g = torch.Generator().manual_seed(0)
    cells = 10 + torch.rand(8, 17, 2, generator=g) * torch.tensor([WIDTH - 21.0, HEIGHT - 21.0])
    maps = enc(keypoints=enc.to_image(cells))["heatmaps"].double()
    lines = [f"clean maps {HEIGHT}x{WIDTH}, sigma {SIGMA}, beta 1, {cells.shape[0] * cells.shape[1]} joints "
             "at least 10 cells from the border: distance to the true centre, cells (mean / max)"]
    for label, dec, dtype in (("soft_argmax", kitpose.build("decoder", "soft_argmax"), torch.float64),
                              ("soft_argmax debias, float64", kitpose.build("decoder", "soft_argmax", debias=True),
                               torch.float64),
                              ("soft_argmax debias, float32", kitpose.build("decoder", "soft_argmax", debias=True),
                               torch.float32)):
        error = (dec(heatmaps=maps.to(dtype))["keypoints"].double() - cells.double()).norm(dim=-1)
        lines.append(f"  {label:<30}{float(error.mean()):>10.2e} / {float(error.max()):.2e}")
    return "\n".join(lines)


def table(batch: int, args: argparse.Namespace, ratios: dict[str, dict[int, float]]) -> None:
    """Time the three components at one batch size and print their table."""
    plain = kitpose.build("decoder", "soft_argmax")
    debias = kitpose.build("decoder", "soft_argmax", debias=True)
    reg = kitpose.build("loss", "dsnt_reg", sigma=REG_SIGMA)
    maps, cells = make_maps(batch, args.joints)
    array, points = maps.numpy(), cells.numpy()  # float32, as a network gives them
    wide, wide_points = maps.double().numpy(), cells.double().numpy()  # for the differences
    cases = [
        ("soft_argmax", lambda: plain(heatmaps=maps)["keypoints"], ref_soft_argmax, (array,), (wide,)),
        ("soft_argmax debias", lambda: debias(heatmaps=maps)["keypoints"], ref_debiased, (array,), (wide,)),
        ("dsnt_reg (js)", lambda: reg(pred=maps, target=cells)["loss"], ref_dsnt_reg, (array, points),
         (wide, wide_points)),
    ]
    print(header("integral", batch, args, f" {HEIGHT}x{WIDTH}"))
    print(f"{'component':<22}{'kitpose ms':>18}{'reference ms':>20}{'speed-up':>10}{'max |diff|':>12}")
    print(f"{'':<22}{'best / median':>18}{'best / median':>20}{'(median)':>10}")
    for name, ours, reference, inputs, exact in cases:
        with torch.no_grad():
            mine, theirs, speedup = paired_ms(ours, lambda: reference(*inputs), args.rounds, args.calls)
            diff = np.abs(ours().double().numpy() - reference(*exact)).max()
        ratios.setdefault(name, {})[batch] = speedup
        print(f"{name:<22}{mine[0]:>9.3f} /{mine[1]:>7.3f}{theirs[0]:>11.2f} /{theirs[1]:>7.2f}"
              f"{speedup:>9.1f}x{diff:>12.1e}")
    print()


if __name__ == "__main__":
    main()
