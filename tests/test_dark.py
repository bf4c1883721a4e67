"""DARK and the weighted Gaussian fit: accuracy, agreement with the reference, guards, borders."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

import kitpose
from kitpose.errors import ComponentError


def decoder(name: str, **params):
    return kitpose.build("decoder", name, **params)


def targets(batch=8, joints=17, sigma=2.0, size=(48, 64), unbiased=True, margin=10.0, seed=0):
    """Gaussian targets (cells) at random centres at least ``margin`` cells inside the map."""
    enc = kitpose.build("encoder", "gaussian", sigma=sigma, stride=4, heatmap_size=list(size),
                        unbiased=unbiased)
    g = torch.Generator().manual_seed(seed)
    span = torch.tensor([size[0] - 1.0, size[1] - 1.0]) - 2 * margin
    cells = margin + torch.rand(batch, joints, 2, generator=g) * span
    return enc(keypoints=enc.to_image(cells))["heatmaps"].double(), cells.double()


def reference_dark(maps: np.ndarray, kernel: int) -> np.ndarray:
    """The DARK reference, joint by joint: argmax, zero-padded OpenCV blur rescaled to the
    original maximum, log, one Newton step when det != 0 and 2 < x < w - 3 (same for y)."""
    batch, joints, height, width = maps.shape
    flat = maps.reshape(batch, joints, -1)
    index = flat.argmax(-1)
    coords = np.stack([index % width, index // width], -1).astype(np.float64)
    border = (kernel - 1) // 2
    for b in range(batch):
        for k in range(joints):
            top = maps[b, k].max()
            padded = np.zeros((height + 2 * border, width + 2 * border))
            padded[border:-border, border:-border] = maps[b, k]
            blurred = cv2.GaussianBlur(padded, (kernel, kernel), 0)[border:-border, border:-border]
            hm = np.log(np.maximum(blurred * (top / blurred.max()), 1e-10))
            px, py = int(coords[b, k, 0]), int(coords[b, k, 1])
            if 1 < px < width - 2 and 1 < py < height - 2:
                dx = 0.5 * (hm[py, px + 1] - hm[py, px - 1])
                dy = 0.5 * (hm[py + 1, px] - hm[py - 1, px])
                dxx = 0.25 * (hm[py, px + 2] - 2 * hm[py, px] + hm[py, px - 2])
                dyy = 0.25 * (hm[py + 2, px] - 2 * hm[py, px] + hm[py - 2, px])
                dxy = 0.25 * (hm[py + 1, px + 1] - hm[py - 1, px + 1] - hm[py + 1, px - 1]
                              + hm[py - 1, px - 1])
                det = dxx * dyy - dxy ** 2
                if det != 0:
                    hessian = np.array([[dxx, dxy], [dxy, dyy]])
                    coords[b, k] -= np.linalg.solve(hessian, np.array([dx, dy]))
    return coords


def two_peaked(batch=32, joints=8, seed=0):
    """Maps with two nearby Gaussian peaks of similar height: where an unguarded step jumps."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(64.0), torch.arange(48.0), indexing="ij")
    first = 15 + torch.rand(batch, joints, 2, generator=g) * torch.tensor([18.0, 34.0])
    angle = torch.rand(batch, joints, generator=g) * 6.283
    gap = 2.5 + 3.0 * torch.rand(batch, joints, generator=g)
    second = first + gap[..., None] * torch.stack([angle.cos(), angle.sin()], -1)
    height = 0.75 + 0.25 * torch.rand(batch, joints, generator=g)
    sigma = 1.0 + torch.rand(batch, joints, 1, 1, generator=g)

    def bump(c):
        return torch.exp(-((xs - c[..., 0, None, None]) ** 2 + (ys - c[..., 1, None, None]) ** 2)
                         / (2 * sigma ** 2))

    return (bump(first) + height[..., None, None] * bump(second)).double()


# -- accuracy -------------------------------------------------------------------------------------------
def test_dark_round_trip_k11_sigma2():
    maps, cells = targets(batch=16)
    out = decoder("dark", blur_kernel=11)(heatmaps=maps)["keypoints"]
    assert (out - cells).norm(dim=-1).max() < 1e-3


def test_dark_round_trip_k3_sigma1_low_resolution():
    maps, cells = targets(batch=16, sigma=1.0, size=(24, 32), margin=5.0)
    error = (decoder("dark", blur_kernel=3)(heatmaps=maps)["keypoints"] - cells).norm(dim=-1)
    assert error.max() < 0.03 and error.mean() < 0.015


@pytest.mark.parametrize("sigma,kernel", [(2.0, 11), (1.0, 3)])
def test_quantised_targets_decode_to_the_quantised_centre(sigma, kernel):
    maps, cells = targets(batch=8, sigma=sigma, unbiased=False)
    out = decoder("dark", blur_kernel=kernel)(heatmaps=maps)["keypoints"]
    assert (out - torch.floor(cells + 0.5)).abs().max() < 1e-6


