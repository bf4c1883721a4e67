"""Soft-argmax (integral regression): values, 3D volumes and logits, marginal form, gradients."""
from __future__ import annotations

import math

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


# -- debiased soft-argmax (Gu et al., 2021) -------------------------------------------------------
def reference_debiased(maps, beta=1.0):
    """The paper's compensation, one joint at a time in numpy (float64): ``J_peak =
    (C J - N c) / (C - N)`` with C the sum of exp(beta * h), N the cells, c the grid centre."""
    import numpy as np

    maps = maps.double().numpy()
    spatial = maps.shape[2:]
    grids = np.meshgrid(*[np.arange(s, dtype=np.float64) for s in spatial], indexing="ij")
    out = np.empty(maps.shape[:2] + (len(spatial),))
    for b in range(maps.shape[0]):
        for k in range(maps.shape[1]):
            e = np.exp(beta * maps[b, k])
            c_sum, n = e.sum(), e.size
            p = e / c_sum
            for axis in range(len(spatial)):  # x first: the last spatial dimension
                grid = grids[len(spatial) - 1 - axis]
                j = (p * grid).sum()
                centre = (spatial[len(spatial) - 1 - axis] - 1) / 2
                out[b, k, axis] = (c_sum * j - n * centre) / (c_sum - n)
    return torch.from_numpy(out)


def clean_maps_64x48(seed=0, batch=8, joints=17):
    enc = kitpose.build("encoder", "gaussian", sigma=2.0, unbiased=True, heatmap_size=[48, 64])
    g = torch.Generator().manual_seed(seed)
    cells = 10 + torch.rand(batch, joints, 2, generator=g) * torch.tensor([27.0, 43.0])
    return enc(keypoints=enc.to_image(cells))["heatmaps"].double(), cells.double()


def test_debiased_matches_a_per_joint_reference_in_2d_and_3d():
    for dims, beta in ((2, 1.0), (2, 2.5), (3, 1.0)):
        maps, _ = gaussian_cells(dims=dims, seed=5 + dims)
        logits = 2.0 * maps + 0.05 * torch.randn(maps.shape, generator=torch.Generator().manual_seed(2),
                                                 dtype=maps.dtype)
        want = reference_debiased(logits, beta)
        for marginal in (False, True):
            got = soft_argmax(beta=beta, debias=True, marginal=marginal)(heatmaps=logits)["keypoints"]
            torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
        got32 = soft_argmax(beta=beta, debias=True)(heatmaps=logits.float())["keypoints"]
        torch.testing.assert_close(got32.double(), want, atol=1e-3, rtol=0)


def test_debiased_removes_the_pull_on_clean_gaussian_maps():
    """64x48, sigma 2, beta 1: plain soft-argmax is 13 cells off on average, the debiased one 4e-8."""
    maps, cells = clean_maps_64x48()
    plain = (soft_argmax()(heatmaps=maps)["keypoints"] - cells).norm(dim=-1)
    fixed = (soft_argmax(debias=True)(heatmaps=maps)["keypoints"] - cells).norm(dim=-1)
    assert plain.mean() > 10.0
    assert fixed.mean() < 1e-6 and fixed.max() < 1e-5
    in32 = (soft_argmax(debias=True)(heatmaps=maps.float())["keypoints"] - cells).norm(dim=-1)
    assert in32.max() < 1e-3


def test_debiased_equals_plain_when_the_peak_dominates():
    maps, _ = gaussian_cells(seed=4)
    for beta in (50.0, 1e4):  # C >> N; exp(1e4) overflows, logsumexp does not
        plain = soft_argmax(beta=beta)(heatmaps=maps)["keypoints"]
        fixed = soft_argmax(beta=beta, debias=True)(heatmaps=maps)["keypoints"]
        assert torch.isfinite(fixed).all()
        torch.testing.assert_close(fixed, plain, atol=1e-9, rtol=0)


def test_debiased_guards_maps_without_a_peak():
    dec = soft_argmax(debias=True)
    flat = dec(heatmaps=torch.zeros(1, 2, 8, 6))["keypoints"]  # C == N: the centre
    torch.testing.assert_close(flat, torch.tensor([[[2.5, 3.5], [2.5, 3.5]]]), atol=1e-4, rtol=0)
    shifted = dec(heatmaps=torch.randn(2, 3, 8, 6, generator=torch.Generator().manual_seed(0)) - 5.0)
    keypoints = shifted["keypoints"]  # C < N: the assumption fails, keypoints stay on the map
    assert torch.isfinite(keypoints).all()
    assert (keypoints >= 0).all() and (keypoints[..., 0] <= 5).all() and (keypoints[..., 1] <= 7).all()
    corner = torch.zeros(1, 1, 8, 6)
    corner[0, 0, 0, 0] = 1.0  # one raised cell: its symmetric excess puts it exactly there
    torch.testing.assert_close(dec(heatmaps=corner)["keypoints"], torch.zeros(1, 1, 2), atol=1e-5, rtol=0)


