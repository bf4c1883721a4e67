"""Encoders: target values, weight rules, conventions, flip_back, devices and bad input."""
from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

import kitpose
from kitpose.errors import ComponentError, KitposeError

DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device")])]


def encoder(name: str, **params):
    return kitpose.build("encoder", name, **params)


def decoder(name: str, **params):
    return kitpose.build("decoder", name, **params)


def interior_points(batch: int, joints: int, seed: int = 0, size=(192, 256), margin=40.0):
    """Random input-px keypoints well inside a ``size`` (w, h) image."""
    g = torch.Generator().manual_seed(seed)
    span = torch.tensor([size[0] - 1 - 2 * margin, size[1] - 1 - 2 * margin])
    return margin + torch.rand(batch, joints, 2, generator=g) * span


# -- registry and contract -----------------------------------------------------------------
@pytest.mark.parametrize("name", ["gaussian", "one_hot", "disk", "gaussian3d", "one_hot3d"])
def test_every_encoder_builds_and_declares_its_contract(name):
    enc = encoder(name)
    assert enc.outputs == ("heatmaps", "weights")
    assert enc.flow_methods == ("to_heatmap", "to_image")
    dims = 3 if name.endswith("3d") else 2
    points = torch.full((2, 3, dims), 0.0)
    points[..., :2] = 60.0
    out = enc(keypoints=points, visible=torch.ones(2, 3))
    shape = (2, 3, 64, 48) if dims == 2 else (2, 3, 64, 64, 48)
    assert out["heatmaps"].shape == shape
    assert out["weights"].shape == (2, 3)
    assert torch.equal(out["weights"], torch.ones(2, 3))


