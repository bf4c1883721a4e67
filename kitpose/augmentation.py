"""The test-time augmentation contract: run part of a flow on altered copies of a batch.

A component of kind ``augmentation`` is called by a flow node like any other::

    - {call: tta, in: {maps: maps}, out: {maps: maps_tta}}

but the tensors its ``in`` names are computed once per *view* of the batch: the nodes
they depend on run again on every view, and :meth:`Augmentation.merge` receives, for
each argument, the list of its values over the views. Views only replace batch entries
(``{"image": resized}``); a node that reads nothing a view replaces is not run again,
and an empty view is the batch as it is, whose values the flow has computed already.

This is how a recipe adds mirrored, shifted or rescaled copies of the input without
any change to the core: the component says how to make the views and how to bring
their results back together.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class Augmentation:
    """Base class of test-time augmentations (subclasses override both methods).

    ``outputs`` names what :meth:`merge` returns, as for every component.
    """

    outputs: tuple[str, ...] = ()

    def views(self, batch: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
        """One mapping per view: the batch entries it replaces (``{}``: the batch unchanged).

        ``batch`` holds every named tensor of the flow computed so far.
        """
        raise NotImplementedError

    def merge(self, **per_view: list[Any]) -> Mapping[str, Any]:
        """Each argument holds its tensor's values over the views, in the order of
        :meth:`views`; returns the merged tensors by the names in ``outputs``."""
        raise NotImplementedError
