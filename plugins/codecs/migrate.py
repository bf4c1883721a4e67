"""The flip-test settings of older recipes, moved to the ``flip_test`` augmentation.

Before the flip test became a node of the test flow, a recipe switched it on with
``test.flip`` (and named the tensor and the encoder with ``test.flip_heatmaps`` and
``test.flip_encoder``); every run directory of that time holds those keys. This module
(light: no torch) rewrites them as a recipe file is read.
"""
from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from kitpose.errors import RecipeError
from kitpose.recipe import file_section

#: the flip-test settings of older recipes, now the ``flip_test`` augmentation
OLD_SETTINGS = ("flip", "flip_heatmaps", "flip_encoder")
_HINT = ('add components.flip_test: {use: flip_test, encoder: "${components.encoder}", flip_pairs: coco}, '
         "call it in flows.test ({call: flip_test, in: {heatmaps: heatmaps}, out: {heatmaps: flip_heatmaps}}, "
         "decoders reading flip_heatmaps), and give flows.val the flow without it (README: test-time augmentation)")


def migrate_flip_settings(config: DictConfig, file: str) -> None:
    """Move the flip-test settings of an older recipe to the ``flip_test`` augmentation.

    ``test.flip: false`` (every older run directory holds it, with ``flip_heatmaps`` and
    ``flip_encoder``) is dropped. ``test.flip: true`` is rewritten when this file holds the
    whole picture, as a run directory's ``recipe.yaml`` does: a ``flip_test`` component, the
    test flow's readers of the heatmaps switched to the flipped ones, and the old test flow
    kept as ``flows.val`` (the flip ran only in the test). Otherwise it is refused with a hint.
    """
    test = file_section(config, "test")
    if test is None:
        return
    found = [key for key in OLD_SETTINGS if key in test]
    if not found:
        return
    if _value(test, "flip") not in (False, None):
        _move_flip_test(config, str(_value(test, "flip_heatmaps") or "heatmaps"),
                        str(_value(test, "flip_encoder") or "encoder"), file)
    for key in found:
        del test[key]
    if not test:
        del config["test"]


def _value(section: DictConfig, key: str) -> Any:
    """``section[key]`` resolved within this file, or as written when it cannot be."""
    if key not in section:
        return None
    try:
        return section[key]
    except OmegaConfBaseException:
        return section._get_node(key)._value()


def _move_flip_test(config: DictConfig, heatmaps: str, encoder: str, file: str) -> None:
    components, flows = file_section(config, "components"), file_section(config, "flows")
    test_flow = flows._get_node("test") if flows is not None and "test" in flows else None
    pairs = _dataset_flip_pairs(config)
    if components is None or encoder not in components or "flip_test" in components \
            or not isinstance(test_flow, ListConfig) or pairs is None:
        raise RecipeError("test.flip is no longer a setting: the flip test is the 'flip_test' augmentation, "
                          "a node of the test flow", file=file, path="test.flip", hint=_HINT)
    flipped = f"flip_{heatmaps}"
    old_flow = OmegaConf.to_container(test_flow, resolve=False)
    new_flow: list[Any] = []
    for node in old_flow:
        node = dict(node) if isinstance(node, dict) else node
        inputs = node.get("in") if isinstance(node, dict) else None
        if isinstance(inputs, list):
            inputs = {str(name): str(name) for name in inputs}
        if isinstance(inputs, dict) and heatmaps in inputs.values():
            node["in"] = {arg: flipped if name == heatmaps else name for arg, name in inputs.items()}
        new_flow.append(node)
        outputs = node.get("out") if isinstance(node, dict) else None
        if isinstance(outputs, dict) and heatmaps in outputs.values():
            new_flow.append({"call": "flip_test", "in": {"heatmaps": heatmaps}, "out": {"heatmaps": flipped}})
    if not any(isinstance(n, dict) and n.get("call") == "flip_test" for n in new_flow):
        new_flow.append({"call": "flip_test", "in": {"heatmaps": heatmaps}, "out": {"heatmaps": flipped}})
    components["flip_test"] = {"use": "flip_test", "encoder": f"${{components.{encoder}}}", "flip_pairs": pairs}
    if "val" not in flows:
        flows["val"] = old_flow
    flows["test"] = new_flow


def _dataset_flip_pairs(config: DictConfig) -> list[list[int]] | None:
    """The ``flip_pairs`` the test data's dataset class declares (what the flip test used)."""
    from kitpose.plugins import get_registry

    try:
        name = OmegaConf.select(config, "data.test.dataset.use", default=None)
        factory = get_registry().get("dataset", str(name)).load() if name else None
    except Exception:  # noqa: BLE001 - any failure: no pairs known, the caller refuses with a hint
        return None
    pairs = getattr(factory, "flip_pairs", None)
    if not isinstance(pairs, (tuple, list)):
        return None
    return [[int(a), int(b)] for a, b in pairs]