def test_plugin_modules_register_lazily_without_importing_torch():
    code = ("import sys, kitpose_plugins.codecs, kitpose_plugins.dark, "
            "kitpose_plugins.integral; assert 'torch' not in sys.modules and 'cv2' not in sys.modules "
            "and 'numpy' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_encoder_summaries_are_listed():
    summaries = {e.name: e.summary for e in kitpose.list_components("encoder")}
    assert all(summaries[n] and not summaries[n].startswith("(broken") for n in
               ["gaussian", "one_hot", "disk", "gaussian3d", "one_hot3d"])


# -- Gaussian, quantised and unbiased ---------------------------------------------------------
def reference_quantised(x: float, y: float, sigma: float, stride: int, w: int, h: int) -> np.ndarray:
    """One joint the way the reference data loaders draw it: rounded centre, 3-sigma patch."""
    out = np.zeros((h, w))
    mx, my = math.floor(x / stride + 0.5), math.floor(y / stride + 0.5)
    r = int(3 * sigma)
    for j in range(my - r, my + r + 1):
        for i in range(mx - r, mx + r + 1):
            if 0 <= i < w and 0 <= j < h:
                out[j, i] = math.exp(-((i - mx) ** 2 + (j - my) ** 2) / (2 * sigma ** 2))
    return out


@pytest.mark.parametrize("sigma", [1.0, 2.0])
def test_quantised_gaussian_matches_the_reference_drawing(sigma):
    points = torch.tensor([[[10.0, 21.0], [0.0, 0.0], [190.0, 5.0], [97.9, 130.1]]])
    enc = encoder("gaussian", sigma=sigma, stride=4, heatmap_size=[48, 64])
    maps = enc(keypoints=points, visible=torch.ones(1, 4))["heatmaps"]
    for k in range(4):
        want = reference_quantised(*points[0, k].tolist(), sigma, 4, 48, 64)
        np.testing.assert_allclose(maps[0, k].numpy(), want, atol=1e-6)


def test_quantised_centre_rounds_half_up_and_floors_negative_coordinates():
    enc = encoder("gaussian", sigma=2.0, stride=4)
    # x / s = 2.5 -> cell 3; -0.5 -> cell 0; -0.6 -> cell -1 (floor), where int(x + 0.5) says 0
    points = torch.tensor([[[10.0, 8.0], [-2.0, 8.0], [-2.4, 8.0]]])
    maps = enc(keypoints=points)["heatmaps"]
    assert maps[0, 0, 2, 3] == 1.0 and maps[0, 1, 2, 0] == 1.0
    assert maps[0, 2, 2, 0].item() == pytest.approx(math.exp(-1 / 8))
    assert maps[0, 2].max() < 1.0


def test_unbiased_gaussian_is_centred_exactly():
    points = interior_points(4, 5)
    enc = encoder("gaussian", sigma=2.0, unbiased=True)
    maps = enc(keypoints=points)["heatmaps"].double()
    centre = enc.to_heatmap(points).double()
    ys, xs = torch.meshgrid(torch.arange(64.0), torch.arange(48.0), indexing="ij")
    want = torch.exp(-((xs - centre[..., 0, None, None]) ** 2 + (ys - centre[..., 1, None, None]) ** 2) / 8)
    torch.testing.assert_close(maps, want.double(), atol=1e-6, rtol=0)
    mass = maps.sum(dim=(-2, -1))
    com = torch.stack([(maps * xs).sum(dim=(-2, -1)), (maps * ys).sum(dim=(-2, -1))], -1) / mass[..., None]
    assert (com - centre).abs().max() < 1e-4


def test_weight_is_zero_when_the_window_misses_the_map():
    enc = encoder("gaussian", sigma=2.0, stride=4)  # window radius 6 cells
    points = torch.tensor([[[-24.0, 100.0], [-28.0, 100.0], [4 * (47 + 6), 100.0], [4 * (47 + 7), 100.0]]])
    out = enc(keypoints=points, visible=torch.ones(1, 4))
    assert out["weights"].tolist() == [[1.0, 0.0, 1.0, 0.0]]
    assert out["heatmaps"][0, 1].abs().sum() == 0 and out["heatmaps"][0, 3].abs().sum() == 0
    # the kept edge joints still touch the map with the window's last cell
    assert out["heatmaps"][0, 0, 25, 0] == pytest.approx(math.exp(-36 / 8))


def test_invisible_and_non_finite_joints_get_zero_weight_and_empty_maps():
    enc = encoder("gaussian", unbiased=True)
    points = torch.tensor([[[50.0, 50.0], [60.0, 60.0], [float("nan"), 10.0], [float("inf"), 3.0]]])
    out = enc(keypoints=points, visible=torch.tensor([[1.0, 0.0, 1.0, 1.0]]))
    assert out["weights"].tolist() == [[1.0, 0.0, 0.0, 0.0]]
    assert torch.isfinite(out["heatmaps"]).all()
    assert out["heatmaps"][0, 1:].abs().sum() == 0


# -- conventions ------------------------------------------------------------------------------
@pytest.mark.parametrize("convention", ["msra", "udp"])
def test_to_image_inverts_to_heatmap(convention):
    enc = encoder("gaussian", convention=convention, heatmap_size=[48, 64], stride=4)
    xy = torch.rand(5, 7, 2, dtype=torch.float64) * 300 - 50
    torch.testing.assert_close(enc.to_image(enc.to_heatmap(xy)), xy, atol=1e-9, rtol=0)
    xy32 = xy.float()
    torch.testing.assert_close(enc.to_image(enc.to_heatmap(xy32)), xy32, atol=1e-4, rtol=0)


def test_convention_maps():
    msra = encoder("gaussian", convention="msra", stride=4, heatmap_size=[48, 64])
    udp = encoder("gaussian", convention="udp", stride=4, heatmap_size=[48, 64])
    corners = torch.tensor([[0.0, 0.0], [191.0, 255.0]])
    assert udp.to_heatmap(corners).tolist() == [[0.0, 0.0], [47.0, 63.0]]
    assert msra.to_heatmap(corners).tolist() == [[0.0, 0.0], [191 / 4, 255 / 4]]
    assert msra.to_image(torch.tensor([3.0, 5.0])).tolist() == [12.0, 20.0]
    custom = encoder("gaussian", convention="udp", heatmap_size=[48, 64], input_size=[96, 128])
    assert custom.to_heatmap(torch.tensor([95.0, 127.0])).tolist() == [47.0, 63.0]


# -- flip_back --------------------------------------------------------------------------------
FLIP_PAIRS = [[1, 2], [3, 4]]


def mirrored(points: torch.Tensor, width: int, pairs) -> torch.Tensor:
    """Keypoints of the horizontally flipped image (x' = W - 1 - x), left/right swapped."""
    out = points.clone()
    out[..., 0] = width - 1 - out[..., 0]
    order = list(range(points.shape[1]))
    for a, b in pairs:
        order[a], order[b] = b, a
    return out[:, order]


@pytest.mark.parametrize("convention,stride", [("msra", 4), ("msra", 2), ("udp", 4)])
def test_flip_back_of_mirrored_targets_decodes_to_the_original_keypoints(convention, stride):
    size = [48, 64]
    enc = encoder("gaussian", sigma=2.0, stride=stride, heatmap_size=size, unbiased=True,
                  convention=convention)
    width = enc.grid.input_size[0]
    points = interior_points(3, 5, seed=3, size=enc.grid.input_size, margin=10 * stride)
    flipped_maps = enc(keypoints=mirrored(points, width, FLIP_PAIRS))["heatmaps"]
    restored = enc.flip_back(flipped_maps, FLIP_PAIRS)
    decoded = decoder("dark")(heatmaps=restored)["keypoints"]
    assert (enc.to_image(decoded) - points).abs().max() < 1e-3 * stride
    # without the shift a mirrored MSRA map is off by -(1 - 1/s) cells
    plain = decoder("dark")(heatmaps=flipped_maps.flip(-1)[:, [0, 2, 1, 4, 3]])["keypoints"]
    bias = (plain - enc.to_heatmap(points))[..., 0].mean().item()
    want = -(1 - 1 / stride) if convention == "msra" else 0.0
    assert bias == pytest.approx(want, abs=2e-3)


def test_flip_back_swaps_pairs_and_handles_volumes():
    enc = encoder("gaussian3d", depth_bins=4, convention="udp")
    maps = torch.rand(2, 5, 4, 64, 48)
    back = enc.flip_back(maps, torch.tensor(FLIP_PAIRS))
    assert torch.equal(back[:, 1], maps[:, 2].flip(-1))
    assert torch.equal(back[:, 0], maps[:, 0].flip(-1))
    for pairs in (np.array(FLIP_PAIRS), tuple(map(tuple, FLIP_PAIRS))):
        assert torch.equal(enc.flip_back(maps, pairs), back)
    assert torch.equal(enc.flip_back(maps, None), maps.flip(-1))


@pytest.mark.parametrize("pairs", [[[1, 9]], [[1, 2], [2, 3]], [["a", "b", "c"]]])
def test_flip_back_rejects_bad_pairs(pairs):
    with pytest.raises(ComponentError, match="flip"):
        encoder("gaussian").flip_back(torch.rand(1, 5, 64, 48), pairs)


# -- one-hot, disk, volumes ----------------------------------------------------------------------
def test_one_hot_quantised_and_bilinear():
    points = torch.tensor([[[10.0, 22.0], [-30.0, 10.0]]])
    hard = encoder("one_hot")(keypoints=points)
    assert hard["weights"].tolist() == [[1.0, 0.0]]
    assert hard["heatmaps"][0, 0].sum() == 1 and hard["heatmaps"][0, 0, 6, 3] == 1  # (2.5, 5.5) -> (3, 6)
    soft = encoder("one_hot", unbiased=True)
    maps = soft(keypoints=points)["heatmaps"][0, 0]
    ys, xs = torch.meshgrid(torch.arange(64.0), torch.arange(48.0), indexing="ij")
    assert maps.sum().item() == pytest.approx(1.0)
    assert [(maps * xs).sum().item(), (maps * ys).sum().item()] == pytest.approx([2.5, 5.5])


def test_disk_covers_the_radius_in_input_pixels():
    enc = encoder("disk", radius=15.0, stride=4)
    point = torch.tensor([[[100.0, 120.0]]])
    disk = enc(keypoints=point)["heatmaps"][0, 0]
    ys, xs = torch.meshgrid(torch.arange(64.0), torch.arange(48.0), indexing="ij")
    inside = (xs * 4 - 100) ** 2 + (ys * 4 - 120) ** 2 <= 225
    assert torch.equal(disk.bool(), inside)
    tiny = encoder("disk", radius=0.5, stride=4)(keypoints=torch.tensor([[[101.0, 121.0], [-9.0, 5.0]]]))
    assert tiny["heatmaps"][0, 0].sum() == 1 and tiny["heatmaps"][0, 0, 30, 25] == 1
    assert tiny["weights"].tolist() == [[1.0, 0.0]]


def test_volumetric_gaussian_places_depth_in_bins():
    enc = encoder("gaussian3d", sigma=1.5, depth_bins=16, depth_range=[-1.0, 1.0], unbiased=True)
    points = torch.tensor([[[80.0, 96.0, 0.1], [40.0, 200.0, -0.2]]])
    out = enc(keypoints=points)
    cells = enc.to_heatmap(points)
    assert cells[0, 0].tolist() == pytest.approx([20.0, 24.0, (0.1 + 1) / 2 * 16 - 0.5])
    torch.testing.assert_close(enc.to_image(cells), points)
    vol = out["heatmaps"].double()
    com = decoder("com", window=None)(heatmaps=vol)["keypoints"]
    assert (com - cells).abs().max() < 1e-3
    trilinear = encoder("one_hot3d", depth_bins=16, unbiased=True)(keypoints=points)["heatmaps"]
    assert trilinear.sum(dim=(-3, -2, -1))[0].tolist() == pytest.approx([1.0, 1.0])
    com = decoder("com", window=None)(heatmaps=trilinear)["keypoints"]
    assert (com - cells).abs().max() < 1e-5


# -- dtype, device, errors ----------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_targets_follow_the_keypoints_device_and_dtype(device, dtype):
    points = interior_points(2, 3).to(device=device, dtype=dtype)
    for name in ("gaussian", "one_hot", "disk"):
        out = encoder(name)(keypoints=points, visible=torch.ones(2, 3, device=device))
        assert out["heatmaps"].device.type == device and out["heatmaps"].dtype == dtype
        assert out["weights"].dtype == dtype
    cpu = encoder("gaussian", unbiased=True)(keypoints=points.cpu().double())["heatmaps"]
    here = encoder("gaussian", unbiased=True)(keypoints=points)["heatmaps"]
    tol = 2e-3 if dtype == torch.float16 else 1e-5
    torch.testing.assert_close(here.cpu().double(), cpu, atol=tol, rtol=0)


@pytest.mark.parametrize("params,match", [
    ({"sigma": 0}, "sigma"), ({"sigma": "two"}, "sigma"), ({"stride": -4}, "stride"),
    ({"heatmap_size": [48]}, "heatmap_size"), ({"convention": "dark"}, "convention"),
    ({"convention": "udp", "heatmap_size": [1, 64]}, "udp"), ({"unbiased": "false"}, "unbiased"),
])
def test_bad_parameters_raise_one_clear_line(params, match):
    with pytest.raises(ComponentError, match=match) as info:
        encoder("gaussian", **params)
    assert "\n" not in str(info.value) and "gaussian" in str(info.value)


def test_bad_inputs_raise_component_errors():
    enc = encoder("gaussian")
    with pytest.raises(KitposeError, match=r"\[B, K, 2\]"):
        enc(keypoints=torch.zeros(4, 2))
    with pytest.raises(KitposeError, match="visible"):
        enc(keypoints=torch.zeros(1, 3, 2), visible=torch.ones(3))
    with pytest.raises(KitposeError, match="depth_range"):
        encoder("gaussian3d", depth_range=[1.0, 1.0])
    with pytest.raises(KitposeError, match=r"\[B, K, 3\]"):
        encoder("gaussian3d")(keypoints=torch.zeros(1, 2, 2))


# -- visibility rules of the references ------------------------------------------------------
def darkpose_weights(vis, inside):
    """DarkPose/HRNet, joint by joint: the weight is v, zeroed out of bounds; drawn when it is > 0.5."""
    weights, drawn = [], []
    for v, ok in zip(vis, inside):
        w = v if ok else 0.0
        weights.append(w)
        drawn.append(w > 0.5)
    return weights, drawn


def mmpose_weights(vis, inside):
    """mmpose 1.x, joint by joint: v < 0.5 is skipped with its weight kept; the rest is drawn, or
    gets weight 0 when out of bounds."""
    weights, drawn = [], []
    for v, ok in zip(vis, inside):
        if v < 0.5:
            weights.append(v)
            drawn.append(False)
        else:
            weights.append(v if ok else 0.0)
            drawn.append(ok)
    return weights, drawn


@pytest.mark.parametrize("rule, reference", [("darkpose", darkpose_weights), ("mmpose", mmpose_weights)])
@pytest.mark.parametrize("name", ["gaussian", "one_hot", "disk"])
def test_visibility_rules_follow_their_references(rule, reference, name):
    vis = torch.tensor([[0.0, 0.3, 0.5, 0.7, 1.0, 1.0, 0.4, 0.5]])
    inside = [True, True, True, True, True, False, False, False]
    cells = torch.tensor([[[20.0, 30.0]] * 5 + [[-40.0, 30.0]] * 3])  # the last three off the map
    enc = encoder(name, visibility=rule)
    out = enc(keypoints=enc.to_image(cells), visible=vis)
    weights, drawn = reference(vis[0].tolist(), inside)
    assert torch.allclose(out["weights"][0], torch.tensor(weights))
    assert (out["heatmaps"][0].flatten(1).amax(-1) > 0).tolist() == drawn
    plain = encoder(name)(keypoints=enc.to_image(cells), visible=vis)  # kitpose: any v > 0, weight 1
    assert plain["weights"][0].tolist() == [0, 1, 1, 1, 1, 0, 0, 0]


def test_an_unknown_visibility_rule_is_refused():
    with pytest.raises(ComponentError, match="visibility"):
        encoder("gaussian", visibility="coco")


@pytest.mark.parametrize("rule", ["darkpose", "mmpose"])
def test_encoders_with_a_reference_visibility_rule_keep_the_contract(rule):
    from kitpose.testing import check_encoder

    for name in ("gaussian", "one_hot", "disk"):
        assert "outputs" in check_encoder(name, params={"visibility": rule})


def reference_border_keeps(cell, sigma, size, rounded):
    """HRNet / DarkPose / mmpose, one axis: ul = mu - 3 sigma, br = mu + 3 sigma + 1; the joint is
    dropped when ul >= size or br < 0 (with kitpose's rounding of mu, not their int())."""
    mu = math.floor(cell + 0.5) if rounded else cell
    ul, br = mu - 3 * sigma, mu + 3 * sigma + 1
    return not (ul >= size or br < 0)


@pytest.mark.parametrize("unbiased", [False, True])
@pytest.mark.parametrize("sigma", [2.0, 1.5])
def test_the_reference_border_rule_follows_its_loop(unbiased, sigma):
    xs = torch.arange(-10.0, 60.0, 0.25)
    cells = torch.stack([xs, torch.full_like(xs, 30.0)], -1)[None]
    enc = encoder("gaussian", sigma=sigma, unbiased=unbiased, border="reference")
    weights = enc(keypoints=enc.to_image(cells))["weights"][0]
    expected = [reference_border_keeps(float(x), sigma, 48, not unbiased) for x in xs]
    assert weights.bool().tolist() == expected
    window = encoder("gaussian", sigma=sigma, unbiased=unbiased)(keypoints=enc.to_image(cells))["weights"][0]
    assert (weights >= window).all() and (weights > window).any()  # the reference keeps more at the low edge


def mmpose_udp_targets(cells, vis, sigma, width, height):
    """mmpose's UDP targets, joint by joint (with kitpose's floor(x + 0.5) rounding): skip v < 0.5
    (weight kept); drop joints whose [mu - 3 sigma, mu + 3 sigma + 1) patch misses the map;
    draw the exact-centre Gaussian on the cells within 3 sigma of the rounded centre."""
    radius = 3 * sigma
    maps = np.zeros((len(cells), height, width))
    weights = np.array(vis, dtype=np.float64)
    for k, ((cx, cy), v) in enumerate(zip(cells, vis)):
        if v < 0.5:
            continue
        mx, my = math.floor(cx + 0.5), math.floor(cy + 0.5)
        if mx - radius >= width or my - radius >= height or mx + radius + 1 < 0 or my + radius + 1 < 0:
            weights[k] = 0
            continue
        for y in range(height):
            for x in range(width):
                if abs(x - mx) <= radius and abs(y - my) <= radius:
                    maps[k, y, x] = math.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sigma ** 2))
    return maps, weights


