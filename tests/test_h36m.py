"""The Human3.6M dataset on a tiny fixture built here, in the preprocessed ``.npz`` layout.

The fixture's 2D joints are made by projecting known 3D joints with known cameras through
OpenCV (radial distortion included), independently of the dataset's own code; its cameras
are keyed as many ``cameras.pkl`` files key them, ``(subject, index)`` with a ``name``.
"""
from __future__ import annotations

import csv
import json
import os
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import kitpose
from conftest import ROOT, run_cli
from kitpose.engine import run_recipe
from kitpose.errors import KitposeError
from kitpose_plugins.data.h36m import ACTIONS, CAMERAS, project, parse_name
from kitpose_plugins.data.joints import H36M

SIZE = 160
SUBJECTS = (1, 5, 9, 11)
SEQUENCES = ("Directions_1", "TakingPhoto")  # the second is Human3.6M's other spelling of Photo
FRAMES = 4
ANNOTATIONS = Path("annotation_body3d") / "fps10"
ANN = ANNOTATIONS / "h36m_train.npz"
CAMERA_FILE = Path("annotation_body3d") / "cameras.pkl"


def look_at(centre, target=(0.0, 0.0, 900.0)):
    """World -> camera rotation of a camera at ``centre`` looking at ``target`` (world z up)."""
    z = np.subtract(target, centre)
    z /= np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z])


def make_cameras():
    cams = {}
    for i, centre in enumerate(((300.0, -2600.0, 1300.0), (2500.0, 600.0, 1100.0))):
        cams[CAMERAS[i]] = {"R": look_at(centre), "T": np.array(centre), "f": np.array([150.0, 148.0]),
                            "c": np.array([81.0, 78.5]), "k": np.array([-0.6, 0.2, 0.02]), "p": np.zeros(2)}
    return cams


def opencv_projection(world, cam):
    rvec, _ = cv2.Rodrigues(cam["R"])
    tvec = -cam["R"] @ cam["T"]
    matrix = np.array([[cam["f"][0], 0, cam["c"][0]], [0, cam["f"][1], cam["c"][1]], [0, 0, 1]])
    k1, k2, k3 = cam["k"]
    dist = np.array([k1, k2, cam["p"][0], cam["p"][1], k3])
    out, _ = cv2.projectPoints(world.reshape(-1, 1, 3), rvec, tvec, matrix, dist)
    return out.reshape(-1, 2)


def make_h36m(root: Path, *, seed: int = 0, world_mm: bool = False) -> dict:
    """Write mmpose's layout under ``root`` (annotation_body3d/fps10/h36m_{train,test}.npz, both
    holding every subject, annotation_body3d/cameras.pkl, images/); return the truth. S holds
    camera-frame metres keyed ('S1', '54138969') as mmpose's files do, or with ``world_mm``
    world millimetres with cameras keyed (1, 1) and named, as other camera files do."""
    rng = np.random.default_rng(seed)
    cams = make_cameras()
    names, centres, scales, parts, worlds, cam_points = [], [], [], [], [], []
    for s in SUBJECTS:
        for seq in SEQUENCES:
            for cam_id, cam in cams.items():
                for frame in range(1, FRAMES + 1):
                    world = np.array([0.0, 0.0, 900.0]) + rng.uniform(-450, 450, (17, 3))
                    world[0] = [rng.uniform(-100, 100), rng.uniform(-100, 100), 900.0]
                    xy = opencv_projection(world, cam)
                    folder = f"S{s}_{seq}.{cam_id}"
                    name = f"S{s}/{folder}/{folder}_{frame:06d}.jpg"
                    path = root / "images" / name
                    path.parent.mkdir(parents=True, exist_ok=True)
                    cv2.imwrite(str(path), rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8))
                    names.append(name)
                    lo, hi = xy.min(0), xy.max(0)
                    centres.append((lo + hi) / 2)
                    scales.append((hi - lo).max() * 1.2 / 200)
                    parts.append(np.concatenate([xy, np.ones((17, 1))], 1))
                    in_camera = (world - cam["T"]) @ cam["R"].T
                    stored = world if world_mm else in_camera / 1000.0
                    worlds.append(np.concatenate([stored, np.ones((17, 1))], 1))
                    cam_points.append(in_camera)
    (root / ANNOTATIONS).mkdir(parents=True, exist_ok=True)
    arrays = {"imgname": np.array(names), "center": np.array(centres), "scale": np.array(scales),
              "part": np.array(parts), "S": np.array(worlds)}
    for split in ("train", "test"):
        np.savez(root / ANNOTATIONS / f"h36m_{split}.npz", **arrays)
    table = {}
    for s in SUBJECTS:
        for i, (cam_id, cam) in enumerate(cams.items()):
            if world_mm:
                table[s, i + 1] = {**cam, "name": cam_id}
            else:  # metres, column vectors, string keys
                table[f"S{s}", cam_id] = {"R": cam["R"], "T": cam["T"].reshape(3, 1) / 1000.0,
                                          "f": cam["f"].reshape(2, 1), "c": cam["c"].reshape(2, 1),
                                          "k": cam["k"].reshape(3, 1), "p": cam["p"].reshape(2, 1)}
    with open(root / CAMERA_FILE, "wb") as handle:
        pickle.dump(table, handle)
    return {"arrays": arrays, "cameras": cams, "camera_points": np.array(cam_points), "root": root}


