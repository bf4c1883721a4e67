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

from kitpose.errors import ParameterError, RecipeError, suggestion

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
    monitors: the names that differ from the defaults move to ``monitors.figures.show``
    (and ``monitors.visdom.show`` when the recipe has one); the rest is dropped."""
    val = config.get("val") if hasattr(config, "get") else None
    if not hasattr(val, "keys") or "show" not in val:
        return
    show = val._get_node("show")._value()
    if not hasattr(show, "items"):
        raise RecipeError("val.show is no longer a setting: pictures are chosen by the monitors",
                          file=file, path="val.show",
                          hint="write monitors: {figures: {use: figures, show: {keypoints: TENSOR}}}")
    changed = {str(k): v for k, v in show.items() if SHOW.get(str(k), object()) != v}
    del val["show"]
    if not val:
        del config["val"]
    if not changed:
        return
    if config.get("monitors") is None:
        config["monitors"] = {}
    monitors = config["monitors"]
    if "figures" not in monitors:
        monitors["figures"] = {"use": "figures"}
    for key in ("figures", "visdom"):
        entry = monitors.get(key)
        if hasattr(entry, "keys") and entry.get("use") == key and "show" not in entry:
            entry["show"] = changed
