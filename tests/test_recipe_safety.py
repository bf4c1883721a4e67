"""Recipes that try to do harm: resolver bypasses, alias bombs, recursive aliases and duplicate
keys, from a file and from the command line. Each is refused with one line naming the file
and the place, and `kitpose check` exits with code 2 without a traceback."""
from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import run_cli
from kitpose.errors import OverrideError, RecipeError
from kitpose.recipe import MAX_ALIAS_NODES, load_recipe

TOY = Path(__file__).parent / "recipes" / "toy.yaml"

#: the classic "billion laughs": 9 levels of 9 aliases, 9**9 strings once expanded
BOMB = "kitpose: 1\nvars:\n  a: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n" + "".join(
    f"  {n}: &{n} [{','.join(['*' + p] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi"))

SPY_CALLS: list[tuple] = []


@pytest.fixture
def spy_resolver():
    """A registered resolver outside the allow-list that records every call."""
    SPY_CALLS.clear()
    OmegaConf.register_resolver("kp_spy", lambda *args: SPY_CALLS.append(args) or "called",
                                replace=True)
    yield "kp_spy"
    OmegaConf.clear_resolver("kp_spy")


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def one_line_error(result) -> str:
    """The CLI's error: exit 2, one line on stderr, no traceback."""
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


# -- resolvers -----------------------------------------------------------------------------
@pytest.mark.parametrize("value, refused", [
    ("${${vars.r}:1}", "computed by an interpolation ('${vars.r}')"),        # the reported bypass
    ("x ${oc.env:${${vars.r}:1}}", "computed by an interpolation"),          # nested in an argument
    ("${oc.select:vars.nope,'${kp_spy:1}'}", "resolver 'kp_spy' is refused"),  # inside a quoted default
    ("${oc.env:HOME,${oc.select:a,${kp_spy:2}}}", "resolver 'kp_spy' is refused"),  # three deep
    ("${  kp_spy :1}", "resolver 'kp_spy' is refused"),
    ("${oc.decode:'[1, 2]'}", "resolver 'oc.decode' is refused"),
])
def test_resolvers_are_checked_as_omegaconf_parses_them(tmp_path, spy_resolver, value, refused):
    path = write(tmp_path, "r.yaml", f'kitpose: 1\nvars:\n  r: {spy_resolver}\n  x: "{value}"\n')
    with pytest.raises(RecipeError, match=r"r\.yaml: vars\.x: .*" + refused.replace("(", r"\(")
                       .replace(")", r"\)").replace("$", r"\$").replace("{", r"\{").replace("}", r"\}")):
        load_recipe(path, search_dirs=[]).resolved()
    assert SPY_CALLS == []


def test_resolver_bypass_in_a_base_recipe_names_the_base(tmp_path, spy_resolver):
    write(tmp_path, "base.yaml", "kitpose: 1\nvars:\n  r: kp_spy\n  deep: [1, {x: '${${vars.r}:1}'}]\n")
    path = write(tmp_path, "r.yaml", "kitpose: 1\nextends: [base.yaml]\n")
    with pytest.raises(RecipeError, match=r"base\.yaml: vars\.deep\[1\]\.x: a resolver name computed"):
        load_recipe(path, search_dirs=[])
    assert SPY_CALLS == []


def test_resolver_bypass_through_overrides(tmp_path, spy_resolver):
    path = write(tmp_path, "r.yaml", "kitpose: 1\nvars: {a: 1}\n")
    with pytest.raises(OverrideError, match=r"r\.yaml: vars\.x: override .*computed by an interpolation"):
        load_recipe(path, ["+vars.r=kp_spy", "+vars.x=${${vars.r}:1}"], search_dirs=[])
    with pytest.raises(OverrideError, match=r"vars\.x\.b\[0\]: override .*resolver 'kp_spy' is refused"):
        load_recipe(path, ["+vars.x={b: ['${kp_spy:1}']}"], search_dirs=[])
    # an existing key overridden with an interpolation that selects the refused one
    with pytest.raises(OverrideError, match=r"vars\.a: override 'vars\.a=.*resolver 'kp_spy' is refused"):
        load_recipe(path, ["vars.a=${oc.select:vars.b,${kp_spy:1}}"], search_dirs=[])
    assert SPY_CALLS == []


