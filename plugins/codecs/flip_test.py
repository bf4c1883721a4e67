"""The flip test as a test-time augmentation: the image and its mirror, heatmaps averaged.

A recipe names it in its test flow, on the heatmaps the decoders read::

    components:
      flip_test: {use: flip_test, encoder: "${components.encoder}", flip_pairs: coco}
    flows:
      test:
        - {call: backbone, in: {image: image}, out: {features: features}}
        - {call: head, in: {features: features}, out: {heatmaps: heatmaps}}
        - {call: flip_test, in: {heatmaps: heatmaps}, out: {heatmaps: flip_heatmaps}}
        - {call: decoders, in: {heatmaps: flip_heatmaps}, out: {keypoints: pred_heatmap_xy}}

The flow runs backbone and head again on the mirrored image; the mirror's heatmaps are
brought back by the encoder's own ``flip_back`` (which knows its convention's shift) and
averaged with the plain ones.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch

from kitpose.augmentation import Augmentation
from kitpose.components import build_inner
from kitpose.errors import ParameterError
from kitpose_plugins.codecs.common import choice
from kitpose_plugins.codecs.flip import flip_back
from kitpose_plugins.data.joints import resolve_pairs


class FlipTest(Augmentation):
    """Average the heatmaps of the image and of its horizontal mirror (the flip test).

    ``encoder``: the encoder's recipe entry, whose ``flip_back`` aligns the mirror's maps;
    ``flip_pairs``: the left/right joint pairs (a joint-set name such as ``coco`` or
    ``mpii``, or ``[[left, right], ...]``); ``image``: the batch entry that is mirrored.
    ``shift``: how the mirrored maps are moved back into line. ``exact`` (the default) is
    the encoder's own ``flip_back``, with its convention's sub-pixel shift (0.75 cells for
    MSRA maps at stride 4, none for UDP, -0.25 for Megvii's ``floor`` cells). ``one_cell`` moves them one cell towards +x,
    keeping the first column, as mmpose's ``shift_heatmap``. ``none`` mirrors and swaps
    the joints only, as DarkPose's code does.
    """

    outputs = ("heatmaps",)

    def __init__(self, encoder: str | dict[str, Any], flip_pairs: str | Sequence[Sequence[int]],
                 image: str = "image", shift: Literal["exact", "one_cell", "none"] = "exact") -> None:
        self.encoder = build_inner(encoder, "encoder", "flip_test", "encoder")
        if not callable(getattr(self.encoder, "flip_back", None)):
            error = ParameterError(f"flip_test: encoder '{type(self.encoder).__name__}' has no flip_back",
                                   hint="name an encoder that can undo a mirror (gaussian, one_hot, ...)")
            error.param = "encoder"
            raise error
        self.flip_pairs = resolve_pairs(flip_pairs)
        self.image = str(image)
        self.shift = choice("flip_test", "shift", shift, ("exact", "one_cell", "none"))
        if self.shift != "exact" and getattr(self.encoder, "channels", 1) != 1:
            error = ParameterError(f"flip_test: shift '{self.shift}' mirrors plain heatmaps, but encoder "
                                   f"'{type(self.encoder).__name__}' draws {self.encoder.channels} maps per joint",
                                   hint="use shift: exact, which lets the encoder flip its own maps back")
            error.param = "shift"
            raise error

    def views(self, batch: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The batch as it is, and with its image mirrored along x."""
        if self.image not in batch:
            raise ParameterError(f"flip_test: the batch has no '{self.image}' to mirror",
                                 hint="set image: to the name of the input images")
        return [{}, {self.image: torch.flip(batch[self.image], dims=[-1])}]

    def merge(self, heatmaps: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """The plain heatmaps averaged with the mirror's, flipped back."""
        plain, mirrored = heatmaps
        return {"heatmaps": (plain + self.back(mirrored)) / 2}

    def back(self, mirrored: torch.Tensor) -> torch.Tensor:
        """Maps predicted on the mirrored image, aligned with the original by ``shift``."""
        if self.shift == "exact":
            return self.encoder.flip_back(mirrored, self.flip_pairs)
        unshifted = flip_back("flip_test", mirrored, self.flip_pairs, 0.0)
        if self.shift == "none":
            return unshifted
        return torch.cat([unshifted[..., :1], unshifted[..., :-1]], dim=-1)
