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
from typing import Any

import torch

import kitpose
from kitpose.augmentation import Augmentation
from kitpose.errors import ParameterError, RecipeError
from kitpose_plugins.data.joints import resolve_pairs


def build_encoder(spec: Any) -> Any:
    """An encoder from its recipe entry ``{use: NAME, ...params}`` (``${components.encoder}``)."""
    if not isinstance(spec, Mapping) or not isinstance(spec.get("use"), str):
        error = ParameterError(f"flip_test: encoder must be an encoder's entry {{use: NAME, ...}}, not {spec!r}",
                               hint='write encoder: "${components.encoder}"')
        error.param = "encoder"
        raise error
    params = {key: value for key, value in spec.items() if key not in ("use", "kind")}
    return kitpose.build("encoder", spec["use"], **params)


class FlipTest(Augmentation):
    """Average the heatmaps of the image and of its horizontal mirror (the flip test).

    ``encoder``: the encoder's recipe entry, whose ``flip_back`` aligns the mirror's maps;
    ``flip_pairs``: the left/right joint pairs (a joint-set name such as ``coco`` or
    ``mpii``, or ``[[left, right], ...]``); ``image``: the batch entry that is mirrored.
    """

    outputs = ("heatmaps",)

    def __init__(self, encoder: dict[str, Any], flip_pairs: str | Sequence[Sequence[int]],
                 image: str = "image") -> None:
        self.encoder = build_encoder(encoder)
        if not callable(getattr(self.encoder, "flip_back", None)):
            error = ParameterError(f"flip_test: encoder '{encoder['use']}' has no flip_back",
                                   hint="name an encoder that can undo a mirror (gaussian, one_hot, ...)")
            error.param = "encoder"
            raise error
        self.flip_pairs = resolve_pairs(flip_pairs)
        self.image = str(image)

    def views(self, batch: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The batch as it is, and with its image mirrored along x."""
        if self.image not in batch:
            raise ParameterError(f"flip_test: the batch has no '{self.image}' to mirror",
                                 hint="set image: to the name of the input images")
        return [{}, {self.image: torch.flip(batch[self.image], dims=[-1])}]

    def merge(self, heatmaps: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """The plain heatmaps averaged with the mirror's, flipped back."""
        plain, mirrored = heatmaps
        return {"heatmaps": (plain + self.encoder.flip_back(mirrored, self.flip_pairs)) / 2}


#: the flip-test settings of older recipes, now the ``flip_test`` augmentation
OLD_SETTINGS = ("flip", "flip_heatmaps", "flip_encoder")


def migrate_flip_settings(config: Any, file: str) -> None:
    """Drop ``test.flip`` (false), ``test.flip_heatmaps`` and ``test.flip_encoder`` from an
    older recipe (every run directory made before ``flip_test`` holds them); ``test.flip: true`` cannot
    be moved by itself (the test flow must call ``flip_test``) and is refused with a hint."""
    test = config.get("test") if hasattr(config, "get") else None
    if not hasattr(test, "keys"):
        return
    found = [key for key in OLD_SETTINGS if key in test]
    if not found:
        return
    if "flip" in test and test._get_node("flip")._value() not in (False, None):
        raise RecipeError("test.flip is no longer a setting: the flip test is the 'flip_test' "
                          "augmentation, called in the test flow", file=file, path="test.flip",
                          hint='add components.flip_test: {use: flip_test, encoder: "${components.encoder}", '
                               "flip_pairs: coco} and the node {call: flip_test, in: {heatmaps: heatmaps}, "
                               "out: {heatmaps: flip_heatmaps}} to flows.test (README: test-time augmentation)")
    for key in found:
        del test[key]
    if not test:
        del config["test"]
