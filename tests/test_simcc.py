"""SimCC: the encoder, decoder, head and loss against joint-by-joint loops of mmpose's steps."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

import kitpose
from kitpose.errors import ComponentError, KitposeError

WIDTH, HEIGHT, RATIO = 192, 256, 2.0


# -- references: one joint at a time, as mmpose's SimCCLabel, get_simcc_maximum, KLDiscretLoss ------
def reference_labels(points, vis, *, sigma=(4.9, 5.66), label_type="gaussian", smooth=0.0, normalize=True,
                     rule="mmpose", ratio=RATIO, size=(WIDTH, HEIGHT), unbiased=False):
    """SimCCLabel.encode for one sample: the centre np.around(x r) (exact with ``unbiased``);
    a joint is skipped by the visibility rule, gets weight 0 when out of range (gaussian:
    mu - 3 sigma >= bins or mu + 3 sigma + 1 < 0; standard: mu off the vector), else a
    Gaussian over every bin (divided by sigma sqrt(2 pi) with normalize) or a one-hot with
    label_smooth_weight / (bins - 1) elsewhere."""
    bins = (int(np.around(size[0] * ratio)), int(np.around(size[1] * ratio)))
    points, vis = np.asarray(points, dtype=np.float64), np.asarray(vis, dtype=np.float64)
    centres = points * ratio if unbiased else np.around(points * ratio)
    labels = [np.zeros((len(points), n)) for n in bins]
    weights = vis.copy()
    for k, (mu, v) in enumerate(zip(centres, vis)):
        if rule == "mmpose" and v < 0.5:
            continue
        if rule == "any" and v <= 0:
            weights[k] = 0
            continue
        if label_type == "standard":
            inside = all(0 <= mu[a] <= bins[a] - 1 for a in (0, 1))
        else:
            inside = all(mu[a] - 3 * sigma[a] < bins[a] and mu[a] + 3 * sigma[a] + 1 >= 0 for a in (0, 1))
        if not inside:
            weights[k] = 0
            continue
        if rule == "any":
            weights[k] = 1.0
        if rule == "darkpose" and v <= 0.5:
            continue
        for a in (0, 1):
            grid = np.arange(bins[a])
            if label_type == "standard":
                labels[a][k] = smooth / (bins[a] - 1)
                labels[a][k, int(mu[a])] = 1.0 - smooth
            else:
                labels[a][k] = np.exp(-((grid - mu[a]) ** 2) / (2 * sigma[a] ** 2))
                if normalize:
                    labels[a][k] /= sigma[a] * np.sqrt(2 * np.pi)
    return labels[0], labels[1], weights


def reference_blur_kernel(sigma):
    size = int((sigma * 20 - 7) // 3)
    return size - int(size % 2 == 0)


def reference_dark(location, vector, kernel):
    """mmpose's refine_simcc_dark for one vector: a zero-padded OpenCV blur rescaled to the
    vector's maximum, clipped to [1e-3, 50], log, edge padding by 2, one Newton step."""
    border = (kernel - 1) // 2
    padded = np.zeros((1, len(vector) + 2 * border))
    padded[0, border:-border] = vector
    blurred = cv2.GaussianBlur(padded, (kernel, 1), 0)[0, border:-border]
    blurred = blurred * (vector.max() / blurred.max())
    f = np.pad(np.log(np.clip(blurred, 1e-3, 50.0)), 2, mode="edge")
    p = int(location + 2.5)
    dx = 0.5 * (f[p + 1] - f[p - 1])
    dxx = 1e-9 + 0.25 * (f[p + 2] - 2 * f[p] + f[p - 2])
    return location - dx / dxx


def reference_decode(simcc_x, simcc_y, dark_kernels=None):
    """get_simcc_maximum joint by joint (first arg-max; score = the smaller maximum), with
    kitpose's rule for scores <= 0 (arg-max kept, score 0), then the optional DARK step."""
    keypoints, scores = np.zeros((len(simcc_x), 2)), np.zeros(len(simcc_x))
    for k, (vx, vy) in enumerate(zip(simcc_x, simcc_y)):
        keypoints[k] = (np.argmax(vx), np.argmax(vy))
        scores[k] = max(min(vx.max(), vy.max()), 0.0)
        if dark_kernels:
            keypoints[k, 0] = reference_dark(keypoints[k, 0], vx, dark_kernels[0])
            keypoints[k, 1] = reference_dark(keypoints[k, 1], vy, dark_kernels[1])
    return keypoints, scores


