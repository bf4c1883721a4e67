"""ResNet (He et al., 2016) as a pose backbone, and the Integral paper's multi-stage variant.

``ResNet`` returns its last feature map (stride 32); SimpleBaseline / the Integral
paper put the ``heatmap`` head with three 4x4 stride-2 deconvolutions on top of it.

``ResNetMultiStage`` ends in heatmaps itself. The stem and the first residual
layer (stride 4) are computed once and shared; every stage then runs its own
layers 2-4, three deconvolutions back to stride 4 and a 1x1 conv to K heatmaps.
From the second stage on, a stage reads the shared features plus 1x1-conv
projections of the previous stage's heatmaps and deconvolution features (summed,
as between the stacks of a stacked hourglass). Every stage's heatmaps are returned
for intermediate supervision.
"""
from __future__ import annotations

from typing import Annotated, Literal

import torch
from torch import nn

from kitpose.errors import ComponentError
from kitpose.registry import Range
from kitpose_plugins.models.blocks import BasicBlock, Block, Bottleneck, deconv_stack, residual_layer
from kitpose_plugins.models.pretrained import load_pretrained
from kitpose_plugins.models.common import (Channels, Joints, check_input, choice, init_conv_weights,
                                           init_output_layer, positive_int)

Depth = Literal[18, 34, 50, 101, 152]

#: depth -> (block, blocks in layers 1-4)
DEPTHS: dict[int, tuple[Block, tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}


def resnet_stem(in_channels: int, channels: int) -> nn.Sequential:
    """7x7 conv of stride 2, BN, ReLU, 3x3 max pool of stride 2: input -> stride 4."""
    return nn.Sequential(
        nn.Conv2d(in_channels, channels, 7, stride=2, padding=3, bias=False),
        nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
        nn.MaxPool2d(3, stride=2, padding=1))


def resnet_layers(block: Block, counts: tuple[int, ...], in_channels: int, base: int,
                  first: int) -> tuple[nn.Sequential, int]:
    """Residual layers ``first``..4 (1-based) and their output channels.

    Layer ``i`` has ``base * 2**(i-1)`` planes and halves the resolution, except layer 1.
    """
    layers = []
    channels = in_channels
    for i in range(first, 5):
        planes = base * 2 ** (i - 1)
        layers.append(residual_layer(block, channels, planes, counts[i - 1], stride=1 if i == 1 else 2))
        channels = planes * block.expansion
    return nn.Sequential(*layers), channels


def _depth(depth: int, what: str) -> tuple[Block, tuple[int, int, int, int]]:
    return DEPTHS[choice(depth, "depth", DEPTHS, what)]


class ResNet(nn.Module):
    """ResNet backbone (depth 18/34/50/101/152): its last feature map, at stride 32.

    :param depth: 18, 34, 50, 101 or 152.
    :param base_channels: channels of the stem and of layer 1's planes (64 in the paper).
    :param in_channels: image channels (3 for colour, 1 for depth maps).
    :param pretrained: path of a local checkpoint to load.

    Called as ``resnet(image=[B, C, H, W])``; returns ``{"features": [B, C', H/32, W/32]}``
    with ``C' = out_channels`` (512 for depths 18/34, 2048 for 50 and deeper).
    """

    outputs = ("features",)

    def __init__(self, depth: Depth = 50, base_channels: Annotated[int, Range(1, 512)] = 64,
                 in_channels: Channels = 3,
                 pretrained: str | None = None) -> None:
        super().__init__()
        what = "backbone 'resnet'"
        block, counts = _depth(depth, what)
        base = positive_int(base_channels, "base_channels", what)
        self.in_channels = positive_int(in_channels, "in_channels", what)
        self.depth = depth
        self.stem = resnet_stem(self.in_channels, base)
        self.layers, self.out_channels = resnet_layers(block, counts, base, base, first=1)
        init_conv_weights(self)
        if pretrained:
            load_pretrained(self, pretrained, what)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        check_input(image, self.in_channels, "image", "backbone 'resnet'")
        return {"features": self.layers(self.stem(image))}


class _Stage(nn.Module):
    """One stage: ResNet layers 2-4, three deconvolutions back to stride 4, 1x1 conv to K maps."""

    def __init__(self, block: Block, counts: tuple[int, ...], in_channels: int, base: int,
                 deconv_channels: int, joints: int) -> None:
        super().__init__()
        self.body, channels = resnet_layers(block, counts, in_channels, base, first=2)
        self.deconv = deconv_stack(channels, 3, deconv_channels)
        self.final = nn.Conv2d(deconv_channels, joints, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.deconv(self.body(x))
        return self.final(features), features


class ResNetMultiStage(nn.Module):
    """Multi-stage ResNet (Integral paper): shared early layers, each stage re-reading the last heatmaps.

    :param joints: number of keypoints K.
    :param depth: 18, 34, 50, 101 or 152 (the layers each stage repeats).
    :param stages: number of stages, each supervised.
    :param deconv_channels: channels of each stage's three deconvolution layers.
    :param base_channels: channels of the stem and of layer 1's planes (64 in the paper).
    :param in_channels: image channels (3 for colour, 1 for depth maps).
    :param pretrained: path of a local checkpoint to load.

    Called as ``model(image=[B, C, H, W])`` with H and W multiples of 32; returns
    ``{"heatmaps": [B, K, H/4, W/4], "stages": [every stage's heatmaps, last one last]}``.
    """

    outputs = ("heatmaps", "stages")

    def __init__(self, joints: Joints, depth: Depth = 50, stages: Annotated[int, Range(1, 16)] = 2,
                 deconv_channels: Channels = 256, base_channels: Annotated[int, Range(1, 512)] = 64,
                 in_channels: Channels = 3, pretrained: str | None = None) -> None:
        super().__init__()
        what = "backbone 'resnet_multistage'"
        block, counts = _depth(depth, what)
        self.joints = positive_int(joints, "joints", what)
        count = positive_int(stages, "stages", what)
        base = positive_int(base_channels, "base_channels", what)
        width = positive_int(deconv_channels, "deconv_channels", what)
        self.in_channels = positive_int(in_channels, "in_channels", what)
        self.stem = resnet_stem(self.in_channels, base)
        self.layer1 = residual_layer(block, base, base, counts[0])
        early = base * block.expansion
        self.stages = nn.ModuleList(_Stage(block, counts, early, base, width, self.joints)
                                    for _ in range(count))
        self.reread_maps = nn.ModuleList(nn.Conv2d(self.joints, early, 1) for _ in range(count - 1))
        self.reread_features = nn.ModuleList(nn.Conv2d(width, early, 1) for _ in range(count - 1))
        init_conv_weights(self)
        for stage in self.stages:
            init_output_layer(stage.final)
        if pretrained:
            load_pretrained(self, pretrained, what)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        what = "backbone 'resnet_multistage'"
        check_input(image, self.in_channels, "image", what)
        if image.shape[-2] % 32 or image.shape[-1] % 32:
            raise ComponentError(f"{what} needs H and W that are multiples of 32, got {list(image.shape)}")
        early = self.layer1(self.stem(image))
        x = early
        outputs: list[torch.Tensor] = []
        for i, stage in enumerate(self.stages):
            if i:
                x = early + self.reread_maps[i - 1](outputs[-1]) + self.reread_features[i - 1](features)
            maps, features = stage(x)
            outputs.append(maps)
        return {"heatmaps": outputs[-1], "stages": outputs}
