"""Decoders: the contract every decoder keeps, argmax ties, standard shift, centre of mass."""
from __future__ import annotations

import pytest
import torch

import kitpose
from kitpose.errors import ComponentError

DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device")])]
PEAK_DECODERS = ["argmax", "standard", "dark", "com", "gaussfit"]
ALL_2D = PEAK_DECODERS + ["soft_argmax"]


def decoder(name: str, **params):
    return kitpose.build("decoder", name, **params)


def unbiased_targets(batch=8, joints=17, sigma=2.0, size=(48, 64), stride=4, margin=10.0, seed=0):
    """Clean unbiased Gaussian maps and their exact centres (cells), away from the border."""
    enc = kitpose.build("encoder", "gaussian", sigma=sigma, stride=stride, heatmap_size=list(size),
                        unbiased=True)
    g = torch.Generator().manual_seed(seed)
    low = torch.tensor([margin, margin])
    span = torch.tensor([size[0] - 1.0, size[1] - 1.0]) - 2 * low
    cells = low + torch.rand(batch, joints, 2, generator=g) * span
    maps = enc(keypoints=enc.to_image(cells))["heatmaps"]
    return maps, cells


# -- contract ---------------------------------------------------------------------------------
def test_every_decoder_is_registered_and_declares_outputs():
    assert set(ALL_2D) <= set(kitpose.available("decoder"))
    for name in ALL_2D:
        dec = decoder(name)
        assert dec.outputs == ("keypoints", "scores")
        out = dec(heatmaps=torch.rand(2, 3, 16, 12))
        assert out["keypoints"].shape == (2, 3, 2) and out["scores"].shape == (2, 3)


@pytest.mark.parametrize("name", ALL_2D)
@pytest.mark.parametrize("kind", ["zero", "flat", "negative", "negative_flat"])
def test_degenerate_maps_give_finite_coordinates_and_low_scores(name, kind):
    maps = {"zero": torch.zeros(2, 3, 16, 12), "flat": torch.full((2, 3, 16, 12), 0.7),
            "negative": -torch.rand(2, 3, 16, 12, generator=torch.Generator().manual_seed(1)) - 0.1,
            "negative_flat": torch.full((2, 3, 16, 12), -0.3)}[kind]
    out = decoder(name)(heatmaps=maps)
    assert torch.isfinite(out["keypoints"]).all()
    assert (out["keypoints"][..., 0] >= 0).all() and (out["keypoints"][..., 0] <= 11).all()
    assert (out["keypoints"][..., 1] >= 0).all() and (out["keypoints"][..., 1] <= 15).all()
    if name == "soft_argmax":  # a probability: uniform over 192 cells on flat maps
        assert (out["scores"] <= 1 / 192 + 1e-6).all() or kind == "negative"
    else:
        assert (out["scores"] == 0).all()


@pytest.mark.parametrize("name", PEAK_DECODERS)
def test_scores_are_the_peak_values(name):
    maps, _ = unbiased_targets(batch=2, joints=3)
    maps = maps * torch.tensor([0.2, 0.5, 0.9])[None, :, None, None]
    out = decoder(name)(heatmaps=maps)
    torch.testing.assert_close(out["scores"], maps.flatten(2).amax(-1))


@pytest.mark.parametrize("name", ALL_2D)
def test_dtype_rules(name):
    maps, _ = unbiased_targets(batch=1, joints=2)
    for dtype, want in [(torch.float64, torch.float64), (torch.float16, torch.float32),
                        (torch.float32, torch.float32)]:
        out = decoder(name)(heatmaps=maps.to(dtype))
        assert out["keypoints"].dtype == want and out["scores"].dtype == want


@pytest.mark.parametrize("name", ALL_2D)
def test_bad_heatmaps_raise_component_errors(name):
    with pytest.raises(ComponentError, match="heatmaps must be"):
        decoder(name)(heatmaps=torch.rand(3, 16, 12))
    with pytest.raises(ComponentError, match="heatmaps must be"):
        decoder(name)(heatmaps=torch.rand(1, 2, 0, 12))


