"""Stacked Hourglass (Newell et al., 2016) with intermediate supervision.

- residual module: pre-activation bottleneck (BN-ReLU-1x1 to half width, BN-ReLU-3x3,
  BN-ReLU-1x1 back), 1x1 projection on the shortcut when the width changes;
- stem: 7x7 conv of stride 2 to ``stem_channels / 2``, residual to ``stem_channels``
  (128 in the paper), 2x2 max pool, two residuals (the second to ``width``):
  input -> stride 4. The stem's first residual runs at stride 2, so on a CPU it
  dominates the cost of a narrow network unless ``stem_channels`` shrinks with it;
- hourglass of depth ``d``: a skip branch of residuals at the current resolution,
  and max pool -> residuals -> hourglass of depth ``d-1`` (or residuals at the
  bottom) -> residuals -> nearest upsampling, added to the skip branch;
- after each hourglass: residuals, 1x1 conv-BN-ReLU, 1x1 conv to K heatmaps; before the
  next stack, 1x1 projections of those features and of the heatmaps are added to
  the stack's input.
"""
from __future__ import annotations

from typing import Annotated

import torch
import torch.nn.functional as F
from torch import nn

from kitpose.errors import ComponentError
from kitpose.registry import Range
from kitpose_plugins.models.blocks import conv_bn
from kitpose_plugins.models.pretrained import load_pretrained
from kitpose_plugins.models.common import (Channels, Count, Joints, check_input, init_conv_weights,
                                           init_output_layer, positive_int)


class Residual(nn.Module):
    """Pre-activation bottleneck residual module of the hourglass paper."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        mid = max(out_channels // 2, 1)
        self.body = nn.Sequential(
            nn.BatchNorm2d(in_channels), nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, mid, 1),
            nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, 3, padding=1),
            nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
            nn.Conv2d(mid, out_channels, 1))
        self.skip = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.body(x)


def residuals(channels: int, count: int) -> nn.Sequential:
    """``count`` residual modules of constant width."""
    return nn.Sequential(*[Residual(channels, channels) for _ in range(count)])


class Hourglass(nn.Module):
    """One hourglass: ``depth`` halvings and mirrored upsamplings with skip branches."""

    def __init__(self, depth: int, channels: int, blocks: int) -> None:
        super().__init__()
        self.skip = residuals(channels, blocks)
        self.down = residuals(channels, blocks)
        self.inner: nn.Module = (Hourglass(depth - 1, channels, blocks) if depth > 1
                                 else residuals(channels, blocks))
        self.up = residuals(channels, blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = self.up(self.inner(self.down(F.max_pool2d(x, 2))))
        return self.skip(x) + F.interpolate(low, size=x.shape[-2:], mode="nearest")


class StackedHourglass(nn.Module):
    """Stacked Hourglass: heatmaps from every stack, for intermediate supervision.

    :param joints: number of keypoints K.
    :param stacks: number of hourglasses (8 in the paper, 4 in the HUMAN4D reproduction).
    :param width: channels inside the hourglasses (256 in the paper, 128 in the reproduction).
    :param depth: halvings per hourglass (4: a 64x64 map goes down to 4x4).
    :param blocks: residual modules at each place of an hourglass (1 in the paper).
    :param stem_channels: channels of the stem before the last residual (128 in the paper;
        32 makes a 2-stack width-32 network about three times faster on a CPU).
    :param in_channels: image channels (3 for colour, 1 for depth maps).
    :param pretrained: path of a local checkpoint to load.

    Called as ``model(image=[B, C, H, W])``; returns ``{"heatmaps": [B, K, H/4, W/4],
    "stages": [every stack's heatmaps, last one last]}``.
    """

    outputs = ("heatmaps", "stages")

    def __init__(self, joints: Joints, stacks: Annotated[int, Range(1, 16)] = 4, width: Channels = 128,
                 depth: Annotated[int, Range(1, 8)] = 4, blocks: Count = 1, stem_channels: Channels = 128,
                 in_channels: Channels = 3,
                 pretrained: str | None = None) -> None:
        super().__init__()
        what = "backbone 'hourglass'"
        self.joints = positive_int(joints, "joints", what)
        count = positive_int(stacks, "stacks", what)
        width = positive_int(width, "width", what)
        self.depth = positive_int(depth, "depth", what)
        blocks = positive_int(blocks, "blocks", what)
        stem = positive_int(stem_channels, "stem_channels", what)
        self.in_channels = positive_int(in_channels, "in_channels", what)
        self.stem = nn.Sequential(
            conv_bn(self.in_channels, max(stem // 2, 1), 7, 2),
            Residual(max(stem // 2, 1), stem), nn.MaxPool2d(2),
            Residual(stem, stem), Residual(stem, width))
        self.hourglasses = nn.ModuleList(Hourglass(self.depth, width, blocks) for _ in range(count))
        self.features = nn.ModuleList(
            nn.Sequential(residuals(width, blocks), conv_bn(width, width, 1)) for _ in range(count))
        self.heads = nn.ModuleList(nn.Conv2d(width, self.joints, 1) for _ in range(count))
        self.merge_features = nn.ModuleList(nn.Conv2d(width, width, 1) for _ in range(count - 1))
        self.merge_maps = nn.ModuleList(nn.Conv2d(self.joints, width, 1) for _ in range(count - 1))
        init_conv_weights(self)
        for head in self.heads:
            init_output_layer(head)
        if pretrained:
            load_pretrained(self, pretrained, what)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        what = "backbone 'hourglass'"
        check_input(image, self.in_channels, "image", what)
        smallest = 4 * 2 ** self.depth
        if min(image.shape[-2:]) < smallest:
            raise ComponentError(f"{what} of depth {self.depth} needs images of at least "
                                 f"{smallest}x{smallest} px, got {list(image.shape)}")
        x = self.stem(image)
        outputs: list[torch.Tensor] = []
        for i, (hourglass, features, head) in enumerate(zip(self.hourglasses, self.features, self.heads)):
            y = features(hourglass(x))
            maps = head(y)
            outputs.append(maps)
            if i < len(self.merge_maps):
                x = x + self.merge_features[i](y) + self.merge_maps[i](maps)
        return {"heatmaps": outputs[-1], "stages": outputs}
