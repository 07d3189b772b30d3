"""Balance plans: how many synthetic clips each class gets, and each clip's seed.

Every way of asking (``equal``, ``fill``, ``ratio`` and imbalanced-learn style
``sampling_strategy`` values) is validated in one place, :func:`resolve_sampling_strategy`,
and normalised to ``{class: count}`` of clips *to generate*. A :class:`BalancePlan` then lists
the clips in a fixed order (classes interleaved round-robin, so any prefix of the plan is
close to balanced), and clip ``i`` gets the seed :func:`clip_seed` ``(global seed, i)``: the same
clip whatever the batch size, device or shard that renders it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np

SamplingStrategy = (
    str | float | Mapping[str, int] | Callable[[Mapping[str, int]], Mapping[str, int]]
)
STRATEGY_NAMES = ("minority", "not minority", "not majority", "all", "auto")


class PlanError(ValueError):
    """A plan or sampling strategy that cannot be satisfied; the message names the argument."""


def clip_seed(global_seed: int, index: int) -> int:
    """Integer seed of clip ``index``, a hash of ``(global_seed, index)``, in ``[0, 2**63)``."""
    if index < 0:
        raise PlanError(f"clip index must be >= 0, got {index}")
    state = np.random.SeedSequence([int(global_seed), int(index)]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def clip_generator(seed: int) -> np.random.Generator:
    """The clip's own generator, from its integer seed."""
    return np.random.default_rng(seed)


@dataclass(frozen=True)
class PlannedClip:
    """One clip of a plan: its global index, class and seed."""

    index: int
    label: str
    seed: int


@dataclass(frozen=True)
class BalancePlan:
    """Clips to generate per class, with per-clip seeds.

    Attributes:
        counts: ``{class: number of clips}`` (classes with 0 are kept, in order).
        seed: global seed.
    """

    counts: dict[str, int]
    seed: int = 0

    def __post_init__(self) -> None:
        for label, count in self.counts.items():
            if not isinstance(count, Integral) or count < 0:
                raise PlanError(f"plan count for class {label!r} must be an int >= 0: {count!r}")

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def clips(self) -> list[PlannedClip]:
        """All clips, classes interleaved round-robin in ``counts`` order."""
        remaining = dict(self.counts)
        labels: list[str] = []
        while any(remaining.values()):
            for label in self.counts:
                if remaining[label]:
                    labels.append(label)
                    remaining[label] -= 1
        return [PlannedClip(i, label, clip_seed(self.seed, i)) for i, label in enumerate(labels)]

    def entries(self) -> list[tuple[str, int, tuple[int, ...]]]:
        """``(class, count, seeds)`` per class, in ``counts`` order."""
        clips = self.clips()
        return [
            (label, count, tuple(c.seed for c in clips if c.label == label))
            for label, count in self.counts.items()
        ]

    def to_dict(self) -> dict[str, object]:
        return {"counts": dict(self.counts), "seed": self.seed}


def _check_counts(real_counts: Mapping[str, int], name: str = "real_counts") -> dict[str, int]:
    if not real_counts:
        raise PlanError(f"{name} is empty: give at least one class")
    out = {}
    for label, count in real_counts.items():
        if not isinstance(count, Integral) or count < 0:
            raise PlanError(f"{name}[{label!r}] must be an int >= 0, got {count!r}")
        out[str(label)] = int(count)
    return out