def test_dark_under_noise():
    maps, cells = targets(batch=16, seed=7)
    noise = torch.randn(maps.shape, generator=torch.Generator().manual_seed(8), dtype=maps.dtype)
    noisy = maps + 0.02 * noise
    error = (decoder("dark")(heatmaps=noisy)["keypoints"] - cells).norm(dim=-1)
    assert error.mean() < 0.03


# -- agreement with the reference, and the guards ----------------------------------------------------------
@pytest.mark.parametrize("kernel,sigma", [(11, 2.0), (3, 1.0), (7, 1.5)])
def test_dark_equals_the_reference_where_the_reference_refines(kernel, sigma):
    agrees_with_reference("dark", lambda maps: reference_dark(maps, kernel), kernel, sigma, margin=3.0,
                          noise=0.01, tolerance=1e-4, single_tolerance=1e-4)


def agrees_with_reference(name, reference, kernel, sigma, *, margin, noise, tolerance, single_tolerance):
    """``name`` decodes noisy targets as ``reference`` does, in float64 and in float32."""
    maps, _ = targets(batch=6, sigma=sigma, margin=margin, seed=kernel)
    maps = maps + noise * torch.rand(maps.shape, generator=torch.Generator().manual_seed(1), dtype=maps.dtype)
    want = torch.from_numpy(reference(maps.numpy()))
    got = decoder(name, blur_kernel=kernel)(heatmaps=maps)["keypoints"]
    assert (got - want).abs().max() < tolerance
    single = decoder(name, blur_kernel=kernel)(heatmaps=maps.float())["keypoints"]
    assert (single.double() - want).abs().max() < single_tolerance


@pytest.mark.parametrize("name", ["dark", "gaussfit"])
def test_never_more_than_one_cell_from_the_argmax_on_two_peaked_maps(name):
    maps = two_peaked()
    argmax = decoder("argmax")(heatmaps=maps)["keypoints"]
    moved = (decoder(name)(heatmaps=maps)["keypoints"] - argmax).norm(dim=-1)
    assert moved.max() <= 1.0 + 1e-9
    if name == "dark":  # the unguarded reference step does jump on these maps
        reference = torch.from_numpy(reference_dark(maps.numpy(), 11))
        assert (reference - argmax).norm(dim=-1).max() > 1.2


def test_dark_falls_back_to_standard_near_the_border():
    enc = kitpose.build("encoder", "gaussian", sigma=2.0, unbiased=True)
    cells = torch.stack([torch.rand(4, 6, generator=torch.Generator().manual_seed(4)) * 1.4,
                         10 + torch.rand(4, 6, generator=torch.Generator().manual_seed(5)) * 40], -1)
    maps = enc(keypoints=enc.to_image(cells))["heatmaps"].double()
    dark = decoder("dark")(heatmaps=maps)["keypoints"]
    standard = decoder("standard")(heatmaps=maps)["keypoints"]
    assert torch.equal(dark, standard)
    fit = decoder("gaussfit")(heatmaps=maps)["keypoints"]
    assert (fit - cells.double()).norm(dim=-1).max() < 1e-3  # the fit refines at the border


# -- gaussfit ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sigma,size", [(2.0, (48, 64)), (1.0, (24, 32)), (3.0, (48, 64))])
def test_gaussfit_is_exact_on_clean_maps(sigma, size):
    maps, cells = targets(batch=8, sigma=sigma, size=size, margin=4.0)
    out = decoder("gaussfit")(heatmaps=maps)["keypoints"]
    assert (out - cells).norm(dim=-1).max() < 1e-4


def test_gaussfit_under_noise():
    maps, cells = targets(batch=16, seed=7)
    noise = torch.randn(maps.shape, generator=torch.Generator().manual_seed(8), dtype=maps.dtype)
    noisy = maps + 0.02 * noise
    error = (decoder("gaussfit", window=3)(heatmaps=noisy)["keypoints"] - cells).norm(dim=-1)
    assert error.mean() < 0.03


def test_without_a_cap_dark_steps_as_far_as_the_reference_where_h_is_a_maximum():
    maps = two_peaked()
    free = decoder("dark", max_step=None)(heatmaps=maps)["keypoints"]
    argmax = decoder("argmax")(heatmaps=maps)["keypoints"]
    reference = torch.from_numpy(reference_dark(maps.numpy(), 11))
    far = (reference - argmax).norm(dim=-1) > 1.2  # where the default cap cuts the step
    assert far.sum() > 10 and ((free - reference).norm(dim=-1) < 1e-4).all()
    capped = decoder("dark")(heatmaps=maps)["keypoints"]
    assert ((capped - reference).norm(dim=-1)[far] > 0.2).all()
    half = decoder("dark", max_step=0.5)(heatmaps=maps)["keypoints"]
    assert (half - argmax).norm(dim=-1).max() <= 0.5 + 1e-9


