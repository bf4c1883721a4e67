"""Which tensors of a validation snapshot the pictures show, by name.

The figures and Visdom monitors draw three things besides the images and the ground
truth: predicted keypoints (one column per branch), predicted heatmaps and target
heatmaps. A recipe says which tensors those are with the monitor's ``show`` parameter::

    monitors:
      figures: {use: figures, show: {keypoints: pred_uvz}}

Names it does not give keep the defaults in :data:`SHOW`; ``null`` leaves a picture out.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import OmegaConf

from kitpose.errors import ParameterError, RecipeError, suggestion
from kitpose.recipe import file_section

#: picture -> the tensor it shows, unless the recipe says otherwise
SHOW: dict[str, str | None] = {"keypoints": "pred_keypoints", "heatmaps": "heatmaps", "target": "target"}


def show_names(monitor: str, show: Mapping[str, Any] | None) -> dict[str, str | None]:
    """:data:`SHOW` with the recipe's ``show`` mapping over it, checked."""
    given = dict(show or {})
    for key, value in given.items():
        if key not in SHOW:
            error = ParameterError(f"{monitor}: show has no picture '{key}'{suggestion(str(key), SHOW)}",
                                   hint="pictures: " + ", ".join(SHOW))
            error.param = "show"
            raise error
        if value is not None and not isinstance(value, str):
            error = ParameterError(f"{monitor}: show.{key} must name a tensor, not {value!r}",
                                   hint=f"e.g. show: {{{key}: {SHOW[key]}}}")
            error.param = "show"
            raise error
    return {**SHOW, **given}


def migrate_show_setting(config: Any, file: str) -> None:
    """``val.show`` of older recipes became the ``show`` parameter of the figures and Visdom
    monitors. A run directory's ``recipe.yaml`` holds the old defaults: only the names that
    differ move. A file that extends others moves every name it gives (a base may have
    changed it). They go to every ``figures`` and ``visdom`` monitor of the file without a
    ``show``, or to a new ``figures`` entry when the file has none."""
    val = file_section(config, "val")
    if val is None or "show" not in val:
        return
    node = val._get_node("show")
    show = None if node._is_none() else node._value()
    if show is not None and not hasattr(show, "items"):
        raise RecipeError("val.show is no longer a setting: the monitors choose what they draw",
                          file=file, path="val.show",
                          hint="write monitors: {figures: {use: figures, show: {keypoints: TENSOR}}}")
    given = OmegaConf.to_container(node, resolve=False) if show is not None else {}
    moved = given if "extends" in config else {k: v for k, v in given.items() if SHOW.get(str(k), object()) != v}
    del val["show"]
    if not val:
        del config["val"]
    if not moved:
        return
    if file_section(config, "monitors") is None and "monitors" not in config:
        config["monitors"] = {}
    monitors = file_section(config, "monitors")
    if monitors is None:
        return  # monitors written as an interpolation: leave the pictures at their defaults
    drawing = [key for key in monitors if hasattr(monitors.get(key), "keys")
               and monitors[key].get("use") in ("figures", "visdom")]
    if not any(monitors[key].get("use") == "figures" for key in drawing) and "figures" not in monitors:
        monitors["figures"] = {"use": "figures"}
        drawing.append("figures")
    for key in drawing:
        if "show" not in monitors[key]:
            monitors[key]["show"] = moved