@pytest.fixture(scope="module")
def fixture(tmp_path_factory):
    return make_h36m(tmp_path_factory.mktemp("h36m"))


def h36m(fx, ann=None, **params):
    root = fx["root"]
    return kitpose.build("dataset", "h36m", ann_file=str(ann or root / ANN),
                         image_dir=str(root / "images"), camera_file=str(root / CAMERA_FILE), **params)


def test_image_names_give_subject_action_camera():
    assert parse_name("S1/S1_Directions_1.54138969/S1_Directions_1.54138969_000001.jpg") == \
        (1, "Directions", "54138969")
    assert parse_name("images/S11_WalkingDog_1_60457274_000123.jpg") == (11, "WalkDog", "60457274")
    assert parse_name("S9_SittingDown 2.58860488_000001.jpg") == (9, "SittingDown", "58860488")
    assert parse_name("picture.jpg") is None


def test_samples_carry_2d_3d_camera_box_action(fixture):
    ds = h36m(fixture)
    n = len(SUBJECTS) * len(SEQUENCES) * 2 * FRAMES
    assert len(ds) == n
    assert ds.joint_names == H36M.joint_names and ds.flip_pairs == H36M.flip_pairs
    s = ds[0]
    assert set(s) == {"image", "keypoints", "visible", *ds.provides}
    assert s["image"].shape == (SIZE, SIZE, 3) and s["image"].dtype == np.uint8
    assert s["keypoints"].shape == (17, 2) and s["keypoints"].dtype == np.float32
    assert s["keypoints_3d"].shape == (17, 3) and s["visible"].shape == (17,)
    assert s["camera"].shape == (4,) and s["distortion"].shape == (5,)
    np.testing.assert_allclose(s["camera"], [150.0, 148.0, 81.0, 78.5])
    arrays = fixture["arrays"]
    np.testing.assert_allclose(s["keypoints"], arrays["part"][0, :, :2], atol=1e-4)
    np.testing.assert_allclose(s["keypoints_3d"], fixture["camera_points"][0], atol=1e-2)
    side = 200 * arrays["scale"][0]
    np.testing.assert_allclose(s["bbox"], [*(arrays["center"][0] - side / 2), side, side], atol=1e-3)
    actions = {ACTIONS[int(ds[i]["action"])] for i in range(n)}
    assert actions == {"Directions", "Photo"}
    assert {int(ds[i]["subject"]) for i in range(n)} == set(SUBJECTS)


def test_projecting_keypoints_3d_gives_keypoints(fixture):
    ds = h36m(fixture)
    worst = 0.0
    for i in range(len(ds)):
        s = ds[i]
        xy = project(s["keypoints_3d"], s["camera"], s["distortion"])
        worst = max(worst, float(np.abs(xy - s["keypoints"]).max()))
    assert worst < 0.5, worst
    # without the distortion the same points land measurably elsewhere: the test can fail
    s = ds[0]
    assert np.abs(project(s["keypoints_3d"], s["camera"]) - s["keypoints"]).max() > 0.5


