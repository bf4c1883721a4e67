"""Built-in losses: values against explicit formulas, weighting, gradients and multi-stage."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import kitpose
from kitpose.errors import ComponentError, UnknownComponentError

NAMES = ("heatmap_mse", "heatmap_ce", "heatmap_bce", "joint_l1", "joint_l2", "multi_stage")


def loss(name: str, **params):
    return kitpose.build("loss", name, **params)


def maps(seed: int, *shape: int) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def test_every_loss_resolves_and_declares_what_it_returns():
    assert set(NAMES) <= set(kitpose.available("loss"))
    heatmaps, coords = maps(0, 2, 3, 8, 6).requires_grad_(), maps(1, 2, 3, 2).requires_grad_()
    for name in NAMES:
        params = {"loss": "heatmap_mse"} if name == "multi_stage" else {}
        module = loss(name, **params)
        pred = coords if name.startswith("joint") else heatmaps
        args = ([pred, pred], pred.detach()) if name == "multi_stage" else (pred, pred.detach() + 0.5)
        out = module(pred=args[0], target=args[1], weights=torch.ones(2, 3))
        assert set(out) == set(type(module).outputs), name
        assert out["loss"].dim() == 0 and torch.isfinite(out["loss"])


def test_heatmap_mse_matches_the_reference_formula():
    pred, target = maps(0, 4, 5, 16, 12), maps(1, 4, 5, 16, 12)
    weights = torch.tensor([[1, 0, 1, 1, 0.5]] * 4)
    out = loss("heatmap_mse")(pred=pred, target=target, weights=weights)["loss"]
    # 0.5 * mean over joints of MSE(pred * w, target * w), as the SimpleBaseline reference
    expected = sum(0.5 * F.mse_loss(pred[:, k] * weights[:, k, None, None],
                                    target[:, k] * weights[:, k, None, None]) for k in range(5)) / 5
    assert out.item() == pytest.approx(expected.item(), rel=1e-6)
    unweighted = loss("heatmap_mse", target_weight=False)(pred=pred, target=target, weights=weights)["loss"]
    assert unweighted.item() == pytest.approx(0.5 * F.mse_loss(pred, target).item(), rel=1e-6)


@pytest.mark.parametrize("name", ["heatmap_mse", "heatmap_ce", "heatmap_bce"])
def test_heatmap_losses_ignore_zero_weight_joints_and_handle_volumes(name):
    pred = (maps(2, 2, 3, 4, 8, 6) * 4 - 2).requires_grad_()  # 3D volumes [B, K, d, h, w]
    target = maps(3, 2, 3, 4, 8, 6)
    weights = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    fn = loss(name)
    out = fn(pred=pred, target=target, weights=weights)["loss"]
    out.backward()
    assert pred.grad[0, 1].abs().sum() == 0 and pred.grad[1, 2].abs().sum() == 0
    assert pred.grad[0, 0].abs().sum() > 0 and pred.grad[1, 1].abs().sum() > 0
    # changing a zero-weight joint's prediction leaves the loss unchanged
    changed = pred.detach().clone()
    changed[0, 1] += 5
    assert fn(pred=changed, target=target, weights=weights)["loss"].item() == pytest.approx(out.item())
    assert fn(pred=pred.detach(), target=target)["loss"].item() != pytest.approx(out.item())


def test_heatmap_ce_equals_cross_entropy_on_one_hot_maps():
    logits = maps(4, 3, 2, 6, 5) * 6
    index = torch.tensor([[7, 29], [0, 13], [22, 4]])
    one_hot = F.one_hot(index, 30).float().view(3, 2, 6, 5)
    out = loss("heatmap_ce")(pred=logits, target=one_hot)["loss"]
    expected = F.cross_entropy(logits.view(6, 30), index.view(6))
    assert out.item() == pytest.approx(expected.item(), rel=1e-6)
    # any positive scale of the target is the same distribution
    assert loss("heatmap_ce")(pred=logits, target=3 * one_hot)["loss"].item() == pytest.approx(out.item(), rel=1e-6)
    # an empty target map adds nothing but still counts in the mean over joints
    empty = one_hot.clone()
    empty[0, 0] = 0
    partial = loss("heatmap_ce")(pred=logits, target=empty)["loss"].item()
    ce = F.cross_entropy(logits.view(6, 30), index.view(6), reduction="none")
    assert partial == pytest.approx((ce.sum() - ce[0]).item() / 6, rel=1e-6)


def test_heatmap_bce_on_logits_and_on_probabilities_agree():
    logits, disks = maps(5, 2, 3, 8, 8) * 4 - 2, (maps(6, 2, 3, 8, 8) > 0.7).float()
    on_logits = loss("heatmap_bce")(pred=logits, target=disks)["loss"]
    on_probs = loss("heatmap_bce", logits=False)(pred=torch.sigmoid(logits), target=disks)["loss"]
    assert on_logits.item() == pytest.approx(F.binary_cross_entropy_with_logits(logits, disks).item(), rel=1e-6)
    assert on_probs.item() == pytest.approx(on_logits.item(), rel=1e-4)


@pytest.mark.parametrize("name,power", [("joint_l1", 1), ("joint_l2", 2)])
def test_joint_losses_by_hand(name, power):
    pred = torch.tensor([[[1.0, 2.0], [4.0, 0.0]], [[0.0, -3.0], [9.0, 9.0]]], requires_grad=True)
    target = torch.zeros(2, 2, 2)
    visible = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    out = loss(name)(pred=pred, target=target, weights=visible)["loss"]
    # visible errors: (1, 2), (4, 0), (0, 3); sum over joints and axes, mean over the batch of 2
    expected = sum(abs(e) ** power for e in (1, 2, 4, 0, 0, 3)) / 2
    assert out.item() == pytest.approx(expected)
    out.backward()
    assert pred.grad[1, 1].abs().sum() == 0 and pred.grad[0, 0, 1] > 0


def test_joint_losses_take_3d_coordinates_and_per_axis_weights():
    pred, target = maps(7, 3, 4, 3), maps(8, 3, 4, 3)
    per_axis = torch.ones(3, 4, 3)
    per_axis[..., 2] = 0  # supervise x, y only (2D labels for a 3D prediction)
    out = loss("joint_l1")(pred=pred, target=target, weights=per_axis)["loss"]
    assert out.item() == pytest.approx((pred - target)[..., :2].abs().sum().item() / 3, rel=1e-6)


def test_multi_stage_sums_weighted_stages_and_reaches_every_stage():
    target = maps(9, 2, 3, 8, 6)
    stages = [maps(10 + s, 2, 3, 8, 6).requires_grad_() for s in range(3)]
    weights = torch.ones(2, 3)
    wrapped = loss("multi_stage", loss={"use": "heatmap_mse", "target_weight": False},
                   stage_weights=[0.5, 1.0, 2.0])
    out = wrapped(pred=stages, target=target, weights=weights)
    single = [loss("heatmap_mse")(pred=s, target=target)["loss"] for s in stages]
    assert out["loss"].item() == pytest.approx((0.5 * single[0] + single[1] + 2 * single[2]).item(), rel=1e-6)
    assert out["stages"].shape == (3,)
    out["loss"].backward()
    assert all(s.grad is not None and s.grad.abs().sum() > 0 for s in stages)
    # by name, default weight 1 for any number of stages; one target per stage also works
    by_name = loss("multi_stage", loss="heatmap_mse")(pred=stages, target=[target] * 3)
    assert by_name["loss"].item() == pytest.approx(sum(single).item(), rel=1e-6)


def test_multi_stage_count_mismatch_says_both_counts():
    wrapped = loss("multi_stage", loss="heatmap_mse", stage_weights=[1.0, 1.0, 1.0, 1.0])
    stages = [maps(s, 1, 2, 4, 4) for s in range(3)]
    with pytest.raises(ComponentError, match="4 stage weights given but pred holds 3 stage outputs"):
        wrapped(pred=stages, target=maps(9, 1, 2, 4, 4))
    with pytest.raises(ComponentError, match="2 targets given but pred holds 3"):
        loss("multi_stage", loss="heatmap_mse")(pred=stages, target=stages[:2])
    with pytest.raises(ComponentError, match="list of stage outputs"):
        wrapped(pred=stages[0], target=stages[0])


def test_multi_stage_rejects_unknown_or_malformed_inner_losses():
    with pytest.raises(UnknownComponentError, match="heatmap_mse"):  # did-you-mean
        loss("multi_stage", loss="heatmap_mes")
    with pytest.raises(ComponentError, match="no parameter 'sigma'"):
        loss("multi_stage", loss={"use": "heatmap_mse", "sigma": 2})
    with pytest.raises(ComponentError, match="loss name"):
        loss("multi_stage", loss=3)


def test_shape_mistakes_raise_one_clear_error():
    with pytest.raises(ComponentError, match=r"pred \(2, 3, 8, 8\) and target \(2, 3, 4, 4\)"):
        loss("heatmap_mse")(pred=torch.zeros(2, 3, 8, 8), target=torch.zeros(2, 3, 4, 4))
    with pytest.raises(ComponentError, match="weights"):
        loss("joint_l1")(pred=torch.zeros(2, 3, 2), target=torch.zeros(2, 3, 2), weights=torch.ones(3, 2))
