"""Claims a study recipe declares, judged from the runs' per-sample errors.

::

    study:
      claims:
        - {metric: PCKh@0.1, better: {decoder: dark}, than: {decoder: standard},
           for_each: [model, encoding]}
        - {metric: RMSE, better: {encoding: w/o quant}, than: {encoding: w/ quant},
           for_each: [model, decoder]}

``better`` and ``than`` pick cells by label values (the runs' labels and ``decoder``);
``for_each`` repeats the claim for every combination of those factors' values. In each
repetition a side must name exactly one cell per seed. ``direction`` (``higher`` or
``lower``: which is better) is needed only for metrics kitpose does not know.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kitpose.errors import RecipeError
from kitpose_plugins.study.stats import Comparison, Side, compare, direction

SEED = "seed"


@dataclass
class Claim:
    """One declared claim, checked against the study's factors."""

    metric: str
    better: dict[str, str]
    than: dict[str, str]
    for_each: list[str]
    lower_is_better: bool

    def text(self) -> str:
        def side(picks: Mapping[str, str]) -> str:
            return ", ".join(f"{k} {v}" for k, v in picks.items())

        return f"{side(self.better)} {'<' if self.lower_is_better else '>'} {side(self.than)} ({self.metric})"


@dataclass
class Cell:
    """One number's home: a run (its label, seed, folder) and a decoder."""

    factors: dict[str, str]  # label values and the decoder, without the seed
    seed: str
    run: str


@dataclass
class Judgement:
    """A claim's result for one combination of its ``for_each`` factors."""

    claim: Claim
    group: dict[str, str]
    result: Comparison | None
    note: str = ""


def parse_claims(raw: Any, factors: Sequence[str], file: str) -> list[Claim]:
    """The study's ``claims`` list, checked: known factors, a metric, two different sides."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise RecipeError("claims must be a list of {metric, better, than[, for_each]}", file=file,
                          path="study.claims", hint="see recipes/study_dark.yaml")
    claims = []
    for i, item in enumerate(raw):
        path = f"study.claims[{i}]"
        if not isinstance(item, Mapping):
            raise RecipeError("a claim must be a mapping {metric, better, than[, for_each]}", file=file, path=path)
        unknown = sorted(set(item) - {"metric", "better", "than", "for_each", "direction"})
        if unknown:
            raise RecipeError(f"unknown claim key '{unknown[0]}'", file=file, path=f"{path}.{unknown[0]}",
                              hint="a claim has metric, better, than, for_each and direction")
        metric = item.get("metric")
        if not isinstance(metric, str) or not metric:
            raise RecipeError("a claim needs metric: NAME (e.g. PCKh@0.1)", file=file, path=f"{path}.metric")
        sides = [_picks(item.get(key), factors, file, f"{path}.{key}") for key in ("better", "than")]
        if sides[0] == sides[1]:
            raise RecipeError("better and than pick the same cells", file=file, path=path)
        for_each = item.get("for_each") or []
        if isinstance(for_each, str):
            for_each = [for_each]
        for key in for_each:
            if key not in factors:
                raise RecipeError(f"for_each: '{key}' is not a factor of this study", file=file,
                                  path=f"{path}.for_each", hint="factors: " + ", ".join(factors))
        way = item.get("direction") or direction(metric)
        if way not in ("higher", "lower"):
            raise RecipeError(f"which is better for '{metric}': a higher or a lower value?", file=file,
                              path=f"{path}.direction", hint="add direction: higher (or lower)")
        claims.append(Claim(metric, sides[0], sides[1], [str(k) for k in for_each], way == "lower"))
    return claims


def _picks(value: Any, factors: Sequence[str], file: str, path: str) -> dict[str, str]:
    if not isinstance(value, Mapping) or not value:
        raise RecipeError("a side of a claim picks cells by factor, e.g. {decoder: dark}", file=file, path=path)
    for key in value:
        if key not in factors:
            raise RecipeError(f"'{key}' is not a factor of this study", file=file, path=f"{path}.{key}",
                              hint="factors: " + ", ".join(factors))
    return {str(k): str(v) for k, v in value.items()}


def judge(claim: Claim, cells: Sequence[Cell], side: Callable[[Cell, str], Side], *, replicates: int = 2000,
          seed: int = 0) -> list[Judgement]:
    """The claim for every combination of its ``for_each`` factors found among ``cells``;
    ``side(cell, metric)`` loads one cell's per-image numbers."""
    groups = list(dict.fromkeys(tuple(c.factors.get(k, "") for k in claim.for_each) for c in cells))
    out = []
    for values in groups:
        group = dict(zip(claim.for_each, values))

        def matching(picks: Mapping[str, str]) -> dict[str, list[Cell]]:
            chosen: dict[str, list[Cell]] = {}
            for cell in cells:
                if all(cell.factors.get(k) == v for k, v in {**group, **picks}.items()):
                    chosen.setdefault(cell.seed, []).append(cell)
            return chosen

        better, than = matching(claim.better), matching(claim.than)
        many = [len(found) for found in (*better.values(), *than.values()) if len(found) > 1]
        if many:
            raise RecipeError(f"claim '{claim.text()}' is ambiguous: a side matches {max(many)} cells "
                              "of one seed", path="study.claims",
                              hint="name the other factors in the sides or in for_each")
        seeds = [s for s in better if s in than]
        if not seeds:
            if better or than:  # a combination that only one side has: say so, do not fail the study
                out.append(Judgement(claim, group, None, "no cells on one side"))
            continue
        pairs = [(side(better[s][0], claim.metric), side(than[s][0], claim.metric)) for s in seeds]
        out.append(Judgement(claim, group, compare(pairs, lower_is_better=claim.lower_is_better,
                                                   replicates=replicates, seed=seed)))
    return out
