"""The package as kitpose sees it once installed: its plugin, its names and its recipe."""
from importlib import metadata

import kitpose
from kitpose.plan import check_recipe
from kitpose.plugins import get_plugin_manager

VERSION = metadata.version("kitpose-plugin-example")


def test_the_plugin_is_loaded_with_its_distribution_and_version():
    info = get_plugin_manager().infos["kitpose_example"]
    assert (info.status, info.dist, info.version) == ("loaded", "kitpose-plugin-example", VERSION)


def test_each_component_names_its_provider():
    expected = {("decoder", "median"), ("metric", "percentile_error"), ("monitor", "csv")}
    for kind, name in expected:
        entry = kitpose.get_registry().get(kind, name)
        assert entry.provider == f"kitpose_example (kitpose-plugin-example {VERSION})"
        assert entry.summary  # the first docstring line, shown by `kitpose list`


def test_the_recipe_is_found_by_name_and_checks():
    plan = check_recipe("median_example.yaml")
    assert set(plan.components["decoders"].members) == {"argmax", "com", "median"}
    assert "csv" in plan.monitors