def test_udp_encoder_draws_as_mmpose():
    cells = torch.tensor([[[10.3, 20.7], [0.4, 5.2], [-6.6, 30.0], [47.2, 63.4], [-8.2, 10.0], [24.5, 31.5]]],
                         dtype=torch.float64)
    vis = torch.tensor([[1.0, 1.0, 1.0, 0.7, 1.0, 0.3]], dtype=torch.float64)
    enc = encoder("udp", sigma=2.0)
    out = enc(keypoints=enc.to_image(cells), visible=vis)
    maps, weights = mmpose_udp_targets(cells[0].tolist(), vis[0].tolist(), 2.0, 48, 64)
    assert torch.allclose(out["weights"][0], torch.from_numpy(weights))
    assert torch.allclose(out["heatmaps"][0], torch.from_numpy(maps), atol=1e-12)
    plain = encoder("gaussian", sigma=2.0, unbiased=True, convention="udp")(keypoints=enc.to_image(cells))
    assert (plain["heatmaps"][0, 0] > 0).sum() > (out["heatmaps"][0, 0] > 0).sum()  # the map is not cut


def test_udp_encoder_and_a_cut_gaussian_keep_the_contract():
    from kitpose.testing import check_encoder

    assert "weights" in check_encoder("udp")
    assert "weights" in check_encoder("gaussian", params={"unbiased": True, "cut": True})


