"""Residual blocks and the deconvolution stack shared by ResNet, HRNet and the heads.

``BasicBlock`` (two 3x3 convolutions) and ``Bottleneck`` (1x1 -> 3x3 -> 1x1, four
times wider at the output) are the blocks of He et al.'s ResNet; HRNet reuses both.
The deconvolution stack is SimpleBaseline's upsampler: each layer is a 4x4
transposed convolution of stride 2 followed by batch norm and ReLU.
"""
from __future__ import annotations

import torch
from torch import nn


def conv_bn(in_channels: int, out_channels: int, kernel: int = 3, stride: int = 1,
            relu: bool = True) -> nn.Sequential:
    """Convolution (no bias, 'same' padding) + batch norm (+ ReLU)."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(out_channels),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or projected) shortcut."""

    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out = planes * self.expansion
        self.body = nn.Sequential(conv_bn(in_channels, planes, 3, stride),
                                  conv_bn(planes, out, 3, relu=False))
        self.shortcut = _shortcut(in_channels, out, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride), 1x1 expand by 4, plus shortcut."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out = planes * self.expansion
        self.body = nn.Sequential(conv_bn(in_channels, planes, 1),
                                  conv_bn(planes, planes, 3, stride),
                                  conv_bn(planes, out, 1, relu=False))
        self.shortcut = _shortcut(in_channels, out, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


def _shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return conv_bn(in_channels, out_channels, 1, stride, relu=False)


Block = type[BasicBlock] | type[Bottleneck]


def residual_layer(block: Block, in_channels: int, planes: int, blocks: int,
                   stride: int = 1) -> nn.Sequential:
    """``blocks`` residual blocks; the first one takes the stride and the channel change."""
    layers = [block(in_channels, planes, stride)]
    layers += [block(planes * block.expansion, planes) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


def deconv_stack(in_channels: int, layers: int, channels: int = 256) -> nn.Sequential:
    """``layers`` x (4x4 transposed conv, stride 2 -> BN -> ReLU): each doubles H and W."""
    modules: list[nn.Module] = []
    for _ in range(layers):
        modules += [nn.ConvTranspose2d(in_channels, channels, 4, stride=2, padding=1, bias=False),
                    nn.BatchNorm2d(channels),
                    nn.ReLU(inplace=True)]
        in_channels = channels
    return nn.Sequential(*modules)
