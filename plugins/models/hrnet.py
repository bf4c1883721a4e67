"""HRNet (Sun et al., 2019): high-resolution features kept through the whole network.

Layout (the pose version, "HRNet-W32" when ``width=32``):

- stem: two 3x3 convolutions of stride 2 (input -> stride 4);
- stage 1: bottleneck blocks at stride 4 (``4 * stem_channels`` channels out);
- stage s = 2..4: ``s`` parallel branches at strides 4, 8, 16, 32 with
  ``width * 2**i`` channels; each stage is ``modules[s]`` exchange units, and each
  unit runs ``blocks[s]`` basic blocks per branch and then fuses every branch into
  every other (1x1 conv + nearest upsampling from lower resolutions, chains of
  strided 3x3 convs from higher ones, summed, ReLU). A transition before each stage
  opens the new lowest-resolution branch with a strided 3x3 conv;
- the last unit fuses into the highest-resolution branch only, which is the output:
  ``width`` channels at stride 4.

The published pose network is ``width=32, stages=4, blocks=4, modules=(1, 1, 4, 3),
stem_channels=64``; with a 17-joint 1x1 head it has about 28.5 M parameters.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from torch import nn

from kitpose.registry import Range
from kitpose_plugins.models.blocks import BasicBlock, Bottleneck, conv_bn, residual_layer
from kitpose_plugins.models.pretrained import load_pretrained
from kitpose_plugins.models.common import (Channels, check_input, choice, init_conv_weights,
                                           per_stage, positive_int)

@dataclass(frozen=True)
class Variant:
    """Default sizes of a named HRNet setting (per stage 1..4 where a tuple)."""

    width: int
    blocks: tuple[int, int, int, int]
    modules: tuple[int, int, int, int]
    stem_channels: int


#: Named settings; explicit parameters override them.
VARIANTS: dict[str, Variant] = {
    # the published pose HRNet (W32 by default; width=48 gives W48)
    "full": Variant(width=32, blocks=(4, 4, 4, 4), modules=(1, 1, 4, 3), stem_channels=64),
    # CPU-sized (~1.2 M parameters): one exchange unit per stage, fewer blocks, narrow stem
    "small": Variant(width=16, blocks=(1, 1, 2, 2), modules=(1, 1, 1, 1), stem_channels=32),
}


class ExchangeUnit(nn.Module):
    """Residual blocks on each branch, then every branch fused into each output branch."""

    def __init__(self, channels: Sequence[int], blocks: int, outputs: int) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            residual_layer(BasicBlock, c, c, blocks) for c in channels)
        self.fuse = nn.ModuleList(
            nn.ModuleList(_fuse_path(channels, j, i) for j in range(len(channels)))
            for i in range(outputs))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        out = []
        for i, paths in enumerate(self.fuse):
            size = xs[i].shape[-2:]
            total = xs[i]
            for j, path in enumerate(paths):
                if j == i:
                    continue
                y = path(xs[j])
                if j > i:  # lower resolution: bring it up to branch i's size
                    y = F.interpolate(y, size=size, mode="nearest")
                total = total + y
            out.append(self.relu(total))
        return out


def _fuse_path(channels: Sequence[int], source: int, target: int) -> nn.Module:
    """The layers carrying branch ``source`` into branch ``target`` (before upsampling)."""
    if source == target:
        return nn.Identity()
    if source > target:
        return conv_bn(channels[source], channels[target], 1, relu=False)
    steps = target - source
    layers = [conv_bn(channels[source], channels[source], 3, 2) for _ in range(steps - 1)]
    layers.append(conv_bn(channels[source], channels[target], 3, 2, relu=False))
    return nn.Sequential(*layers)


class Transition(nn.Module):
    """Adapt existing branches to the next stage's widths and open one new branch."""

    def __init__(self, before: Sequence[int], after: Sequence[int]) -> None:
        super().__init__()
        paths: list[nn.Module] = []
        for i, c in enumerate(after):
            if i < len(before):
                paths.append(nn.Identity() if before[i] == c else conv_bn(before[i], c, 3))
            else:
                paths.append(conv_bn(before[-1], c, 3, 2))
        self.paths = nn.ModuleList(paths)
        self.kept = len(before)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        out = [path(x) for path, x in zip(self.paths, xs)]
        out += [path(xs[-1]) for path in list(self.paths)[self.kept:]]
        return out