def test_udp_targets_decode_back_with_dark_udp():
    enc = encoder("udp", sigma=2.0)
    cells = 8 + torch.rand(2, 17, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64) * 30
    maps = enc(keypoints=enc.to_image(cells))["heatmaps"]
    decoded = kitpose.build("decoder", "dark_udp")(heatmaps=maps)["keypoints"]
    assert (enc.to_image(decoded) - enc.to_image(cells)).norm(dim=-1).max() < 0.1  # input px


@pytest.mark.parametrize("name, params", [
    ("gaussian", {}), ("gaussian", {"unbiased": True}), ("gaussian", {"unbiased": True, "cut": True}),
    ("gaussian", {"border": "reference", "visibility": "darkpose"}),
    ("gaussian", {"sigma": 2.5, "border": "reference", "visibility": "mmpose"}), ("udp", {}), ("one_hot", {}),
    ("one_hot", {"unbiased": True}), ("disk", {"convention": "udp"}), ("megvii", {}), ("udp_combined", {}),
    ("gaussian3d", {"depth_bins": 2}), ("one_hot3d", {"depth_bins": 2}), ("one_hot3d", {"depth_bins": 2, "unbiased": True}),
])
def test_the_small_batch_numpy_path_draws_what_the_torch_path_draws(name, params, monkeypatch):
    # one image on the CPU goes through numpy; keypoints that need gradients (and any other
    # device, and large batches) through torch: the targets must be the same, bit for bit
    enc = kitpose.build("encoder", name, **params)
    dims = enc.grid.dims
    g = torch.Generator().manual_seed(11)
    size = torch.tensor([48 * 4.0, 64 * 4.0, 2.0][:dims])
    points = torch.rand(3, 17, dims, generator=g) * (size + 60) - 30 - torch.tensor([0, 0, 1.0][:dims])
    points[0, 0] = float("nan")
    visible = torch.rand(3, 17, generator=g).round(decimals=1)
    calls = []
    numpy_path = type(enc).encode_numpy
    monkeypatch.setattr(type(enc), "encode_numpy", lambda self, *a: calls.append(1) or numpy_path(self, *a))
    fast = enc(keypoints=points, visible=visible)
    slow = enc(keypoints=points.clone().requires_grad_(True), visible=visible)
    assert calls == [1]  # the first call took the numpy path, the second did not
    assert torch.equal(fast["heatmaps"], slow["heatmaps"].detach())
    assert torch.equal(fast["weights"], slow["weights"].detach())
    assert 0 < float(fast["weights"].sum()) < 51


