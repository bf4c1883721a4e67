"""UDP combined targets (class disk + offset maps), their decoder and loss, against joint-by-joint
loops that follow mmpose's UDPHeatmap(heatmap_type='combined') and CombinedTargetMSELoss."""
import cv2
import numpy as np
import pytest
import torch

from kitpose.errors import ComponentError, ParameterError
from kitpose.testing import check_decoder, check_encoder, check_loss
from kitpose_plugins.codecs.flip_test import FlipTest
from kitpose_plugins.codecs.offsets import UdpCombinedDecoder, UdpCombinedEncoder
from kitpose_plugins.losses.heatmap import CombinedMSE

INPUT, MAP = (192, 256), (48, 64)  # (w, h)
FACTOR = 0.0546875


def reference_targets(keypoints, visible, factor=FACTOR):
    """mmpose's steps: UDP scaling, then per joint a disk and offset maps over the whole map."""
    (w_in, h_in), (w, h) = INPUT, MAP
    scale = np.array([(w_in - 1) / (w - 1), (h_in - 1) / (h - 1)], dtype=np.float64)
    radius = factor * max(w, h)
    x, y = np.arange(w), np.arange(h)[:, None]
    out = np.zeros((keypoints.shape[0], keypoints.shape[1], 3, h, w))
    for n in range(keypoints.shape[0]):
        for k in range(keypoints.shape[1]):
            if visible[n, k] < 0.5:
                continue
            mu = keypoints[n, k] / scale
            dx, dy = (mu[0] - x) / radius, (mu[1] - y) / radius
            out[n, k, 0] = np.where(dx ** 2 + dy ** 2 <= 1, 1.0, 0.0)
            out[n, k, 1] = dx
            out[n, k, 2] = dy
    return out.reshape(keypoints.shape[0], -1, h, w), visible.copy()


