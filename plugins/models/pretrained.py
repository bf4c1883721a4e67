"""Load a local checkpoint into a model part (the ``pretrained`` parameter).

Nothing is downloaded: every model trains from scratch unless the user points
``pretrained`` at a file. The file is read with ``torch.load(weights_only=True)``,
so it can hold tensors and plain containers but never runs code.

Accepted layouts: a plain state dict, or a dict holding one under ``state_dict``
or ``model`` (as a kitpose run's checkpoint does). When the keys carry a prefix,
such as ``module.`` (DistributedDataParallel) or ``parts.backbone.`` (a whole
recipe's model), the one prefix under which exactly this part's keys are found is
stripped, so a backbone can start from the checkpoint of another run.
"""
from __future__ import annotations

import os
from collections.abc import Mapping

import torch
from torch import nn

from kitpose.checkpoint import state_mismatch
from kitpose.errors import ComponentError, first_line

_NESTED = ("state_dict", "model")


def _state_dict(obj: object, path: str, what: str) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping):
        for key in _NESTED:
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor)
                                                            for v in inner.values()):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ComponentError(f"{what}: pretrained file '{path}' holds no state dict of tensors")
    return {str(k): v for k, v in obj.items()}


def _select_part(state: dict[str, torch.Tensor], own: Mapping[str, torch.Tensor],
                 path: str, what: str) -> dict[str, torch.Tensor]:
    """``state`` itself, or the entries under the one prefix whose keys are exactly ``own``'s."""
    if not own or set(state) == set(own):
        return state
    probe = next(iter(own))
    prefixes = {k[: len(k) - len(probe)] for k in state
                if k.endswith("." + probe)}
    fits = []
    for prefix in sorted(prefixes):
        part = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if set(part) == set(own):
            fits.append((prefix, part))
    if len(fits) > 1:
        listing = ", ".join(repr(p) for p, _ in fits)
        raise ComponentError(f"{what}: pretrained file '{path}' holds several matching parts "
                             f"(prefixes {listing}); save the wanted part on its own")
    return fits[0][1] if fits else state


def load_pretrained(module: nn.Module, path: str | os.PathLike[str], what: str) -> None:
    """Copy the weights stored at ``path`` into ``module``; every key must match.

    Raises :class:`ComponentError` (one line) when the file is missing or unreadable,
    or when keys are missing, unexpected or of another shape, listing those keys.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ComponentError(f"{what}: pretrained file '{path}' does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, pickled code, foreign format
        raise ComponentError(f"{what}: cannot read pretrained file '{path}': {first_line(exc)}") from exc
    own = module.state_dict()
    state = _select_part(_state_dict(obj, path, what), own, path, what)
    problems = state_mismatch(own, state)
    if problems:
        raise ComponentError(f"{what}: pretrained file '{path}' does not fit the model; "
                             + "; ".join(problems))
    module.load_state_dict(state, strict=True)
