"""Soft-argmax (integral regression): values, 3D volumes and logits, marginal form, gradients."""
from __future__ import annotations

import pytest
import torch

import kitpose
from kitpose.errors import ComponentError


def soft_argmax(**params):
    return kitpose.build("decoder", "soft_argmax", **params)


def gaussian_cells(batch=4, joints=5, sigma=2.0, seed=0, dims=2, depth=16):
    """Unbiased Gaussian maps (or volumes) and their exact centres, well inside."""
    g = torch.Generator().manual_seed(seed)
    if dims == 2:
        enc = kitpose.build("encoder", "gaussian", sigma=sigma, unbiased=True)
        cells = 10 + torch.rand(batch, joints, 2, generator=g) * torch.tensor([27.0, 43.0])
    else:
        enc = kitpose.build("encoder", "gaussian3d", sigma=sigma, unbiased=True, depth_bins=depth)
        cells = 10 + torch.rand(batch, joints, 3, generator=g) * torch.tensor([27.0, 43.0, depth - 20.0])
    maps = enc(keypoints=enc.to_image(cells))["heatmaps"].double()
    return maps, cells.double()


def test_softmax_of_log_gaussians_is_their_centre():
    maps, cells = gaussian_cells()
    out = soft_argmax()(heatmaps=maps.clamp(min=1e-300).log())
    assert (out["keypoints"] - cells).abs().max() < 1e-4


def test_gaussian_valued_maps_with_beta_one_are_pulled_to_the_centre():
    maps, cells = gaussian_cells(seed=3)
    error = (soft_argmax()(heatmaps=maps)["keypoints"] - cells).norm(dim=-1)
    assert error.mean() > 5.0  # needs learned logits, not Gaussian targets
    sharp = (soft_argmax(beta=200.0)(heatmaps=maps)["keypoints"] - cells).norm(dim=-1)
    assert sharp.max() < 0.75  # a high beta approaches the argmax


def test_marginal_and_direct_forms_agree_in_2d_and_3d():
    for dims in (2, 3):
        maps, _ = gaussian_cells(dims=dims, seed=dims)
        logits = 3.0 * maps + 0.1 * torch.randn(maps.shape, generator=torch.Generator().manual_seed(1),
                                                 dtype=maps.dtype)
        direct = soft_argmax()(heatmaps=logits)
        marginal = soft_argmax(marginal=True)(heatmaps=logits)
        torch.testing.assert_close(direct["keypoints"], marginal["keypoints"], atol=1e-9, rtol=0)
        torch.testing.assert_close(direct["scores"], marginal["scores"])
        assert direct["keypoints"].shape[-1] == dims


def test_volumes_and_flat_logits_with_depth_bins():
    vol, cells = gaussian_cells(dims=3, depth=24)
    logits = vol.clamp(min=1e-300).log()
    out = soft_argmax()(heatmaps=logits)["keypoints"]
    assert (out - cells).abs().max() < 1e-4
    flat = logits.flatten(1, 2)  # [B, K * D, h, w], as a 2D network emits them
    from_flat = soft_argmax(depth_bins=24)(heatmaps=flat)["keypoints"]
    torch.testing.assert_close(from_flat, out)
    assert soft_argmax(depth_bins=24)(heatmaps=logits)["keypoints"].shape == (4, 5, 3)


def test_depth_bins_mismatch_is_a_clear_error():
    with pytest.raises(ComponentError, match="depth_bins"):
        soft_argmax(depth_bins=5)(heatmaps=torch.rand(1, 12, 8, 8))
    with pytest.raises(ComponentError, match="depth_bins"):
        soft_argmax(depth_bins=5)(heatmaps=torch.rand(1, 2, 4, 8, 8))
    with pytest.raises(ComponentError, match="beta"):
        soft_argmax(beta=0)
    with pytest.raises(ComponentError, match="marginal"):
        soft_argmax(marginal="yes")


def test_scores_are_probabilities():
    flat = soft_argmax()(heatmaps=torch.zeros(1, 2, 8, 6))["scores"]
    assert torch.allclose(flat, torch.full((1, 2), 1 / 48))
    peaked = torch.zeros(1, 1, 8, 6)
    peaked[0, 0, 3, 2] = 50.0
    assert soft_argmax()(heatmaps=peaked)["scores"].item() == pytest.approx(1.0)


@pytest.mark.parametrize("marginal", [False, True])
@pytest.mark.parametrize("shape,bins", [((2, 2, 4, 3), None), ((1, 2, 3, 4, 3), None), ((1, 4, 3, 4), 2)])
def test_gradcheck(marginal, shape, bins):
    dec = soft_argmax(beta=1.7, marginal=marginal, depth_bins=bins)
    logits = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0),
                         requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: dec(heatmaps=x)["keypoints"], (logits,))


def test_gradients_move_the_estimate_towards_the_target():
    logits = torch.zeros(1, 1, 16, 12, requires_grad=True)
    target = torch.tensor([[[9.0, 3.0]]])
    optimiser = torch.optim.SGD([logits], lr=300.0)
    before = (soft_argmax()(heatmaps=logits)["keypoints"] - target).norm().item()
    for _ in range(20):  # a handful of steps on one map, not a hot path
        optimiser.zero_grad()
        loss = (soft_argmax()(heatmaps=logits)["keypoints"] - target).abs().sum()
        loss.backward()
        optimiser.step()
    after = (soft_argmax()(heatmaps=logits)["keypoints"] - target).norm().item()
    assert after < 0.5 * before
