"""Contract checks for plugin components: call them from a plugin's own tests.

A plugin author checks a component the way flows will use it, with one call::

    from kitpose.testing import check_decoder

    def test_median_keeps_the_contract():
        check_decoder("median")                 # a registered name (the package must be installed)
        check_decoder(MedianDecoder, window=3)  # or the class (any factory), with parameters

``check_decoder``, ``check_encoder``, ``check_loss``, ``check_metric`` and ``check_monitor``
build the component, call it with keyword tensors as a flow does (see the call contract in
``docs/plugins.md``) and check what comes back: declared ``outputs`` and call arguments,
shapes, dtype and device (CPU, and CUDA when present), batch independence, finite results on
degenerate input, gradients when the class says ``differentiable = True``, and monitors
never raising. A broken rule raises :class:`ContractViolation` (an ``AssertionError``, so
pytest reports it as a failed test) whose one line says what to fix. Every check returns
the names of the checks that ran.

Options of a check are keyword arguments; every other keyword is a parameter of the
component. A component parameter named like an option goes in ``params={...}``.
"""
from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import torch

from kitpose.components import call_target, declared
from kitpose.errors import UnknownComponentError
from kitpose.metric import Metric
from kitpose.monitor import RunInfo, Snapshot
from kitpose.registry import check_parameters, fit

__all__ = ["CHECKS", "ContractViolation", "check_component", "check_decoder", "check_encoder",
           "check_loss", "check_metric", "check_monitor", "default_devices", "gaussians"]

#: Batch and joint counts of the tensors the checks make; small, and unequal on purpose.
BATCH, JOINTS = 3, 4
#: Map sizes per number of spatial dimensions: (h, w) and (d, h, w), never square.
MAP_SHAPES = {2: (20, 16), 3: (8, 12, 10)}
MONITOR_HOOKS = ("on_start", "on_step", "on_epoch", "on_end", "close")


class ContractViolation(AssertionError):
    """A component breaks the call contract; the message says what to fix."""


def default_devices() -> list[str]:
    """``cpu``, plus ``cuda`` when a CUDA device is present."""
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


# -- the component under check ----------------------------------------------------------------
@dataclass
class Subject:
    """A component to check: its kind, a label for messages, its factory and parameters."""

    kind: str
    label: str
    factory: Callable[..., Any]
    params: dict[str, Any]

    def fail(self, problem: str, fix: str) -> NoReturn:
        """Raise :class:`ContractViolation` as ``LABEL: PROBLEM; FIX``."""
        __tracebackhide__ = True  # pytest shows the check that failed, not this line
        raise ContractViolation(f"{self.label}: {problem}; {fix}")

    def build(self) -> Any:
        """A fresh instance built with the parameters."""
        try:
            return self.factory(**self.params)
        except Exception as exc:
            self.fail(f"building it with {self.params or 'no parameters'} raised {_error(exc)}",
                      "make the factory accept the parameters it declares (and its defaults)")

    def call(self, fn: Callable[..., Any], what: str, **kwargs: Any) -> Any:
        """Call ``fn(**kwargs)``; an exception becomes a violation naming the inputs."""
        try:
            return fn(**kwargs)
        except ContractViolation:
            raise
        except Exception as exc:
            inputs = ", ".join(f"{k}={_describe(v)}" for k, v in kwargs.items())
            self.fail(f"{what}({inputs}) raised {_error(exc)}",
                      "accept every input the call contract allows (see docs/plugins.md)")


def subject(kind: str, target: str | Callable[..., Any], params: Mapping[str, Any]) -> Subject:
    """Resolve a registered name or a factory; the parameters are checked against its signature."""
    if isinstance(target, str):
        from kitpose.plugins import get_registry

        try:
            factory = get_registry().get(kind, target).load()
        except UnknownComponentError as exc:
            raise ContractViolation(f"{exc}; is the package that registers it installed "
                                    "(pip install -e .)?") from None
        label = f"{kind} '{target}'"
    elif callable(target):
        factory = target
        label = f"{kind} {getattr(target, '__qualname__', type(target).__name__)}"
    else:
        raise TypeError(f"check a registered {kind} name or a factory, not {type(target).__name__}")
    check_parameters(factory, dict(params), what=label)
    return Subject(kind, label, factory, dict(params))


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".replace("\n", " ")


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"{list(value.shape)} {str(value.dtype).removeprefix('torch.')} {value.device.type}"
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], torch.Tensor):
        return f"[{len(value)} x {_describe(value[0])}]"
    return type(value).__name__


# -- shared checks ----------------------------------------------------------------------------
def declared_outputs(s: Subject, required: Sequence[str]) -> tuple[str, ...]:
    """The ``outputs`` the factory declares (flows read them); they must name ``required``."""
    outputs = declared(s.factory, "outputs")
    wanted = ", ".join(repr(r) for r in required)
    if outputs is None:
        s.fail("declares no outputs", f"add a class attribute outputs = ({wanted}, ...): flows read it "
                                      "to name what the component returns")
    missing = [r for r in required if r not in outputs]
    if missing:
        s.fail(f"outputs {outputs} lack {missing[0]!r}", f"return and declare {wanted}")
    return outputs


def accepts(s: Subject, arguments: Sequence[str]) -> None:
    """The call (``__call__``/``forward``/``update``) takes ``arguments`` by keyword, needs no others."""
    fn = call_target(s.factory, s.kind)
    found = fit(fn, arguments, method=True) if fn is not None else None
    if found is None:
        return
    if found.unknown:
        arg = found.unknown[0]
        s.fail(f"its call takes no argument '{arg}' (it takes: {', '.join(found.names) or 'none'})",
               f"name the argument '{arg}': flows pass tensors by keyword")
    if s.kind != "metric" and found.missing:  # metrics may require extra tensors (head_size ...)
        s.fail(f"its call requires '{found.missing[0]}', which the contract does not pass",
               f"give '{found.missing[0]}' a default value")