def resolve_sampling_strategy(
    strategy: SamplingStrategy, real_counts: Mapping[str, int]
) -> dict[str, int]:
    """Normalise an imbalanced-learn style ``sampling_strategy`` to ``{class: clips to add}``.

    Args:
        strategy: ``'minority'`` (the smallest class up to the largest), ``'not minority'``,
            ``'not majority'`` (= ``'auto'``), ``'all'`` (every class up to the largest; the
            largest gets 0); a float ``r`` in ``(0, 1]``: every class up to ``r * largest``
            (a class already above gets 0); a dict ``{class: desired total}`` (totals below
            the real count are an error, as in imbalanced-learn); or a callable taking the real
            counts and returning such a dict.
        real_counts: ``{class: real clips}``.

    Raises:
        PlanError: unknown name, ratio out of range, unknown class, a target below the real
            count, or a callable returning something else than a dict.
    """
    counts = _check_counts(real_counts)
    largest = max(counts.values())
    if isinstance(strategy, str):
        if strategy not in STRATEGY_NAMES:
            raise PlanError(
                f"unknown sampling_strategy {strategy!r}; use one of {', '.join(STRATEGY_NAMES)}"
                ", a float ratio, a dict or a callable"
            )
        majority = max(counts, key=counts.__getitem__)
        minority = min(counts, key=counts.__getitem__)
        chosen = {
            "minority": {minority},
            "not minority": set(counts) - {minority},
            "not majority": set(counts) - {majority},
            "auto": set(counts) - {majority},
            "all": set(counts),
        }[strategy]
        return {c: (largest - n if c in chosen else 0) for c, n in counts.items()}
    if isinstance(strategy, Real) and not isinstance(strategy, bool):
        if not 0 < strategy <= 1:
            raise PlanError(f"a float sampling_strategy must be in (0, 1], got {strategy}")
        target = int(strategy * largest)
        return {c: max(target - n, 0) for c, n in counts.items()}
    if callable(strategy):
        result = strategy(dict(counts))
        if not isinstance(result, Mapping):
            raise PlanError(f"the sampling_strategy callable returned {type(result).__name__}")
        return resolve_sampling_strategy(dict(result), counts)
    if isinstance(strategy, Mapping):
        unknown = sorted(set(map(str, strategy)) - set(counts))
        if unknown:
            raise PlanError(
                f"sampling_strategy names unknown classes {unknown}; known: {list(counts)}"
            )
        out = dict.fromkeys(counts, 0)
        for label, target in strategy.items():
            if not isinstance(target, Integral) or target < counts[str(label)]:
                raise PlanError(
                    f"sampling_strategy[{label!r}] = {target!r} must be an int >= the real "
                    f"count {counts[str(label)]} (over-sampling never removes clips)"
                )
            out[str(label)] = int(target) - counts[str(label)]
        return out
    raise PlanError(
        f"sampling_strategy of type {type(strategy).__name__} is not supported; use a name, "
        "a float, a dict or a callable"
    )


def equal(n_per_class: int, classes: Sequence[str], seed: int = 0) -> BalancePlan:
    """``n_per_class`` clips for every class (a balanced set from scratch)."""
    if not isinstance(n_per_class, Integral) or n_per_class < 0:
        raise PlanError(f"n_per_class must be an int >= 0, got {n_per_class!r}")
    if not classes:
        raise PlanError("classes is empty: give the scheme's class names")
    if len(set(classes)) != len(classes):
        raise PlanError(f"classes has duplicates: {list(classes)}")
    return BalancePlan({str(c): int(n_per_class) for c in classes}, seed)


def fill(real_counts: Mapping[str, int], target: str | int = "max", seed: int = 0) -> BalancePlan:
    """Top every class up to the largest real class (``"max"``) or to ``target`` clips."""
    counts = _check_counts(real_counts)
    if target == "max":
        return BalancePlan(resolve_sampling_strategy("all", counts), seed)
    if not isinstance(target, Integral) or isinstance(target, bool) or target < 0:
        raise PlanError(f"fill target must be 'max' or an int >= 0, got {target!r}")
    return BalancePlan({c: max(int(target) - n, 0) for c, n in counts.items()}, seed)


def ratio(real_counts: Mapping[str, int], r: float, seed: int = 0) -> BalancePlan:
    """``round(r * total real)`` synthetic clips, given to the smallest classes first.

    The synthetic clips fill the real distribution from the bottom (water-filling), so the mixed
    set is as balanced as ``r`` allows; leftovers of a level go to classes in ``real_counts``
    order.
    """
    counts = _check_counts(real_counts)
    if isinstance(r, bool) or not isinstance(r, Real) or r < 0:
        raise PlanError(f"ratio r (synthetic:real) must be a number >= 0, got {r!r}")
    budget = round(r * sum(counts.values()))
    added = dict.fromkeys(counts, 0)
    while budget > 0:
        level = min(counts[c] + added[c] for c in counts)
        lowest = [c for c in counts if counts[c] + added[c] == level]
        higher = [counts[c] + added[c] for c in counts if counts[c] + added[c] > level]
        step = min(higher) - level if higher else budget
        if step * len(lowest) <= budget:
            for c in lowest:
                added[c] += step
            budget -= step * len(lowest)
        else:
            share, extra = divmod(budget, len(lowest))
            for i, c in enumerate(lowest):
                added[c] += share + (1 if i < extra else 0)
            budget = 0
    return BalancePlan(added, seed)


def from_sampling_strategy(
    strategy: SamplingStrategy, real_counts: Mapping[str, int], seed: int = 0
) -> BalancePlan:
    """A plan from any :func:`resolve_sampling_strategy` value."""
    return BalancePlan(resolve_sampling_strategy(strategy, real_counts), seed)
