"""Built-in plugin 'preview': ``kitpose preview RECIPE`` draws a grid of samples to a PNG.

    kitpose preview recipes/hrnet_dark.yaml --split train -n 16 -o preview.png [key=value ...]

Samples go through the recipe's dataset and transforms, keypoints and skeleton are
drawn on top. The drawing code loads only when the command runs.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kitpose import hookimpl

if TYPE_CHECKING:  # pragma: no cover
    import argparse


@hookimpl
def kitpose_add_commands(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "preview", help="write a PNG grid of a recipe's samples with keypoints and skeleton",
        description="Draw samples of one split of a recipe (dataset and transforms applied) into a PNG.")
    parser.add_argument("recipe", help="recipe file (.yaml)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="recipe overrides")
    parser.add_argument("--split", default="train", choices=("train", "val", "test"),
                        help="which data split to draw (default: train)")
    parser.add_argument("-n", dest="count", type=int, default=16, help="number of samples (default: 16)")
    parser.add_argument("-o", "--output", default="preview.png", help="PNG file to write (default: preview.png)")
    parser.add_argument("--tile", type=int, default=192, help="size of one tile in pixels (default: 192)")
    parser.set_defaults(handler=_run)


def _run(args: "argparse.Namespace") -> int:
    from kitpose_plugins.preview.preview import run

    return run(args)