def test_allowed_interpolations_still_resolve(tmp_path, monkeypatch):
    monkeypatch.setenv("KP_ROOT", "/data")
    path = write(tmp_path, "r.yaml", """kitpose: 1
vars:
  k: a
  a: 3
  node: ${vars.${vars.k}}
  env: ${oc.env:KP_ROOT}/coco
  chosen: ${oc.select:vars.nope,'${vars.a}'}
  names: ${oc.dict.keys:vars.sub}
  literal: '\\${not_a:resolver}'
  sub: {p: 1, q: 2}
""")
    values = load_recipe(path, ["+vars.more=${oc.env:KP_ROOT}"], search_dirs=[]).resolved()["vars"]
    assert values["node"] == 3 and values["env"] == "/data/coco" and values["chosen"] == "3"
    assert values["names"] == ["p", "q"] and values["literal"] == "${not_a:resolver}"
    assert values["more"] == "/data"


def test_an_interpolation_that_cannot_parse_is_one_line(tmp_path):
    path = write(tmp_path, "r.yaml", "kitpose: 1\nvars: {x: '${oc.env:'}\n")
    with pytest.raises(RecipeError, match=r"r\.yaml: vars\.x: invalid interpolation"):
        load_recipe(path, search_dirs=[])


# -- YAML ----------------------------------------------------------------------------------
def test_alias_bomb_is_refused_with_its_line(tmp_path):
    path = write(tmp_path, "bomb.yaml", BOMB)
    assert len(BOMB) < 400
    with pytest.raises(RecipeError, match=r"bomb\.yaml:(\d+):\d+: refused YAML: aliases expand to more "
                                          rf"than {MAX_ALIAS_NODES} values") as info:
        load_recipe(path, search_dirs=[])
    line = int(str(info.value).split(":")[1])
    assert 4 <= line <= 11  # the alias that crossed the limit, not the start of the file


def test_alias_bomb_as_a_command_line_override(tmp_path):
    path = write(tmp_path, "r.yaml", "kitpose: 1\n")
    bomb = "{a: &a [x,x,x,x,x,x,x,x,x,x], " + ", ".join(
        f"{n}: &{n} [{','.join(['*' + p] * 10)}]" for p, n in zip("abcdefg", "bcdefgh")) + "}"
    with pytest.raises(OverrideError, match=r"r\.yaml: vars: override .*refused YAML: aliases expand"):
        load_recipe(path, [f"+vars={bomb}"], search_dirs=[])


def test_ordinary_aliases_and_merge_keys_are_accepted(tmp_path):
    path = write(tmp_path, "r.yaml", """kitpose: 1
vars:
  adam: &adam {use: adam, lr: 1.0e-3, betas: [0.9, 0.999]}
  one: *adam
  two: {<<: *adam, lr: 2.0e-3}
  many: [*adam, *adam, *adam, *adam, *adam, *adam, *adam, *adam]
""")
    values = load_recipe(path, search_dirs=[]).resolved()["vars"]
    assert values["one"] == values["adam"] and values["two"]["lr"] == 2e-3 and values["two"]["use"] == "adam"
    assert len(values["many"]) == 8


def test_recursive_alias_is_refused(tmp_path):
    path = write(tmp_path, "r.yaml", "kitpose: 1\nvars:\n  loop: &loop {self: *loop}\n")
    with pytest.raises(RecipeError, match=r"r\.yaml:3:\d+: refused YAML: alias \*loop is inside its own anchor"):
        load_recipe(path, search_dirs=[])


