"""The shipped recipes: every one checks, the dataset recipes run on the fixture files."""
from pathlib import Path

import pytest

from conftest import ROOT
from kitpose.engine import run_recipe
from kitpose.errors import RecipeError
from kitpose.plan import check_recipe, plan_recipe
from kitpose.recipe import load_recipe

RECIPES = sorted(p for p in (ROOT / "recipes").glob("*.yaml"))
FIXTURES = ROOT / "tests" / "fixtures"
SMALL_MODEL = ["components.backbone.variant=small", "vars.width=16", "train.steps=2"]


def is_study(path: Path) -> bool:
    return load_recipe(path).select("study") is not None


def needs_data(path: Path) -> bool:
    return load_recipe(path).select("data.root") is not None


@pytest.mark.parametrize("path", [p for p in RECIPES if not is_study(p)], ids=lambda p: p.name)
def test_every_recipe_checks(path):
    if needs_data(path):  # the data is not here: the check's last step says so, with the override
        with pytest.raises(RecipeError, match=r"data\.train\.dataset\.ann_file: annotation file not found: .*"
                                              r"data\.root=/path/to/it"):
            check_recipe(str(path))
        plan = plan_recipe(load_recipe(path))
    else:
        plan = check_recipe(str(path))
    assert "test" in plan.flows and "train" in plan.flows


@pytest.mark.parametrize("path", [p for p in RECIPES if is_study(p)], ids=lambda p: p.name)
def test_every_study_run_checks(path):
    for run in load_recipe(path).select("study.runs"):
        check_recipe(str(path.parent / run["recipe"]), run.get("overrides") or [])


def fixture_overrides(name: str, ann: str, images: str) -> list[str]:
    out = []
    for split in ("train", "val"):
        out += [f"data.{split}.dataset.ann_file={FIXTURES / name / ann}",
                f"data.{split}.dataset.image_dir={FIXTURES / name / images}",
                f"data.{split}.workers=0", f"data.{split}.batch_size=2"]
    return out


def test_coco_recipe_runs_on_fixtures(tmp_path):
    out = run_recipe(str(ROOT / "recipes" / "coco_hrnet_w32.yaml"),
                     fixture_overrides("coco", "person_keypoints_tiny.json", "images") + SMALL_MODEL,
                     run_dir=str(tmp_path))
    assert set(out) == {"argmax", "standard", "com", "dark"}
    assert 0.0 <= out["dark"]["AP"] <= 1.0
    assert (tmp_path / "results.md").is_file()


def test_mpii_recipe_runs_on_fixtures(tmp_path):
    out = run_recipe(str(ROOT / "recipes" / "mpii_hrnet_w32.yaml"),
                     fixture_overrides("mpii", "train_tiny.json", "images") + SMALL_MODEL,
                     run_dir=str(tmp_path))
    assert set(out["dark"]) >= {"PCKh@0.1", "PCKh@0.5", "RMSE", "EPE"}


SHRUNK = ["train.epochs=1", "data.train.dataset.size=16", "data.val.dataset.size=8",
          "data.test.dataset.size=8", "data.train.batch_size=8"]


@pytest.mark.parametrize("name, metric", [
    ("hourglass_dark", "PCKh@0.1"), ("integral_i1", "PCKh@0.1"), ("integral_istar", "PCKh@0.1"),
    ("integral_r1", "PCKh@0.1"), ("integral_3d", "PA-MPJPE")])
def test_synthetic_recipes_run_when_shrunk(tmp_path, name, metric):
    out = run_recipe(str(ROOT / "recipes" / f"{name}.yaml"), SHRUNK, run_dir=str(tmp_path))
    assert all(metric in row for row in out.values())
    assert (tmp_path / "results.csv").is_file()


def test_default_recipe_runs_end_to_end_when_shrunk(tmp_path):
    out = run_recipe(str(ROOT / "recipes" / "hrnet_dark.yaml"),
                     ["train.epochs=1", "data.train.dataset.size=16", "data.val.dataset.size=8",
                      "data.test.dataset.size=8", "data.train.batch_size=8"], run_dir=str(tmp_path))
    assert list(out) == ["argmax", "standard", "com", "dark"]
    for name in ("checkpoints/best.pt", "results.csv", "metrics.jsonl", "recipe.resolved.yaml"):
        assert (tmp_path / name).is_file()
