"""Claims a study recipe declares, judged from the runs' per-sample errors.

::

    study:
      claims:
        - {metric: PCKh@0.1, better: {decoder: dark}, than: {decoder: standard},
           for_each: [model, encoding]}
        - {metric: RMSE, better: {encoding: w/o quant}, than: {encoding: w/ quant},
           for_each: [model, decoder]}

        - {metric: PCKh@0.5, better: {decoder: dark}, than: {decoder: argmax},
           grows_as: {input: [128x128, 96x96, 64x64]}}

``better`` and ``than`` pick cells by label values (the runs' labels and ``decoder``);
``for_each`` repeats the claim for every combination of those factors' values. In each
repetition a side must name exactly one cell per seed. ``grows_as`` turns the claim into
one about the gain (``better`` minus ``than``): it is larger at each level of that factor
than at the level before, judged level by level from differences of paired differences.
``direction`` (``higher`` or ``lower``: which is better) is needed only for metrics
kitpose does not know.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kitpose.errors import RecipeError, suggestion
from kitpose_plugins.study.stats import Comparison, Side, contrast, direction

SEED = "seed"

#: numbers that are not means over test images: nothing to pair (COCO's OKS AP and AR)
WITHOUT_SAMPLES = ("AP", "AP50", "AP75", "AR", "AR50", "AR75")


@dataclass
class Claim:
    """One declared claim, checked against the study's factors."""

    metric: str
    better: dict[str, str]
    than: dict[str, str]
    for_each: list[str]
    lower_is_better: bool
    grows_as: tuple[str, list[str]] | None = None

    def text(self) -> str:
        def side(picks: Mapping[str, str]) -> str:
            return ", ".join(f"{k} {v}" for k, v in picks.items())

        if self.grows_as:
            factor, levels = self.grows_as
            return (f"gain of {side(self.better)} over {side(self.than)} grows as {factor} goes "
                    f"{' -> '.join(levels)} ({self.metric})")
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
        unknown = sorted(set(item) - {"metric", "better", "than", "for_each", "direction", "grows_as"})
        if unknown:
            raise RecipeError(f"unknown claim key '{unknown[0]}'", file=file, path=f"{path}.{unknown[0]}",
                              hint="a claim has metric, better, than, for_each, grows_as and direction")
        metric = item.get("metric")
        if not isinstance(metric, str) or not metric:
            raise RecipeError("a claim needs metric: NAME (e.g. PCKh@0.1)", file=file, path=f"{path}.metric")
        if metric.split("@")[0].split(" ")[0] in WITHOUT_SAMPLES:
            raise RecipeError(f"'{metric}' is not a mean over test images (COCO's AP and AR rank every "
                              "detection together), so claims cannot compare it image by image",
                              file=file, path=f"{path}.metric", hint="claim on PCK, PCKh, AUC, RMSE, EPE or MPJPE")
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
        grows = _grows(item.get("grows_as"), factors, [*sides[0], *sides[1], *for_each], file, f"{path}.grows_as")
        claims.append(Claim(metric, sides[0], sides[1], [str(k) for k in for_each], way == "lower", grows))
    return claims


def _grows(value: Any, factors: Sequence[str], used: Sequence[str], file: str, path: str) -> tuple[str, list[str]] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or len(value) != 1:
        raise RecipeError("grows_as names one factor and its levels in order, e.g. {input: [128x128, 64x64]}",
                          file=file, path=path)
    [(factor, levels)] = value.items()
    if factor not in factors or factor in used:
        raise RecipeError(f"'{factor}' is not a factor of this study left free by better, than and for_each",
                          file=file, path=f"{path}.{factor}", hint="factors: " + ", ".join(factors))
    if not isinstance(levels, list) or len(levels) < 2 or len(set(map(str, levels))) != len(levels):
        raise RecipeError("grows_as needs two or more different levels, in the order the gain should grow",
                          file=file, path=f"{path}.{factor}")
    return str(factor), [str(v) for v in levels]