@pytest.mark.parametrize("text, line, key", [
    ("kitpose: 1\nseed: 1\nname: x\nseed: 2\n", 4, "seed"),
    ("kitpose: 1\nvars:\n  a: 1\n  b: 2\n  a: 3\n", 5, "a"),
    ("kitpose: 1\nvars: {x: {p: 1, p: 1}}\n", 2, "p"),
    ("kitpose: 1\nvars: [{q: 1}, {q: 1, q: 2}]\n", 2, "q"),
])
def test_duplicate_keys_are_refused(tmp_path, text, line, key):
    path = write(tmp_path, "dup.yaml", text)
    with pytest.raises(RecipeError, match=rf"dup\.yaml:{line}:\d+: refused YAML: duplicate key '{key}'"):
        load_recipe(path, search_dirs=[])


def test_duplicate_key_in_an_override(tmp_path):
    path = write(tmp_path, "r.yaml", "kitpose: 1\n")
    with pytest.raises(OverrideError, match=r"override '\+vars=\{a: 1, a: 2\}': refused YAML: duplicate key 'a'"):
        load_recipe(path, ["+vars={a: 1, a: 2}"], search_dirs=[])


# -- the command line ----------------------------------------------------------------------
@pytest.mark.parametrize("name, text, expected", [
    ("bomb.yaml", BOMB, r"bomb\.yaml:\d+:\d+: refused YAML: aliases expand"),
    ("dup.yaml", "kitpose: 1\nseed: 1\nseed: 2\n", r"dup\.yaml:3:1: refused YAML: duplicate key 'seed'"),
    ("nest.yaml", "kitpose: 1\nvars: {r: oc.decode, x: '${${vars.r}:1}'}\n",
     r"nest\.yaml: vars\.x: a resolver name computed by an interpolation"),
])
def test_cli_refuses_a_harmful_recipe_in_one_line(tmp_path, name, text, expected):
    path = write(tmp_path, name, text)
    for command in ("check", "show"):
        line = one_line_error(run_cli(command, str(path), cwd=tmp_path, timeout=60))
        assert __import__("re").search(expected, line), line
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no run directory, nothing written


def test_cli_refuses_a_resolver_bypass_in_overrides(tmp_path):
    line = one_line_error(run_cli("check", str(TOY), "+vars.r=oc.decode", "+vars.x=${${vars.r}:'[1]'}",
                                  cwd=tmp_path, timeout=60))
    assert "toy.yaml: vars.x: override" in line and "computed by an interpolation" in line
    line = one_line_error(run_cli("check", str(TOY), "+vars={a: 1, a: 2}", cwd=tmp_path, timeout=60))
    assert "duplicate key 'a'" in line


# -- secrets -------------------------------------------------------------------------------
def test_a_password_in_any_url_is_refused_and_masked(tmp_path):
    path = write(tmp_path, "r.yaml", "kitpose: 1\nvars:\n  hosts: [ok, 'ftp://u:hunter2@files.example.org/x']\n")
    with pytest.raises(RecipeError, match=r"r\.yaml: vars\.hosts\[1\]: a URL holding a password "
                                          r"\(ftp://u:\*\*\*@files\.example\.org\)") as info:
        load_recipe(path, search_dirs=[])
    assert "hunter2" not in str(info.value)
    with pytest.raises(OverrideError, match=r"override '\+vars\.s=http://u:\*\*\*@h'") as info:
        load_recipe(write(tmp_path, "ok.yaml", "kitpose: 1\n"), ["+vars.s=http://u:hunter2@h"], search_dirs=[])
    assert "hunter2" not in str(info.value)


def test_urls_without_a_password_are_fine(tmp_path):
    path = write(tmp_path, "r.yaml", "kitpose: 1\nvars: {a: 'http://host:8097/x@y', b: 'me@example.org', "
                                     "c: 'http://user@host'}\n")
    assert load_recipe(path, search_dirs=[]).select("vars.a") == "http://host:8097/x@y"