def test_projection_by_hand_with_tangential_distortion():
    point = np.array([[300.0, -200.0, 4000.0]])
    camera = np.array([1000.0, 990.0, 500.0, 480.0])
    k1, k2, k3, p1, p2 = -0.2, 0.05, 0.01, 0.003, -0.002
    x, y = 300 / 4000, -200 / 4000
    r2 = x * x + y * y
    radial = 1 + k1 * r2 + k2 * r2 ** 2 + k3 * r2 ** 3 + p1 * y + p2 * x
    want = [1000 * (x * radial + p2 * r2) + 500, 990 * (y * radial + p1 * r2) + 480]
    got = project(point, camera, [k1, k2, k3, p1, p2])
    np.testing.assert_allclose(got[0], want, rtol=1e-12)
    batch = project(np.stack([point, point]), np.stack([camera, camera]), np.array([[k1, k2, k3, p1, p2]] * 2))
    np.testing.assert_allclose(batch[:, 0], [want, want], rtol=1e-12)
    # one point per camera: [B, 3] with [B, 4] and [B, 5]
    rows = project(point.repeat(3, 0), np.stack([camera] * 3), np.array([[k1, k2, k3, p1, p2]] * 3))
    assert rows.shape == (3, 2)
    # a value worked out on paper: x = 0.1, y = 0, only tangential terms p1 = 0.01, p2 = 0.02:
    # r2 = 0.01, x' = 0.1 (1 + 0.02 x 0.1) + 0.02 x 0.01 = 0.1004, y' = 0.01 x 0.01 = 0.0001
    paper = project(np.array([[100.0, 0.0, 1000.0]]), np.array([1000.0, 1000.0, 0.0, 0.0]),
                    [0, 0, 0, 0.01, 0.02])
    np.testing.assert_allclose(paper[0], [100.4, 0.1], rtol=1e-12)


def test_subjects_cameras_and_frames_select_records(fixture):
    per_subject = len(SEQUENCES) * 2 * FRAMES
    assert len(h36m(fixture, split="train")) == 2 * per_subject  # S1, S5 of the fixture
    test = h36m(fixture, split="test")
    assert {int(test[i]["subject"]) for i in range(len(test))} == {9, 11}
    only = h36m(fixture, subjects=["S9"])
    assert len(only) == per_subject and {int(only[i]["subject"]) for i in range(len(only))} == {9}
    assert len(h36m(fixture, subjects=[9, 11], cameras=[1])) == 2 * len(SEQUENCES) * FRAMES
    assert list(h36m(fixture, cameras=[CAMERAS[1]]).names) == list(h36m(fixture, cameras=[2]).names)
    every = h36m(fixture, every=2)
    assert len(every) == len(h36m(fixture)) // 2
    assert {name[-10:-4] for name in every.names} == {"000001", "000003"}
    with pytest.raises(KitposeError, match="subjects must be"):
        h36m(fixture, subjects=["nobody"])
    with pytest.raises(KitposeError, match="no usable record"):
        h36m(fixture, subjects=[2])


def _write(fx, tmp_path, **changes):
    arrays = {**fx["arrays"], **changes}
    path = tmp_path / "changed.npz"
    np.savez(path, **arrays)
    return path


def test_bad_records_name_the_file_and_record(fixture, tmp_path):
    part = fixture["arrays"]["part"].copy()
    part[3, 5, 0] = np.nan
    ann = _write(fixture, tmp_path, part=part)
    name = fixture["arrays"]["imgname"][3]
    with pytest.raises(KitposeError, match=rf"changed\.npz: record 3 \({name}\): NaN or infinite values: keypoint 5"):
        h36m(fixture, ann)
    ds = h36m(fixture, ann, skip_invalid=True)
    assert len(ds) == len(part) - 1 and ds.skipped.counts == {"NaN or infinite values": 1}

    world = fixture["arrays"]["S"].copy()
    world[7, 2, 1] = np.inf
    with pytest.raises(KitposeError, match=r"record 7 .*NaN or infinite values: 3D joint 2"):
        h36m(fixture, _write(fixture, tmp_path, S=world))

    with pytest.raises(KitposeError, match=r"changed\.npz: arrays of different lengths: imgname 64, center 64, "
                                           r"scale 64, part 64, S 63"):
        h36m(fixture, _write(fixture, tmp_path, S=fixture["arrays"]["S"][:-1]))