def reference_kl(pred_x, pred_y, target_x, target_y, weights, beta=1.0, label_softmax=False, label_beta=10.0):
    """KLDiscretLoss: per joint and axis the mean over bins of t (log t - log softmax(beta p)),
    times the weight, summed over the batch, joints and axes, divided by K."""
    batch, joints = pred_x.shape[:2]
    total = 0.0
    for b in range(batch):
        for k in range(joints):
            for pred, target in ((pred_x, target_x), (pred_y, target_y)):
                p, t = pred[b, k] * beta, target[b, k]
                if label_softmax:
                    e = np.exp(t * label_beta - (t * label_beta).max())
                    t = e / e.sum()
                log_p = p - p.max() - np.log(np.exp(p - p.max()).sum())
                terms = np.where(t > 0, t * (np.log(np.where(t > 0, t, 1.0)) - log_p), 0.0)
                total += terms.mean() * weights[b, k]
    return total / joints


# -- the encoder --------------------------------------------------------------------------------
POINTS = [[100.3, 130.9], [10.25, 20.75], [-8.0, 30.0], [-9.0, 40.0], [191.4, 255.6], [206.0, 100.0],
          [60.0, 262.0], [50.0, 70.0], [80.0, 90.0], [-0.2, 0.2], [95.5, 127.5], [0.0, 255.75]]
VISIBLE = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.3, 0.5, 1.0, 2.0, 0.0]


@pytest.mark.parametrize("params", [
    {},
    {"normalize": False},
    {"sigma": 6.0},
    {"sigma": [2.0, 3.5], "visibility": "darkpose"},
    {"visibility": "any"},
    {"unbiased": True},
    {"label_type": "standard"},
    {"label_type": "standard", "label_smooth_weight": 0.1},
    {"label_type": "standard", "label_smooth_weight": 0.25, "visibility": "any"},
    {"split_ratio": 1.5},
    {"split_ratio": 3.0, "label_type": "standard"},
])
def test_labels_are_mmposes(params):
    enc = kitpose.build("encoder", "simcc", input_size=[WIDTH, HEIGHT], **params)
    points = torch.tensor([POINTS], dtype=torch.float64)
    vis = torch.tensor([VISIBLE], dtype=torch.float64)
    out = enc(keypoints=points, visible=vis)
    sigma = params.get("sigma", (4.9, 5.66))
    want_x, want_y, weights = reference_labels(
        POINTS, VISIBLE, sigma=(sigma, sigma) if isinstance(sigma, float) else sigma,
        label_type=params.get("label_type", "gaussian"), smooth=params.get("label_smooth_weight", 0.0),
        normalize=params.get("normalize", True), rule=params.get("visibility", "mmpose"),
        ratio=params.get("split_ratio", RATIO), unbiased=params.get("unbiased", False))
    assert out["simcc_x"].shape == (1, len(POINTS), want_x.shape[1])
    assert out["simcc_y"].shape == (1, len(POINTS), want_y.shape[1])
    assert np.allclose(out["weights"][0].numpy(), weights, atol=1e-5)
    assert np.allclose(out["simcc_x"][0].numpy(), want_x, atol=1e-5)
    assert np.allclose(out["simcc_y"][0].numpy(), want_y, atol=1e-5)


def test_the_rules_of_the_table_hold():
    """What the reference rows say, spelled out: halves round to even, the low side of a
    Gaussian keeps a bin more, standard labels sum to 1, normalised Gaussians nearly so."""
    enc = kitpose.build("encoder", "simcc", input_size=[WIDTH, HEIGHT])
    out = enc(keypoints=torch.tensor([[[10.25, 20.75], [-7.5, 30.0], [-8.0, 40.0], [100.0, 128.0]]]))
    assert out["simcc_x"][0, 0].argmax() == 20 and out["simcc_y"][0, 0].argmax() == 42  # 20.5 -> 20, 41.5 -> 42
    assert out["weights"][0].tolist() == [1.0, 1.0, 0.0, 1.0]  # -15 + 14.7 + 1 >= 0; -16 + 14.7 + 1 < 0
    assert torch.allclose(out["simcc_x"][0, 3].sum(), torch.tensor(1.0), atol=1e-4)
    standard = kitpose.build("encoder", "simcc", label_type="standard", label_smooth_weight=0.2)
    labels = standard(keypoints=torch.tensor([[[50.0, 60.0]]], dtype=torch.float64))
    assert torch.allclose(labels["simcc_x"].sum(-1), torch.ones(1, 1, dtype=torch.float64))
    assert labels["simcc_x"][0, 0, 100] == 0.8


