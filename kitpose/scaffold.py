"""``kitpose new-plugin NAME``: write a plugin package that installs and passes its tests as is.

The package registers one component, ``NAME``, of one kind (``decoder`` by default), through
the ``kitpose`` entry-point group, the same way kitpose's own plugins are registered::

    kitpose-NAME/
      pyproject.toml           distribution kitpose-NAME, entry point kitpose_NAME
      README.md                install, test, use in a recipe, publish
      src/kitpose_NAME/        plugin.py (the hook) and KIND.py (a working starting point)
      tests/test_NAME.py       kitpose.testing's contract checks and one behaviour test

The implementation is a small, correct example of its kind (an arg-max decoder, a Gaussian
encoder, a weighted MSE, a mean distance, a log-file monitor) for the author to replace.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from string import Template

from kitpose import __version__
from kitpose.errors import PluginError, suggestion

#: kinds a skeleton can be written for (the kinds kitpose.testing checks)
KINDS = ("decoder", "encoder", "loss", "metric", "monitor")
_NAME = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(frozen=True)
class PluginNames:
    """Every name the package uses, derived from the component name."""

    name: str  # the registered component name: median
    kind: str  # decoder
    distribution: str  # kitpose-median
    package: str  # kitpose_median (also the entry-point name, so -p no:kitpose_median blocks it)
    class_name: str  # MedianDecoder

    def fields(self) -> dict[str, str]:
        """The substitutions of the templates."""
        major, minor = __version__.split(".")[:2]
        return {"name": self.name, "kind": self.kind, "distribution": self.distribution,
                "package": self.package, "class_name": self.class_name,
                "requires": f"kitpose>={major}.{minor}", "usage": Template(USAGE[self.kind]).substitute(
                    name=self.name)}


def plugin_names(name: str, kind: str = "decoder") -> PluginNames:
    """Check ``name`` and ``kind`` and derive the package's names (``median`` -> ``kitpose-median``)."""
    if kind not in KINDS:
        raise PluginError(f"no plugin template for kind '{kind}'{suggestion(kind, KINDS)}",
                          hint="--kind is one of: " + ", ".join(KINDS))
    component = str(name).strip().lower().replace("-", "_")
    component = component.removeprefix("kitpose_")
    if not _NAME.fullmatch(component):
        raise PluginError(f"invalid plugin name {name!r}",
                          hint="start with a letter; use letters, digits, '-' and '_' (e.g. median)")
    words = [w for w in component.split("_") if w]
    if words[-1] != kind:  # median -> MedianDecoder, csv_monitor -> CsvMonitor
        words.append(kind)
    class_name = "".join(w.capitalize() for w in words)
    return PluginNames(component, kind, "kitpose-" + component.replace("_", "-"), "kitpose_" + component,
                       class_name)


def check_free(names: PluginNames) -> None:
    """Refuse a component or plugin name that is already taken by a loaded plugin."""
    from kitpose.plugins import get_plugin_manager

    manager = get_plugin_manager()
    taken = manager.registry.find(names.name)
    same_kind = [e for e in taken if e.kind == names.kind]
    if same_kind:
        raise PluginError(f"{names.kind} '{names.name}' is already registered by {same_kind[0].provider}",
                          hint="choose another NAME: names are unique per kind")
    if names.package in manager.infos:
        raise PluginError(f"a plugin named '{names.package}' is already installed "
                          f"({manager.infos[names.package].dist or manager.infos[names.package].module})",
                          hint="choose another NAME")


def new_plugin(name: str, kind: str = "decoder", directory: str | Path = ".") -> Path:
    """Write the package for component ``name`` of ``kind`` into ``directory/kitpose-NAME``.

    Returns the package folder. Refuses names already registered and folders that exist.
    """
    names = plugin_names(name, kind)
    check_free(names)
    root = Path(directory) / names.distribution
    if root.exists() and any(root.iterdir()):
        raise PluginError(f"{root} already exists and is not empty",
                          hint="choose another --dir or NAME, or remove that folder")
    fields = names.fields()
    files = {
        "pyproject.toml": PYPROJECT,
        "README.md": README,
        f"src/{names.package}/__init__.py": INIT,
        f"src/{names.package}/plugin.py": PLUGIN,
        f"src/{names.package}/{kind}.py": IMPLEMENTATIONS[kind],
        f"tests/test_{names.name}.py": TESTS[kind],
    }
    # the monitor's test needs no torch; "$torch" in the test template is its import line
    fields["torch"] = "" if kind == "monitor" else "import torch\n"
    for relative, template in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(Template(template).substitute(fields), encoding="utf-8")
    return root


# -- package files ---------------------------------------------------------------------------
PYPROJECT = '''\
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "$distribution"
version = "0.1.0"
description = "The $name $kind for kitpose."
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["$requires"]

[project.optional-dependencies]
test = ["pytest>=7.4"]

# The entry point kitpose loads; its name is what `kitpose -p no:$package` blocks.
[project.entry-points.kitpose]
$package = "$package.plugin"

[tool.setuptools.packages.find]
where = ["src"]

[tool.pytest.ini_options]
testpaths = ["tests"]
'''