class HRNet(nn.Module):
    """HRNet backbone: parallel multi-resolution branches, features at stride 4.

    :param width: channels of the highest-resolution branch (32 for W32, 48 for W48).
    :param stages: 1 to 4; stage ``s`` has ``s`` branches (stage 1 is the bottleneck stem stage).
    :param blocks: residual blocks per branch in each exchange unit, one int or one per stage.
    :param modules: exchange units per stage, one int or one per stage.
    :param stem_channels: stem width; stage 1 outputs four times this.
    :param variant: ``full`` (the published pose HRNet) or ``small`` (CPU-sized: width 16,
        blocks (1, 1, 2, 2), modules (1, 1, 1, 1), stem 32); other parameters override it.
    :param in_channels: image channels (3 for colour, 1 for depth maps).
    :param pretrained: path of a local checkpoint to load.

    Called as ``hrnet(image=[B, C, H, W])``; returns ``{"features": [B, width, H/4, W/4]}``.
    """

    outputs = ("features",)

    #: the widest branch has 8 x width channels: 256 (5 x HRNet-W48) keeps it near 2048
    def __init__(self, width: Annotated[int, Range(1, 256)] | None = None, stages: Literal[1, 2, 3, 4] = 4,
                 blocks: int | Sequence[int] | None = None,
                 modules: int | Sequence[int] | None = None,
                 stem_channels: Channels | None = None, variant: Literal["full", "small"] = "full",
                 in_channels: Channels = 3, pretrained: str | None = None) -> None:
        super().__init__()
        what = "backbone 'hrnet'"
        preset = VARIANTS[choice(variant, "variant", VARIANTS, what)]
        stages = positive_int(stages, "stages", what)
        choice(stages, "stages", (1, 2, 3, 4), what)
        width = positive_int(preset.width if width is None else width, "width", what)
        stem = positive_int(preset.stem_channels if stem_channels is None else stem_channels,
                            "stem_channels", what)
        blocks_list = per_stage(preset.blocks[:stages] if blocks is None else blocks,
                                stages, "blocks", what)
        modules_list = per_stage(preset.modules[:stages] if modules is None else modules,
                                 stages, "modules", what)
        self.in_channels = positive_int(in_channels, "in_channels", what)
        self.width = width
        self.stage_modules = modules_list

        self.stem = nn.Sequential(conv_bn(self.in_channels, stem, 3, 2), conv_bn(stem, stem, 3, 2))
        wide = stem * Bottleneck.expansion
        self.stage1 = nn.Sequential(*[
            residual_layer(Bottleneck, stem if m == 0 else wide, stem, blocks_list[0])
            for m in range(modules_list[0])])
        channels = [wide]
        self.transitions = nn.ModuleList()
        self.stages = nn.ModuleList()
        for s in range(2, stages + 1):
            after = [width * 2 ** i for i in range(s)]
            self.transitions.append(Transition(channels, after))
            count = modules_list[s - 1]
            units = [ExchangeUnit(after, blocks_list[s - 1],
                                  outputs=1 if (s == stages and m == count - 1) else s)
                     for m in range(count)]
            self.stages.append(nn.ModuleList(units))
            channels = after
        self.out_channels = channels[0]
        init_conv_weights(self)
        if pretrained:
            load_pretrained(self, pretrained, what)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        check_input(image, self.in_channels, "image", "backbone 'hrnet'")
        xs = [self.stage1(self.stem(image))]
        for transition, units in zip(self.transitions, self.stages):
            xs = transition(xs)
            for unit in units:
                xs = unit(xs)
        return {"features": xs[0]}