def test_missing_camera_and_image(fixture, tmp_path):
    with open(fixture["root"] / CAMERA_FILE, "rb") as handle:
        table = pickle.load(handle)
    del table["S9", CAMERAS[1]]
    cameras = tmp_path / "cameras.pkl"
    cameras.write_bytes(pickle.dumps(table))
    params = {"ann_file": str(fixture["root"] / ANN), "image_dir": str(fixture["root"] / "images")}
    with pytest.raises(KitposeError, match=rf"record \d+ \(S9/S9_\w+\.{CAMERAS[1]}/.*\): no camera \(S9, {CAMERAS[1]}\) "
                                           rf"in {cameras}"):
        kitpose.build("dataset", "h36m", camera_file=str(cameras), **params)
    ds = kitpose.build("dataset", "h36m", camera_file=str(cameras), skip_invalid=True, **params)
    assert ds.skipped.total == len(SEQUENCES) * FRAMES

    names = fixture["arrays"]["imgname"].copy()
    names[4] = "S1/S1_Directions_1.54138969/S1_Directions_1.54138969_000099.jpg"
    with pytest.raises(KitposeError, match=r"S1_Directions_1\.54138969_000099\.jpg: record 4: image not found"):
        h36m(fixture, _write(fixture, tmp_path, imgname=names))


def test_a_camera_file_cannot_run_code(fixture, tmp_path):
    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    evil = tmp_path / "cameras.pkl"
    evil.write_bytes(pickle.dumps({(1, 1): {"R": Payload()}}))
    with pytest.raises(KitposeError, match=r"cameras\.pkl: not a camera file: .*system is not allowed"):
        kitpose.build("dataset", "h36m", ann_file=str(fixture["root"] / ANN),
                      image_dir=str(fixture["root"] / "images"), camera_file=str(evil))
    assert not (tmp_path / "pwned").exists()


def _procrustes(pred, target):
    """Similarity alignment of one skeleton by hand (Umeyama), for the hand computation."""
    mp, mt = pred.mean(0), target.mean(0)
    x, y = pred - mp, target - mt
    u, s, vt = np.linalg.svd(x.T @ y)
    d = np.sign(np.linalg.det(vt.T @ u.T))
    fix = np.diag([1.0, 1.0, d])
    rot = vt.T @ fix @ u.T
    scale = (s * np.diag(fix)).sum() / (x ** 2).sum()
    return scale * x @ rot.T + mt


def test_protocol_metrics_per_action_by_hand():
    rng = np.random.default_rng(3)
    n, groups = 40, ACTIONS[:4]
    target = rng.normal(0, 300, (n, 17, 3))
    pred = target + rng.normal(0, 40, (n, 17, 3)) + rng.normal(0, 50, (n, 1, 3))
    action = rng.integers(0, 3, n)  # the fourth action has no sample
    mpjpe = kitpose.build("metric", "mpjpe", root=0, groups=list(groups), group_by="action")
    pa = kitpose.build("metric", "pa_mpjpe", groups=list(groups), group_by="action")
    for part in (slice(0, 25), slice(25, n)):
        for metric in (mpjpe, pa):
            metric.update(pred=torch.tensor(pred[part]), target=torch.tensor(target[part]),
                          visible=torch.ones(part.stop - part.start, 17), group=torch.tensor(action[part]))
    p1 = np.linalg.norm((pred - pred[:, :1]) - (target - target[:, :1]), axis=-1)
    p2 = np.array([np.linalg.norm(_procrustes(pred[i], target[i]) - target[i], axis=-1) for i in range(n)])
    for metric, errors, title in ((mpjpe, p1, "MPJPE by action"), (pa, p2, "PA-MPJPE by action")):
        table = metric.per_group()[title]
        assert set(table) == {*groups[:3], "(mean)"}
        for g in range(3):
            assert table[groups[g]] == pytest.approx(errors[action == g].mean(), rel=1e-9)
        assert table["(mean)"] == pytest.approx(np.mean([errors[action == g].mean() for g in range(3)]), rel=1e-9)
        assert next(iter(metric.compute().values())) == pytest.approx(errors.mean(), rel=1e-9)
    with pytest.raises(KitposeError, match="has groups but was given no 'group'"):
        mpjpe.update(pred=torch.tensor(pred), target=torch.tensor(target))
    with pytest.raises(KitposeError, match="within 0..3"):
        mpjpe.update(pred=torch.tensor(pred[:2]), target=torch.tensor(target[:2]), group=torch.tensor([0, 4]))


