"""Datasets and transforms as a recipe describes them, and batching.

The data contract (see DESIGN.md): ``dataset[i]`` returns a dict of numpy values:
``image`` (H x W x C or H x W, uint8 or float32), ``keypoints`` [K, 2] float32 image
pixels, ``visible`` [K] float32, and whatever the dataset declares in its
``provides`` attribute (``keypoints_3d``, ``head_size``, ``bbox`` ...).

A transform is called as ``transform(sample, rng)`` and returns the new sample; ``rng``
is a :class:`numpy.random.Generator` seeded from ``(seed, epoch, index)``, so an
augmented sample is the same whatever the worker, process or resume point.

The ``data`` section of a recipe, per split (``train``, ``val``, ``test``)::

    data:
      train:
        dataset: {use: synthetic, split: train, size: 2000}
        transforms: [{use: random_flip}, {use: random_affine, rotation: 30}]
        batch_size: 32
        shuffle: true
        workers: 0
"""
from __future__ import annotations

import logging
import multiprocessing
import sys
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import toolz

from kitpose.components import ComponentSpec, declared, parse_spec
from kitpose.errors import RecipeError
from kitpose.recipe import Recipe
from kitpose.registry import Registry
from kitpose.settings import SplitSettings, check_section, defaults, unknown_key

SPLITS = ("train", "val", "test")
#: what every dataset returns, declared or not
BASE_KEYS = frozenset({"image", "keypoints", "visible"})


@dataclass
class SplitSpec:
    """The checked ``data.SPLIT`` section of a recipe."""

    split: str
    dataset: ComponentSpec
    transforms: list[ComponentSpec]
    batch_size: int
    shuffle: bool
    workers: int
    drop_last: bool
    limit: int | None


def parse_split(recipe: Recipe, registry: Registry, split: str) -> SplitSpec:
    """Read ``data.SPLIT`` and check every key, name and parameter (builds nothing)."""
    base = f"data.{split}"
    raw = recipe.select(base)
    if raw is None:
        raise RecipeError(f"the recipe has no data for split '{split}'", file=recipe.file, path="data",
                          hint=f"add {base}: {{dataset: {{use: NAME}}}}")
    if not isinstance(raw, Mapping):
        raise RecipeError(f"must be a mapping, not a {type(raw).__name__}", file=recipe.file, path=base,
                          hint=f"write {base}: {{dataset: {{use: NAME}}, batch_size: 32}}")
    if not isinstance(raw.get("transforms") or [], list):
        raise RecipeError("must be a list of transforms", file=recipe.file, path=f"{base}.transforms",
                          hint="write transforms: [{use: NAME}, ...]")
    unknown_key(raw, SplitSettings, file=recipe.file, prefix=f"{base}.")
    if "dataset" not in raw:
        raise RecipeError("no dataset", file=recipe.file, path=f"{base}.dataset",
                          hint="add dataset: {use: NAME, ...}")
    dataset = parse_spec(raw["dataset"], f"{base}.dataset", registry, kind="dataset", file=recipe.file)
    dataset.check(registry)
    transforms = []
    for i, node in enumerate(raw.get("transforms") or []):
        spec = parse_spec(node, f"{base}.transforms[{i}]", registry, kind="transform", file=recipe.file)
        spec.check(registry)
        transforms.append(spec)
    check_section(raw, SplitSettings, file=recipe.file, prefix=f"{base}.")
    values = {**defaults(SplitSettings), **raw}
    train = split == "train"  # shuffle and drop_last default to true for training only
    spec = SplitSpec(split, dataset, transforms, batch_size=int(values["batch_size"]),
                     shuffle=train if values["shuffle"] is None else bool(values["shuffle"]),
                     workers=int(values["workers"]),
                     drop_last=train if values["drop_last"] is None else bool(values["drop_last"]),
                     limit=values["limit"])
    return spec


def split_sources(spec: SplitSpec, registry: Registry) -> frozenset[str]:
    """Names a batch of this split holds: the base keys plus what dataset and transforms declare."""
    names = set(BASE_KEYS)
    names.update(declared(spec.dataset.factory(registry), "provides") or ())
    for t in spec.transforms:
        names.update(declared(t.factory(registry), "provides") or ())
    return frozenset(names)


