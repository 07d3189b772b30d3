import pytest

from mesynth.generation.balance import (
    BalancePlan,
    PlanError,
    clip_seed,
    equal,
    fill,
    from_sampling_strategy,
    ratio,
    resolve_sampling_strategy,
)

REAL = {"happiness": 10, "surprise": 4, "disgust": 7, "fear": 1}


def test_equal_gives_every_class_n() -> None:
    plan = equal(3, ["a", "b"], seed=5)
    assert plan.counts == {"a": 3, "b": 3} and plan.total == 6
    assert [c.label for c in plan.clips()] == ["a", "b", "a", "b", "a", "b"]


def test_fill_to_max_and_to_target() -> None:
    assert fill(REAL).counts == {"happiness": 0, "surprise": 6, "disgust": 3, "fear": 9}
    assert fill(REAL, target=5).counts == {"happiness": 0, "surprise": 1, "disgust": 0, "fear": 4}


def test_ratio_water_fills_the_smallest_classes() -> None:
    # 22 real clips, r = 0.5 -> 11 synthetic: fear 1->4 (3), then fear+surprise 4->7 (6),
    # leaves 2 for surprise, disgust, fear (all at 7): the first two in class order get one
    plan = ratio(REAL, 0.5)
    assert plan.total == 11
    assert plan.counts == {"happiness": 0, "surprise": 4, "disgust": 1, "fear": 6}
    mixed = {c: REAL[c] + plan.counts[c] for c in REAL}
    assert mixed == {"happiness": 10, "surprise": 8, "disgust": 8, "fear": 7}


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("minority", {"happiness": 0, "surprise": 0, "disgust": 0, "fear": 9}),
        ("not minority", {"happiness": 0, "surprise": 6, "disgust": 3, "fear": 0}),
        ("not majority", {"happiness": 0, "surprise": 6, "disgust": 3, "fear": 9}),
        ("all", {"happiness": 0, "surprise": 6, "disgust": 3, "fear": 9}),
        (0.5, {"happiness": 0, "surprise": 1, "disgust": 0, "fear": 4}),
        ({"fear": 3, "surprise": 4}, {"happiness": 0, "surprise": 0, "disgust": 0, "fear": 2}),
        (lambda counts: {c: 2 * n for c, n in counts.items()}, REAL),
    ],
)
def test_sampling_strategies_normalise_to_counts(strategy, expected) -> None:
    assert resolve_sampling_strategy(strategy, REAL) == expected


@pytest.mark.parametrize(
    ("strategy", "message"),
    [
        ("most", "unknown sampling_strategy 'most'"),
        (1.5, r"in \(0, 1\]"),
        ({"anger": 3}, "unknown classes"),
        ({"fear": 0}, "over-sampling never removes"),
        (lambda counts: [1, 2], "returned list"),
        ([1, 2], "not supported"),
    ],
)
def test_bad_strategies_are_named(strategy, message) -> None:
    with pytest.raises(PlanError, match=message):
        resolve_sampling_strategy(strategy, REAL)


def test_bad_plan_arguments() -> None:
    with pytest.raises(PlanError, match="n_per_class"):
        equal(-1, ["a"])
    with pytest.raises(PlanError, match="duplicates"):
        equal(1, ["a", "a"])
    with pytest.raises(PlanError, match=r"real_counts\['x'\]"):
        fill({"x": -2})
    with pytest.raises(PlanError, match="fill target"):
        fill(REAL, target="min")
    with pytest.raises(PlanError, match="ratio r"):
        ratio(REAL, -1)
    with pytest.raises(PlanError, match="empty"):
        fill({})


def test_clip_seeds_depend_only_on_global_seed_and_index() -> None:
    plan = from_sampling_strategy("not majority", REAL, seed=7)
    clips = plan.clips()
    assert [c.index for c in clips] == list(range(plan.total))
    assert all(c.seed == clip_seed(7, c.index) for c in clips)
    assert len({c.seed for c in clips}) == len(clips)
    assert clip_seed(7, 3) != clip_seed(8, 3)
    assert 0 <= clip_seed(2**40, 10**9) < 2**63
    entries = plan.entries()
    assert [(label, count) for label, count, _ in entries] == list(plan.counts.items())
    assert sum(len(seeds) for *_, seeds in entries) == plan.total


def test_interleaving_keeps_prefixes_balanced() -> None:
    labels = [c.label for c in BalancePlan({"a": 2, "b": 4, "c": 1}).clips()]
    assert labels == ["a", "b", "c", "a", "b", "b", "b"]