def test_labels_are_batched_and_keep_the_dtype():
    enc = kitpose.build("encoder", "simcc")
    g = torch.Generator().manual_seed(0)
    points = torch.rand(5, 17, 2, generator=g) * torch.tensor([WIDTH, HEIGHT]) + 0.1
    out = enc(keypoints=points)
    for b in range(5):
        alone = enc(keypoints=points[b:b + 1])
        assert all(torch.equal(alone[key], out[key][b:b + 1]) for key in enc.outputs)
    wide = enc(keypoints=points.double())
    assert wide["simcc_x"].dtype == torch.float64 and out["simcc_x"].dtype == torch.float32
    assert torch.allclose(wide["simcc_x"].float(), out["simcc_x"], atol=1e-6)
    half = enc(keypoints=points.half())
    assert half["simcc_y"].dtype == torch.float16
    nan = points.clone()
    nan[0, 3] = float("nan")
    assert enc(keypoints=nan)["weights"][0, 3] == 0
    assert enc(keypoints=nan)["simcc_x"][0, 3].abs().sum() == 0


def test_to_heatmap_and_to_image_are_exact_inverses():
    enc = kitpose.build("encoder", "simcc", split_ratio=3.0)
    xy = torch.rand(2, 5, 2, dtype=torch.float64) * 200
    assert torch.allclose(enc.to_heatmap(xy), xy * 3.0)
    assert torch.allclose(enc.to_image(enc.to_heatmap(xy)), xy, atol=1e-12)
    assert enc.flow_methods == ("to_heatmap", "to_image")
    assert enc.outputs == ("simcc_x", "simcc_y", "weights")


