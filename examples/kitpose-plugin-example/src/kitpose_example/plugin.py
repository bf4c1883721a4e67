"""The kitpose plugin of this package: three components and a recipe folder.

kitpose finds this module through the ``kitpose`` entry point in pyproject.toml and calls
its hooks. Components are registered as ``"module:attribute"`` strings, so nothing below
is imported until a recipe uses it.
"""
from pathlib import Path

from kitpose import hookimpl


@hookimpl
def kitpose_register(registry):
    registry.decoder("median", "kitpose_example.median:MedianDecoder")
    registry.metric("percentile_error", "kitpose_example.metric:PercentileError")
    registry.monitor("csv", "kitpose_example.monitor:CsvMonitor")


@hookimpl
def kitpose_recipe_dirs():
    # `kitpose run median_example.yaml` and `extends: [median_example.yaml]` find it here
    return [Path(__file__).parent / "recipes"]
