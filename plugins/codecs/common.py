"""Shared checks and small tensor helpers of the coordinate codecs (encoders and decoders).

Everything here works on batched tensors on whatever device they live on; nothing loops
over samples or joints.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from kitpose.errors import ComponentError


def fail(component: str, message: str, hint: str | None = None) -> ComponentError:
    """A :class:`ComponentError` naming the component (``"decoder 'dark'"``)."""
    return ComponentError(f"{component}: {message}", hint=hint)


def positive(component: str, name: str, value: Any) -> float:
    """``value`` as a float, or an error when it is not a finite positive number."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(value, bool) or not math.isfinite(number) or number <= 0:
        raise fail(component, f"'{name}' must be a positive number, got {value!r}",
                   hint=f"set {name}: a value > 0")
    return number


def positive_int(component: str, name: str, value: Any, *, odd: bool = False) -> int:
    """``value`` as an int >= 1 (odd when asked), or an error."""
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    if ok and odd and value % 2 == 0:
        ok = False
    if not ok:
        what = "an odd integer >= 1" if odd else "an integer >= 1"
        raise fail(component, f"'{name}' must be {what}, got {value!r}", hint=f"set {name}: {what}")
    return int(value)


def size_pair(component: str, name: str, value: Any, *, minimum: int = 1) -> tuple[int, int]:
    """A ``(width, height)`` pair from an int or a two-item sequence of ints."""
    items = [value, value] if isinstance(value, int) and not isinstance(value, bool) else value
    if (not isinstance(items, Sequence) or isinstance(items, str) or len(items) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in items)):
        raise fail(component, f"'{name}' must be [width, height] with integers >= {minimum}, "
                   f"got {value!r}", hint=f"write {name}: [48, 64]")
    return int(items[0]), int(items[1])


def flag(component: str, name: str, value: Any) -> bool:
    """``value`` when it is a bool; anything else (a string "false" included) is an error."""
    if not isinstance(value, bool):
        raise fail(component, f"'{name}' must be true or false, got {value!r}", hint=f"set {name}: true")
    return value


def choice(component: str, name: str, value: Any, allowed: Sequence[str]) -> str:
    """``value`` when it is one of ``allowed``, else an error listing them."""
    if value not in allowed:
        raise fail(component, f"'{name}' must be one of {', '.join(allowed)}, got {value!r}",
                   hint=f"set {name}: {allowed[0]}")
    return str(value)


#: Below this many map cells a CPU call runs on one thread (see :func:`one_thread_if_small`).
SMALL_WORK = 1 << 19

CPU = torch.device("cpu")


class one_thread_if_small:  # noqa: N801 - used as a context manager, like a function
    """Run the block on one CPU thread when it touches fewer than :data:`SMALL_WORK` cells.

    A parallel region costs a thread wake-up (microseconds on a quiet machine, a whole
    scheduler time slice, about a millisecond, when other processes hold the cores), and
    at one image (17 maps of 64x48: 52k cells) torch splits reductions across threads.
    Single-threaded, such a call costs what numpy's would, whatever the load. torch's
    thread count is process-wide: it is set for the block and restored on exit (a thread
    that starts torch work meanwhile gets one thread too). A class, not a generator: it is
    entered on every small decoder call.
    """

    __slots__ = ("threads",)

    def __init__(self, cells: int, device: torch.device) -> None:
        threads = torch.get_num_threads()
        self.threads = threads if device.type == "cpu" and threads > 1 and cells < SMALL_WORK else 0

    def __enter__(self) -> None:
        if self.threads:
            torch.set_num_threads(1)

    def __exit__(self, *exc: object) -> None:
        if self.threads:
            torch.set_num_threads(self.threads)


def coordinate_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype coordinates are computed in: float64 stays, anything else becomes float32.

    Half-precision coordinates lose a few hundredths of a pixel on 64-px maps, so
    decoders promote them.
    """
    return torch.float64 if dtype == torch.float64 else torch.float32


def as_tensor(component: str, name: str, value: Any) -> torch.Tensor:
    """``value`` as a tensor (arrays and lists are converted), or an error."""
    if isinstance(value, torch.Tensor):
        return value
    try:
        return torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise fail(component, f"'{name}' must be a tensor, got {type(value).__name__}") from exc


def heatmap_batch(component: str, heatmaps: Any, spatial: Sequence[int] = (2,)) -> torch.Tensor:
    """Check ``heatmaps`` is a floating ``[B, K, *spatial]`` tensor and return it."""
    heatmaps = as_tensor(component, "heatmaps", heatmaps)
    shapes = " or ".join("[B, K, " + ", ".join(("d", "h", "w")[3 - n:]) + "]" for n in spatial)
    if heatmaps.dim() - 2 not in spatial or any(s == 0 for s in heatmaps.shape[2:]):
        raise fail(component, f"heatmaps must be {shapes}, got shape {tuple(heatmaps.shape)}",
                   hint="connect the model's heatmaps to this decoder")
    if not heatmaps.is_floating_point():
        heatmaps = heatmaps.to(torch.float32)
    return heatmaps


def first_argmax(flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Maximum, index of its FIRST occurrence, and whether the map is flat (max == min),
    along the last dimension.

    On the CPU numpy does the work (its argmax documents the first occurrence, is several
    times faster than torch's CPU max-with-indices, and a numpy call costs a fraction of a
    torch call on one image's maps). Only a map whose first maximum is its first cell can
    be flat, so only those maps are checked. Other devices get an explicit tie-break, the
    smallest index holding the maximum, so plateaus decode the same everywhere. Scores
    need the flatness (see :func:`peak_scores`).
    """
    if on_numpy(flat):
        peak, index, level = numpy_peaks(flat.contiguous().numpy())
        return torch.from_numpy(peak), torch.from_numpy(index), torch.from_numpy(level)
    n = flat.shape[-1]
    top = flat.amax(dim=-1, keepdim=True)
    positions = torch.arange(n, device=flat.device)
    index = torch.where(flat == top, positions, n).amin(dim=-1).clamp_(max=n - 1)
    return top.squeeze(-1), index, top.squeeze(-1) == flat.amin(dim=-1)