# -- the decoder --------------------------------------------------------------------------------
def noisy_labels(seed, batch=3, joints=7, noise=0.02, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    points = 15 + torch.rand(batch, joints, 2, generator=g, dtype=dtype) * torch.tensor([WIDTH - 30.0, HEIGHT - 30.0],
                                                                                        dtype=dtype)
    labels = kitpose.build("encoder", "simcc", normalize=False, unbiased=True)(keypoints=points)
    return (labels["simcc_x"] + noise * torch.rand(labels["simcc_x"].shape, generator=g, dtype=dtype),
            labels["simcc_y"] + noise * torch.rand(labels["simcc_y"].shape, generator=g, dtype=dtype))


@pytest.mark.parametrize("params, kernels", [
    ({}, None),
    ({"refine": "dark"}, (reference_blur_kernel(4.9), reference_blur_kernel(5.66))),
    ({"refine": "dark", "sigma": 6.0}, (37, 37)),
    ({"refine": "dark", "blur_kernel": [11, 5]}, (11, 5)),
    ({"refine": "dark", "blur_kernel": 3}, (3, 3)),
])
def test_decoding_is_mmposes(params, kernels):
    simcc_x, simcc_y = noisy_labels(seed=len(params) + (kernels or (0,))[0])
    simcc_x[0, 0] -= 2.0  # a joint whose maxima are negative: arg-max kept, score 0
    out = kitpose.build("decoder", "simcc_peak", **params)(simcc_x=simcc_x, simcc_y=simcc_y)
    for b in range(simcc_x.shape[0]):
        keypoints, scores = reference_decode(simcc_x[b].numpy(), simcc_y[b].numpy(), kernels)
        assert np.allclose(out["keypoints"][b].numpy(), keypoints, atol=1e-5)
        assert np.allclose(out["scores"][b].numpy(), scores, atol=1e-5)
    assert out["scores"][0, 0] == 0


def test_the_mmpose_blur_kernel_follows_sigma():
    dec = kitpose.build("decoder", "simcc_peak", refine="dark")
    assert dec.blur_kernel == (29, 35)
    assert kitpose.build("decoder", "simcc_peak", sigma=[2.0, 3.0]).blur_kernel == (11, 17)


def test_ties_go_to_the_first_bin_and_scores_are_the_smaller_maximum():
    simcc_x = torch.zeros(1, 3, 10)
    simcc_y = torch.zeros(1, 3, 8)
    simcc_x[0, 0, [3, 6]] = 0.7
    simcc_y[0, 0, [5, 2]] = 0.4
    simcc_x[0, 1, 9] = 0.2
    simcc_y[0, 1, 0] = 0.9
    out = kitpose.build("decoder", "simcc_peak")(simcc_x=simcc_x, simcc_y=simcc_y)
    assert out["keypoints"][0, :2].tolist() == [[3.0, 2.0], [9.0, 0.0]]
    assert out["keypoints"][0, 2].tolist() == [0.0, 0.0]  # all zero: the first bin, score 0
    assert torch.allclose(out["scores"][0], torch.tensor([0.4, 0.2, 0.0]))


def test_max_step_caps_the_dark_step():
    simcc_x, simcc_y = noisy_labels(seed=3, noise=0.5)
    free = kitpose.build("decoder", "simcc_peak", refine="dark")(simcc_x=simcc_x, simcc_y=simcc_y)["keypoints"]
    plain = kitpose.build("decoder", "simcc_peak")(simcc_x=simcc_x, simcc_y=simcc_y)["keypoints"]
    capped = kitpose.build("decoder", "simcc_peak", refine="dark", max_step=0.5)(simcc_x=simcc_x, simcc_y=simcc_y)
    assert (capped["keypoints"] - plain).abs().max() <= 0.5 + 1e-12
    assert torch.allclose(capped["keypoints"], plain + (free - plain).clamp(-0.5, 0.5))


def test_decoding_is_batched_and_runs_in_float32():
    simcc_x, simcc_y = noisy_labels(seed=4)
    dec = kitpose.build("decoder", "simcc_peak", refine="dark")
    out = dec(simcc_x=simcc_x, simcc_y=simcc_y)
    for b in range(simcc_x.shape[0]):
        alone = dec(simcc_x=simcc_x[b:b + 1], simcc_y=simcc_y[b:b + 1])
        assert torch.allclose(alone["keypoints"], out["keypoints"][b:b + 1])
    narrow = dec(simcc_x=simcc_x.float(), simcc_y=simcc_y.float())
    assert narrow["keypoints"].dtype == torch.float32
    assert (narrow["keypoints"].double() - out["keypoints"]).abs().max() < 1e-3
    assert dec(simcc_x=simcc_x.half(), simcc_y=simcc_y.half())["keypoints"].dtype == torch.float32


# -- round trips ----------------------------------------------------------------------------------
@pytest.mark.parametrize("refine", ["none", "dark"])
def test_labels_round_trip_on_the_bin_grid(refine):
    """mmpose's labels sit on the rounded bin: keypoints on the bin grid come back exactly."""
    enc = kitpose.build("encoder", "simcc")
    dec = kitpose.build("decoder", "simcc_peak", refine=refine)
    g = torch.Generator().manual_seed(5)
    bins = torch.randint(30, 350, (4, 17, 2), generator=g).to(torch.float64)
    points = bins / RATIO
    labels = enc(keypoints=points)
    decoded = enc.to_image(dec(simcc_x=labels["simcc_x"], simcc_y=labels["simcc_y"])["keypoints"])
    assert (decoded - points).abs().max() <= 1e-3


@pytest.mark.parametrize("sigma", [(4.9, 5.66), (6.0, 6.0), (3.0, 3.0)])
def test_unbiased_labels_round_trip_through_dark(sigma):
    enc = kitpose.build("encoder", "simcc", unbiased=True, sigma=list(sigma))
    dec = kitpose.build("decoder", "simcc_peak", refine="dark", sigma=list(sigma))
    g = torch.Generator().manual_seed(6)
    points = 20 + torch.rand(4, 17, 2, generator=g, dtype=torch.float64) * torch.tensor([WIDTH - 40.0, HEIGHT - 40.0],
                                                                                         dtype=torch.float64)
    labels = enc(keypoints=points)
    decoded = enc.to_image(dec(simcc_x=labels["simcc_x"], simcc_y=labels["simcc_y"])["keypoints"])
    assert (decoded - points).abs().max() <= 1e-3
    rounded = kitpose.build("encoder", "simcc", sigma=list(sigma))(keypoints=points)
    quantised = enc.to_image(dec(simcc_x=rounded["simcc_x"], simcc_y=rounded["simcc_y"])["keypoints"])
    assert (quantised - points).abs().max() <= 0.25 + 1e-3  # mmpose's labels: within half a bin


# -- the head -----------------------------------------------------------------------------------
@pytest.mark.parametrize("params, features, lengths", [
    ({"input_size": [128, 128]}, (2, 16, 32, 32), (256, 256)),
    ({"input_size": [192, 256], "feature_stride": 32, "deconv_layers": 2, "deconv_channels": 8},
     (2, 16, 8, 6), (384, 512)),
    ({"input_size": [100, 60], "split_ratio": 1.5, "feature_size": [7, 5], "final_kernel": 3}, (1, 16, 5, 7),
     (150, 90)),
])
def test_head_shapes_and_gradients(params, features, lengths):
    head = kitpose.build("head", "simcc_head", in_channels=16, joints=5, **params)
    x = torch.randn(*features, requires_grad=True)
    out = head(features=x)
    assert set(out) == set(head.outputs) == {"simcc_x", "simcc_y"}
    assert out["simcc_x"].shape == (features[0], 5, lengths[0])
    assert out["simcc_y"].shape == (features[0], 5, lengths[1])
    (out["simcc_x"].square().sum() + out["simcc_y"].sum()).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for name, p in head.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    enc = kitpose.build("encoder", "simcc", input_size=params["input_size"], split_ratio=params.get("split_ratio", 2.0))
    assert enc.bins == lengths  # the head's vectors are as long as the encoder's labels


def test_head_without_final_layer_and_its_errors():
    head = kitpose.build("head", "simcc_head", in_channels=4, joints=4, input_size=[64, 64], final_layer=False)
    assert head(features=torch.randn(1, 4, 16, 16))["simcc_x"].shape == (1, 4, 128)
    with pytest.raises(ComponentError, match="head 'simcc_head'.*final_layer"):
        kitpose.build("head", "simcc_head", in_channels=8, joints=4, final_layer=False)
    with pytest.raises(ComponentError, match=r"head 'simcc_head': features are 16 x 16.*48 x 64"):
        kitpose.build("head", "simcc_head", in_channels=4, joints=4)(features=torch.randn(1, 4, 16, 16))
    with pytest.raises(ComponentError, match="head 'simcc_head'.*channels"):
        kitpose.build("head", "simcc_head", in_channels=4, joints=4)(features=torch.randn(1, 3, 64, 48))


# -- the loss -----------------------------------------------------------------------------------
def loss_inputs(seed=0, batch=3, joints=4):
    enc = kitpose.build("encoder", "simcc", input_size=[40, 30], sigma=2.0)
    g = torch.Generator().manual_seed(seed)
    points = 5 + torch.rand(batch, joints, 2, generator=g) * torch.tensor([30.0, 20.0])
    labels = enc(keypoints=points)
    pred_x = torch.randn(labels["simcc_x"].shape, generator=g)
    pred_y = torch.randn(labels["simcc_y"].shape, generator=g)
    weights = torch.rand(batch, joints, generator=g)
    return pred_x, pred_y, labels["simcc_x"], labels["simcc_y"], weights


@pytest.mark.parametrize("params", [{}, {"beta": 10.0, "label_softmax": True}, {"label_beta": 3.0, "label_softmax": True},
                                    {"beta": 0.5}])
def test_loss_is_mmposes_kl(params):
    pred_x, pred_y, target_x, target_y, weights = loss_inputs()
    got = kitpose.build("loss", "simcc_kl", **params)(pred_x=pred_x, pred_y=pred_y, target_x=target_x,
                                                      target_y=target_y, weights=weights)["loss"]
    want = reference_kl(*(t.double().numpy() for t in (pred_x, pred_y, target_x, target_y, weights)), **params)
    assert got.shape == () and abs(float(got) - want) <= 1e-5 * max(1.0, abs(want))


def test_loss_is_smallest_at_the_labels_and_grows_with_a_shift():
    _, _, target_x, target_y, weights = loss_inputs(seed=1)
    loss = kitpose.build("loss", "simcc_kl")
    # logits whose softmax is the (normalised) label: the KL is 0 up to the label's own mass
    exact = {"pred_x": torch.log(target_x.clamp(min=1e-30)), "pred_y": torch.log(target_y.clamp(min=1e-30))}
    at_labels = float(loss(**exact, target_x=target_x, target_y=target_y, weights=weights)["loss"])
    assert abs(at_labels) < 1e-3
    values = []
    for shift in (1, 3, 6):
        moved = {key: torch.roll(value, shift, dims=-1) for key, value in exact.items()}
        values.append(float(loss(**moved, target_x=target_x, target_y=target_y, weights=weights)["loss"]))
    assert at_labels < values[0] < values[1] < values[2]
    noisy = {key: value + 0.3 * torch.randn(value.shape, generator=torch.Generator().manual_seed(2))
             for key, value in exact.items()}
    assert float(loss(**noisy, target_x=target_x, target_y=target_y, weights=weights)["loss"]) > at_labels


def test_loss_weights_reduction_and_gradient():
    pred_x, pred_y, target_x, target_y, weights = loss_inputs(seed=2)
    loss = kitpose.build("loss", "simcc_kl")
    muted = weights.clone()
    muted[1, 2] = 0.0
    base = loss(pred_x=pred_x, pred_y=pred_y, target_x=target_x, target_y=target_y, weights=muted)["loss"]
    moved_x = pred_x.clone()
    moved_x[1, 2] += 5 * torch.randn(moved_x.shape[-1])
    assert torch.equal(base, loss(pred_x=moved_x, pred_y=pred_y, target_x=target_x, target_y=target_y,
                                  weights=muted)["loss"])
    unweighted = kitpose.build("loss", "simcc_kl", target_weight=False)
    ones = loss(pred_x=pred_x, pred_y=pred_y, target_x=target_x, target_y=target_y, weights=None)["loss"]
    assert torch.allclose(ones, unweighted(pred_x=pred_x, pred_y=pred_y, target_x=target_x, target_y=target_y,
                                           weights=muted)["loss"])
    mean = kitpose.build("loss", "simcc_kl", reduction="mean")
    assert torch.allclose(mean(pred_x=pred_x, pred_y=pred_y, target_x=target_x, target_y=target_y,
                               weights=muted)["loss"] * pred_x.shape[0], base)
    px = pred_x.clone().requires_grad_(True)
    loss(pred_x=px, pred_y=pred_y, target_x=target_x, target_y=target_y, weights=weights)["loss"].backward()
    assert px.grad is not None and torch.isfinite(px.grad).all() and px.grad.abs().sum() > 0


# -- errors: one line naming the component -------------------------------------------------------
@pytest.mark.parametrize("kind, params, words", [
    ("encoder", {"split_ratio": 0}, "encoder 'simcc': 'split_ratio' must be a positive number"),
    ("encoder", {"split_ratio": -2.0}, "encoder 'simcc': 'split_ratio'"),
    ("encoder", {"split_ratio": "two"}, "encoder 'simcc': split_ratio must be a number"),
    ("encoder", {"split_ratio": 0.001}, "encoder 'simcc': split_ratio 0.001 leaves"),
    ("encoder", {"sigma": [1.0, 2.0, 3.0]}, "encoder 'simcc': 'sigma' must be a number or"),
    ("encoder", {"sigma": -1}, "encoder 'simcc': 'sigma'"),
    ("encoder", {"label_type": "laplace"}, "encoder 'simcc'.*label_type"),
    ("encoder", {"label_smooth_weight": 0.1}, "encoder 'simcc': 'label_smooth_weight' applies"),
    ("encoder", {"label_type": "standard", "label_smooth_weight": 1.5}, "encoder 'simcc': 'label_smooth_weight'"),
    ("encoder", {"label_type": "standard", "unbiased": True}, "encoder 'simcc': 'unbiased'"),
    ("encoder", {"input_size": [0, 10]}, "encoder 'simcc': 'input_size'"),
    ("decoder", {"refine": "udp"}, "decoder 'simcc_peak'.*refine"),
    ("decoder", {"blur_kernel": 4}, "decoder 'simcc_peak': 'blur_kernel' must be an odd"),
    ("decoder", {"max_step": 0}, "decoder 'simcc_peak': 'max_step'"),
    ("head", {"in_channels": 4, "joints": 2, "split_ratio": 0}, "head 'simcc_head': 'split_ratio'"),
    ("loss", {"beta": 0}, "loss 'simcc_kl'.*beta"),
    ("loss", {"reduction": "sum"}, "loss 'simcc_kl'.*reduction"),
])
def test_bad_parameters_are_refused_in_one_line(kind, params, words):
    with pytest.raises(KitposeError, match=words) as info:
        kitpose.build(kind, {"encoder": "simcc", "decoder": "simcc_peak", "head": "simcc_head", "loss": "simcc_kl"}[kind],
                      **params)
    assert "\n" not in str(info.value.message if hasattr(info.value, "message") else info.value)


def test_bad_shapes_are_refused_in_one_line():
    enc, dec = kitpose.build("encoder", "simcc"), kitpose.build("decoder", "simcc_peak")
    with pytest.raises(ComponentError, match=r"encoder 'simcc': keypoints must be \[B, K, 2\]"):
        enc(keypoints=torch.zeros(2, 3, 3))
    with pytest.raises(ComponentError, match=r"encoder 'simcc': visible must be \[B, K\]"):
        enc(keypoints=torch.zeros(2, 3, 2), visible=torch.ones(2, 4))
    with pytest.raises(ComponentError, match="encoder 'simcc': 'xy' must end in 2"):
        enc.to_image(torch.zeros(3, 3))
    with pytest.raises(ComponentError, match=r"decoder 'simcc_peak': simcc_x must be \[B, K, L\]"):
        dec(simcc_x=torch.zeros(3, 10), simcc_y=torch.zeros(3, 10))
    with pytest.raises(ComponentError, match="decoder 'simcc_peak': simcc_x .* must share"):
        dec(simcc_x=torch.zeros(1, 3, 10), simcc_y=torch.zeros(1, 4, 10))
    loss = kitpose.build("loss", "simcc_kl")
    x, y = torch.zeros(2, 3, 10), torch.zeros(2, 3, 8)
    with pytest.raises(ComponentError, match=r"loss 'simcc_kl': pred_y \(2, 3, 8\) and target_y \(2, 3, 9\)"):
        loss(pred_x=x, pred_y=y, target_x=x, target_y=torch.zeros(2, 3, 9))
    with pytest.raises(ComponentError, match="loss 'simcc_kl': weights"):
        loss(pred_x=x, pred_y=y, target_x=x, target_y=y, weights=torch.ones(2, 4))


def test_the_components_keep_the_contract():
    from kitpose.components import declared
    from kitpose.plugins import get_registry
    from kitpose.registry import fit
    from kitpose.testing import check_decoder, check_encoder, check_loss

    assert "centring" in check_encoder("simcc")
    assert "2D location" in check_decoder("simcc_peak", encoder="simcc", tolerance=0.5)
    assert "2D location" in check_decoder("simcc_peak", encoder={"use": "simcc", "unbiased": True},
                                          refine="dark", tolerance=1e-2)
    assert "gradient" in check_loss("simcc_kl", encoder="simcc")
    head = get_registry().get("head", "simcc_head").load()  # heads have no contract check: the call only
    found = fit(head.forward, ("features",), method=True)
    assert not found.unknown and not found.missing and declared(head, "outputs") == ("simcc_x", "simcc_y")
    assert math.isclose(kitpose.build("encoder", "simcc").sigma[1], 5.66)


def test_the_recipe_trains_and_tests_when_shrunk(tmp_path):
    from conftest import ROOT
    from kitpose.engine import run_recipe

    shrunk = ["train.epochs=1", "data.train.dataset.size=16", "data.val.dataset.size=8",
              "data.test.dataset.size=8", "data.train.batch_size=8"]
    out = run_recipe(str(ROOT / "recipes" / "simcc.yaml"), shrunk, run_dir=str(tmp_path))
    assert set(out) == {"simcc", "dark"}
    assert all(0.0 <= row["PCKh@0.5"] <= 1.0 for row in out.values())
    assert (tmp_path / "results.csv").is_file()
