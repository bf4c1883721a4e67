"""The SimCC head: features -> one map per joint -> two linear layers to the label vectors."""
from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import nn

from kitpose.errors import ComponentError
from kitpose_plugins.codecs.common import size_pair
from kitpose_plugins.models.blocks import deconv_stack
from kitpose_plugins.models.common import (Channels, Count, Joints, check_input, choice, init_conv_weights,
                                           non_negative_int, positive_int)
from kitpose_plugins.models.pretrained import load_pretrained
from kitpose_plugins.simcc.codec import label_sizes


class SimCCHead(nn.Module):
    """SimCC head: optional deconvolutions, a conv to one map per joint, flattened, two linear layers.

    Each joint's map ``[h, w]`` is flattened and mapped by the same two linear layers to
    ``simcc_x [B, K, round(W r)]`` and ``simcc_y [B, K, round(H r)]`` logits (mmpose's
    ``SimCCHead``), the lengths of the ``simcc`` encoder's labels.

    :param in_channels: channels of the incoming features (the backbone's ``out_channels``).
    :param joints: number of keypoints K.
    :param input_size: ``[W, H]`` of the input image in px (the encoder's ``input_size``).
    :param split_ratio: label bins per input px (the encoder's ``split_ratio``).
    :param feature_stride: stride of the incoming features (4 for HRNet, 32 for ResNet);
        the features are then ``ceil(W / stride) x ceil(H / stride)``.
    :param feature_size: ``[w, h]`` of the incoming features, when the stride does not
        say it (null: from ``feature_stride``).
    :param deconv_layers: 4x4 stride-2 deconvolutions before the conv, each doubling h and w.
    :param deconv_channels: channels of every deconvolution layer.
    :param final_layer: the conv to one map per joint (kernel ``final_kernel``); without
        it the features (or the last deconvolution) must have ``joints`` channels.
    :param pretrained: path of a local checkpoint to load.

    Called as ``head(features=[B, C, h, w])``; returns ``{"simcc_x": ..., "simcc_y": ...}``.
    """

    name = "simcc_head"
    outputs = ("simcc_x", "simcc_y")

    def __init__(self, in_channels: Channels, joints: Joints, input_size: Any = (192, 256),
                 split_ratio: float = 2.0, feature_stride: Count = 4, feature_size: Any = None,
                 deconv_layers: int = 0, deconv_channels: Channels = 256, final_layer: bool = True,
                 final_kernel: Literal[1, 3] = 1, pretrained: str | None = None) -> None:
        super().__init__()
        what = "head 'simcc_head'"
        self.in_channels = positive_int(in_channels, "in_channels", what)
        self.joints = positive_int(joints, "joints", what)
        (width, height), _, self.bins = label_sizes(what, input_size, split_ratio)
        layers = non_negative_int(deconv_layers, "deconv_layers", what)
        channels = positive_int(deconv_channels, "deconv_channels", what)
        kernel = choice(final_kernel, "final_kernel", (1, 3), what)
        if not isinstance(final_layer, bool):
            raise ComponentError(f"{what}: 'final_layer' must be true or false, got {final_layer!r}")
        if feature_size is None:
            stride = positive_int(feature_stride, "feature_stride", what)
            self.feature_size = (math.ceil(width / stride), math.ceil(height / stride))
        else:
            self.feature_size = size_pair(what, "feature_size", feature_size)
        self.deconv = deconv_stack(self.in_channels, layers, channels)
        before = channels if layers else self.in_channels
        if final_layer:
            self.final: nn.Module = nn.Conv2d(before, self.joints, kernel, padding=kernel // 2)
        elif before != self.joints:
            raise ComponentError(f"{what}: without final_layer the maps come straight from "
                                 f"{'the deconvolutions' if layers else 'the features'}, which have "
                                 f"{before} channels, not joints = {self.joints}",
                                 hint="set final_layer: true")
        else:
            self.final = nn.Identity()
        self.map_size = (self.feature_size[0] * 2 ** layers, self.feature_size[1] * 2 ** layers)
        cells = self.map_size[0] * self.map_size[1]
        self.mlp_x = nn.Linear(cells, self.bins[0])
        self.mlp_y = nn.Linear(cells, self.bins[1])
        init_conv_weights(self)
        for layer in (self.mlp_x, self.mlp_y):  # mmpose's initialisation of the linear layers
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)
        if pretrained:
            load_pretrained(self, pretrained, what)

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """``simcc_x [B, K, W r]`` and ``simcc_y [B, K, H r]`` logits of ``features [B, C, h, w]``."""
        what = "head 'simcc_head'"
        check_input(features, self.in_channels, "features", what)
        h, w = features.shape[-2:]
        if (w, h) != self.feature_size:
            raise ComponentError(f"{what}: features are {w} x {h} (w x h), the linear layers were made for "
                                 f"{self.feature_size[0]} x {self.feature_size[1]}",
                                 hint=f"set feature_size: [{w}, {h}] (or the right feature_stride)")
        maps = self.final(self.deconv(features)).flatten(2)  # [B, K, h * w]
        return {"simcc_x": self.mlp_x(maps), "simcc_y": self.mlp_y(maps)}