def reference_decode(maps, factor=FACTOR, kernel=23):
    """mmpose's steps: blur each class map (OpenCV default border), arg-max, offsets there x radius."""
    b, c, h, w = maps.shape
    radius = factor * max(w, h)
    keypoints = np.zeros((b, c // 3, 2))
    scores = np.zeros((b, c // 3))
    for n in range(b):
        for k in range(c // 3):
            cls = cv2.GaussianBlur(maps[n, 3 * k].copy(), (kernel, kernel), 0)
            index = int(np.argmax(cls))
            cy, cx = divmod(index, w)
            scores[n, k] = cls.reshape(-1)[index]
            keypoints[n, k] = (cx + maps[n, 3 * k + 1, cy, cx] * radius, cy + maps[n, 3 * k + 2, cy, cx] * radius)
    return keypoints, scores


def reference_loss(pred, target, weights):
    """mmpose's CombinedTargetMSELoss with use_target_weight, joint by joint."""
    b, c = pred.shape[:2]
    pred, target = pred.reshape(b, c, -1), target.reshape(b, c, -1)
    total = 0.0
    for k in range(c // 3):
        w = weights[:, k, None]
        cls_p, cls_t = pred[:, 3 * k] * w, target[:, 3 * k] * w  # mmpose reweights the target map itself
        total += 0.5 * np.mean((cls_p - cls_t) ** 2)
        for axis in (1, 2):
            total += 0.5 * np.mean((cls_t * pred[:, 3 * k + axis] - cls_t * target[:, 3 * k + axis]) ** 2)
    return total / (c // 3)


@pytest.fixture
def points():
    g = torch.Generator().manual_seed(3)
    inner = 8 + torch.rand(5, 17, 2, generator=g, dtype=torch.float64) * torch.tensor([176.0, 240.0], dtype=torch.float64)
    return inner


def test_targets_match_mmpose_loop(points):
    visible = torch.ones(points.shape[:2], dtype=torch.float64)
    visible[0, :4] = torch.tensor([0.0, 0.3, 0.5, 0.7])
    enc = UdpCombinedEncoder(heatmap_size=MAP, input_size=INPUT)
    out = enc(keypoints=points, visible=visible)
    maps, weights = reference_targets(points.numpy(), visible.numpy())
    assert out["heatmaps"].shape == (5, 51, 64, 48)
    np.testing.assert_allclose(out["heatmaps"].numpy(), maps, atol=1e-9)
    np.testing.assert_allclose(out["weights"].numpy(), weights)


def test_a_disk_off_the_map_gets_weight_zero_unlike_mmpose():
    enc = UdpCombinedEncoder(heatmap_size=MAP, input_size=INPUT)
    radius_px = FACTOR * 64 * (191 / 47)  # about 14 px along x
    keypoints = torch.tensor([[[-radius_px + 2.0, 100.0], [-radius_px - 2.0, 100.0]]])
    out = enc(keypoints=keypoints, visible=torch.ones(1, 2))
    assert out["weights"].tolist() == [[1.0, 0.0]]
    assert out["heatmaps"][0, 0].sum() > 0 and out["heatmaps"][0, 3:].abs().sum() == 0
    _, weights = reference_targets(keypoints.double().numpy(), np.ones((1, 2)))
    assert weights.tolist() == [[1.0, 1.0]]


def test_decoding_matches_mmpose_loop_on_noisy_maps(points):
    enc = UdpCombinedEncoder(heatmap_size=MAP, input_size=INPUT)
    maps = enc(keypoints=points.float(), visible=torch.ones(points.shape[:2]))["heatmaps"]
    g = torch.Generator().manual_seed(4)
    noisy = maps + 0.2 * torch.randn(maps.shape, generator=g)
    ours = UdpCombinedDecoder()(heatmaps=noisy)
    keypoints, scores = reference_decode(noisy.numpy())
    np.testing.assert_allclose(ours["keypoints"].numpy(), keypoints, atol=1e-4)
    np.testing.assert_allclose(ours["scores"].numpy(), scores, atol=1e-5)


def test_round_trip_is_exact_on_clean_targets():
    g = torch.Generator().manual_seed(5)
    keypoints = torch.rand(8, 17, 2, generator=g, dtype=torch.float64) * torch.tensor([191.0, 255.0], dtype=torch.float64)
    enc = UdpCombinedEncoder(heatmap_size=MAP, input_size=INPUT)
    out = UdpCombinedDecoder()(heatmaps=enc(keypoints=keypoints)["heatmaps"])
    assert float((enc.to_image(out["keypoints"]) - keypoints).abs().max()) < 1e-9


def test_flip_back_undoes_a_mirrored_image(points):
    pairs = [[1, 2], [3, 4], [5, 6]]
    enc = UdpCombinedEncoder(heatmap_size=MAP, input_size=INPUT)
    mirrored = points.clone()
    mirrored[..., 0] = INPUT[0] - 1 - mirrored[..., 0]
    order = list(range(17))
    for a, b in pairs:
        order[a], order[b] = b, a
    seen = enc(keypoints=mirrored[:, order])["heatmaps"]
    np.testing.assert_allclose(enc.flip_back(seen, pairs).numpy(), enc(keypoints=points)["heatmaps"].numpy(), atol=1e-9)


def test_flip_test_keeps_combined_maps_to_the_exact_shift():
    with pytest.raises(ParameterError, match="shift 'none' mirrors plain heatmaps.*3 maps per joint"):
        FlipTest(encoder={"use": "udp_combined"}, flip_pairs=[[1, 2]], shift="none")
    assert FlipTest(encoder={"use": "udp_combined"}, flip_pairs=[[1, 2]]).shift == "exact"


def test_a_joint_weighted_zero_learns_no_offsets(points):
    target = UdpCombinedEncoder(heatmap_size=MAP, input_size=INPUT)(keypoints=points.float())["heatmaps"]
    weights = torch.ones(5, 17)
    weights[0, 0] = 0.0
    pred = target.clone()
    base = CombinedMSE()(pred=pred, target=target, weights=weights)["loss"]
    pred[0, 1:3] += 5.0  # joint 0's offset maps, far off
    assert float(CombinedMSE()(pred=pred, target=target, weights=weights)["loss"]) == float(base)


def test_loss_matches_mmpose_loop(points):
    enc = UdpCombinedEncoder(heatmap_size=MAP, input_size=INPUT)
    target = enc(keypoints=points.float())["heatmaps"]
    g = torch.Generator().manual_seed(6)
    pred = target + 0.3 * torch.randn(target.shape, generator=g)
    weights = torch.rand(5, 17, generator=g)
    ours = CombinedMSE()(pred=pred, target=target, weights=weights)["loss"]
    expected = reference_loss(pred.double().numpy(), target.double().numpy(), weights.double().numpy())
    assert float(ours) == pytest.approx(expected, rel=1e-5)
    assert float(CombinedMSE()(pred=target, target=target, weights=weights)["loss"]) == 0.0


def test_the_components_keep_the_contract():
    assert "weights" in check_encoder("udp_combined")
    assert "2D location" in check_decoder("udp_offsets", encoder="udp_combined", tolerance=1e-4)
    assert "gradient" in check_loss("combined_mse", encoder="udp_combined")


def test_bad_input_is_one_clear_line():
    with pytest.raises(ComponentError, match="decoder 'udp_offsets': combined maps need 3 channels per joint"):
        UdpCombinedDecoder()(heatmaps=torch.zeros(1, 4, 8, 8))
    with pytest.raises(ComponentError, match="'radius_factor' must be a positive number"):
        UdpCombinedEncoder(radius_factor=0)
    with pytest.raises(ComponentError, match="'blur_kernel' must be an odd integer"):
        UdpCombinedDecoder(blur_kernel=4)
    with pytest.raises(ComponentError, match="loss 'combined_mse'.*\\[B, 3K, h, w\\]"):
        CombinedMSE()(pred=torch.zeros(1, 4, 8, 8), target=torch.zeros(1, 4, 8, 8))
