"""A base class for metrics that accumulate over batches and across DDP ranks.

Subclasses call :meth:`Metric.accumulate` in ``update`` with per-sample tensors and
read them back, concatenated over every batch (and every process when
``torch.distributed`` is initialised), with :meth:`Metric.gathered` in ``compute``.
"""
from __future__ import annotations

from typing import Any, NamedTuple


class PerSample(NamedTuple):
    """What a reported number is made of, per (sample, joint): the number is the mean of
    ``values`` ``[N, K]`` over the ``counted`` ``[N, K]`` entries, or that mean's square root
    when ``root`` (RMSE). Studies resample test images from it for paired comparisons."""

    values: Any
    counted: Any
    root: bool = False


class Metric:
    """Accumulate per-sample tensors; reduce them in :meth:`compute`.

    The call contract: ``update(**tensors)`` for each batch, ``compute()`` returns
    ``{name: float}``, ``per_joint()`` returns ``{name: [float per joint]}`` (optional),
    ``per_group()`` returns ``{title: {group: float}}`` (optional), ``per_sample()`` returns ``{name: PerSample}`` (optional), ``reset()`` forgets everything;
    ``output_names()`` says which keys ``compute`` returns.
    """

    #: flow nodes that call a metric produce no tensors
    outputs: tuple[str, ...] = ()
    #: the keys ``compute()`` returns, when they do not depend on parameters (None: undeclared)
    names: tuple[str, ...] | None = None

    def __init__(self) -> None:
        self._accumulated: dict[str, list[Any]] = {}

    def accumulate(self, **tensors: Any) -> None:
        """Store detached CPU copies of per-sample tensors (first dimension = samples)."""
        self.__dict__.pop("_gather_cache", None)
        for name, value in tensors.items():
            self._accumulated.setdefault(name, []).append(value.detach().to("cpu"))

    def gathered(self, name: str) -> Any:
        """Every stored batch of ``name`` concatenated, across processes when distributed.

        Kept until the next ``accumulate`` or ``reset``: ``compute``, ``per_joint`` and
        ``per_sample`` read the same state, and under DDP each read would otherwise be a
        collective of its own (every rank reads in the same order, so all hit or miss alike).
        """
        kept = self.__dict__.setdefault("_gather_cache", {})
        if name not in kept:
            kept[name] = self._gather(name)
        return kept[name]

    def _gather(self, name: str) -> Any:
        import torch
        import torch.distributed as dist

        parts = self._accumulated.get(name, [])
        local = torch.cat(parts) if parts else torch.empty(0)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            everyone: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(everyone, local)
            local = torch.cat([t for t in everyone if t.numel()]) if any(t.numel() for t in everyone) \
                else local
        return local

    def reset(self) -> None:
        self._accumulated.clear()
        self.__dict__.pop("_gather_cache", None)

    def update(self, **tensors: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def compute(self) -> dict[str, float]:  # pragma: no cover - abstract
        raise NotImplementedError

    def output_names(self) -> tuple[str, ...] | None:
        """The keys :meth:`compute` returns, known before any update (None: not declared).

        ``kitpose check`` reads them to refuse a ``val.metric`` that no metric reports;
        override this when the names depend on parameters (``PCKh@0.1`` ...).
        """
        declared = getattr(type(self), "names", None)
        if declared is None or callable(declared):  # a plugin's own ``names()`` method is not a declaration
            return None
        return tuple(declared)

    def per_joint(self) -> dict[str, list[float]]:
        """Per-joint values of the headline numbers; empty when a metric has none."""
        return {}

    def per_group(self) -> dict[str, dict[str, float]]:
        """Headline numbers broken down by a grouping of the samples (e.g. Human3.6M's actions):
        ``{"MPJPE by action": {group: value}}``; empty when a metric has none."""
        return {}

    def per_sample(self) -> dict[str, PerSample]:
        """Each headline number as a mean over (sample, joint) entries (see :class:`PerSample`),
        in the order the samples were scored; empty for a number that is not such a mean
        (e.g. COCO AP). Collective under DDP, like ``compute``."""
        return {}
