"""The registry: names per kind, lazy references, parameter checks, clashes."""
import subprocess
import sys

import pytest

import kitpose
from kitpose.errors import ParameterError, PluginError, UnknownComponentError
from kitpose.registry import KINDS, Registry


def test_every_kind_has_a_shortcut():
    registry = Registry()
    for kind in KINDS:
        getattr(registry, kind)(f"x_{kind}", "collections:OrderedDict")
        assert registry.names(kind) == [f"x_{kind}"]


def test_build_checks_parameters_with_did_you_mean():
    with pytest.raises(ParameterError, match=r"no parameter 'lrr' \(did you mean 'lr'\?\)"):
        kitpose.build("optimizer", "adam", [], lrr=0.1)


def test_build_reports_missing_parameter():
    registry = Registry()
    registry.decoder("needs", "fractions:Fraction")  # Fraction(numerator=0, ...) has defaults

    def factory(width, depth=1):
        return (width, depth)

    registry.head("needy", factory)
    with pytest.raises(ParameterError, match="needs parameter 'width'"):
        registry.build("head", "needy", depth=2)
    assert registry.build("head", "needy", width=3) == (3, 1)


def test_unknown_name_suggests_and_lists_providers():
    with pytest.raises(UnknownComponentError) as info:
        kitpose.build("optimizer", "adma")
    text = str(info.value)
    assert "did you mean 'adam'" in text and "sgd [optim]" in text


def test_name_of_another_kind_says_so():
    with pytest.raises(UnknownComponentError, match="'adam' is an optimizer, not a decoder"):
        kitpose.build("decoder", "adam")


def test_clash_names_both_providers_and_keeps_nothing():
    registry = Registry()
    with registry.providing("first", "dist-a 1.0"):
        registry.decoder("same", "collections:OrderedDict")
    with pytest.raises(PluginError, match=r"by first \(dist-a 1.0\) and by second \(dist-b 2.0\)"):
        with registry.providing("second", "dist-b 2.0"):
            registry.decoder("other", "collections:Counter")
            registry.decoder("same", "collections:Counter")
    assert registry.names("decoder") == ["same"]  # 'other' was not kept either


def test_lazy_reference_is_imported_on_first_build_only():
    registry = Registry()
    registry.metric("lazy", "kitpose_test_not_a_module:Thing")
    assert registry.names("metric") == ["lazy"]
    with pytest.raises(PluginError, match="cannot be imported"):
        registry.build("metric", "lazy")


def test_available_and_list_with_filter():
    assert kitpose.available("optimizer") == ["adam", "adamw", "sgd"]
    assert [e.name for e in kitpose.list_components("optimizer", "adam*")] == ["adam", "adamw"]
    assert kitpose.available("scheduler") == ["cosine", "multistep", "step"]


def test_import_is_light():
    code = ("import sys, time; t = time.perf_counter(); import kitpose; "
            "print(time.perf_counter() - t); "
            "print(any(m == 'torch' or m.startswith('torch.') for m in sys.modules)); "
            "print('cv2' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[1:] == ["False", "False"]
    assert float(out[0]) < 1.0


def test_literal_parameters_are_checked_before_building():
    from typing import Literal

    built = []

    def factory(mode: Literal["fast", "exact"] = "fast", size: int | Literal["auto"] = "auto"):
        built.append(mode)
        return mode

    registry = Registry()
    registry.decoder("choosy", factory)
    with pytest.raises(ParameterError, match=r"mode='exakt' is not one of 'fast', 'exact' \(did you mean 'exact'\?\)"):
        registry.build("decoder", "choosy", mode="exakt")
    assert built == []
    assert registry.build("decoder", "choosy", mode="exact", size=3) == "exact"  # int is allowed too


def _annotated_registry():
    from typing import Annotated, Literal

    from kitpose.paths import RunPath
    from kitpose.registry import Range

    def factory(joints: Annotated[int, Range(1, 64)] = 16, sigma: float = 2.0, split: str = "train",
                cache: bool = False, out: RunPath | None = None, mode: Literal["a", "b"] = "a",
                shape: int | list[int] = 4) -> dict:
        return {"joints": joints}

    registry = Registry()
    registry.head("annotated", factory)
    return registry


@pytest.mark.parametrize("params, message", [
    ({"joints": 0}, "joints must be between 1 and 64, not 0"),
    ({"joints": 65}, "joints must be between 1 and 64, not 65"),
    ({"joints": 2.5}, "joints must be a whole number, not 2.5"),
    ({"joints": True}, "joints must be a whole number"),
    ({"sigma": "wide"}, "sigma must be a number, not 'wide'"),
    ({"split": 5}, "split must be a string, not 5"),
    ({"cache": "yes"}, "cache must be true or false"),
    ({"out": "../x.txt"}, "leaves the run directory"),
    ({"out": "/etc/x.txt"}, "is absolute"),
    ({"mode": "c"}, "mode='c' is not one of 'a', 'b'"),
])
def test_simple_annotations_are_checked_before_building(params, message):
    registry = _annotated_registry()
    with pytest.raises(ParameterError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        registry.build("head", "annotated", **params)
    assert info.value.param == next(iter(params))


def test_values_that_fit_their_annotations_are_accepted():
    registry = _annotated_registry()
    built = registry.build("head", "annotated", joints=64, sigma=1, split="val", cache=True,
                           out="logs/x.txt", mode="b", shape=[3, 4])
    assert built == {"joints": 64}
    assert registry.build("head", "annotated", out=None, shape="not checked: a union")["joints"] == 16


def test_optimizer_values_are_checked_by_building_on_a_dummy_parameter(toy_recipe):
    from kitpose.errors import ComponentError
    from kitpose.plan import check_recipe

    with pytest.raises(ComponentError, match="Invalid learning rate") as info:
        check_recipe(str(toy_recipe), ["train.optimizer.lr=-0.1"])
    assert info.value.path == "train.optimizer"