def test_check_without_the_data_names_the_override(tmp_path):
    result = run_cli("check", str(ROOT / "recipes" / "integral_h36m.yaml"), "data.root=" + str(tmp_path / "none"),
                     cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert "data.train.dataset.ann_file: annotation file not found" in lines[0]
    assert "data.root=" in lines[0]


def shrunk(fixture, channels: int = 16, batch: int = 8) -> list[str]:
    """Overrides that make recipes/integral_h36m.yaml a one-epoch run of seconds on the fixture."""
    shrink = [f"data.root={fixture['root']}", "vars.depth=18", f"vars.features={8 * channels}",
              f"+components.backbone.base_channels={channels}", f"+components.head.deconv_channels={2 * channels}",
              "vars.input_size=64", "vars.heatmap_size=16", "vars.depth_bins=8", "train.epochs=1",
              "data.val.dataset.every=1"]
    for split in ("train", "val", "test"):
        shrink += [f"data.{split}.workers=0", f"data.{split}.batch_size={batch}"]
    return shrink


def test_recipe_trains_one_epoch_on_the_fixture(fixture, tmp_path):
    out = run_recipe(str(ROOT / "recipes" / "integral_h36m.yaml"), shrunk(fixture), run_dir=str(tmp_path / "run"))
    row = out["output"]
    assert set(row) == {"MPJPE", "PA-MPJPE"} and all(np.isfinite(v) and v > 0 for v in row.values())
    text = (tmp_path / "run" / "results.md").read_text()
    assert "### MPJPE by action" in text and "### PA-MPJPE by action" in text
    with open(tmp_path / "run" / "results_per_group.csv") as handle:
        rows = list(csv.DictReader(handle))
    mpjpe = {r["group"]: float(r["value"]) for r in rows if r["metric"] == "MPJPE by action"}
    assert set(mpjpe) == {"Directions", "Photo", "(mean)"}
    assert mpjpe["(mean)"] == pytest.approx((mpjpe["Directions"] + mpjpe["Photo"]) / 2)


def test_grouped_metrics_pass_the_metric_contract():
    from kitpose.testing import check_metric

    group = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    for name in ("mpjpe", "pa_mpjpe"):
        assert check_metric(name, keypoint_dims=3, params={"groups": list(ACTIONS), "group_by": "action"},
                            inputs={"group": group})


def test_world_millimetre_files_and_both_translation_conventions(tmp_path, fixture):
    other = make_h36m(tmp_path / "world", world_mm=True)
    params = {"ann_file": str(other["root"] / ANN), "image_dir": str(other["root"] / "images")}
    world = kitpose.build("dataset", "h36m", camera_file=str(other["root"] / CAMERA_FILE), frame="world",
                          unit="mm", **params)
    np.testing.assert_allclose(world.points_3d, other["camera_points"], atol=1e-2)
    # the same cameras as X_camera = R X + T (T = -R C)
    with open(other["root"] / CAMERA_FILE, "rb") as handle:
        table = pickle.load(handle)
    for cam in table.values():
        cam["T"] = -cam["R"] @ cam["T"]
    offset = tmp_path / "offset.pkl"
    offset.write_bytes(pickle.dumps(table, protocol=2))  # an old protocol still loads
    moved = kitpose.build("dataset", "h36m", camera_file=str(offset), frame="world", unit="mm",
                          translation="offset", **params)
    np.testing.assert_allclose(moved.points_3d, other["camera_points"], atol=1e-2)
    # settings that do not fit the file are refused in one line that names the ones that do
    with pytest.raises(KitposeError, match=r"h36m_train\.npz: the 3D joints do not project onto the 2D joints with "
                                           r"frame: camera, unit: m, translation: center .*; these fit it: "
                                           r"frame: world, unit: mm, translation: center"):
        kitpose.build("dataset", "h36m", camera_file=str(other["root"] / CAMERA_FILE), **params)


def test_projected_keypoints_agree_with_the_3d_joints(fixture):
    given, projected = h36m(fixture), h36m(fixture, keypoints_2d="projected")
    s = projected[0]
    np.testing.assert_allclose(s["keypoints"], project(s["keypoints_3d"], s["camera"]), atol=1e-3)
    # the file's 2D joints carry the lens distortion, the projected ones do not
    assert np.abs(given[0]["keypoints"] - s["keypoints"]).max() > 0.5


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_camera_files_of_every_pickle_protocol_load(fixture, tmp_path, protocol):
    with open(fixture["root"] / CAMERA_FILE, "rb") as handle:
        table = pickle.load(handle)
    path = tmp_path / "cameras.pkl"
    path.write_bytes(pickle.dumps(table, protocol=protocol))
    ds = kitpose.build("dataset", "h36m", ann_file=str(fixture["root"] / ANN),
                       image_dir=str(fixture["root"] / "images"), camera_file=str(path))
    np.testing.assert_allclose(ds.intrinsics[0], [150.0, 148.0, 81.0, 78.5])


def test_image_names_stored_as_bytes(fixture, tmp_path):
    names = fixture["arrays"]["imgname"].astype(bytes)
    ds = h36m(fixture, _write(fixture, tmp_path, imgname=names))
    assert len(ds) == len(names) and ds[0]["image"].shape == (SIZE, SIZE, 3)


def test_the_recipe_names_the_actions_in_the_datasets_order():
    from kitpose.recipe import load_recipe

    recipe = load_recipe(str(ROOT / "recipes" / "integral_h36m.yaml"))
    assert tuple(recipe.select("vars.actions")) == ACTIONS
    assert recipe.select("components.metrics.mpjpe.groups") == list(ACTIONS)


def test_a_study_over_seeds_gives_per_action_tables(fixture, tmp_path):
    from kitpose_plugins.study.runner import run_study

    shrink = shrunk(fixture, channels=8, batch=16)
    study = tmp_path / "study_h36m.yaml"
    study.write_text("kitpose: 1\nname: study_h36m\nstudy:\n"
                     f"  runs: [{{recipe: {ROOT / 'recipes' / 'integral_h36m.yaml'}, label: {{model: ResNet-18}}}}]\n"
                     f"  seeds: [1, 2]\n  overrides: {json.dumps(shrink)}\n  metrics: [MPJPE, PA-MPJPE]\n")
    root = run_study(str(study), folder=str(tmp_path / "out"))
    text = (root / "study.md").read_text()
    assert "## Per group" in text and "### MPJPE by action" in text and "### PA-MPJPE by action" in text
    assert "| model | decoder | Directions | Photo | (mean) |" in text
    with open(root / "study_per_group.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * 2 * 3  # seeds x metrics x (2 actions and their mean)

    def cell(group: str) -> str:  # mean ± sd over the two seeds, from the runs' own files
        a, b = (float(r["value"]) for r in rows if r["metric"] == "MPJPE by action" and r["group"] == group)
        return f"{(a + b) / 2:.4f} ± {abs(a - b) / 2 ** 0.5:.4f}"

    assert f"| ResNet-18 | output | {cell('Directions')} | {cell('Photo')} | {cell('(mean)')} |" in text