@pytest.mark.parametrize("border", ["window", "reference"])
def test_large_quantised_batches_pasted_window_by_window_match_the_torch_path(border, monkeypatch):
    # maps of FRESH_PAGES bytes or more take the window-pasting numpy path where large blocks
    # come fresh from the kernel (glibc's thresholds), the outer product where they are reused
    from kitpose import memory
    from kitpose_plugins.codecs.gaussian import FRESH_PAGES, GaussianEncoder

    pasted, paste = [], GaussianEncoder.paste_windows
    monkeypatch.setattr(GaussianEncoder, "paste_windows", lambda self, *a: pasted.append(1) or paste(self, *a))
    monkeypatch.setattr(memory, "outcome", None)  # glibc's own thresholds: fresh pages
    enc = kitpose.build("encoder", "gaussian", sigma=2.5, heatmap_size=[256, 240], stride=1, border=border)
    g = torch.Generator().manual_seed(5)
    points = torch.rand(9, 17, 2, generator=g) * torch.tensor([256 + 20.0, 240 + 20.0]) - 10
    assert points.shape[0] * points.shape[1] * 256 * 240 * 4 >= FRESH_PAGES
    fast = enc(keypoints=points)
    slow = enc(keypoints=points.clone().requires_grad_(True))
    assert torch.equal(fast["heatmaps"], slow["heatmaps"].detach())
    assert torch.equal(fast["weights"], slow["weights"].detach())
    assert 0 < float(fast["weights"].sum()) < 9 * 17  # some joints near the border are dropped
    monkeypatch.setattr(memory, "outcome", memory.KEPT)  # blocks reused: the outer product
    outer = enc(keypoints=points)
    assert pasted == [1]  # the first call only
    assert torch.equal(outer["heatmaps"], slow["heatmaps"].detach())