def check_keys(s: Subject, result: Any, outputs: Sequence[str], what: str) -> dict[str, Any]:
    """The call returned a mapping holding every declared output and nothing undeclared."""
    if not isinstance(result, Mapping):
        s.fail(f"{what} returned {type(result).__name__}", "return a dict of named tensors")
    for key in outputs:
        if key not in result:
            s.fail(f"{what} returned no '{key}' though outputs declares it",
                   f"return {key!r}, or remove it from outputs")
    for key in result:
        if key not in outputs:
            s.fail(f"{what} returned '{key}', which outputs does not declare",
                   f"add {key!r} to outputs so flows can use it")
    return dict(result)


def expect(s: Subject, name: str, value: Any, shape: Sequence[int], *, dtype: torch.dtype | None = None,
           device: torch.device | None = None, finite: bool = True, context: str = "") -> torch.Tensor:
    """``value`` is a floating tensor of ``shape`` (and ``dtype``, on ``device``), finite."""
    where = f" {context}" if context else ""
    if not isinstance(value, torch.Tensor):
        s.fail(f"'{name}'{where} is a {type(value).__name__}", "return torch tensors")
    if tuple(value.shape) != tuple(shape):
        s.fail(f"'{name}'{where} has shape {list(value.shape)}, expected {list(shape)}",
               "follow the shapes of the call contract ([B, K, ...])")
    if not value.is_floating_point():
        s.fail(f"'{name}'{where} has dtype {value.dtype}", "return floating-point tensors")
    if dtype is not None and value.dtype != dtype:
        s.fail(f"'{name}'{where} has dtype {value.dtype}, expected {dtype}",
               "compute in, or cast back to, the dtype of the input")
    if device is not None and value.device.type != device.type:
        s.fail(f"'{name}'{where} is on {value.device}, the input on {device}",
               "create new tensors on the input's device (device=x.device)")
    if finite and not bool(torch.isfinite(value.detach()).all()):
        s.fail(f"'{name}'{where} holds NaN or inf", "guard divisions and logs against empty or flat input")
    return value


def same(a: torch.Tensor, b: torch.Tensor, tolerance: float) -> bool:
    """Equal within ``tolerance`` (absolute and relative); NaNs match NaNs."""
    a, b = a.detach().cpu().double(), b.detach().cpu().double()
    return a.shape == b.shape and torch.allclose(a, b, atol=tolerance, rtol=tolerance, equal_nan=True)


def unchanged(s: Subject, before: Mapping[str, Any], after: Mapping[str, Any]) -> None:
    """The call left its input tensors as they were."""
    for key, value in before.items():
        if isinstance(value, torch.Tensor) and not torch.equal(value, after[key]):
            s.fail(f"it changed its input '{key}' in place", "work on a copy (x = x.clone()) or out of place")


def snapshot_of(inputs: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v.detach().clone() if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}


def gaussians(centres: torch.Tensor, shape: Sequence[int], sigma: float = 1.5) -> torch.Tensor:
    """Gaussian maps ``[B, K, *shape]`` with peak 1 at ``centres [B, K, n]`` (x, y[, z]) cells."""
    d2 = torch.zeros(centres.shape[:2] + tuple(shape), dtype=centres.dtype)
    for axis, size in enumerate(reversed(shape)):  # x is the last dimension
        cells = torch.arange(size, dtype=centres.dtype)
        view = [1] * len(shape)
        view[len(shape) - 1 - axis] = size
        d2 = d2 + (cells.view(view) - centres[..., axis].reshape(centres.shape[:2] + (1,) * len(shape))) ** 2
    return torch.exp(-d2 / (2 * sigma * sigma))


def inner_points(shape: Sequence[int], generator: torch.Generator, low: float = 0.3,
                 high: float = 0.7) -> torch.Tensor:
    """Random cells ``[B, K, n]`` (x, y[, z]) in the middle part of a map of ``shape``.

    The first two joints of the first sample sit at opposite corners of that part (low x,
    high y and the reverse), so swapped axes never go unnoticed.
    """
    sizes = torch.tensor(list(reversed(shape)), dtype=torch.float32)
    u = torch.rand(BATCH, JOINTS, len(shape), generator=generator)
    u[0, 0, :2] = torch.tensor([0.0, 1.0])
    u[0, 1, :2] = torch.tensor([1.0, 0.0])
    return (low + (high - low) * u) * (sizes - 1)


def moved(value: Any, device: str) -> Any:
    """Tensors (also inside lists) moved to ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, (list, tuple)):
        return type(value)(moved(v, device) for v in value)
    return value


# -- targets: what an encoder draws, and what a decoder reads --------------------------------
@dataclass
class Targets:
    """The form of an encoder's targets, found by probing it.

    Map form: ``heatmaps [B, K * channels, *shape]`` (``channels`` maps per joint, the first
    the one centred on the keypoint). Axis form (no ``heatmaps``): one vector ``[B, K, L]``
    per axis, x first, named by the other outputs.
    """

    names: tuple[str, ...]   # the tensors a decoder reads
    dims: int                # coordinates per keypoint
    shape: tuple[int, ...]   # (d,) h, w: the cells' extent, last axis x
    channels: int = 1        # maps per joint (map form)

    @property
    def axis_form(self) -> bool:
        """Whether the targets are per-axis vectors rather than heatmaps."""
        return self.names != ("heatmaps",)

    def shapes(self, batch: int, joints: int) -> dict[str, tuple[int, ...]]:
        """The shape of every target tensor for ``batch`` samples of ``joints`` joints."""
        if self.axis_form:
            return {name: (batch, joints, size) for name, size in zip(self.names, reversed(self.shape))}
        return {"heatmaps": (batch, joints * self.channels, *self.shape)}

    def centres(self, out: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Centre of mass of the positive part of each joint's target ``[B, K, n]``, and its mass ``[B, K]``."""
        if self.axis_form:
            masses = [out[name].clamp(min=0) for name in self.names]
            totals = [m.sum(-1) for m in masses]
            moments = [m @ torch.arange(m.shape[-1], dtype=m.dtype, device=m.device) for m in masses]
            total = torch.stack(totals, dim=-1).amin(dim=-1)
            centre = torch.stack([mo / t.clamp(min=1e-12) for mo, t in zip(moments, totals)], dim=-1)
            return centre, total
        maps = out["heatmaps"]
        mass = maps.unflatten(1, (-1, self.channels))[:, :, 0].clamp(min=0)
        total = mass.flatten(2).sum(-1)
        return centre_of_mass(mass) / total.clamp(min=1e-12)[..., None], total