@pytest.mark.parametrize("marginal", [False, True])
@pytest.mark.parametrize("shape,bins", [((2, 2, 4, 3), None), ((1, 2, 3, 4, 3), None), ((1, 4, 3, 4), 2)])
def test_debiased_gradcheck(marginal, shape, bins):
    dec = soft_argmax(beta=1.7, marginal=marginal, depth_bins=bins, debias=True)
    g = torch.Generator().manual_seed(0)
    logits = torch.zeros(shape, dtype=torch.float64)
    logits.view(-1)[::5] = 2.0  # peaks above a zero background: C > N, inside the map
    logits = (logits + 0.1 * torch.randn(shape, dtype=torch.float64, generator=g)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: dec(heatmaps=x)["keypoints"], (logits,))


def test_debias_flag_is_checked_and_the_contracts_hold():
    from kitpose.testing import check_decoder

    with pytest.raises(ComponentError, match="debias"):
        soft_argmax(debias="yes")
    check_decoder("soft_argmax", debias=True, spatial=(2,), differentiable=True, tolerance=0.01)
    check_decoder("soft_argmax", debias=True, marginal=True, spatial=(2, 3), differentiable=True,
                  tolerance=0.2)  # 8-deep volumes cut the Gaussians: 0.1 cells in z
    check_decoder("soft_argmax", spatial=(2, 3), differentiable=True, tolerance=10.0)


# -- DSNT's losses (Nibali et al., 2018; dsntnn) --------------------------------------------------
def dsnt_reg(**params):
    return kitpose.build("loss", "dsnt_reg", **params)


def reference_dsnt_reg(logits, cells, sigma, weights=None, divergence="js"):
    """dsntnn's js_reg_losses / kl_reg_losses + average_loss, one joint at a time in numpy:
    normalised coordinates (2i + 1) / n - 1, make_gauss with stddev 2 sigma / n, eps 1e-24."""
    import numpy as np

    logits, cells = logits.double().numpy(), cells.double().numpy()
    spatial = logits.shape[2:]
    eps = 1e-24
    axes = [(2 * np.arange(n) + 1) / n - 1 for n in spatial]  # per dim: (d,) h, w

    def kl(p, q):
        return (p * (np.log(p + eps) - np.log(q + eps))).sum()

    losses = np.zeros(logits.shape[:2])
    for b in range(logits.shape[0]):
        for k in range(logits.shape[1]):
            e = np.exp(logits[b, k] - logits[b, k].max())
            p = e / e.sum()
            gauss = np.ones(spatial)
            for dim, n in enumerate(spatial):
                axis = len(spatial) - 1 - dim  # x is the last dimension
                mu = (2 * cells[b, k, axis] + 1) / n - 1
                std = 2 * sigma / n
                shape = [1] * len(spatial)
                shape[dim] = n
                gauss = gauss * np.exp(-0.5 * ((axes[dim] - mu) / std) ** 2).reshape(shape)
            q = gauss / (gauss.sum() + eps)
            if divergence == "kl":
                losses[b, k] = kl(p, q)
            else:
                m = 0.5 * (p + q)
                losses[b, k] = 0.5 * kl(p, m) + 0.5 * kl(q, m)
    mask = np.ones_like(losses) if weights is None else weights.double().numpy()
    return float((losses * mask).sum() / max(mask.sum(), 1.0))


def dsnt_inputs(seed=0, shape=(3, 5, 20, 16), dims=2):
    g = torch.Generator().manual_seed(seed)
    logits = 2.0 * torch.randn(shape, generator=g, dtype=torch.float64)
    sizes = torch.tensor(list(reversed(shape[2:])), dtype=torch.float64)
    cells = 1 + torch.rand(shape[0], shape[1], dims, generator=g, dtype=torch.float64) * (sizes - 2)
    weights = (torch.rand(shape[:2], generator=g) > 0.3).double()
    return logits, cells, weights


