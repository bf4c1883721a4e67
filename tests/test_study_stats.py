"""The study's statistics: paired bootstrap intervals, verdicts, claims, per-sample numbers."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import kitpose
from kitpose.errors import RecipeError
from kitpose_plugins.study.claims import Cell, judge, parse_claims
from kitpose_plugins.study.stats import FAILS, HOLDS, UNSURE, Side, compare, direction


def side(values: np.ndarray, index: np.ndarray | None = None, root: bool = False) -> Side:
    index = np.arange(len(values)) if index is None else index
    return Side.from_entries(index, values, np.ones_like(values, dtype=bool), root)


def errors(seed: int, n: int = 400, joints: int = 4) -> np.ndarray:
    """Per-image, per-joint errors whose images differ a lot (hard and easy images)."""
    rng = np.random.default_rng(seed)
    hardness = rng.gamma(2.0, 1.5, size=(n, 1))
    return hardness * rng.uniform(0.5, 1.5, size=(n, joints))


def test_a_known_difference_is_recovered_and_holds():
    base = errors(1)
    noise = np.random.default_rng(2).normal(0, 0.05, base.shape)
    better = base - 0.3 + (noise - noise.mean())  # lower error by 0.3 px on average, joint by joint
    result = compare([(side(better), side(base))], lower_is_better=True)
    assert result.verdict == HOLDS
    assert result.low < 0.3 < result.high and result.low > 0.25 and result.high < 0.35
    assert result.difference == pytest.approx(0.3, abs=0.01)
    # the same numbers in the other order: the claim is false
    assert compare([(side(base), side(better))], lower_is_better=True).verdict == FAILS


def test_pairing_sees_a_difference_that_the_spread_of_images_would_hide():
    # the gain (0.05) is tiny next to how much images differ: only the pairing reveals it
    base = errors(3)
    better = base * 0.97
    assert base.std() > 20 * (base - better).mean()
    assert compare([(side(better), side(base))], lower_is_better=True).verdict == HOLDS


def test_a_null_difference_cannot_be_told():
    rng = np.random.default_rng(4)
    base = errors(5)
    a = base + rng.normal(0, 0.5, base.shape)
    b = base + rng.normal(0, 0.5, base.shape)
    result = compare([(side(a), side(b))], lower_is_better=True)
    assert result.verdict == UNSURE and result.low < 0 < result.high


def test_seeds_that_disagree_give_no_verdict_though_each_seed_alone_is_sure():
    base = [errors(6), errors(7), errors(8)]
    shifts = [0.4, -0.4, 0.4]
    pairs = [(side(b - s), side(b)) for b, s in zip(base, shifts)]
    for pair, shift in zip(pairs, shifts):
        assert compare([pair], lower_is_better=True).verdict == (HOLDS if shift > 0 else FAILS)
    combined = compare(pairs, lower_is_better=True)
    assert combined.verdict == UNSURE and combined.seeds == 3
    assert combined.difference == pytest.approx(0.4 / 3, abs=0.01)


def test_sides_are_matched_by_image_index_not_by_order():
    base = errors(9)
    better = base - 0.2
    order = np.random.default_rng(10).permutation(len(base))
    aligned = compare([(side(better), side(base))], lower_is_better=True)
    shuffled = compare([(side(better[order], order), side(base))], lower_is_better=True)
    assert shuffled.difference == pytest.approx(aligned.difference)
    assert shuffled.verdict == HOLDS
    # only the shared images count
    part = compare([(side(better[:100], np.arange(100)), side(base))], lower_is_better=True)
    assert part.images == 100


def test_per_sample_numbers_pool_to_what_the_metrics_report():
    g = torch.Generator().manual_seed(0)
    pred, target = torch.rand(50, 6, 2, generator=g) * 64, torch.rand(50, 6, 2, generator=g) * 64
    visible = torch.rand(50, 6, generator=g) > 0.2
    head = torch.rand(50, generator=g) * 40 + 10
    for name, params in (("rmse", {}), ("epe", {}), ("pckh", {"thresholds": [0.1, 0.5]}), ("auc", {})):
        metric = kitpose.build("metric", name, **params)
        metric.update(pred=pred, target=target, visible=visible, head_size=head)
        reported = metric.compute()
        entries = metric.per_sample()
        assert set(entries) == set(reported)
        for key, entry in entries.items():
            pooled = side(entry.values.numpy() * entry.counted.numpy(), root=entry.root)
            pooled.count = entry.counted.numpy().sum(-1).astype(float)
            assert pooled.number() == pytest.approx(reported[key], rel=1e-12), key


def test_direction_of_known_metrics():
    assert direction("PCKh@0.1") == "higher" and direction("AUC") == "higher"
    assert direction("RMSE") == "lower" and direction("PA-MPJPE") == "lower"
    assert direction("loss") is None


FACTORS = ["model", "encoding", "decoder"]


def test_claims_are_checked_against_the_study_factors():
    with pytest.raises(RecipeError, match="'modle' is not a factor") as info:
        parse_claims([{"metric": "RMSE", "better": {"modle": "a"}, "than": {"model": "b"}}], FACTORS, "s.yaml")
    assert info.value.path == "study.claims[0].better.modle"
    with pytest.raises(RecipeError, match="a higher or a lower value"):
        parse_claims([{"metric": "loss", "better": {"model": "a"}, "than": {"model": "b"}}], FACTORS, "s.yaml")
    with pytest.raises(RecipeError, match="same cells"):
        parse_claims([{"metric": "EPE", "better": {"model": "a"}, "than": {"model": "a"}}], FACTORS, "s.yaml")
    with pytest.raises(RecipeError, match="unknown claim key 'beter'"):
        parse_claims([{"metric": "EPE", "beter": {"model": "a"}, "than": {"model": "b"}}], FACTORS, "s.yaml")
    claims = parse_claims([{"metric": "score", "direction": "higher", "better": {"model": "a"},
                            "than": {"model": "b"}, "for_each": "decoder"}], FACTORS, "s.yaml")
    assert claims[0].for_each == ["decoder"] and not claims[0].lower_is_better


def test_a_claim_is_judged_for_each_group_and_refuses_ambiguous_sides():
    cells = [Cell({"model": m, "encoding": e, "decoder": d}, seed, f"{m}-{e}-{seed}")
             for m in ("a", "b") for e in ("x", "y") for d in ("dark", "plain") for seed in ("1", "2")]
    base = {cell.run: errors(11) for cell in cells}

    def load(cell: Cell, metric: str) -> Side:
        gain = 0.5 if cell.factors["decoder"] == "dark" else 0.0
        return side(base[cell.run] - gain)

    [claim] = parse_claims([{"metric": "EPE", "better": {"decoder": "dark"}, "than": {"decoder": "plain"},
                             "for_each": ["model", "encoding"]}], FACTORS, "s.yaml")
    judgements = judge(claim, cells, load, replicates=300)
    assert [j.group for j in judgements] == [{"model": m, "encoding": e} for m in "ab" for e in "xy"]
    assert all(j.result.verdict == HOLDS and j.result.seeds == 2 for j in judgements)
    [vague] = parse_claims([{"metric": "EPE", "better": {"decoder": "dark"}, "than": {"decoder": "plain"},
                             "for_each": ["model"]}], FACTORS, "s.yaml")
    with pytest.raises(RecipeError, match="ambiguous"):
        judge(vague, cells, load, replicates=300)


def test_a_gain_that_grows_with_a_factor_is_judged_level_by_level():
    factors = ["input", "decoder"]
    cells = [Cell({"input": size, "decoder": d}, seed, f"{size}-{seed}") for size in ("128", "96", "64")
             for d in ("dark", "argmax") for seed in ("1", "2")]
    gains = {"128": 0.1, "96": 0.3, "64": 0.3}  # the gain grows from 128 to 96, then stays
    base = {cell.run: errors(12 + int(cell.seed)) for cell in cells}

    def load(cell: Cell, metric: str) -> Side:
        gain = gains[cell.factors["input"]] if cell.factors["decoder"] == "dark" else 0.0
        return side(base[cell.run] - gain)

    [claim] = parse_claims([{"metric": "EPE", "better": {"decoder": "dark"}, "than": {"decoder": "argmax"},
                             "grows_as": {"input": ["128", "96", "64"]}}], factors, "s.yaml")
    first, second = judge(claim, cells, load, replicates=400)
    assert first.group == {"input": "96 vs 128"} and second.group == {"input": "64 vs 96"}
    assert first.result.verdict == HOLDS and first.result.difference == pytest.approx(0.2)
    assert second.result.verdict == UNSURE and second.result.difference == pytest.approx(0.0, abs=1e-12)
    assert "grows as input goes 128 -> 96 -> 64" in claim.text()
    with pytest.raises(RecipeError, match="left free"):
        parse_claims([{"metric": "EPE", "better": {"decoder": "dark"}, "than": {"decoder": "argmax"},
                       "for_each": ["input"], "grows_as": {"input": ["128", "64"]}}], factors, "s.yaml")


def test_seeds_tested_on_the_same_images_do_not_narrow_the_images_spread():
    # the gain differs a lot from image to image, the same way in every seed: three seeds on
    # the same 400 images know that spread no better than one seed does
    rng = np.random.default_rng(20)
    per_image = rng.normal(0.0, 1.0, size=(400, 1))
    runs = []
    for s in range(3):
        base = errors(21 + s)
        runs.append((side(base - 0.1 - per_image + rng.normal(0, 0.05, base.shape)), side(base)))
    one = compare(runs[:1], lower_is_better=True)
    three = compare(runs, lower_is_better=True)
    assert (three.high - three.low) > 0.8 * (one.high - one.low)


def test_a_number_that_cannot_be_computed_is_said_so():
    from kitpose_plugins.study.stats import NOVALUE

    base = errors(30)
    empty = Side.from_entries(np.arange(len(base)), base, np.zeros_like(base, dtype=bool))
    assert compare([(empty, side(base))]).verdict == NOVALUE
