"""Prediction heads: features -> 2D heatmaps, 3D volumes or coordinates.

- ``HeatmapHead``: optional SimpleBaseline deconvolution stack, then a 1x1 conv to
  one map per joint (``deconv_layers=3`` after ResNet, ``0`` after HRNet).
- ``VolumetricHead``: the same, with ``joints * depth`` output channels viewed as
  ``[B, K, D, h, w]`` volumes (the Integral paper's 3D heatmaps).
- ``RegressionHead``: the Integral paper's R1 baseline, global average pooling and a
  fully connected layer straight to coordinates.
"""
from __future__ import annotations

from typing import Annotated, Literal

import torch
from torch import nn

from kitpose.registry import Range
from kitpose_plugins.models.blocks import deconv_stack
from kitpose_plugins.models.pretrained import load_pretrained
from kitpose_plugins.models.common import (Channels, Count, Joints, check_input, choice,
                                           init_conv_weights, init_output_layer, non_negative_int,
                                           positive_int)


class _DeconvHead(nn.Module):
    """Shared body of the dense heads: deconvolutions, then a KxC 1x1 (or kxk) conv."""

    name = "head"

    def __init__(self, in_channels: int, out_maps: int, deconv_layers: int, deconv_channels: int,
                 final_kernel: int) -> None:
        super().__init__()
        what = f"head '{self.name}'"
        self.in_channels = positive_int(in_channels, "in_channels", what)
        layers = non_negative_int(deconv_layers, "deconv_layers", what)
        width = positive_int(deconv_channels, "deconv_channels", what)
        kernel = choice(final_kernel, "final_kernel", (1, 3), what)
        self.deconv = deconv_stack(self.in_channels, layers, width)
        self.final = nn.Conv2d(width if layers else self.in_channels, out_maps, kernel,
                               padding=kernel // 2)
        init_conv_weights(self)
        init_output_layer(self.final)

    def maps(self, features: torch.Tensor) -> torch.Tensor:
        check_input(features, self.in_channels, "features", f"head '{self.name}'")
        return self.final(self.deconv(features))


class HeatmapHead(_DeconvHead):
    """2D heatmap head: optional 4x4 stride-2 deconvolutions, then a conv to one map per joint.

    :param in_channels: channels of the incoming features (the backbone's ``out_channels``).
    :param joints: number of keypoints K.
    :param deconv_layers: SimpleBaseline upsampling layers, each doubling H and W
        (3 after a stride-32 ResNet, 0 after a stride-4 HRNet).
    :param deconv_channels: channels of every deconvolution layer.
    :param final_kernel: kernel of the last convolution (1 or 3).
    :param pretrained: path of a local checkpoint to load.

    Called as ``head(features=[B, C, h, w])``; returns ``{"heatmaps": [B, K, h * 2**L, w * 2**L]}``.
    """

    name = "heatmap"
    outputs = ("heatmaps",)

    def __init__(self, in_channels: Channels, joints: Joints, deconv_layers: int = 0,
                 deconv_channels: Channels = 256, final_kernel: Literal[1, 3] = 1,
                 pretrained: str | None = None) -> None:
        joints = positive_int(joints, "joints", "head 'heatmap'")
        super().__init__(in_channels, joints, deconv_layers, deconv_channels, final_kernel)
        self.joints = joints
        if pretrained:
            load_pretrained(self, pretrained, "head 'heatmap'")

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"heatmaps": self.maps(features)}


class VolumetricHead(_DeconvHead):
    """3D heatmap head: K x D output channels viewed as [B, K, D, h, w] depth-binned volumes.

    :param in_channels: channels of the incoming features.
    :param joints: number of keypoints K.
    :param depth: depth bins D per joint (64 in the Integral paper).
    :param deconv_layers: 4x4 stride-2 deconvolution layers before the output conv.
    :param deconv_channels: channels of every deconvolution layer.
    :param final_kernel: kernel of the last convolution (1 or 3).
    :param pretrained: path of a local checkpoint to load.

    Called as ``head(features=[B, C, h, w])``; returns ``{"heatmaps": [B, K, D, h', w']}``
    with channel ``k * D + d`` of the last convolution at ``[:, k, d]``.
    """

    name = "volumetric"
    outputs = ("heatmaps",)

    def __init__(self, in_channels: Channels, joints: Joints, depth: Annotated[int, Range(1, 1024)] = 64,
                 deconv_layers: int = 0, deconv_channels: Channels = 256, final_kernel: Literal[1, 3] = 1,
                 pretrained: str | None = None) -> None:
        joints = positive_int(joints, "joints", "head 'volumetric'")
        depth = positive_int(depth, "depth", "head 'volumetric'")
        super().__init__(in_channels, joints * depth, deconv_layers, deconv_channels, final_kernel)
        self.joints, self.depth = joints, depth
        if pretrained:
            load_pretrained(self, pretrained, "head 'volumetric'")

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        maps = self.maps(features)
        b, _, h, w = maps.shape
        return {"heatmaps": maps.view(b, self.joints, self.depth, h, w)}


class RegressionHead(nn.Module):
    """Direct regression (R1): global average pooling + one linear layer to K x 2 or K x 3.

    Coordinates come out in the *heatmap pixel frame* used by the encoders and
    decoders (pixel centres at integers, stride ``stride`` of the input), so the
    coordinate losses and ``encoder.to_image`` apply unchanged. The layer predicts a
    fraction ``u`` of the map, starting near its centre (small weights, zero bias), and
    ``x = (0.5 + u_x) * W - 0.5`` with ``W = w_features * feature_stride / stride``
    (same for y with H); for 3D, ``z = (0.5 + u_z) * depth - 0.5`` in depth bins,
    the unit of the volumetric head.

    :param in_channels: channels of the incoming features.
    :param joints: number of keypoints K.
    :param dims: 2 for (x, y), 3 for (x, y, z).
    :param feature_stride: stride of the incoming features (4 for HRNet, 32 for ResNet).
    :param stride: stride of the heatmap frame the coordinates are given in (the encoder's).
    :param depth: depth bins spanned by z (``dims=3`` only).
    :param pretrained: path of a local checkpoint to load.

    Called as ``head(features=[B, C, h, w])``; returns ``{"keypoints": [B, K, dims]}``.
    """

    outputs = ("keypoints",)

    def __init__(self, in_channels: Channels, joints: Joints, dims: Literal[2, 3] = 2,
                 feature_stride: Count = 4, stride: Count = 4, depth: Count = 64,
                 pretrained: str | None = None) -> None:
        super().__init__()
        what = "head 'regression'"
        self.in_channels = positive_int(in_channels, "in_channels", what)
        self.joints = positive_int(joints, "joints", what)
        self.dims = choice(dims, "dims", (2, 3), what)
        self.scale = (positive_int(feature_stride, "feature_stride", what)
                      / positive_int(stride, "stride", what))
        self.depth = positive_int(depth, "depth", what)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(self.in_channels, self.joints * self.dims)
        init_output_layer(self.fc)
        if pretrained:
            load_pretrained(self, pretrained, what)

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        check_input(features, self.in_channels, "features", "head 'regression'")
        b, _, h, w = features.shape
        u = self.fc(self.pool(features).flatten(1)).view(b, self.joints, self.dims)
        extent = [w * self.scale, h * self.scale] + ([float(self.depth)] if self.dims == 3 else [])
        extent_t = torch.tensor(extent, dtype=u.dtype, device=u.device)
        return {"keypoints": (0.5 + u) * extent_t - 0.5}