# -- argmax: first index on ties, on every device ------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])  # bfloat16: the generic tie-break
@pytest.mark.parametrize("name", PEAK_DECODERS)
def test_plateaus_and_ties_decode_from_the_first_index(device, dtype, name):
    maps = torch.zeros(64, 4, 16, 12, device=device, dtype=dtype)
    maps[:, 0, 5:9, 3:8] = 1.0           # a plateau: first cell (x=3, y=5)
    maps[:, 1, 2, 10] = 1.0              # two separate equal peaks: the first in row-major order
    maps[:, 1, 13, 1] = 1.0
    maps[:, 2] = 0.5                     # a flat map: cell 0
    maps[:, 3, 7, :] = 0.25              # a ridge: its first cell
    out = decoder("argmax")(heatmaps=maps)["keypoints"]
    want = torch.tensor([[3.0, 5.0], [10.0, 2.0], [0.0, 0.0], [0.0, 7.0]], device=device)
    assert torch.equal(out, want.expand_as(out))
    refined = decoder(name)(heatmaps=maps)["keypoints"]
    if name == "com":  # the centre of mass of a plateau is its middle
        assert refined[:, 0].tolist() == [[5.0, 6.5]] * 64
    else:  # the sub-pixel decoders start from that cell and stay within one cell of it
        assert ((refined - want).norm(dim=-1) <= 1.0 + 1e-6).all()


def test_argmax_of_quantised_targets_is_the_quantised_centre():
    enc = kitpose.build("encoder", "gaussian", sigma=2.0)
    points = torch.rand(4, 17, 2, generator=torch.Generator().manual_seed(5)) * torch.tensor([191.0, 255.0])
    out = decoder("argmax")(heatmaps=enc(keypoints=points)["heatmaps"])["keypoints"]
    assert torch.equal(out, torch.floor(points / 4 + 0.5))


def test_volumes_decode_in_3d():
    vol = torch.zeros(2, 3, 6, 10, 8, dtype=torch.float64)
    vol[:, :, 4, 7, 2] = 1.0
    vol[:, :, 4, 7, 3] = 0.5
    vol[:, :, 3, 7, 2] = 0.25
    assert decoder("argmax")(heatmaps=vol)["keypoints"][0, 0].tolist() == [2.0, 7.0, 4.0]
    assert decoder("standard")(heatmaps=vol)["keypoints"][0, 0].tolist() == [2.25, 7.0, 3.75]
    com = decoder("com", window=2)(heatmaps=vol)["keypoints"][0, 0]
    assert com.tolist() == pytest.approx([(2 + 1.5 + 0.5) / 1.75, 7.0, (4 + 2 + 0.75) / 1.75])


# -- round trips on clean unbiased Gaussians (sigma 2, 64x48) ---------------------------------------
@pytest.mark.parametrize("name,params,bound", [
    ("argmax", {}, 0.5 * 2 ** 0.5 + 1e-6),
    ("standard", {}, 0.35),
    ("com", {}, 1e-3),
    ("com", {"window": None}, 1e-3),
    ("dark", {"blur_kernel": 11}, 1e-3),
    ("gaussfit", {}, 1e-3),
])
def test_round_trip_bounds(name, params, bound):
    maps, cells = unbiased_targets(batch=16, joints=17)
    out = decoder(name, **params)(heatmaps=maps.double())["keypoints"]
    error = (out - cells.double()).norm(dim=-1)
    assert error.max() < bound
    if name in ("argmax", "standard"):
        assert error.max() > bound / 2  # the bound is the method's, not a loose one


# -- standard ---------------------------------------------------------------------------------------
def test_standard_shift_sign_zero_and_borders():
    maps = torch.zeros(1, 4, 9, 9)
    maps[0, 0, 4, 4], maps[0, 0, 4, 5], maps[0, 0, 3, 4] = 1.0, 0.6, 0.3   # +x, -y
    maps[0, 1, 4, 4], maps[0, 1, 4, 5], maps[0, 1, 4, 3] = 1.0, 0.6, 0.6   # sign(0) = 0
    maps[0, 2, 4, 0], maps[0, 2, 4, 1], maps[0, 2, 5, 0] = 1.0, 0.6, 0.4   # x on the border
    maps[0, 3, 8, 8], maps[0, 3, 7, 8], maps[0, 3, 8, 7] = 1.0, 0.9, 0.9   # corner: no shift
    out = decoder("standard")(heatmaps=maps)["keypoints"][0]
    assert out.tolist() == [[4.25, 3.75], [4.0, 4.0], [0.0, 4.25], [8.0, 8.0]]