def test_no_cap_is_closer_under_heavy_noise():
    """The trade-off docs/codecs.md measures: noise moves the argmax, the step must come back."""
    maps, cells = targets(batch=16, sigma=3.0, seed=3)
    noisy = maps + 0.1 * torch.randn(maps.shape, generator=torch.Generator().manual_seed(4), dtype=maps.dtype)
    error = {cap: (decoder("dark", max_step=cap)(heatmaps=noisy)["keypoints"] - cells).norm(dim=-1).mean()
             for cap in (1.0, None)}
    assert error[None] < error[1.0]


# -- parameters and shapes -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name,params", [("dark", {"blur_kernel": 4}), ("dark", {"blur_kernel": 0}),
                                         ("dark", {"max_step": 0}), ("dark", {"max_step": "far"}),
                                         ("gaussfit", {"window": 0})])
def test_bad_parameters(name, params):
    with pytest.raises(ComponentError, match=next(iter(params))):
        decoder(name, **params)


@pytest.mark.parametrize("name", ["dark", "gaussfit"])
def test_volumes_are_refused_with_a_clear_message(name):
    with pytest.raises(ComponentError, match=r"\[B, K, h, w\]"):
        decoder(name)(heatmaps=torch.rand(1, 2, 3, 8, 8))


def test_uncapped_dark_keeps_the_decoder_contract():
    from kitpose.testing import check_decoder

    assert "outputs" in check_decoder("dark", params={"max_step": None})


# -- dark_udp: mmpose's DARK for UDP maps ---------------------------------------------------------------------
def reference_dark_udp(maps: np.ndarray, kernel: int) -> np.ndarray:
    """mmpose's documented UDP decoding, joint by joint: argmax; zero-padded OpenCV blur rescaled
    to the map's maximum; clip to [1e-3, 50]; log; edge padding by one; one Newton step with
    unit-step differences and float32's epsilon added to the diagonal of H, never guarded."""
    batch, joints, height, width = maps.shape
    out = np.zeros((batch, joints, 2))
    border = (kernel - 1) // 2
    for b in range(batch):
        for k in range(joints):
            hm = maps[b, k]
            y, x = np.unravel_index(np.argmax(hm), hm.shape)
            padded = np.zeros((height + 2 * border, width + 2 * border))
            padded[border:-border, border:-border] = hm
            blurred = cv2.GaussianBlur(padded, (kernel, kernel), 0)[border:-border, border:-border]
            blurred *= hm.max() / blurred.max()
            logs = np.pad(np.log(np.clip(blurred, 1e-3, 50.0)), 1, mode="edge")
            px, py = x + 1, y + 1
            dx = 0.5 * (logs[py, px + 1] - logs[py, px - 1])
            dy = 0.5 * (logs[py + 1, px] - logs[py - 1, px])
            dxx = logs[py, px + 1] - 2 * logs[py, px] + logs[py, px - 1]
            dyy = logs[py + 1, px] - 2 * logs[py, px] + logs[py - 1, px]
            dxy = 0.5 * (logs[py + 1, px + 1] - logs[py, px + 1] - logs[py + 1, px] + 2 * logs[py, px]
                         - logs[py, px - 1] - logs[py - 1, px] + logs[py - 1, px - 1])
            hessian = np.array([[dxx, dxy], [dxy, dyy]]) + np.finfo(np.float32).eps * np.eye(2)
            out[b, k] = np.array([x, y]) - np.linalg.inv(hessian) @ np.array([dx, dy])
    return out


@pytest.mark.parametrize("kernel,sigma", [(11, 2.0), (7, 1.5)])
def test_dark_udp_equals_mmposes_decoding(kernel, sigma):  # margin 0: joints up to the border
    agrees_with_reference("dark_udp", lambda maps: reference_dark_udp(maps, kernel), kernel, sigma, margin=0.0,
                          noise=0.02, tolerance=1e-6, single_tolerance=1e-3)


def test_dark_udp_round_trip_on_udp_targets():
    enc = kitpose.build("encoder", "gaussian", sigma=2.0, heatmap_size=[48, 64], unbiased=True, convention="udp")
    cells = 8 + torch.rand(4, 17, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 30
    maps = enc(keypoints=enc.to_image(cells))["heatmaps"]
    error = (decoder("dark_udp")(heatmaps=maps)["keypoints"] - cells).norm(dim=-1)
    assert error.max() < 0.02


def test_dark_udp_keeps_the_decoder_contract():
    from kitpose.testing import check_decoder

    assert "outputs" in check_decoder("dark_udp")


@pytest.mark.parametrize("shape", [(0, 17, 64, 48), (2, 0, 64, 48)])
def test_dark_udp_takes_empty_batches(shape):
    out = decoder("dark_udp")(heatmaps=torch.zeros(shape))
    assert out["keypoints"].shape == (*shape[:2], 2)
