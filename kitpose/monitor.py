"""The monitor contract: what the engine tells monitors, and when.

Monitors are components of kind ``monitor`` listed under ``monitors:`` in a recipe.
The engine calls them on the process that writes the run directory (rank 0) and
wraps every call: a monitor that raises is reported once and never stops a run.
Subclass :class:`Monitor` and override what you need.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class RunInfo:
    """Facts about a run, given to :meth:`Monitor.on_start`."""

    name: str
    dir: Path
    recipe: dict[str, Any]
    epochs: int
    steps_per_epoch: int
    start_epoch: int = 0
    #: a resumed run: steps already done, and how many epochs have their validation recorded;
    #: what a monitor logged past these points before the interruption is replayed now
    start_step: int = 0
    resumed: bool = False
    validated_epochs: int = 0
    joint_names: tuple[str, ...] = ()
    skeleton: tuple[tuple[int, int], ...] = ()
    #: torch's CPU threads in this run, and why that many: the ``threads`` setting's choice
    #: (``"torch's default"`` when the recipe leaves it to torch; see :mod:`kitpose.threads`)
    cpu_threads: int = 0
    threads_reason: str = ""

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch


@dataclass
class Snapshot:
    """The first few samples of one validation batch and every named tensor the flow made
    of them, as CPU numpy arrays: ``tensors[branch][name]``, with the branch ``output``
    when the flow does not fan out. The batch's own entries (``image``, ``keypoints``,
    ``visible`` ...) are in every branch. A monitor picks what it draws by name; which
    names, its recipe entry says.
    """

    tensors: dict[str, dict[str, Any]] = field(default_factory=dict)

    def get(self, name: str, default: Any = None) -> Any:
        """``name`` from the first branch that holds it."""
        for env in self.tensors.values():
            if name in env:
                return env[name]
        return default

    def per_branch(self, name: str) -> dict[str, Any]:
        """``{branch: array}`` for every branch that holds ``name``."""
        return {branch: env[name] for branch, env in self.tensors.items() if name in env}


class Monitor:
    """Base class: every hook does nothing."""

    def on_start(self, run: RunInfo) -> None:
        """The run starts (or resumes at ``run.start_epoch``)."""

    def on_step(self, step: int, epoch: int, scalars: Mapping[str, float]) -> None:
        """After a logged training step: ``loss`` and its parts, ``lr``, ``images_per_s``."""

    def on_evaluate(self, stage: str, done: int, total: int) -> None:
        """Progress of a validation or test pass (``stage``): ``done`` of ``total`` batches,
        called with 0 as it starts and after every batch."""

    def on_epoch(self, epoch: int, metrics: Mapping[str, Mapping[str, float]],
                 snapshot: Snapshot | None = None) -> None:
        """After validation: ``{branch: {metric: value}}`` (a branch per decoder)."""

    def on_end(self, results: Mapping[str, Mapping[str, float]], table: str) -> None:
        """After the test: the results per decoder, and the Markdown table."""

    def close(self) -> None:
        """Release resources; called once, also when the run fails."""