README = '''\
# $distribution

The `$name` $kind for kitpose, as a plugin package.

## Install and test

    pip install -e ".[test]"
    pytest

`kitpose list $kind` now shows `$name`, and `kitpose plugins` shows `$package` with
this package's version.

## Use

In a recipe:

```yaml
$usage
```

From Python: `kitpose.build("$kind", "$name")`.

## What to edit

- `src/$package/$kind.py`: the component. It starts as a small working example; keep the
  call contract (see kitpose's docs/plugins.md) and `tests/test_$name.py` tells you when
  you break it.
- `src/$package/plugin.py`: the registration, one line per component.
- `pyproject.toml`: the version; raise it on every release.

## Publish

    python -m build && python -m twine upload dist/*
'''

#: where a recipe puts a component of each kind
USAGE = {
    "decoder": "components:\n  decoders:                 # every decoder of the group decodes the same maps\n"
               "    $name: {use: $name}",
    "encoder": "components:\n  encoder: {use: $name, stride: 4, heatmap_size: [48, 64]}",
    "loss": "components:\n  loss: {use: $name}",
    "metric": "components:\n  metrics:\n    $name: {use: $name}",
    "monitor": "monitors:\n  $name: {use: $name}",
}

INIT = '''\
"""The $name $kind for kitpose (registered by $package.plugin)."""
'''

PLUGIN = '''\
"""kitpose plugin: registers the $kind '$name'.

kitpose finds this module through the `kitpose` entry point in pyproject.toml. The
component is named by "module:attribute" and imported only when first used.
"""
from kitpose import hookimpl


@hookimpl
def kitpose_register(registry):
    registry.$kind("$name", "$package.$kind:$class_name")
'''

DECODER = '''\
"""The $name decoder."""
from __future__ import annotations

import torch


class $class_name:
    """Arg-max of each map (a starting point: replace __call__ with your method)."""

    #: the keys __call__ returns; recipes connect them by these names
    outputs = ("keypoints", "scores")

    def __call__(self, heatmaps: torch.Tensor) -> dict[str, torch.Tensor]:
        """heatmaps [B, K, h, w] -> keypoints [B, K, 2] (x, y in heatmap cells), scores [B, K]."""
        scores, index = heatmaps.flatten(2).max(dim=-1)
        width = heatmaps.shape[-1]
        x = index % width
        y = torch.div(index, width, rounding_mode="floor")
        keypoints = torch.stack([x, y], dim=-1).to(heatmaps.dtype)
        return {"keypoints": keypoints, "scores": scores}
'''

ENCODER = '''\
"""The $name encoder."""
from __future__ import annotations

from collections.abc import Sequence

import torch


class $class_name:
    """Gaussian heatmaps at the exact keypoint (a starting point: replace __call__ with your method)."""

    #: the keys __call__ returns; recipes connect them by these names
    outputs = ("heatmaps", "weights")
    #: methods a recipe may call as `encoder.to_image`
    flow_methods = ("to_heatmap", "to_image")

    def __init__(self, sigma: float = 2.0, stride: float = 4.0,
                 heatmap_size: Sequence[int] = (48, 64)) -> None:
        self.sigma = float(sigma)
        self.stride = float(stride)
        self.width, self.height = (int(v) for v in heatmap_size)

    def to_heatmap(self, xy: torch.Tensor) -> torch.Tensor:
        """Image pixels -> heatmap cells."""
        return xy / self.stride

    def to_image(self, xy: torch.Tensor) -> torch.Tensor:
        """Heatmap cells -> image pixels (the inverse of to_heatmap)."""
        return xy * self.stride

    def __call__(self, keypoints: torch.Tensor, visible: torch.Tensor) -> dict[str, torch.Tensor]:
        """keypoints [B, K, 2] image px, visible [B, K] -> heatmaps [B, K, h, w], weights [B, K]."""
        centres = self.to_heatmap(keypoints)
        xs = torch.arange(self.width, dtype=keypoints.dtype, device=keypoints.device)
        ys = torch.arange(self.height, dtype=keypoints.dtype, device=keypoints.device)
        gx = torch.exp(-((xs - centres[..., 0:1]) ** 2) / (2 * self.sigma ** 2))  # [B, K, w]
        gy = torch.exp(-((ys - centres[..., 1:2]) ** 2) / (2 * self.sigma ** 2))  # [B, K, h]
        inside = ((centres[..., 0] >= 0) & (centres[..., 0] <= self.width - 1)
                  & (centres[..., 1] >= 0) & (centres[..., 1] <= self.height - 1))
        weights = ((visible > 0) & inside).to(keypoints.dtype)
        heatmaps = gy[..., :, None] * gx[..., None, :] * weights[..., None, None]
        return {"heatmaps": heatmaps, "weights": weights}
'''

