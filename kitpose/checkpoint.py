"""Checkpoints: written atomically, read with ``weights_only=True``.

A checkpoint is a dict of tensors and plain Python values only, so it loads
without unpickling arbitrary objects. RNG states are stored as tensors and lists.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kitpose.errors import RunError, first_line
from kitpose.files import replacing


def save_atomic(obj: dict[str, Any], path: Path) -> None:
    """Write ``obj`` whole or not at all (see :mod:`kitpose.files`), flushed to disk."""
    with replacing(path, sync=True) as temporary:
        torch.save(obj, temporary)


def load(path: Path) -> dict[str, Any]:
    """Load a checkpoint safely; errors name the file."""
    if not path.is_file():
        raise RunError("checkpoint not found", file=str(path), hint="check the run directory")
    if path.stat().st_size == 0:
        raise RunError("the checkpoint is empty (0 bytes)", file=str(path),
                       hint="it was not written by kitpose, whose writes are atomic; start a new run")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        kind, detail = type(exc).__name__, first_line(exc)
        raise RunError(f"cannot read checkpoint: {kind}" + ("" if detail == kind else f": {detail}"), file=str(path),
                       hint="the file is damaged or not a kitpose checkpoint") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise RunError("not a kitpose checkpoint (no model weights in it)", file=str(path),
                       hint="give a checkpoint written by 'kitpose run'")
    return ckpt


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch random states, as checkpoint-safe values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": _tuples_to_lists(random.getstate()),
        "numpy": [kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss),
                  float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_lists_to_tuples(state["python"]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def state_mismatch(own: dict[str, Any], state: dict[str, Any]) -> list[str]:
    """What keeps ``state`` from loading into a module whose state dict is ``own``, one phrase each."""
    missing = [k for k in own if k not in state]  # in module order: the first is the telling one
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {list(state[k].shape)} vs {list(own[k].shape)}"
              for k in own if k in state and own[k].shape != state[k].shape]
    parts = []
    if missing:
        parts.append(f"missing {_few(missing)}")
    if unexpected:
        parts.append(f"unexpected {_few(unexpected)}")
    if shapes:
        parts.append(f"shape differs for {_few(shapes)}")
    return parts


def load_model_state(module: torch.nn.Module, state: dict[str, Any], *, file: str) -> None:
    """Load weights; a checkpoint of another recipe fails listing the mismatched keys."""
    problems = state_mismatch(module.state_dict(), state)
    if problems:
        raise RunError("checkpoint does not fit this recipe's model: " + "; ".join(problems), file=file,
                       hint="was it written by another recipe?")
    module.load_state_dict(state)


def _few(keys: list[str], n: int = 4) -> str:
    more = f" (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def _tuples_to_lists(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_tuples_to_lists(v) for v in value]
    return value


def _lists_to_tuples(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_lists_to_tuples(v) for v in value)
    return value
