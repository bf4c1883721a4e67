"""Built-in plugin 'synthetic': procedural human figures rendered on the fly (the default dataset).

Registers the ``synthetic`` dataset (``data: {train: {dataset: {use: synthetic}}}``).
Nothing heavy is imported here; the dataset loads when built.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from kitpose import hookimpl

if TYPE_CHECKING:  # pragma: no cover
    from kitpose.registry import Registry


@hookimpl
def kitpose_register(registry: "Registry") -> None:
    registry.dataset("synthetic", "kitpose_plugins._data_synthetic:SyntheticPoses")