# -- centre of mass -----------------------------------------------------------------------------------
def test_windowed_com_survives_noise_where_the_global_one_collapses():
    maps, cells = unbiased_targets(batch=16, joints=17, seed=2)
    noisy = maps + 0.02 * torch.randn(maps.shape, generator=torch.Generator().manual_seed(3))
    windowed = (decoder("com")(heatmaps=noisy)["keypoints"] - cells).norm(dim=-1)
    whole = (decoder("com", window=None)(heatmaps=noisy)["keypoints"] - cells).norm(dim=-1)
    assert windowed.mean() < 0.06
    assert whole.mean() > 3.0


def test_com_recentring_removes_the_window_bias():
    maps, cells = unbiased_targets(batch=8, joints=17, seed=4)
    fixed = (decoder("com", steps=0)(heatmaps=maps.double())["keypoints"] - cells).norm(dim=-1)
    moved = (decoder("com")(heatmaps=maps.double())["keypoints"] - cells).norm(dim=-1)
    assert fixed.max() > 5e-3 and moved.max() < 1e-3


@pytest.mark.parametrize("params", [{"window": 0}, {"window": 2.5}, {"steps": -1}])
def test_com_rejects_bad_parameters(params):
    with pytest.raises(ComponentError):
        decoder("com", **params)


@pytest.mark.parametrize("name", ["argmax", "standard"])
@pytest.mark.parametrize("spatial", [(16, 12), (6, 8, 7)])
def test_the_numpy_cpu_path_decodes_as_the_torch_path(name, spatial):
    # CPU tensors go through numpy; tensors that need gradients (and other devices) through
    # torch: both must give the same keypoints and scores, plateaus and flat maps included
    g = torch.Generator().manual_seed(7)
    maps = torch.rand(4, 5, *spatial, generator=g).round(decimals=1)  # ties on purpose
    maps[0, 0] = 0.5                              # flat
    maps[0, 1] = -maps[0, 1]                      # nothing positive
    maps[1, 2] = 0.0
    maps[1, 2].view(-1)[0] = 1.0                  # a peak on the first cell
    maps[2, 0].view(-1)[-1] = 5.0                 # a peak on the last cell
    dec = kitpose.build("decoder", name)
    fast = dec(heatmaps=maps)
    slow = dec(heatmaps=maps.clone().requires_grad_(True))
    assert torch.equal(fast["keypoints"], slow["keypoints"].detach())
    assert torch.equal(fast["scores"], slow["scores"].detach())
    assert fast["scores"][0, 0] == 0 and fast["scores"][0, 1] == 0 and fast["scores"][1, 2] == 1


def test_small_cpu_calls_run_on_one_thread_and_restore_the_count():
    from kitpose_plugins.codecs.common import SMALL_WORK, one_thread_if_small

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with one_thread_if_small(1000, torch.device("cpu")):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with one_thread_if_small(SMALL_WORK, torch.device("cpu")):
            assert torch.get_num_threads() == 2
        with pytest.raises(ValueError):
            with one_thread_if_small(10, torch.device("cpu")):
                raise ValueError
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_a_subclass_that_refines_otherwise_does_not_get_the_numpy_twin():
    from kitpose_plugins.codecs.peak import StandardDecoder

    class Half(StandardDecoder):  # its own refinement, in torch only
        def refine(self, maps, flat, cells):
            return 0.5 * super().refine(maps, flat, cells)

    maps = torch.zeros(1, 2, 8, 8)
    maps[0, 0, 3, 3], maps[0, 0, 3, 4] = 1.0, 0.5
    maps[0, 1, 5, 2], maps[0, 1, 6, 2] = 1.0, 0.25
    got = Half()(heatmaps=maps)["keypoints"]
    assert got.tolist() == [[[3.125, 3.0], [2.0, 5.125]]]


def test_nan_maps_decode_alike_on_both_paths_with_score_zero():
    maps = torch.rand(2, 3, 8, 6, generator=torch.Generator().manual_seed(5))
    maps[0, 0] = float("nan")
    maps[1, 1, 2, 2] = float("nan")
    dec = kitpose.build("decoder", "standard")
    fast, slow = dec(heatmaps=maps), dec(heatmaps=maps.clone().requires_grad_(True))
    assert fast["scores"][0, 0] == 0 and slow["scores"][0, 0] == 0
    assert torch.isfinite(fast["keypoints"][1, 1]).all()
    assert torch.equal(fast["scores"][1:], slow["scores"][1:].detach())