def test_a_subclass_that_draws_otherwise_does_not_get_the_numpy_twin():
    from kitpose_plugins.codecs.gaussian import GaussianEncoder

    class Doubled(GaussianEncoder):  # its own drawing, in torch only
        def draw(self, centres, keep):
            return 2 * super().draw(centres, keep)

    enc = Doubled(sigma=2.0, heatmap_size=[12, 16])
    maps = enc(keypoints=torch.tensor([[[20.0, 30.0]]]))["heatmaps"]
    assert float(maps.max()) == 2.0


@pytest.mark.parametrize("name", ["gaussian", "one_hot"])
def test_a_subclass_that_widens_the_border_rule_alone_gets_the_torch_drawing(name):
    # a looser representable() (here: every finite joint counts) must not reach the numpy
    # drawing, which assumes the parent's rule; the maps then come from draw() in torch
    base = type(kitpose.build("encoder", name))

    class Wide(base):
        def representable(self, centres):
            return torch.isfinite(centres).all(dim=-1)

        def representable_numpy(self, centres):
            return np.isfinite(centres).all(-1)

    enc = Wide(heatmap_size=[12, 16])
    points = torch.tensor([[[-40.0, 30.0], [20.0, 30.0], [500.0, 500.0]]])
    fast = enc(keypoints=points)
    slow = enc(keypoints=points.clone().requires_grad_(True))
    assert torch.equal(fast["heatmaps"], slow["heatmaps"].detach())
    assert fast["weights"].tolist() == [[1.0, 1.0, 1.0]]