@pytest.mark.parametrize("divergence", ["js", "kl"])
@pytest.mark.parametrize("sigma", [1.0, 2.5])
def test_dsnt_reg_matches_a_per_joint_reference(divergence, sigma):
    for dims, shape in ((2, (3, 5, 20, 16)), (3, (2, 3, 6, 10, 8))):
        logits, cells, weights = dsnt_inputs(seed=dims, shape=shape, dims=dims)
        loss = dsnt_reg(sigma=sigma, divergence=divergence)
        for w in (None, weights):
            got = loss(pred=logits, target=cells, weights=w)["loss"].item()
            want = reference_dsnt_reg(logits, cells, sigma, w, divergence)
            assert got == pytest.approx(want, abs=1e-5, rel=1e-5)
        got32 = loss(pred=logits.float(), target=cells.float(), weights=weights)["loss"].item()
        assert got32 == pytest.approx(reference_dsnt_reg(logits, cells, sigma, weights, divergence), abs=1e-5)


def test_dsnt_reg_is_zero_on_its_target_and_grows_with_a_shift():
    _, cells, _ = dsnt_inputs(seed=3)
    cells = 4 + (cells - 1) * 0.5  # well inside the 20x16 maps
    loss = dsnt_reg(sigma=1.5)
    xs, ys = torch.arange(16, dtype=torch.float64), torch.arange(20, dtype=torch.float64)

    def log_gaussian(points):  # log of the target Gaussian: its softmax is the normalised Gaussian
        dx = xs - points[..., 0, None]
        dy = ys - points[..., 1, None]
        return -0.5 * (dy[..., :, None] ** 2 + dx[..., None, :] ** 2) / 1.5 ** 2

    exact = loss(pred=log_gaussian(cells), target=cells)["loss"].item()
    assert abs(exact) < 1e-10
    values = [loss(pred=log_gaussian(cells + torch.tensor([shift, 0.0])), target=cells)["loss"].item()
              for shift in (0.5, 1.0, 2.0, 4.0)]
    assert values == sorted(values) and values[0] > 1e-3 and values[-1] < math.log(2)
    kl = dsnt_reg(sigma=1.5, divergence="kl")
    assert abs(kl(pred=log_gaussian(cells), target=cells)["loss"].item()) < 1e-10


def test_dsnt_reg_respects_weights_and_passes_gradients():
    logits, cells, weights = dsnt_inputs(seed=7)
    logits = logits.float().requires_grad_(True)
    loss = dsnt_reg()(pred=logits, target=cells.float(), weights=weights.float())["loss"]
    loss.backward()
    grad = logits.grad.flatten(2).abs().sum(-1)
    assert torch.isfinite(logits.grad).all()
    assert (grad[weights == 0] == 0).all() and (grad[weights > 0] > 0).all()
    moved = logits.detach().clone()
    moved[weights == 0] += torch.randn(moved[weights == 0].shape)
    same = dsnt_reg()(pred=moved, target=cells.float(), weights=weights.float())["loss"]
    torch.testing.assert_close(same, loss.detach())
    none = dsnt_reg()(pred=logits, target=cells.float(), weights=torch.zeros_like(weights))["loss"]
    assert none.item() == 0.0 and none.requires_grad


def test_dsnt_reg_takes_target_maps_and_checks_its_parameters():
    from kitpose.testing import check_loss

    logits, cells, _ = dsnt_inputs(seed=9)
    xs, ys = torch.arange(16, dtype=torch.float64), torch.arange(20, dtype=torch.float64)
    maps = torch.exp(-0.5 * ((ys - cells[..., 1, None])[..., :, None] ** 2
                             + (xs - cells[..., 0, None])[..., None, :] ** 2))  # sigma 1, peak 1
    from_points = dsnt_reg()(pred=logits, target=cells)["loss"]
    from_maps = dsnt_reg()(pred=logits, target=maps)["loss"]
    torch.testing.assert_close(from_maps, from_points)
    check_loss("dsnt_reg")
    check_loss("dsnt_reg", divergence="kl", sigma=2.0)
    with pytest.raises(ComponentError, match="sigma"):
        dsnt_reg(sigma=0)
    with pytest.raises(ComponentError, match="divergence"):
        dsnt_reg(divergence="wasserstein")
    with pytest.raises(ComponentError, match="does not fit"):
        dsnt_reg()(pred=logits, target=cells[..., :1])
    with pytest.raises(ComponentError, match="pred must be"):
        dsnt_reg()(pred=logits[..., 0], target=cells)


