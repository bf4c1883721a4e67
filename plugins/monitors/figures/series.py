"""Training curves as the monitors keep them: points per panel and trace.

The engine's ``on_step`` scalars are ``loss`` and its parts, ``lr`` and
``images_per_s`` (see :class:`kitpose.monitor.Monitor`); ``on_epoch`` metrics are
``{branch: {metric: value}}``. Both become panels of named traces:

- ``loss``: one trace per loss part (every scalar that is not ``lr*`` or
  ``images_per_s``), ``lr``: the learning rate, ``throughput``: images per second,
  all over training steps;
- ``val/<metric>``: one trace per decoder, over epochs.

A trace keeps at most ``cap`` points; past that it keeps every second point, so a
long run costs bounded memory and its curve keeps its shape.
"""
from __future__ import annotations

import bisect
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

LOSS, LR, THROUGHPUT, METRIC = "loss", "lr", "throughput", "val/"
TITLES = {LOSS: "training loss", LR: "learning rate", THROUGHPUT: "throughput (images/s)"}


def branch_label(branch: str) -> str:
    """A decoder's display name: ``decoders/dark`` -> ``dark``."""
    return branch.split("/", 1)[1] if branch.startswith("decoders/") else branch


def panel_of(key: str) -> str:
    """The panel an ``on_step`` scalar belongs to."""
    if key == "images_per_s":
        return THROUGHPUT
    if key == "lr" or key.startswith(("lr/", "lr_", "lr.")):
        return LR
    return LOSS


def title_of(panel: str) -> str:
    """A panel's human title: ``val/pckh@0.5`` -> ``validation pckh@0.5``."""
    if panel.startswith(METRIC):
        return "validation " + panel[len(METRIC):]
    return TITLES.get(panel, panel)


def panel_from_title(title: str) -> str | None:
    """The panel a title was made from (see :func:`title_of`); ``None`` for other titles."""
    if title.startswith("validation "):
        return METRIC + title[len("validation "):]
    return next((panel for panel, text in TITLES.items() if text == title), None)


def x_label_of(panel: str) -> str:
    return "epoch" if panel.startswith(METRIC) else "step"


class StepFilter:
    """Lets through at most one logged step per ``every`` training steps (the first always)."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.last: int | None = None

    def __call__(self, step: int) -> bool:
        if self.last is not None and self.last <= step < self.last + self.every:
            return False
        self.last = step
        return True


@dataclass
class Series:
    """The points of one trace, thinned to at most ``cap``."""

    xs: list[float] = field(default_factory=list)
    ys: list[float] = field(default_factory=list)
    cap: int = 20_000

    def add(self, x: float, y: float) -> None:
        """Append a point; one at or before the last x replaces the points from there on
        (a resumed run repeats the steps after its checkpoint)."""
        if self.xs and x <= self.xs[-1]:
            cut = bisect.bisect_left(self.xs, x)
            del self.xs[cut:], self.ys[cut:]
        self.xs.append(x)
        self.ys.append(y)
        if len(self.xs) > self.cap:
            last = (self.xs[-1], self.ys[-1])
            self.xs, self.ys = self.xs[:-1:2], self.ys[:-1:2]
            self.xs.append(last[0])
            self.ys.append(last[1])

    def __len__(self) -> int:
        return len(self.xs)


class Curves:
    """Panels of named traces, filled from the monitor hooks."""

    def __init__(self, cap: int = 20_000) -> None:
        self.cap = cap
        self.panels: dict[str, dict[str, Series]] = {}

    def add(self, panel: str, trace: str, x: float, y: float) -> None:
        """One point; non-finite values are skipped (a plot cannot show them)."""
        x, y = float(x), float(y)
        if not (math.isfinite(x) and math.isfinite(y)):
            return
        traces = self.panels.setdefault(panel, {})
        series = traces.get(trace)
        if series is None:
            series = traces[trace] = Series(cap=self.cap)
        series.add(x, y)

    def add_step(self, step: int, scalars: Mapping[str, float]) -> None:
        """The scalars of one logged training step."""
        for key, value in scalars.items():
            self.add(panel_of(key), key, step, value)

    def add_epoch(self, epoch: int, metrics: Mapping[str, Mapping[str, float]]) -> None:
        """Validation metrics of one epoch: a panel per metric, a trace per decoder."""
        for branch, row in metrics.items():
            for metric, value in row.items():
                self.add(METRIC + str(metric), branch_label(str(branch)), epoch, value)

    def merge(self, other: "Curves") -> None:
        """Append every point of ``other``."""
        for panel, trace, series in other.items():
            for x, y in zip(series.xs, series.ys):
                self.add(panel, trace, x, y)

    def items(self) -> Iterator[tuple[str, str, Series]]:
        """``(panel, trace, series)`` for every trace."""
        for panel, traces in self.panels.items():
            for trace, series in traces.items():
                yield panel, trace, series

    def __len__(self) -> int:
        return sum(len(s) for _, _, s in self.items())

    def __bool__(self) -> bool:
        return any(len(s) for _, _, s in self.items())
