"""Megvii heatmaps: the encoder and the decoder against joint-by-joint loops of mmpose's steps."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

import kitpose
from kitpose.errors import ComponentError
from kitpose.testing import check_decoder, check_encoder

STRIDE, WIDTH, HEIGHT = 4, 48, 64


def mmpose_megvii_targets(points, vis, kernel):
    """mmpose's Megvii targets, joint by joint (``floor`` where mmpose truncates): skip v < 0.5
    (weight kept); the cell floor(x / stride); weight 0 off the map; a one there, blurred by
    OpenCV with its default border, divided by its own value and times 255."""
    maps = np.zeros((len(points), HEIGHT, WIDTH))
    weights = np.array(vis, dtype=np.float64)
    for k, ((x, y), v) in enumerate(zip(points, vis)):
        if v < 0.5:
            continue
        kx, ky = math.floor(x / STRIDE), math.floor(y / STRIDE)
        if kx < 0 or kx >= WIDTH or ky < 0 or ky >= HEIGHT:
            weights[k] = 0
            continue
        maps[k, ky, kx] = 1.0
        maps[k] = cv2.GaussianBlur(maps[k], (kernel, kernel), 0)
        maps[k] = maps[k] / maps[k, ky, kx] * 255.0
    return maps, weights


def mmpose_megvii_decode(maps, kernel):
    """mmpose's Megvii decoding, joint by joint: zero-padded blur rescaled to the maximum,
    arg-max, and inside 1 < x < W - 1, 1 < y < H - 1 a quarter towards the higher
    neighbour plus half a cell; score = blurred maximum / 255 + 0.5."""
    border = (kernel - 1) // 2
    keypoints, scores = np.zeros((len(maps), 2)), np.zeros(len(maps))
    for k, hm in enumerate(maps):
        padded = np.zeros((HEIGHT + 2 * border, WIDTH + 2 * border))
        padded[border:-border, border:-border] = hm
        blurred = cv2.GaussianBlur(padded, (kernel, kernel), 0)[border:-border, border:-border]
        blurred *= hm.max() / blurred.max()
        py, px = np.unravel_index(np.argmax(blurred), blurred.shape)
        keypoints[k] = (px, py)
        if 1 < px < WIDTH - 1 and 1 < py < HEIGHT - 1:
            diff = np.array([blurred[py, px + 1] - blurred[py, px - 1], blurred[py + 1, px] - blurred[py - 1, px]])
            keypoints[k] += np.sign(diff) * 0.25 + 0.5
        scores[k] = blurred.max() / 255.0 + 0.5
    return keypoints, scores


@pytest.mark.parametrize("kernel", [11, 7])
def test_megvii_targets_are_mmposes(kernel):
    points = torch.tensor([[[100.3, 130.9], [3.0, 4.0], [190.5, 255.0], [-5.0, 10.0], [60.0, 70.0], [2.2, 120.0]]],
                          dtype=torch.float64)
    vis = torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.3, 0.5]], dtype=torch.float64)
    out = kitpose.build("encoder", "megvii", kernel=kernel)(keypoints=points, visible=vis)
    maps, weights = mmpose_megvii_targets(points[0].tolist(), vis[0].tolist(), kernel)
    assert torch.allclose(out["weights"][0], torch.from_numpy(weights))
    assert torch.allclose(out["heatmaps"][0], torch.from_numpy(maps), atol=1e-9)


@pytest.mark.parametrize("kernel", [11, 7])
def test_megvii_decoding_is_mmposes(kernel):
    g = torch.Generator().manual_seed(kernel)
    points = torch.rand(2, 9, 2, generator=g, dtype=torch.float64) * torch.tensor([191.0, 255.0])
    maps = kitpose.build("encoder", "megvii", kernel=kernel)(keypoints=points)["heatmaps"]
    maps = maps + 5.0 * torch.rand(maps.shape, generator=g, dtype=maps.dtype)
    out = kitpose.build("decoder", "megvii_peak", kernel=kernel)(heatmaps=maps)
    for b in range(2):
        keypoints, scores = mmpose_megvii_decode(maps[b].numpy(), kernel)
        assert np.allclose(out["keypoints"][b].numpy(), keypoints)
        assert np.allclose(out["scores"][b].numpy(), scores)


def test_megvii_round_trip_is_within_its_quantisation():
    enc, dec = kitpose.build("encoder", "megvii"), kitpose.build("decoder", "megvii_peak")
    points = 20 + torch.rand(4, 17, 2, generator=torch.Generator().manual_seed(0)) * 150
    decoded = enc.to_image(dec(heatmaps=enc(keypoints=points)["heatmaps"])["keypoints"])
    error = (decoded - points).abs()
    assert error.max() <= 0.75 * STRIDE + 1e-4  # the cell, half a cell back, a quarter either way


def test_megvii_codecs_keep_the_contracts():
    assert "weights" in check_encoder("megvii")
    assert "outputs" in check_decoder("megvii_peak")


@pytest.mark.parametrize("name, kind", [("megvii", "encoder"), ("megvii_peak", "decoder")])
def test_an_even_kernel_is_refused(name, kind):
    with pytest.raises(ComponentError, match="kernel"):
        kitpose.build(kind, name, kernel=4)


def test_clean_targets_decode_to_the_centre_of_their_cell():
    """A symmetric map has no slope: the decoder adds exactly half a cell (as mmpose does).
    (Within the kernel's reach of the edge, the reflected border makes a real slope.)"""
    enc, dec = kitpose.build("encoder", "megvii"), kitpose.build("decoder", "megvii_peak")
    points = 24 + torch.rand(4, 17, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 140
    decoded = dec(heatmaps=enc(keypoints=points)["heatmaps"])["keypoints"]
    assert torch.equal(decoded, torch.floor(points / STRIDE) + 0.5)


def test_the_flip_test_lines_megvii_maps_up():
    """Mirrored keypoints, drawn and flipped back with megvii's shift, land where the plain ones do."""
    enc = kitpose.build("encoder", "megvii")
    points = 30 + torch.rand(64, 6, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 120
    mirrored = points.clone()
    mirrored[..., 0] = WIDTH * STRIDE - 1 - points[..., 0]
    dark = kitpose.build("decoder", "dark", max_step=None)
    plain = dark(heatmaps=enc(keypoints=points)["heatmaps"])["keypoints"]
    back = dark(heatmaps=enc.flip_back(enc(keypoints=mirrored)["heatmaps"], None))["keypoints"]
    assert enc.flip_shift == pytest.approx(-0.25)
    assert (back - plain)[..., 0].mean().abs() < 0.05  # the floor moves single joints by a cell, not the mean


@pytest.mark.parametrize("shape", [(2, 5), (1, 7), (5, 1)])
def test_megvii_handles_maps_smaller_than_its_kernel(shape):
    maps = torch.rand(1, 2, *shape, generator=torch.Generator().manual_seed(0))
    out = kitpose.build("decoder", "megvii_peak")(heatmaps=maps)
    assert torch.isfinite(out["keypoints"]).all()
    from kitpose_plugins.codecs.blur import MapBlur

    one = np.zeros((7, 5))
    one[0, 4] = 1.0
    ours = MapBlur(11, reflect=True)(torch.from_numpy(one)[None, None])[0, 0].numpy()
    assert np.allclose(ours, cv2.GaussianBlur(one, (11, 11), 0))