def targets_of(s: Subject, enc: Any, keypoint_dims: int | None) -> Targets:
    """Probe ``enc`` with one keypoint: the coordinates it takes and the form of its targets."""
    errors = []
    outputs = declared(s.factory, "outputs") or ()
    names = ("heatmaps",) if "heatmaps" in outputs else tuple(o for o in outputs if o != "weights")
    channels = int(getattr(s.factory, "channels", 1))
    for n in ([keypoint_dims] if keypoint_dims else [2, 3]):
        try:
            out = enc(keypoints=torch.zeros(1, 1, n), visible=torch.ones(1, 1))
            got = [out[name] for name in names]
        except Exception as exc:
            errors.append(f"for [B, K, {n}] keypoints: {_error(exc)}")
            continue
        if names == ("heatmaps",):
            maps = got[0]
            if isinstance(maps, torch.Tensor) and maps.dim() == 2 + n and maps.shape[1] == channels:
                return Targets(names, n, tuple(maps.shape[2:]), channels)
            errors.append(f"[B, K, {n}] keypoints gave heatmaps of shape "
                          f"{list(getattr(maps, 'shape', [])) or type(maps).__name__}"
                          + (f" ({channels} maps per joint expected)" if channels != 1 else ""))
        elif len(names) == n and all(isinstance(v, torch.Tensor) and v.dim() == 3 for v in got):
            return Targets(names, n, tuple(int(v.shape[-1]) for v in reversed(got)))
        else:
            errors.append(f"[B, K, {n}] keypoints gave {', '.join(names) or 'no targets'}: expected "
                          f"{n} vectors [B, K, L], one per axis")
    s.fail("it made no targets: " + "; ".join(errors),
           "take keypoints [B, K, n] in image px and return heatmaps [B, K, *map] with n map dimensions, "
           "or one vector [B, K, L] per axis (x first)")


