"""The median decoder: kitpose's decoder contract, then what the median of mass does."""
import pytest
import torch

import kitpose
from kitpose.errors import ComponentError
from kitpose.testing import check_decoder, gaussians
from kitpose_example.median import MedianDecoder


@pytest.mark.parametrize("window", [6, None])
def test_it_keeps_the_decoder_contract(window):
    ran = check_decoder("median", window=window)
    assert "2D gradient" in ran and "3D location" in ran  # it says spatial = (2, 3), differentiable = True


def test_a_blob_centred_on_a_cell_decodes_to_that_cell():
    centres = torch.tensor([[[5.0, 7.0], [0.0, 3.0]]])  # the second touches the left border
    out = MedianDecoder(window=3)(heatmaps=gaussians(centres, (12, 10), sigma=1.0))
    assert torch.allclose(out["keypoints"][0, 0], centres[0, 0], atol=1e-5)
    assert out["keypoints"][0, 1, 1] == pytest.approx(3.0, abs=1e-5)


def test_volumes_decode_to_x_y_z():
    centres = torch.tensor([[[4.0, 5.0, 2.0]]])  # the window (radius 2) lies inside the volume
    out = MedianDecoder(window=2)(heatmaps=gaussians(centres, (6, 10, 8), sigma=1.0))
    assert out["keypoints"].shape == (1, 1, 3)
    assert torch.allclose(out["keypoints"], centres, atol=1e-4)


def test_the_window_keeps_noise_far_from_the_peak_out():
    generator = torch.Generator().manual_seed(0)
    truth = torch.stack([8 + 32 * torch.rand(32, 16, generator=generator),
                         8 + 48 * torch.rand(32, 16, generator=generator)], dim=-1)
    maps = gaussians(truth, (64, 48), sigma=2.0)
    maps = maps + 0.02 * torch.randn(maps.shape, generator=generator)
    error = {w: float((MedianDecoder(window=w)(heatmaps=maps)["keypoints"] - truth).norm(dim=-1).mean())
             for w in (6, None)}
    assert error[6] < 0.1  # pixels on the 64 x 48 map
    assert error[None] > 10 * error[6]  # the whole map's median is dragged by the noise


def test_maps_without_positive_mass_give_their_argmax():
    maps = torch.full((2, 3, 8, 8), -1.0)
    maps[0, 1, 4, 6] = -0.5
    out = MedianDecoder()(heatmaps=maps)
    assert out["keypoints"][0, 1].tolist() == [6.0, 4.0]
    assert (out["scores"] == 0).all()


@pytest.mark.parametrize("window, says", [
    (0, "window must be an integer >= 1 or null"),  # the decoder's own check
    (2.5, "window must be a whole number"),          # kitpose checks the `int | None` annotation
    (True, "window must be a whole number"),
    ("3", "window must be a whole number"),
])
def test_a_bad_window_says_what_to_write(window, says):
    with pytest.raises(ComponentError, match=says):
        kitpose.build("decoder", "median", window=window)