class PipelineDataset:
    """A dataset with its transforms; per-sample random generators for augmentation."""

    def __init__(self, dataset: Any, transforms: Sequence[Any] = (), *, seed: int = 0,
                 limit: int | None = None) -> None:
        self.dataset = dataset
        self.transforms = list(transforms)
        self.seed = int(seed)
        self.epoch = 0
        self.limit = limit
        _drop_counter()  # made here, before data-loader workers fork, so they share it

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        n = len(self.dataset)
        return min(n, int(self.limit)) if self.limit else n

    def __getitem__(self, index: int) -> dict[str, Any]:
        if index >= len(self):
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        sample = dict(self.dataset[index])
        sample.setdefault("index", index)
        if INVALID_KEY in sample:  # unreadable: passed on untransformed for collate to drop
            return sample
        return toolz.pipe(sample, *[partial(t, rng=rng) for t in self.transforms])

    def __getattr__(self, name: str) -> Any:  # joint names, flip pairs, skeleton ...
        if name.startswith("__") or name in {"dataset", "transforms"}:
            raise AttributeError(name)
        return getattr(self.dataset, name)


def build_split(spec: SplitSpec, registry: Registry, *, seed: int = 0) -> PipelineDataset:
    """Build the dataset and transforms of one split."""
    dataset = spec.dataset.build(registry)
    transforms = [t.build(registry) for t in spec.transforms]
    return PipelineDataset(dataset, transforms, seed=seed, limit=spec.limit)


#: A dataset returns ``{INVALID_KEY: "why", ...}`` for a sample it cannot load but was told to
#: skip (``skip_invalid``); :func:`collate` drops it from its batch and counts it, so a batch
#: is one sample short rather than holding another sample twice.
INVALID_KEY = "invalid"
class _Count:
    """A plain counter, for where shared memory is not available."""

    def __init__(self) -> None:
        self.value = 0

    def get_lock(self) -> Any:
        return nullcontext()


#: how many samples :func:`collate` dropped, in shared memory made by the main process (see
#: :func:`_drop_counter`), so the data-loader workers forked from it count together and the
#: first drop is said once, not once per worker and epoch
_dropped: Any = None


def _drop_counter() -> Any:
    global _dropped
    if _dropped is None:
        try:
            _dropped = multiprocessing.Value("q", 0)
        except (OSError, ImportError):  # no /dev/shm or no semaphores: count per process
            _dropped = _Count()
    return _dropped


def dropped_samples() -> int:
    """How many invalid samples :func:`collate` has dropped since the process started."""
    return int(_drop_counter().value)


def drop_invalid(samples: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The samples that are not marked invalid; each dropped one is counted, the first said on
    the console and every one written to the run's log (``logging.getLogger("kitpose")``)."""
    kept = []
    for sample in samples:
        if INVALID_KEY not in sample:
            kept.append(sample)
            continue
        counter = _drop_counter()
        with counter.get_lock():
            counter.value += 1
            count = int(counter.value)
        reason = str(sample[INVALID_KEY])
        if count == 1:
            print(f"kitpose: warning: skipped an unreadable sample (skip_invalid): {reason}; "
                  "later ones are counted in run.log", file=sys.stderr, flush=True)
        logging.getLogger("kitpose").info("skipped unreadable sample %d (skip_invalid): %s", count, reason)
    return kept


def collate(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Stack samples into batched tensors; images become float [B, C, H, W] in [0, 1].

    Samples marked invalid (:data:`INVALID_KEY`) are dropped and counted first; a batch
    with none left is empty (``{}``), and the engine passes over it.
    """
    import torch

    samples = drop_invalid(samples)
    if not samples:
        return {}
    batch: dict[str, Any] = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        first = values[0]
        if isinstance(first, (str, bytes)) or first is None:
            batch[key] = list(values)
            continue
        array = np.stack([np.asarray(v) for v in values])
        if key == "image":
            if array.ndim == 3:
                array = array[..., None]
            scale = 255.0 if array.dtype == np.uint8 else 1.0
            tensor = torch.from_numpy(np.ascontiguousarray(array.transpose(0, 3, 1, 2)))
            batch[key] = tensor.float().div_(scale) if scale != 1.0 else tensor.float()
            continue
        if array.dtype == np.float64:
            array = array.astype(np.float32)
        if array.dtype.kind in "biuf":
            batch[key] = torch.from_numpy(np.ascontiguousarray(array))
        else:
            batch[key] = list(values)
    return batch