LOSS = '''\
"""The $name loss."""
from __future__ import annotations

import torch


class $class_name:
    """Weighted mean squared error (a starting point: replace __call__ with your method)."""

    #: the keys __call__ returns; "loss" is what training minimises
    outputs = ("loss",)

    def __call__(self, pred: torch.Tensor, target: torch.Tensor,
                 weights: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """pred and target [B, K, ...], weights [B, K] -> {"loss": scalar}."""
        per_joint = (pred - target).pow(2).flatten(2).mean(dim=-1)  # [B, K]
        if weights is not None:
            per_joint = per_joint * weights.to(per_joint.dtype)
        return {"loss": per_joint.mean()}
'''

METRIC = '''\
"""The $name metric."""
from __future__ import annotations

import torch

from kitpose.metric import Metric


class $class_name(Metric):
    """Mean distance over visible joints (a starting point: replace with your method)."""

    def update(self, pred: torch.Tensor, target: torch.Tensor, visible: torch.Tensor | None = None,
               **extras: torch.Tensor) -> None:
        """Store one batch; other tensors a metrics group passes (head_size, ...) are ignored."""
        distance = (pred - target).norm(dim=-1)  # [B, K]
        shown = torch.ones_like(distance) if visible is None else (visible > 0).to(distance.dtype)
        self.accumulate(distance=distance, visible=shown)

    def compute(self) -> dict[str, float]:
        """{"$name": mean distance}; NaN when no joint was visible."""
        distance, visible = self.gathered("distance"), self.gathered("visible")
        total = float(visible.sum()) if visible.numel() else 0.0
        value = float((distance * visible).sum()) / total if total > 0 else float("nan")
        return {"$name": value}
'''

MONITOR = '''\
"""The $name monitor."""
from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from kitpose.monitor import Monitor, RunInfo, Snapshot

log = logging.getLogger(__name__)


class $class_name(Monitor):
    """One line per validation in $name.log (a starting point: replace with your method)."""

    def __init__(self, file: str = "$name.log") -> None:
        self.file = file
        self.path: Path | None = None
        self.failed = False

    def on_start(self, run: RunInfo) -> None:
        self.path = Path(run.dir) / self.file

    def on_epoch(self, epoch: int, metrics: Mapping[str, Mapping[str, float]],
                 snapshot: Snapshot | None = None) -> None:
        row = "  ".join(f"{branch}: {name}={value:.4g}" for branch, values in metrics.items()
                        for name, value in values.items())
        self.write(f"epoch {epoch}  {row}")

    def write(self, line: str) -> None:
        """Append a line; a failure is logged once and never stops the run."""
        if self.path is None or self.failed:
            return
        try:
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line + "\\n")
        except OSError as exc:
            self.failed = True
            log.warning("$name: cannot write %s: %s", self.path, exc)
'''

IMPLEMENTATIONS = {"decoder": DECODER, "encoder": ENCODER, "loss": LOSS, "metric": METRIC, "monitor": MONITOR}

_TEST_HEAD = '''\
"""Tests of the $name $kind: kitpose's contract checks, then its own behaviour."""
$torch
import kitpose
from kitpose.testing import check_$kind
from $package.$kind import $class_name


def test_it_is_registered():
    assert "$name" in kitpose.available("$kind")


def test_it_keeps_the_call_contract():
    check_$kind("$name")

'''

TESTS = {
    "decoder": _TEST_HEAD + '''
def test_a_single_hot_cell_decodes_to_that_cell():
    heatmaps = torch.zeros(1, 1, 8, 6)
    heatmaps[0, 0, 5, 2] = 1.0  # row 5, column 2
    out = $class_name()(heatmaps=heatmaps)
    assert out["keypoints"].tolist() == [[[2.0, 5.0]]]
''',
    "encoder": _TEST_HEAD + '''
def test_the_peak_is_at_the_keypoint():
    encoder = $class_name(stride=4, heatmap_size=(12, 10))
    out = encoder(keypoints=torch.tensor([[[20.0, 12.0]]]), visible=torch.ones(1, 1))
    row, column = divmod(int(out["heatmaps"][0, 0].argmax()), 12)
    assert (column, row) == (5, 3)
''',
    "loss": _TEST_HEAD + '''
def test_a_perfect_prediction_costs_nothing():
    target = torch.rand(2, 3, 8, 8)
    assert float($class_name()(pred=target, target=target, weights=torch.ones(2, 3))["loss"]) == 0.0
''',
    "metric": _TEST_HEAD + '''
def test_the_mean_distance_of_visible_joints():
    metric = $class_name()
    target = torch.zeros(1, 2, 2)
    pred = torch.tensor([[[3.0, 4.0], [30.0, 40.0]]])
    metric.update(pred=pred, target=target, visible=torch.tensor([[1.0, 0.0]]))
    assert metric.compute() == {"$name": 5.0}
''',
    "monitor": _TEST_HEAD + '''
def test_it_writes_a_line_per_validation(tmp_path):
    from kitpose.monitor import RunInfo

    monitor = $class_name()
    monitor.on_start(RunInfo(name="demo", dir=tmp_path, recipe={}, epochs=1, steps_per_epoch=1))
    monitor.on_epoch(1, {"argmax": {"EPE": 2.5}})
    monitor.close()
    assert (tmp_path / "$name.log").read_text().splitlines() == ["epoch 1  argmax: EPE=2.5"]
''',
}
