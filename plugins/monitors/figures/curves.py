"""A PNG of the training curves, drawn with matplotlib's Agg canvas.

The figure is built on a :class:`matplotlib.figure.Figure` with an Agg canvas and
never touches ``pyplot``: no global backend switch, no window, safe off the main
thread. Files are written next to their final name and renamed into place, so a
reader never sees half a PNG.
"""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from kitpose.files import replacing

from kitpose_plugins.monitors.figures.series import LOSS, LR, METRIC, THROUGHPUT, Curves, title_of, x_label_of

_ORDER = (LOSS, LR, THROUGHPUT)


def panel_order(curves: Curves) -> list[str]:
    """Panels with points: loss, learning rate, throughput, then validation metrics by name."""
    present = [p for p, traces in curves.panels.items() if any(len(s) for s in traces.values())]
    known = [p for p in _ORDER if p in present]
    metrics = sorted(p for p in present if p.startswith(METRIC))
    others = sorted(p for p in present if p not in known and p not in metrics)
    return known + others + metrics


def plot_curves(curves: Curves, path: Path, title: str = "", dpi: int = 100) -> bool:
    """Write the curves to ``path`` (PNG); ``False`` when there is nothing to plot."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    panels = panel_order(curves)
    if not panels:
        return False
    cols = 1 if len(panels) == 1 else 2
    rows = math.ceil(len(panels) / cols)
    height = 3.4 * rows + (0.5 if title else 0.0)
    figure = Figure(figsize=(6.0 * cols, height), dpi=dpi)
    FigureCanvasAgg(figure)
    # fixed margins: as readable as an automatic layout, at a fraction of its cost
    figure.subplots_adjust(left=0.08, right=0.98, bottom=0.55 / height, top=1 - (0.75 if title else 0.4) / height,
                           wspace=0.18, hspace=0.5)
    axes = figure.subplots(rows, cols, squeeze=False).ravel()
    for ax, panel in zip(axes, panels):
        traces = curves.panels[panel]
        positive = True
        for trace, series in sorted(traces.items()):
            if not len(series):
                continue
            few = len(series) <= 30
            ax.plot(series.xs, series.ys, label=trace, linewidth=1.4,
                    marker="o" if few else None, markersize=3.5)
            positive &= min(series.ys) > 0
        if panel == LOSS and positive:
            ax.set_yscale("log")
        ax.set_title(title_of(panel), fontsize=11)
        ax.set_xlabel(x_label_of(panel))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        if len(traces) > 1 or panel.startswith(METRIC) or panel == LOSS:
            ax.legend(fontsize=8, loc="best")
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    if title:
        figure.suptitle(title, fontsize=12)
    with replacing(path) as partial:
        figure.savefig(partial, format="png")
    return True


def write_png(path: Path, image_bgr: np.ndarray) -> None:
    """Write a BGR image as PNG through a temporary name."""
    with replacing(path) as partial:
        if not cv2.imwrite(str(partial), image_bgr):
            raise OSError(f"cannot write {path}")