def test_joint_euclidean_matches_dsntnn_in_normalised_units():
    g = torch.Generator().manual_seed(0)
    pred, target = 30 * torch.rand(4, 6, 2, generator=g), 30 * torch.rand(4, 6, 2, generator=g)
    weights = (torch.rand(4, 6, generator=g) > 0.4).float()
    w, h = 48, 64
    total, count = 0.0, 0.0
    for b in range(4):  # dsntnn: distances of normalised coordinates, average_loss with the mask
        for k in range(6):
            px, py = (2 * pred[b, k, 0] + 1) / w - 1, (2 * pred[b, k, 1] + 1) / h - 1
            tx, ty = (2 * target[b, k, 0] + 1) / w - 1, (2 * target[b, k, 1] + 1) / h - 1
            total += weights[b, k].item() * math.hypot(px - tx, py - ty)
            count += weights[b, k].item()
    loss = kitpose.build("loss", "joint_euclidean", heatmap_size=[w, h])
    got = loss(pred=pred, target=target, weights=weights)["loss"].item()
    assert got == pytest.approx(total / max(count, 1.0), abs=1e-5)
    cells = kitpose.build("loss", "joint_euclidean")(pred=pred, target=target)["loss"].item()
    assert cells == pytest.approx((pred - target).norm(dim=-1).mean().item(), abs=1e-5)
    exact = pred.clone().requires_grad_(True)  # a zero distance has a zero, not NaN, gradient
    kitpose.build("loss", "joint_euclidean")(pred=exact, target=pred)["loss"].backward()
    assert torch.isfinite(exact.grad).all()


def test_joint_euclidean_contract_and_errors():
    from kitpose.testing import check_loss

    check_loss("joint_euclidean")
    check_loss("joint_euclidean", heatmap_size=[16, 20])
    with pytest.raises(ComponentError, match="heatmap_size"):
        kitpose.build("loss", "joint_euclidean", heatmap_size=[0, 5])
    with pytest.raises(ComponentError, match="heatmap_size"):
        kitpose.build("loss", "joint_euclidean", heatmap_size=32)
    with pytest.raises(ComponentError, match="heatmap_size"):
        kitpose.build("loss", "joint_euclidean", heatmap_size=[8, 8, 8])(
            pred=torch.zeros(1, 2, 2), target=torch.zeros(1, 2, 2))


def test_dsnt_training_moves_the_estimate_and_sharpens_the_map():
    """Euclidean + JS on one map: the estimate reaches the target and the map concentrates."""
    logits = torch.zeros(1, 1, 16, 12, requires_grad=True)
    target = torch.tensor([[[8.0, 4.0]]])
    dec = soft_argmax()
    coord = kitpose.build("loss", "joint_euclidean", heatmap_size=[12, 16])
    reg = dsnt_reg()
    optimiser = torch.optim.Adam([logits], lr=0.3)
    before = reg(pred=logits, target=target)["loss"].item()
    for _ in range(60):
        optimiser.zero_grad()
        loss = coord(pred=dec(heatmaps=logits)["keypoints"], target=target)["loss"] \
            + reg(pred=logits, target=target)["loss"]
        loss.backward()
        optimiser.step()
    assert (dec(heatmaps=logits)["keypoints"] - target).norm() < 0.3
    assert reg(pred=logits, target=target)["loss"].item() < 0.2 * before


@pytest.mark.parametrize("debias", [False, True])
def test_large_cpu_batches_are_decoded_in_blocks_with_the_same_result(debias):
    from kitpose_plugins.integral.soft_argmax import SoftArgmax

    maps = torch.randn(70, 17, 32, 32, generator=torch.Generator().manual_seed(3)).requires_grad_(True)
    dec = SoftArgmax(beta=2.0, debias=debias)
    blocked = dec(heatmaps=maps)
    whole = dec.expectation(maps)
    for key in ("keypoints", "scores"):
        torch.testing.assert_close(blocked[key], whole[key], rtol=1e-6, atol=1e-6)
    blocked["keypoints"].sum().backward()
    assert maps.grad is not None and torch.isfinite(maps.grad).all() and maps.grad.abs().sum() > 0


def test_dsnt_reg_in_blocks_equals_the_whole_batch():
    from kitpose_plugins.integral.dsnt import DsntRegulariser, average

    g = torch.Generator().manual_seed(4)
    pred = torch.randn(70, 17, 32, 32, generator=g)
    cells = 4 + 24 * torch.rand(70, 17, 2, generator=g)
    weights = (torch.rand(70, 17, generator=g) > 0.2).float()
    reg = DsntRegulariser(sigma=1.5)
    whole = average(reg.divergences(pred, cells, False), weights)
    torch.testing.assert_close(reg(pred=pred, target=cells, weights=weights)["loss"], whole, rtol=1e-6, atol=1e-7)
