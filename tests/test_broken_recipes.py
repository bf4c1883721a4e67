"""Broken recipes, one case per kind of mistake, through the real command line.

Each case is the toy recipe (tests/recipes/toy.yaml) extended by a small recipe written
into ``tmp_path`` and/or changed by ``key=value`` overrides. ``kitpose check`` (and, for
a representative subset, ``kitpose run``) must exit with code 2 and print exactly one
line on stderr, without a traceback, naming the recipe file and the key path; and no
file may appear outside the run directory (``tmp_path/deep/er/runs``, deep enough that
a name escaping with ``../..`` would still land inside ``tmp_path`` where it is seen).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import TESTS, run_cli

TOY = TESTS / "recipes" / "toy.yaml"


@dataclass(frozen=True)
class Case:
    """One broken recipe: extra YAML over the toy recipe, overrides, the key path expected."""

    id: str
    path: str
    overrides: tuple[str, ...] = ()
    yaml: str = ""
    modes: tuple[str, ...] = ("check",)


CASES = [
    # 11. a list where a mapping is expected, and the reverse
    Case("components-list", "components", ("components=[a, b]",), modes=("check", "run")),
    Case("data-split-list", "data.train", ("data={train: [1, 2]}",)),
    Case("flow-mapping", "flows.train", ("flows={train: {call: model}}",)),
    Case("train-list", "train", ("train=[1]",)),
    Case("node-in-number", "flows.train[0].in", ("flows.train[0].in=5",)),
    Case("transforms-number", "data.train.transforms", ("+data.train.transforms=5",)),
    Case("figures-show-list", "monitors.figures.show", ("+monitors.figures={use: figures, show: [1]}",)),
    # 12. huge values and values run would crash on
    Case("seed-huge", "seed", ("seed=99999999999999999999",), modes=("check", "run")),
    Case("dataset-size-huge", "data.train.dataset.size",
         ("data.train.dataset={use: synthetic, size: 1000000000000000}",)),
    Case("model-width-bounded", "components.model.width", ("components.model={use: hrnet, width: 100000}",)),
    Case("model-width-unallocatable", "components.model", ("+components.model.width=1000000000000",),
         modes=("run",)),
    Case("objective-weight-word", "train.objective", yaml="train: {objective: {loss: heavy}}\n"),
    Case("flip-test-encoder-not-an-entry", "components.tta.encoder",
         ("+components.tta={use: flip_test, encoder: loss, flip_pairs: mpii}",), modes=("check", "run")),
    Case("old-flip-setting", "test.flip", yaml="test: {flip: true}\n", modes=("check", "run")),
    Case("nul-byte-in-name", "name", yaml='name: "toy\\0run"\n', modes=("check", "run")),
    # 13. names known before training
    Case("val-branch-typo", "val.branch", ("val.branch=peek",), modes=("check", "run")),
    Case("val-metric-typo", "val.metric", ("val.metric=EP",), modes=("check", "run")),
    Case("test-checkpoint-missing", "test.checkpoint", ("test.checkpoint=missing.pt",)),
    # 14. values the signatures and settings can check
    Case("lr-negative", "train.optimizer", ("train.optimizer.lr=-1",), modes=("check", "run")),
    Case("lr-word", "train.optimizer", ("train.optimizer.lr=fast",)),
    Case("joints-zero", "components.head.joints", ("+components.head={use: heatmap, in_channels: 8, joints: 0}",)),
    Case("modality-bogus", "data.train.dataset.modality",
         ("data.train.dataset={use: synthetic, modality: infrared}",)),
    Case("device-bogus", "device", ("device=bogus",), modes=("check", "run")),
    Case("split-number", "data.train.dataset.split", ("data.train.dataset.split=5",)),
    # 7. path escapes
    Case("name-dotdot", "name", ("name=../../escaped",), modes=("check", "run")),
    Case("name-absolute", "name", ("name=ABSOLUTE",), modes=("check", "run")),
    Case("run-path-dotdot", "monitors.figures.predictions",
         ("+monitors.figures={use: figures, predictions: ../../escaped.png}",), modes=("check", "run")),
    Case("member-name-dotdot", "components.decoders",
         yaml='components:\n  decoders:\n    "../evil": {use: toy_peak}\n'),
    Case("jsonl-file-dotdot", "monitors.jsonl.file", ("+monitors.jsonl.file=../../.bashrc",), modes=("check", "run")),
    Case("password-in-url", "monitors.visdom.server",
         ('+monitors.visdom={use: visdom, server: "http://me:secret@127.0.0.1"}',), modes=("check", "run")),
    # 8. resolvers: a computed resolver name cannot reach a refused one
    Case("resolver-bypass", "description",
         yaml="vars: {r: oc.decode}\ndescription: \"${${vars.r}:'abc'}\"\n", modes=("check", "run")),
    # 10. YAML that parses but is refused, reported at its line
    Case("alias-bomb", "8:10", yaml="vars:\n" + "".join(
        f"  {a}: &{a} [{', '.join([f'*{b}'] * 9)}]\n" for a, b in zip("bcdef", "abcde")).replace(
        "  b:", "  a: &a [x, x, x, x, x, x, x, x, x]\n  b:"), modes=("check", "run")),
    Case("duplicate-key", "4:1", yaml="seed: 1\nseed: 2\n", modes=("check", "run")),
    # 15. shapes that disagree: found in the first step, reported with the node and the shapes
    Case("joints-mismatch", "flows.train[2]", ("+components.model.joints=5",), modes=("run",)),
    Case("heatmap-size-mismatch", "flows.train[2]", ("components.encoder.size=8",), modes=("run",)),
]


def write_recipe(folder: Path, case: Case) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    recipe = folder / f"{case.id}.yaml"
    recipe.write_text(f"kitpose: 1\nextends: [{TOY}]\n{case.yaml}", encoding="utf-8")
    return recipe


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


RUNS = [pytest.param(case, mode, id=f"{mode}-{case.id}") for case in CASES for mode in case.modes]


@pytest.mark.parametrize(("case", "mode"), RUNS)
def test_broken_recipe_is_one_line(tmp_path, case, mode):
    recipe = write_recipe(tmp_path / "recipes", case)
    runs = tmp_path / "deep" / "er" / "runs"
    before = files_under(tmp_path)
    overrides = [o.replace("ABSOLUTE", str(tmp_path / "absolute")) for o in case.overrides]
    extra = ["monitors.console=null"] if mode == "run" else []  # its start line is not an error
    result = run_cli(mode, str(recipe), *overrides, f"runs_dir={runs}", *extra, cwd=tmp_path)
    lines = result.stderr.splitlines()
    assert result.returncode == 2, result.stderr + result.stdout
    assert "Traceback" not in result.stderr + result.stdout
    assert len(lines) == 1, result.stderr
    at = f":{case.path}" if case.path[:1].isdigit() else f": {case.path}"  # a YAML error names a line
    assert lines[0].startswith(f"kitpose: error: {recipe}{at}"), lines[0]
    assert "secret" not in result.stderr + result.stdout
    written = files_under(tmp_path) - before
    outside = [p for p in written if runs not in p.parents]
    assert not outside, f"written outside the run directory: {outside}"
    if mode == "check":
        assert not written, f"check wrote files: {written}"


def test_shape_error_names_the_component_and_the_shapes(tmp_path):
    case = next(c for c in CASES if c.id == "joints-mismatch")
    recipe = write_recipe(tmp_path / "recipes", case)
    result = run_cli("run", str(recipe), *case.overrides, f"runs_dir={tmp_path / 'runs'}",
                     "monitors.console=null", cwd=tmp_path)
    line = result.stderr.strip()
    assert "loss (components.loss)" in line
    assert "pred [8, 5, 16, 16], target [8, 3, 16, 16]" in line