def numpy_peaks(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`first_argmax` in numpy: the maximum, its first index and flatness of ``[..., N]``."""
    index = values.argmax(axis=-1)
    rows = values.reshape(-1, values.shape[-1])
    first = index.reshape(-1)
    peak = rows[np.arange(rows.shape[0]), first]
    level = np.zeros(first.shape, dtype=bool)  # only a map whose first maximum is its first cell can be flat
    maybe = np.flatnonzero(first == 0)
    if maybe.size:
        level[maybe] = (rows[maybe] == peak[maybe, None]).all(axis=-1)
    return peak.reshape(index.shape), index, level.reshape(index.shape)


_NUMPY_DTYPES = (torch.float16, torch.float32, torch.float64, torch.int64)


def on_numpy(tensor: torch.Tensor) -> bool:
    """Whether numpy can take ``tensor`` over: on the CPU, a numpy dtype, and no gradient to keep."""
    return tensor.is_cpu and not tensor.requires_grad and tensor.dtype in _NUMPY_DTYPES


def unravel(index: torch.Tensor, spatial: Sequence[int]) -> torch.Tensor:
    """Flat indices over a ``spatial`` grid (..., d, h, w) -> coordinates ``(x, y[, z])``."""
    if on_numpy(index):
        return torch.from_numpy(np.stack(np.unravel_index(index.numpy(), tuple(spatial))[::-1], axis=-1))  # x first
    coords = []
    for size in reversed(spatial):  # x varies fastest
        coords.append(index % size)
        index = torch.div(index, size, rounding_mode="floor")
    return torch.stack(coords, dim=-1)


def peak_scores(peak: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    """Confidence of a map: its peak value (what the reference codes report), except 0 when
    the map has no peak at all: flat maps (``level``), maps without a positive value, NaN."""
    if on_numpy(peak):
        top = peak.numpy()
        return torch.from_numpy(np.where(level.numpy() | ~(top > 0), np.zeros_like(top), top))
    return torch.where(level | ~(peak > 0), torch.zeros_like(peak), peak)


def axis_moments(weights: torch.Tensor) -> torch.Tensor:
    """``sum(weight * coordinate)`` per axis over ``[B, K, (d,) h, w]`` -> ``[B, K, n]`` (x, y[, z]).

    Summed through the 1D marginals of each axis: no coordinate grid is materialised.
    """
    moments = []
    for axis in range(weights.dim() - 2):  # x, y, z: the last spatial dim first
        dim = weights.dim() - 1 - axis
        others = [d for d in range(2, weights.dim()) if d != dim]
        marginal = weights.sum(dim=others)
        moments.append(marginal @ torch.arange(weights.shape[dim], dtype=weights.dtype,
                                               device=weights.device))
    return torch.stack(moments, dim=-1)


def outer(profiles: list[torch.Tensor]) -> torch.Tensor:
    """Separable map from per-axis profiles ``[B, K, size]`` (x, y[, z]) -> ``[B, K, (d,) h, w]``.

    Masks belong on a profile, not on the result: one large allocation per call, not two.
    """
    out = profiles[1][..., :, None] * profiles[0][..., None, :]
    if len(profiles) == 3:
        out = profiles[2][..., :, None, None] * out[..., None, :, :]
    return out


def outer_numpy(profiles: list[np.ndarray]) -> torch.Tensor:
    """:func:`outer` of numpy profiles, multiplied by torch (on one thread when small): on
    rows of a few dozen cells torch's broadcast product is about 3x faster than numpy's."""
    cells = profiles[0].size * profiles[1].shape[-1] * (profiles[2].shape[-1] if len(profiles) == 3 else 1)
    with one_thread_if_small(cells, CPU):
        return outer([torch.from_numpy(p) for p in profiles])


@functools.lru_cache(maxsize=None)
def defined_together(cls: type, twin: str, originals: tuple[str, ...]) -> bool:
    """Whether the class that gives ``cls`` its method ``twin`` (a numpy version) also gives it,
    or inherits, each of ``originals`` (the torch versions it mirrors): a subclass that
    overrides an original alone must not be served its parent's twin."""
    def owner(name: str) -> type | None:
        return next((c for c in cls.__mro__ if name in vars(c)), None)

    home = owner(twin)
    return home is not None and all(owner(name) in home.__mro__ for name in originals if owner(name))
