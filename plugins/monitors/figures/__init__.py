"""Built-in plugin 'figures': pictures of a run written into its run directory.

Registers the ``figures`` monitor (``monitors: {figures: {use: figures}}``), which
writes ``predictions.png``, ``heatmaps.png`` and ``curves.png`` next to the run's
checkpoints, and moves ``val.show`` of older recipes to the monitors' ``show``
(``show``). This module imports nothing heavy; the monitor loads when built.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from kitpose import hookimpl

if TYPE_CHECKING:  # pragma: no cover
    from kitpose.registry import Registry


@hookimpl
def kitpose_register(registry: "Registry") -> None:
    registry.monitor("figures", "kitpose_plugins.monitors.figures.monitor:FiguresMonitor")


@hookimpl
def kitpose_migrate_recipe(config, file):
    from kitpose_plugins.monitors.figures.show import migrate_show_setting

    migrate_show_setting(config, file)
