"""Checks and helpers shared by every built-in model part.

Model parts take their sizes from recipes, so a wrong value (a depth of 42, an
image with one channel fed to a colour model) must fail with one clear line
naming the parameter to change, not with a shape error deep inside a convolution.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Annotated, TypeVar

import torch
from torch import nn

from kitpose.errors import ComponentError
from kitpose.registry import Range

#: parameter annotations ``kitpose check`` enforces before a model is built: counts are at
#: least 1; channel widths and joint counts have an upper bound above every published
#: model, so a typo (width: 32000) is refused instead of exhausting memory
Joints = Annotated[int, Range(1, 1024)]
Channels = Annotated[int, Range(1, 4096)]
Count = Annotated[int, Range(1, None)]

T = TypeVar("T")


def positive_int(value: object, name: str, what: str) -> int:
    """``value`` as an int >= 1, or a :class:`ComponentError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ComponentError(f"{what}: '{name}' must be a positive integer, got {value!r}")
    return value


def non_negative_int(value: object, name: str, what: str) -> int:
    """``value`` as an int >= 0, or a :class:`ComponentError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ComponentError(f"{what}: '{name}' must be an integer >= 0, got {value!r}")
    return value


def choice(value: object, name: str, allowed: Iterable[T], what: str) -> T:
    """The element of ``allowed`` equal to ``value`` (same type), else a :class:`ComponentError`."""
    allowed = tuple(allowed)
    for option in allowed:
        if type(option) is type(value) and option == value:
            return option
    listing = ", ".join(str(a) for a in allowed)
    raise ComponentError(f"{what}: '{name}' must be one of {listing}, got {value!r}")


def per_stage(value: int | Sequence[int], count: int, name: str, what: str) -> list[int]:
    """Expand an int to ``count`` copies, or check a list has ``count`` positive ints."""
    if isinstance(value, int) and not isinstance(value, bool):
        return [positive_int(value, name, what)] * count
    items = list(value)
    if len(items) != count:
        raise ComponentError(f"{what}: '{name}' needs {count} values (one per stage), got {len(items)}")
    return [positive_int(v, name, what) for v in items]


def check_input(tensor: torch.Tensor, channels: int, argument: str, what: str) -> None:
    """Raise when ``tensor`` is not ``[B, channels, H, W]``, saying which parameter to set."""
    if not isinstance(tensor, torch.Tensor) or tensor.dim() != 4:
        shape = list(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
        raise ComponentError(f"{what} expects '{argument}' as [B, {channels}, H, W], got {shape}")
    if tensor.shape[1] != channels:
        raise ComponentError(
            f"{what} expects '{argument}' with {channels} channels, got {list(tensor.shape)}; "
            f"set in_channels: {tensor.shape[1]}")


def init_conv_weights(module: nn.Module) -> None:
    """He initialisation for convolutions, unit scale for batch norms.

    Every model here trains from scratch (no download of pretrained weights), so
    the usual ImageNet-fine-tuning init (tiny normals) would leave deep layers dead.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def init_output_layer(layer: nn.Module, std: float = 0.001) -> None:
    """Small normal weights and zero bias: predictions start near an all-zero map."""
    nn.init.normal_(layer.weight, std=std)
    if getattr(layer, "bias", None) is not None:
        nn.init.zeros_(layer.bias)