def _picks(value: Any, factors: Sequence[str], file: str, path: str) -> dict[str, str]:
    if not isinstance(value, Mapping) or not value:
        raise RecipeError("a side of a claim picks cells by factor, e.g. {decoder: dark}", file=file, path=path)
    for key in value:
        if key not in factors:
            raise RecipeError(f"'{key}' is not a factor of this study", file=file, path=f"{path}.{key}",
                              hint="factors: " + ", ".join(factors))
    return {str(k): str(v) for k, v in value.items()}


def matches(claim: Claim, cells: Sequence[Cell], *, file: str | None = None
            ) -> list[tuple[dict[str, str], list[dict[str, list[Cell]]]]]:
    """For each group of the claim (its ``for_each`` combination, and for ``grows_as`` each
    pair of consecutive levels): where it is, and the cells of each side by seed (better,
    than; then better and than at the level before). Refuses a side that matches several
    cells of one seed. Needs no results: a study checks its claims before training."""
    groups = list(dict.fromkeys(tuple(c.factors.get(k, "") for k in claim.for_each) for c in cells))
    if claim.grows_as is None:
        steps: list[tuple[dict[str, str], dict[str, str] | None]] = [({}, None)]
    else:
        factor, levels = claim.grows_as
        steps = [({factor: after}, {factor: before}) for before, after in zip(levels, levels[1:])]
    out = []
    for values in groups:
        group = dict(zip(claim.for_each, values))

        def matching(picks: Mapping[str, str]) -> dict[str, list[Cell]]:
            chosen: dict[str, list[Cell]] = {}
            for cell in cells:
                if all(cell.factors.get(k) == v for k, v in {**group, **picks}.items()):
                    chosen.setdefault(cell.seed, []).append(cell)
            return chosen

        for now, then in steps:
            sides = [matching({**picks, **level}) for level in (now, then) if level is not None
                     for picks in (claim.better, claim.than)]
            many = [len(found) for cells_of in sides for found in cells_of.values() if len(found) > 1]
            if many:
                raise RecipeError(f"claim '{claim.text()}' is ambiguous: a side matches {max(many)} cells "
                                  "of one seed", file=file, path="study.claims",
                                  hint="name the other factors in the sides, in for_each or in grows_as")
            out.append(({**group, **({k: f"{now[k]} vs {then[k]}" for k in now} if then else {})}, sides))
    return out


def check_values(claims: Sequence[Claim], cells: Sequence[Cell], file: str) -> None:
    """Every value a claim names (in its sides and ``grows_as``) is one some cell has."""
    known: dict[str, list[str]] = {}
    for cell in cells:
        for key, value in cell.factors.items():
            known.setdefault(key, [])
            if value not in known[key]:
                known[key].append(value)
    for i, claim in enumerate(claims):
        named = [(f"better.{k}", k, v) for k, v in claim.better.items()]
        named += [(f"than.{k}", k, v) for k, v in claim.than.items()]
        if claim.grows_as:
            named += [(f"grows_as.{claim.grows_as[0]}", claim.grows_as[0], v) for v in claim.grows_as[1]]
        for where, key, value in named:
            if value not in known.get(key, []):
                raise RecipeError(f"no run has {key} '{value}'{suggestion(value, known.get(key, []))}",
                                  file=file, path=f"study.claims[{i}].{where}",
                                  hint=f"{key}: " + ", ".join(known.get(key, [])))
        matches(claim, cells, file=file)


def judge(claim: Claim, cells: Sequence[Cell], side: Callable[[Cell, str], Side], *, replicates: int = 2000,
          seed: int = 0) -> list[Judgement]:
    """The claim for every group :func:`matches` finds among ``cells``; ``side(cell, metric)``
    loads one cell's per-image numbers."""
    out = []
    for where, sides in matches(claim, cells):
        seeds = [s for s in sides[0] if all(s in other for other in sides[1:])]
        if not seeds:
            if any(sides):  # a combination that only some sides have: say so, do not fail the study
                out.append(Judgement(claim, where, None, "no cells on one side"))
            continue
        weights = (1.0, -1.0, -1.0, 1.0)  # better - than, less the same at the level before
        terms = [[(side(cells_of[s][0], claim.metric), w) for cells_of, w in zip(sides, weights)] for s in seeds]
        out.append(Judgement(claim, where, contrast(terms, lower_is_better=claim.lower_is_better,
                                                    replicates=replicates, seed=seed)))
    return out
