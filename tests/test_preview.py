"""``kitpose preview``: a PNG grid of a recipe's samples with keypoints and skeleton."""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import pytest

from kitpose.errors import KitposeError
from kitpose_plugins.preview.preview import LEFT, MIDDLE, RIGHT, draw_sample, preview, run, side_of, to_bgr

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "recipes" / "base" / "synthetic.yaml"
COCO = ROOT / "tests" / "fixtures" / "coco"


def colour_pixels(picture: np.ndarray, bgr: tuple[int, int, int]) -> int:
    return int((np.abs(picture.astype(int) - bgr).sum(axis=-1) < 30).sum())


def test_handler_writes_a_grid_of_tiles(tmp_path, capsys):
    out = tmp_path / "grid.png"
    args = argparse.Namespace(recipe=str(BASE), overrides=["vars.image_size=64", "vars.modality=colour"],
                              split="val", count=5, output=str(out), tile=96)
    assert run(args) == 0
    assert "5 samples of split 'val'" in capsys.readouterr().out
    picture = cv2.imread(str(out))
    assert picture.shape == (2 * 96 + 2, 3 * 96 + 4, 3)  # 3 columns, 2 rows, 2 px gaps
    tile = picture[:96, :96]
    for colour in (LEFT, RIGHT, MIDDLE):
        assert colour_pixels(tile, colour) > 5  # both sides and the spine are drawn
    assert not picture[96 + 2:, 2 * (96 + 2):].any()  # the sixth place stays empty


def test_depth_samples_and_transforms_are_drawn(tmp_path):
    path, n = preview(str(BASE), ["data.train.dataset.size=3"], split="train", count=8,
                      output=tmp_path / "sub" / "depth.png", tile=64)
    assert n == 3 and path.is_file()
    assert cv2.imread(str(path)).shape == (2 * 64 + 2, 2 * 64 + 2, 3)


def test_full_images_of_other_sizes_fit_their_tiles(tmp_path):
    recipe = tmp_path / "coco.yaml"
    recipe.write_text(f"""kitpose: 1
data:
  val:
    dataset: {{use: coco, ann_file: {COCO / 'person_keypoints_tiny.json'}, image_dir: {COCO / 'images'}}}
""")
    path, n = preview(str(recipe), split="val", count=3, output=tmp_path / "coco.png", tile=120)
    assert n == 3
    assert cv2.imread(str(path)).shape == (2 * 120 + 2, 2 * 120 + 2, 3)


def test_keypoints_land_on_the_scaled_picture():
    image = np.zeros((20, 40, 3), np.uint8)
    sample = {"image": image, "keypoints": np.array([[10.0, 5.0], [30.0, 15.0]], np.float32),
              "visible": np.array([1.0, 0.0], np.float32)}
    tile = draw_sample(sample, [(0, 1)], ["l_knee", "r_knee"], tile=80)
    ys, xs = np.nonzero(colour_pixels_mask(tile, LEFT))
    # 2x scale with pixel centres: (10, 5) -> (20.5, 10.5)
    assert abs(xs.mean() - 20.5) < 0.6 and abs(ys.mean() - 10.5) < 0.6
    assert colour_pixels(tile, RIGHT) == 0  # the invisible joint and its limb are left out


def colour_pixels_mask(picture: np.ndarray, bgr: tuple[int, int, int]) -> np.ndarray:
    return np.abs(picture.astype(int) - bgr).sum(axis=-1) < 30


def test_pictures_of_every_modality():
    depth = np.full((8, 8, 1), 0.5, np.float32)
    depth[2, 2] = 0.0
    depth[4, 4] = 0.2
    shown = to_bgr(depth)
    assert shown.shape == (8, 8, 3) and shown[2, 2].max() == 0 and shown[4, 4, 0] > shown[0, 0, 0]
    assert to_bgr(np.zeros((5, 6, 1), np.uint8)).shape == (5, 6, 3)
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 0] = 255
    assert to_bgr(rgb)[0, 0].tolist() == [0, 0, 255]
    assert [side_of(n) for n in ("l_ankle", "right_eye", "nose", "pelvis")] == ["left", "right", "middle", "middle"]


def test_errors_are_kitpose_errors(tmp_path):
    with pytest.raises(KitposeError, match="no data for split 'test'"):
        preview(str(BASE), ["~data.test"], split="test", output=tmp_path / "x.png")
    with pytest.raises(KitposeError, match="recipe not found"):
        preview(str(tmp_path / "missing.yaml"), output=tmp_path / "x.png")
    with pytest.raises(KitposeError, match="-n"):
        preview(str(BASE), count=0, output=tmp_path / "x.png")


def test_the_command_line(tmp_path, cli):
    out = tmp_path / "cli.png"
    result = cli("preview", str(BASE), "-n", "2", "-o", str(out), "--split", "val", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert out.is_file() and cv2.imread(str(out)).shape[:2] == (192, 386)