def make_targets(s: Subject, enc: Any, form: Targets, cells: torch.Tensor, visible: torch.Tensor,
                 context: str, *, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """``enc`` on the keypoints at heatmap ``cells``, checked: keys, shapes, dtype, device, input untouched."""
    points = s.call(enc.to_image, "to_image", xy=cells)
    given = snapshot_of({"keypoints": points, "visible": visible})
    outputs = declared(s.factory, "outputs")
    out = check_keys(s, s.call(enc, "enc", keypoints=points, visible=visible), outputs, f"enc(keypoints {context})")
    unchanged(s, given, {"keypoints": points, "visible": visible})
    b, k = points.shape[:2]
    for name, shape in form.shapes(b, k).items():
        expect(s, name, out[name], shape, dtype=dtype, device=points.device, context=f"for {context}")
    expect(s, "weights", out["weights"], (b, k), device=points.device, context=f"for {context}")
    return out


# -- decoders ---------------------------------------------------------------------------------
def check_decoder(decoder: str | Callable[..., Any], /, *, spatial: Sequence[int] | None = None,
                  encoder: str | Callable[..., Any] | Mapping[str, Any] | None = None,
                  tolerance: float = 1.0, differentiable: bool | None = None,
                  devices: Sequence[str] | None = None, seed: int = 0,
                  params: Mapping[str, Any] | None = None, **more: Any) -> list[str]:
    """Check a decoder: ``dec(heatmaps=[B, K, (d,) h, w])`` -> ``keypoints [B, K, n]``, ``scores [B, K]``.

    ``spatial``: map dimensionalities to check (2 and/or 3); default: the class attribute
    ``spatial`` or ``(2,)``. ``encoder``: decode that encoder's targets instead of Gaussian
    maps (a registered name, a factory, or ``{"use": name, **params}``); needed by decoders
    that read more than one map per joint (class attribute ``channels``) or per-axis vectors,
    which they take by the encoder's output names. ``tolerance``: largest error, in cells,
    on the clean maps (Gaussians: peak 1, sigma 1.5 cells). ``differentiable``: check
    gradients; default: what the class attribute ``differentiable`` says.
    """
    s = subject("decoder", decoder, {**(params or {}), **more})
    outputs = declared_outputs(s, ("keypoints", "scores"))
    generator = torch.Generator().manual_seed(seed)
    if encoder is not None:
        cases = [encoded_case(s, encoder, generator)]
    else:
        channels = int(getattr(s.factory, "channels", 1))
        if channels != 1:
            s.fail(f"it reads {channels} maps per joint, which plain Gaussian maps cannot give",
                   "pass the encoder whose targets it decodes: check_decoder(dec, encoder='name')")
        cases = []
        for n in tuple(spatial if spatial is not None else declared(s.factory, "spatial") or (2,)):
            truth = inner_points(MAP_SHAPES[n], generator)
            cases.append((n, {"heatmaps": gaussians(truth, MAP_SHAPES[n])}, truth,
                          torch.tensor(list(reversed(MAP_SHAPES[n])))))
    accepts(s, tuple(cases[0][1]) if cases else ("heatmaps",))
    dec = s.build()
    ran = ["outputs", "arguments"]
    for n, inputs, truth, sizes in cases:
        expected = tuple(truth.shape)
        out = decode(s, dec, outputs, inputs, expected, f"{n}D float32")
        error = float((out["keypoints"] - truth).abs().max())
        if error > tolerance:
            s.fail(f"keypoints are {error:.2f} cells from the peaks of clean {n}D "
                   f"{'targets' if encoder is not None else 'Gaussian maps'} (tolerance {tolerance})",
                   "return (x, y[, z]) in heatmap cells: x indexes the last "
                   "dimension, the centre of cell (row i, column j) is (x=j, y=i)")
        for i in range(BATCH):
            alone = decode(s, dec, outputs, {k: v[i:i + 1] for k, v in inputs.items()},
                           (1, *expected[1:]), f"{n}D, one sample")
            if not all(same(alone[key], out[key][i:i + 1], 1e-4) for key in ("keypoints", "scores")):
                s.fail(f"decoding sample {i} alone differs from decoding it in a batch",
                       "treat every sample (and map) on its own: no batch statistics")
        wide = decode(s, dec, outputs, {k: v.double() for k, v in inputs.items()}, expected,
                      f"{n}D float64", dtype=torch.float64)
        if not same(wide["keypoints"], out["keypoints"], 1e-3):
            s.fail("float64 maps decode to other keypoints than float32 maps", "compute in the input's dtype")
        spoilt = {k: degenerate_maps(v) for k, v in inputs.items()}
        for j, (label, _) in enumerate(next(iter(spoilt.values()))):
            got = decode(s, dec, outputs, {k: v[j][1] for k, v in spoilt.items()}, expected,
                         f"{n}D {label}")["keypoints"]
            if bool(((got < -1) | (got > sizes)).any()):
                s.fail(f"keypoints for {label} maps lie off the map",
                       "keep keypoints on the map (fall back to the argmax when a map has no peak)")
        ran += [f"{n}D shapes and dtypes", f"{n}D location", f"{n}D batch independence",
                f"{n}D float64", f"{n}D degenerate maps"]
        for device in (devices if devices is not None else default_devices()):
            if device != "cpu":
                there = decode(s, dec, outputs, moved(inputs, device), expected, f"{n}D on {device}")
                if not same(there["keypoints"], out["keypoints"], 1e-3):
                    s.fail(f"keypoints on {device} differ from those on the CPU",
                           "use the same arithmetic on every device (and deterministic ties)")
                ran.append(f"{n}D on {device}")
        if differentiable or (differentiable is None and getattr(dec, "differentiable", False)):
            first = next(iter(inputs))
            check_gradient(s, lambda x: decode(s, dec, outputs, {**inputs, first: x}, expected,
                                               f"{n}D with gradients")["keypoints"], inputs[first])
            ran.append(f"{n}D gradient")
    return ran


def encoded_case(s: Subject, encoder: str | Callable[..., Any] | Mapping[str, Any],
                 generator: torch.Generator) -> tuple[int, dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """(dims, the encoder's targets of random inner keypoints, their cells, the cells' extent x, y[, z])."""
    return encoded_targets(s, encoder, generator)[:4]


def encoded_targets(s: Subject, encoder: str | Callable[..., Any] | Mapping[str, Any],
                    generator: torch.Generator) -> tuple[int, dict[str, torch.Tensor], torch.Tensor, torch.Tensor,
                                                         Targets]:
    """:func:`encoded_case`, and the form of the targets."""
    if isinstance(encoder, Mapping):
        spec = dict(encoder)
        if "use" not in spec:
            raise ContractViolation(f"{s.label}: the encoder given as a mapping has no 'use'; "
                                    "write encoder={'use': 'name', **params}")
        pair = subject("encoder", spec.pop("use"), spec)
    else:
        pair = subject("encoder", encoder, {})
    enc = pair.build()
    form = targets_of(pair, enc, None)
    truth = inner_points(form.shape, generator)
    out = make_targets(pair, enc, form, truth, torch.ones(truth.shape[:2]), f"{form.dims}D float32")
    return form.dims, {name: out[name] for name in form.names}, truth, torch.tensor(list(reversed(form.shape))), form


def decode(s: Subject, dec: Any, outputs: Sequence[str], inputs: Mapping[str, torch.Tensor],
           expected: Sequence[int], context: str, *, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """``dec(**inputs)``, checked: declared keys, ``keypoints`` of shape ``expected`` ([B, K, n]),
    ``scores [B, K]``, dtype, device, finite, inputs untouched."""
    given = snapshot_of(inputs)
    out = check_keys(s, s.call(dec, "dec", **inputs), outputs, f"dec({', '.join(inputs)} {context})")
    unchanged(s, given, inputs)
    device = next(iter(inputs.values())).device
    expect(s, "keypoints", out["keypoints"], expected, dtype=dtype, device=device, context=f"for {context}")
    expect(s, "scores", out["scores"], expected[:2], device=device, context=f"for {context}")
    return out


def degenerate_maps(like: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """Maps without a clean peak: all zero, constant, all negative, one hot corner cell."""
    corner = torch.zeros_like(like)
    corner[(..., ) + (0,) * (like.dim() - 2)] = 1.0
    return [("all-zero", torch.zeros_like(like)), ("constant", torch.full_like(like, 0.5)),
            ("negative", -1.0 - like), ("corner-peak", corner)]


def check_gradient(s: Subject, fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> None:
    """``fn`` passes finite, non-zero gradients back to ``x`` (it claims to be differentiable)."""
    x = x.detach().clone().requires_grad_(True)
    y = fn(x)
    if not y.requires_grad:
        s.fail("it says differentiable = True but its result carries no gradient",
               "avoid .detach(), .item(), numpy and integer indexing on the result's path, "
               "or drop differentiable = True")
    y.sum().backward()
    if x.grad is None or not bool(torch.isfinite(x.grad).all()) or not bool(x.grad.abs().sum() > 0):
        s.fail("it says differentiable = True but the gradient of its result is missing, zero or not finite",
               "make the result a smooth function of the input, or drop differentiable = True")


# -- encoders ---------------------------------------------------------------------------------
def check_encoder(encoder: str | Callable[..., Any], /, *, keypoint_dims: int | None = None,
                  tolerance: float = 1.0, devices: Sequence[str] | None = None, seed: int = 0,
                  params: Mapping[str, Any] | None = None, **more: Any) -> list[str]:
    """Check an encoder: ``enc(keypoints=[B, K, n], visible=[B, K])`` -> targets and ``weights [B, K]``.

    The targets are ``heatmaps [B, K * channels, *map]`` (``channels``, a class attribute,
    default 1: maps per joint, the first centred on the keypoint) or, for encoders without
    ``heatmaps``, one vector ``[B, K, L]`` per axis (x first), named by ``outputs``.
    ``keypoint_dims``: 2 or 3 coordinates per keypoint; default: the first the encoder
    accepts. ``tolerance``: largest distance, in cells, between a target's centre of mass
    and ``to_heatmap(keypoint)``.
    """
    s = subject("encoder", encoder, {**(params or {}), **more})
    declared_outputs(s, ("weights",))
    accepts(s, ("keypoints", "visible"))
    enc = s.build()
    methods = declared(s.factory, "flow_methods") or ()
    for method in ("to_heatmap", "to_image"):
        if not callable(getattr(enc, method, None)) or method not in methods:
            s.fail(f"it has no flow method '{method}'", "define to_heatmap(xy) and to_image(xy) and list "
                   "them in flow_methods = ('to_heatmap', 'to_image'): recipes map keypoints with them")
    form = targets_of(s, enc, keypoint_dims)
    n, names = form.dims, form.names
    generator = torch.Generator().manual_seed(seed)
    cells = inner_points(form.shape, generator)
    keypoints = s.call(enc.to_image, "to_image", xy=cells)
    back = s.call(enc.to_heatmap, "to_heatmap", xy=keypoints)
    if not (isinstance(back, torch.Tensor) and same(back, cells, 1e-4)):
        s.fail("to_heatmap(to_image(xy)) is not xy", "make to_image the exact inverse of to_heatmap")
    visible = torch.ones(BATCH, JOINTS)
    visible[0, 0] = visible[1, 2] = 0.0
    keys = (*names, "weights")

    def encode(at: torch.Tensor, shown: torch.Tensor, context: str, *,
               dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
        return make_targets(s, enc, form, at, shown, context, dtype=dtype)

    out = encode(cells, visible, f"{n}D float32")
    weights = out["weights"]
    if bool((weights[visible > 0] <= 0).any()):
        s.fail("a visible keypoint in the middle of the map has weight 0", "weight visible joints > 0")
    if bool((weights[visible == 0] != 0).any()):
        s.fail("an invisible keypoint has a non-zero weight", "set weights to 0 where visible is 0")
    centre, total = form.centres(out)
    if bool((total[visible > 0] <= 0).any()):
        s.fail("the heatmap of a visible keypoint in the middle of the map is empty", "draw visible keypoints")
    error = float((centre - cells)[visible > 0].abs().max())
    if error > tolerance:
        s.fail(f"targets are centred {error:.2f} cells from to_heatmap(keypoints) (tolerance {tolerance})",
               "draw each keypoint at to_heatmap(keypoint), x along the last dimension")
    for i in range(BATCH):
        alone = encode(cells[i:i + 1], visible[i:i + 1], f"{n}D, one sample")
        if not all(same(alone[key], out[key][i:i + 1], 1e-5) for key in keys):
            s.fail(f"encoding sample {i} alone differs from encoding it in a batch", "encode samples independently")
    wide = encode(cells.double(), visible.double(), f"{n}D float64", dtype=torch.float64)
    if not all(same(wide[key], out[key], 1e-4) for key in names):
        s.fail("float64 keypoints give other heatmaps than float32 keypoints", "compute in the input's dtype")
    hidden = encode(cells, torch.zeros_like(visible), "all invisible")
    if bool((hidden["weights"] != 0).any()):
        s.fail("keypoints that are all invisible get non-zero weights", "set weights to 0 where visible is 0")
    off = encode(cells - 1000.0, visible, "1000 cells off the map")
    if bool((off["weights"] != 0).any()):
        s.fail("keypoints 1000 cells off the map get non-zero weights",
               "set weights to 0 for keypoints that cannot be drawn on the map")
    ran = ["outputs", "arguments", "flow methods", f"{n}D shapes and dtypes", "weights", "centring",
           "batch independence", "float64", "degenerate keypoints"]
    for device in (devices if devices is not None else default_devices()):
        if device != "cpu":
            there = encode(cells.to(device), visible.to(device), f"{n}D on {device}")
            if not all(same(there[key], out[key], 1e-4) for key in names):
                s.fail(f"heatmaps on {device} differ from those on the CPU", "use the same arithmetic everywhere")
            ran.append(f"on {device}")
    return ran


def centre_of_mass(mass: torch.Tensor) -> torch.Tensor:
    """``sum(mass * coordinate)`` per axis of ``[B, K, (d,) h, w]`` -> ``[B, K, n]`` (x, y[, z])."""
    n = mass.dim() - 2
    moments = []
    for axis in range(n):
        dim = mass.dim() - 1 - axis
        others = [d for d in range(2, mass.dim()) if d != dim]
        marginal = mass.sum(dim=others) if others else mass
        moments.append(marginal @ torch.arange(mass.shape[dim], dtype=mass.dtype, device=mass.device))
    return torch.stack(moments, dim=-1)


# -- losses -----------------------------------------------------------------------------------
LOSS_INPUTS = ("heatmaps", "coordinates", "stages")


def loss_inputs(form: str, generator: torch.Generator) -> tuple[Any, torch.Tensor]:
    """(pred, target) of one input form; ``stages`` is a list of two heatmap predictions."""
    if form == "coordinates":
        target = inner_points(MAP_SHAPES[2], generator)
        return target + torch.randn(target.shape, generator=generator), target
    target = gaussians(inner_points(MAP_SHAPES[2], generator), MAP_SHAPES[2])
    pred = 0.1 * torch.randn(target.shape, generator=generator)
    if form == "stages":
        return [pred, 0.5 * pred], target
    return pred, target


def check_loss(loss: str | Callable[..., Any], /, *, inputs: str | None = None,
               encoder: str | Callable[..., Any] | Mapping[str, Any] | None = None,
               devices: Sequence[str] | None = None, seed: int = 0,
               params: Mapping[str, Any] | None = None, **more: Any) -> list[str]:
    """Check a loss: ``loss(pred=..., target=..., weights=[B, K])`` -> ``{"loss": scalar, ...}``.

    ``inputs``: ``heatmaps`` ([B, K, h, w]), ``coordinates`` ([B, K, 2]) or ``stages`` (a
    list of heatmap predictions); default: the first form the loss accepts. ``encoder``:
    use that encoder's targets instead (a registered name, a factory, or
    ``{"use": name, **params}``): its heatmaps, for losses of several maps per joint, or
    its per-axis vectors, which the loss takes as ``pred_x``, ``target_x``, ``pred_y``, ...
    """
    s = subject("loss", loss, {**(params or {}), **more})
    outputs = declared_outputs(s, ("loss",))
    generator = torch.Generator().manual_seed(seed)
    axes: tuple[str, ...] = ()
    channels = 1
    if encoder is not None:
        _, made, _, _, made_form = encoded_targets(s, encoder, generator)
        channels = made_form.channels
        if list(made) != ["heatmaps"]:
            axes = tuple("xyz"[:len(made)])
            target: Any = tuple(made.values())
        else:
            target = made["heatmaps"]
    accepts(s, (*(f"{side}_{a}" for a in axes for side in ("pred", "target")), "weights") if axes
            else ("pred", "target", "weights"))
    fn = s.build()
    weights = torch.ones(BATCH, JOINTS)

    def arguments(p: Any, t: Any) -> dict[str, Any]:
        if not axes:
            return {"pred": p, "target": t}
        return {**{f"pred_{a}": v for a, v in zip(axes, p)}, **{f"target_{a}": v for a, v in zip(axes, t)}}

    errors = []
    forms = ["encoder targets"] if encoder is not None else [inputs] if inputs else LOSS_INPUTS
    for form in forms:
        if encoder is not None:
            pred = tuple(0.1 * torch.randn(v.shape, generator=generator) for v in target) if axes \
                else 0.1 * torch.randn(target.shape, generator=generator)
        else:
            pred, target = loss_inputs(form, generator)
        try:
            fn(**arguments(pred, target), weights=weights)
            break
        except Exception as exc:
            errors.append(f"{form}: {_error(exc)}")
    else:
        s.fail("it rejected every input form (" + "; ".join(errors) + ")",
               "take pred and target of one shape ([B, K, h, w] maps or [B, K, 2] keypoints) and weights [B, K]")

    def value(p: Any, t: Any, w: torch.Tensor, context: str) -> torch.Tensor:
        given = {k: v for k, v in arguments(p, t).items() if not k.startswith("pred")}
        kept = snapshot_of({**given, "weights": w})
        out = check_keys(s, s.call(fn, "loss", **arguments(p, t), weights=w), outputs, f"loss({context})")
        unchanged(s, kept, {**given, "weights": w})
        return expect(s, "loss", out["loss"], (), device=w.device, context=f"for {context}")

    base = value(pred, target, weights, form)
    loss_gradient(s, value, pred, target, weights, form)
    muted = weights.clone()
    muted[0, 0] = 0.0
    reference = value(pred, target, muted, f"{form}, joint (0, 0) weighted 0")
    shifted = value(shift_joint(pred, 3.0, channels), target, muted, f"{form}, joint (0, 0) weighted 0")
    if not same(reference, shifted, 1e-6):
        s.fail("changing the prediction of a joint with weight 0 changes the loss",
               "multiply each joint's loss by its weight")
    if same(value(shift_joint(pred, 3.0, channels), target, weights, form), base, 1e-9):
        s.fail("changing a prediction does not change the loss", "compute the loss from pred")
    value(pred, target, torch.zeros_like(weights), f"{form}, all weights 0")
    value(zeros_like(pred), zeros_like(target), weights, f"{form}, all-zero pred and target")
    loss_gradient(s, value, pred, target, torch.zeros_like(weights), form, allow_zero=True)
    ran = ["outputs", "arguments", f"{form} input", "scalar loss", "gradient", "weights", "degenerate input"]
    for device in (devices if devices is not None else default_devices()):
        if device != "cpu":
            there = value(moved(pred, device), moved(target, device), weights.to(device), f"{form} on {device}")
            if not same(there, base, 1e-4):
                s.fail(f"the loss on {device} differs from the loss on the CPU", "use the same arithmetic everywhere")
            ran.append(f"on {device}")
    return ran


def shift_joint(pred: Any, amount: float, channels: int = 1) -> Any:
    """A copy of ``pred`` (or of every stage) with joint (0, 0) changed by up to ``amount``:
    every one of its ``channels`` maps.

    The change is a ramp, not a constant: softmax-based losses ignore constant offsets.
    """
    if isinstance(pred, (list, tuple)):
        return type(pred)(shift_joint(p, amount, channels) for p in pred)
    out = pred.detach().clone()
    joint = out[0, :channels]
    ramp = torch.arange(1, joint.numel() + 1, dtype=out.dtype, device=out.device)
    out[0, :channels] += amount * (ramp / ramp.numel()).view(joint.shape)
    return out


def zeros_like(pred: Any) -> Any:
    if isinstance(pred, (list, tuple)):
        return type(pred)(zeros_like(p) for p in pred)
    return torch.zeros_like(pred)


def loss_gradient(s: Subject, value: Callable[..., torch.Tensor], pred: Any, target: Any,
                  weights: torch.Tensor, form: str, *, allow_zero: bool = False) -> None:
    """The loss passes finite gradients back to every prediction (non-zero unless ``allow_zero``)."""
    several = isinstance(pred, (list, tuple))  # stages, or one prediction per axis
    leaves = [p.detach().clone().requires_grad_(True) for p in (pred if several else [pred])]
    context = f"{form}{', all weights 0' if allow_zero else ''}, with gradients"
    loss = value(type(pred)(leaves) if several else leaves[0], target, weights, context)
    if not loss.requires_grad:
        s.fail(f"the loss for {context} carries no gradient to pred",
               "compute it from pred with torch operations (no .detach(), .item() or numpy); "
               "with all weights 0 return pred.sum() * 0 rather than a new constant")
    loss.backward()
    for leaf in leaves:
        grad = leaf.grad
        if grad is None or not bool(torch.isfinite(grad).all()):
            s.fail(f"the gradient of the loss for {context} is missing or not finite",
                   "guard divisions by sums of weights against 0 (clamp the denominator)")
        if not allow_zero and not bool(grad.abs().sum() > 0):
            s.fail(f"the gradient of the loss for {context} is zero", "compute the loss from pred")


# -- metrics ----------------------------------------------------------------------------------
METRIC_BATCH = 8


def metric_data(names: Iterable[str], joints: int, dims: int, generator: torch.Generator) -> dict[str, Any]:
    """``pred``, ``target``, ``visible`` and the extra tensors named in ``names`` that are known.

    Known extras: ``head_size`` [B], ``bbox`` [B, 4] (x, y, w, h), ``area`` [B], ``scores`` [B, K].
    """
    target = 8.0 + 48.0 * torch.rand(METRIC_BATCH, joints, dims, generator=generator)
    pred = target + 2.0 * torch.randn(target.shape, generator=generator)
    visible = (torch.rand(METRIC_BATCH, joints, generator=generator) > 0.2).float()
    visible[:, 0] = 1.0
    low, high = target[..., :2].amin(1), target[..., :2].amax(1)
    box = torch.cat([low, high - low], dim=-1)
    known = {"head_size": torch.full((METRIC_BATCH,), 12.0), "bbox": box,
             "area": box[:, 2] * box[:, 3],
             "scores": 0.5 + 0.5 * torch.rand(METRIC_BATCH, joints, generator=generator)}
    data: dict[str, Any] = {"pred": pred, "target": target, "visible": visible}
    data.update({name: known[name] for name in names if name in known})
    return data


def check_metric(metric: str | Callable[..., Any], /, *, inputs: Mapping[str, Any] | None = None,
                 keypoint_dims: int = 2, joints: int = 17, devices: Sequence[str] | None = None,
                 seed: int = 0, params: Mapping[str, Any] | None = None, **more: Any) -> list[str]:
    """Check a metric: ``update(pred=, target=, visible=, ...)`` per batch, ``compute() -> {name: float}``.

    Predictions are ``[8, joints, keypoint_dims]`` pixels. Extra tensors ``update``
    names (``head_size``, ``bbox``, ``area``, ``scores``) are made up; pass others, or your
    own, in ``inputs={name: tensor with 8 rows}``.
    """
    s = subject("metric", metric, {**(params or {}), **more})
    accepts(s, ("pred", "target", "visible"))
    if not isinstance(s.build(), Metric):
        s.fail("it is not a kitpose.metric.Metric", "subclass kitpose.metric.Metric and store per-sample "
               "tensors with self.accumulate(...): results then gather across processes")
    fn = call_target(s.factory, "metric")
    found = fit(fn, method=True) if fn is not None else None
    names, required, takes_extras = (found.names, found.required, found.takes_any) if found else ([], [], True)
    data = metric_data(names, joints, keypoint_dims, torch.Generator().manual_seed(seed))
    data.update(inputs or {})
    if not takes_extras:
        s.fail("its update takes no **extras", "add **extras to update: a metrics group passes each of its "
               "metrics every tensor any of them needs (head_size, bbox ...)")
    for name in required:
        if name not in data:
            s.fail(f"its update requires '{name}', which check_metric cannot make up",
                   f"pass inputs={{'{name}': TENSOR}} with {METRIC_BATCH} rows")

    def results(batches: Sequence[Mapping[str, Any]], context: str, instance: Any = None) -> dict[str, float]:
        m = instance if instance is not None else s.build()
        for batch in batches:
            given = snapshot_of(batch)
            s.call(m.update, "update", **batch)
            unchanged(s, given, batch)
        out = s.call(m.compute, "compute")
        if not isinstance(out, Mapping) or not all(isinstance(k, str) for k in out):
            s.fail(f"compute() after {context} returned {type(out).__name__}", "return {name: float}")
        try:
            return {k: float(v) for k, v in out.items()}
        except (TypeError, ValueError) as exc:
            s.fail(f"compute() after {context} returned a value that is not a number ({exc})",
                   "return {name: float}")

    def agree(a: Mapping[str, float], b: Mapping[str, float]) -> bool:
        return a.keys() == b.keys() and all(same(torch.tensor(a[k]), torch.tensor(b[k]), 1e-6) for k in a)

    first = {k: per_rows(v, slice(0, METRIC_BATCH // 2)) for k, v in data.items()}
    second = {k: per_rows(v, slice(METRIC_BATCH // 2, None)) for k, v in data.items()}
    results([], "no update")
    full = results([data], "one batch")
    if not full:
        s.fail("compute() returned no values", "return at least one {name: float}")
    if not all(math.isfinite(v) for v in full.values()):
        s.fail(f"compute() gave NaN or inf for ordinary predictions: {full}", "guard its divisions")
    if not agree(results([{**data, "unrelated": torch.ones(METRIC_BATCH)}], "an unrelated tensor"), full):
        s.fail("an extra keyword tensor changes the results", "ignore tensors the metric does not use")
    if not agree(results([first, second], "two batches"), full):
        s.fail("results over two batches differ from one batch of the same samples",
               "accumulate per-sample values with self.accumulate and reduce them all in compute()")
    m = s.build()
    s.call(m.update, "update", **first)
    s.call(m.reset, "reset")
    if not agree(results([second], "reset()", instance=m), results([second], "the second half")):
        s.fail("after reset() the results still count earlier batches", "forget every batch in reset()")
    if agree(results([{**data, "pred": data["target"]}], "perfect predictions"), full):
        s.fail("the results do not change when the predictions change", "compute the results from pred")
    hidden = data["pred"] + 50.0 * (data["visible"] == 0)[..., None]
    if not agree(results([{**data, "pred": hidden}], "moved invisible joints"), full):
        s.fail("moving joints with visible = 0 changes the results", "count only joints where visible > 0")
    blind = results([{**data, "visible": torch.zeros_like(data["visible"])}], "no visible joint")
    if blind.keys() != full.keys():
        s.fail(f"with no visible joint compute() names {sorted(blind)}, otherwise {sorted(full)}",
               "always return the same names (NaN when nothing was counted): they are table columns")
    m = s.build()
    s.call(m.update, "update", **data)
    per_joint = s.call(m.per_joint, "per_joint")
    for name, values in (per_joint or {}).items():
        if len(values) != joints:
            s.fail(f"per_joint()['{name}'] has {len(values)} values for {joints} joints", "give one per joint")
    ran = ["arguments", "Metric subclass", "results", "extra tensors", "accumulation", "reset", "uses pred",
           "visibility", "no visible joint", "per joint"]
    for device in (devices if devices is not None else default_devices()):
        if device != "cpu":
            if not agree(results([{k: moved(v, device) for k, v in data.items()}], f"a batch on {device}"), full):
                s.fail(f"results on {device} differ from those on the CPU", "use the same arithmetic everywhere")
            ran.append(f"on {device}")
    return ran


def per_rows(value: Any, rows: slice) -> Any:
    return value[rows] if isinstance(value, torch.Tensor) and value.dim() else value


# -- monitors ---------------------------------------------------------------------------------
def monitor_session(folder: Path) -> list[tuple[str, tuple[Any, ...]]]:
    """The hook calls of a short run, with NaN losses, empty metrics and a snapshot."""
    import numpy as np

    rng = np.random.default_rng(0)
    keypoints = rng.uniform(4, 28, (2, 3, 2)).astype(np.float32)
    visible = np.ones((2, 3), np.float32)
    visible[1, 2] = 0
    maps = rng.random((2, 3, 8, 8)).astype(np.float32)
    skeleton = ((0, 1), (1, 2))
    batch = {"image": rng.random((2, 3, 32, 32)).astype(np.float32), "keypoints": keypoints,
             "visible": visible, "heatmaps": maps, "target": maps[:, :, ::-1].copy()}
    snapshot = Snapshot({"argmax": {**batch, "pred_keypoints": keypoints + 1},
                         "dark": {**batch, "pred_keypoints": keypoints - 0.5}})
    info = RunInfo(name="check", dir=folder, recipe={"kitpose": 1, "name": "check"}, epochs=2,
                   steps_per_epoch=3, joint_names=("head", "neck", "hip"), skeleton=skeleton)
    losses = [1.0, 0.5, 0.25, float("nan"), float("inf"), 0.1]
    calls: list[tuple[str, tuple[Any, ...]]] = [("on_start", (info,))]
    for step, loss in enumerate(losses, start=1):
        calls.append(("on_step", (step, (step - 1) // 3, {"loss": loss, "lr": 1e-3, "images_per_s": 50.0})))
        if step % 3 == 0:
            metrics = {"argmax": {"PCKh@0.5": 0.5, "EPE": 3.0}, "dark": {"PCKh@0.5": float("nan"), "EPE": 2.0}}
            calls.append(("on_epoch", (step // 3, metrics if step == 3 else {}, snapshot if step == 3 else None)))
    table = "| decoder | EPE |\n|---|---:|\n| argmax | 3.0 |\n| dark | nan |"
    calls += [("on_end", ({"argmax": {"EPE": 3.0}, "dark": {"EPE": float("nan")}}, table)), ("close", ())]
    return calls


def check_monitor(monitor: str | Callable[..., Any], /, *, run_dir: str | Path | None = None,
                  params: Mapping[str, Any] | None = None, **more: Any) -> list[str]:
    """Check a monitor: every hook of a short run (NaN losses, empty metrics, a snapshot) returns.

    Also checks ``close()`` alone (a run that fails before it starts) and a resumed run
    that ends without results. ``run_dir``: where the run writes; default: a temporary folder.
    """
    s = subject("monitor", monitor, {**(params or {}), **more})
    mon = s.build()
    missing = [hook for hook in MONITOR_HOOKS if not callable(getattr(mon, hook, None))]
    if missing:
        s.fail(f"it has no {missing[0]}() hook", "subclass kitpose.monitor.Monitor, which provides every hook")
    with tempfile.TemporaryDirectory(prefix="kitpose-monitor-") as tmp:
        folder = Path(run_dir) if run_dir is not None else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        session = monitor_session(folder)
        resumed = RunInfo(name="check", dir=folder, recipe={}, epochs=2, steps_per_epoch=3, start_epoch=1)
        for instance, calls in ((mon, session), (s.build(), [("close", ())]),
                                (s.build(), [("on_start", (resumed,)), ("on_end", ({}, "")), ("close", ())])):
            for hook, args in calls:
                try:
                    getattr(instance, hook)(*args)
                except Exception as exc:
                    s.fail(f"{hook}() raised {_error(exc)}",
                           "catch errors inside the hook and report them once: a monitor must never stop a run")
    return ["hooks", "a run", "close without a run", "a resumed run without results"]


# -- by kind ----------------------------------------------------------------------------------
CHECKS: dict[str, Callable[..., list[str]]] = {
    "decoder": check_decoder, "encoder": check_encoder, "loss": check_loss,
    "metric": check_metric, "monitor": check_monitor,
}


def check_component(kind: str, target: str | Callable[..., Any], /, **options: Any) -> list[str]:
    """Run the contract checks of ``kind`` on ``target`` (a registered name or a factory)."""
    if kind not in CHECKS:
        raise ValueError(f"no contract checks for kind '{kind}'; checks exist for: {', '.join(CHECKS)}")
    return CHECKS[kind](target, **options)
