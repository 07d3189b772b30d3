from collections import Counter

import numpy as np
import pytest

from recognizer.remedies.samplers import (
    ClassUniformSampler,
    OversampleSampler,
    ShuffleSampler,
    WeightedIndexSampler,
    create_sampler,
)


def test_class_uniform_draws_classes_equally() -> None:
    labels = np.array([0] * 900 + [1] * 90 + [2] * 10)
    sampler = ClassUniformSampler(labels, num_samples=30_000, seed=3)
    drawn = labels[list(sampler)]
    share = np.bincount(drawn, minlength=3) / len(drawn)
    assert np.allclose(share, 1 / 3, atol=0.02)
    assert len(sampler) == 30_000


def test_same_epoch_same_order_new_epoch_new_order() -> None:
    sampler = ClassUniformSampler([0, 0, 0, 1, 2, 2], seed=1)
    first = list(sampler)
    assert list(sampler) == first
    sampler.set_epoch(1)
    assert list(sampler) != first
    sampler.set_epoch(0)
    assert list(sampler) == first


@pytest.mark.parametrize("world", [2, 3])
def test_ranks_take_disjoint_slices_of_one_shared_sequence(world: int) -> None:
    size = 10
    samplers = [ShuffleSampler(size, seed=5, num_replicas=world, rank=r) for r in range(world)]
    for s in samplers:
        s.set_epoch(4)
    parts = [list(s) for s in samplers]
    assert len({len(p) for p in parts}) == 1
    shared = samplers[0].global_indices()
    for rank, part in enumerate(parts):
        assert part == shared[rank::world]
    assert set().union(*map(set, parts)) == set(range(size))
    assert sorted(shared[:size]) == list(range(size))


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        WeightedIndexSampler([1.0, -1.0])
    with pytest.raises(ValueError, match="rank"):
        ShuffleSampler(4, num_replicas=2, rank=2)


def _random_over_sampler_counts(labels: np.ndarray) -> dict[int, int]:
    """What imbalanced-learn's ``RandomOverSampler()`` (strategy 'not majority') returns per
    class: every class raised to the majority count (imbalanced-learn itself when installed)."""
    try:
        from imblearn.over_sampling import RandomOverSampler
    except ImportError:
        counts = Counter(labels.tolist())
        return dict.fromkeys(counts, max(counts.values()))
    _, resampled = RandomOverSampler(random_state=0).fit_resample(labels[:, None], labels)
    return dict(Counter(resampled.tolist()))


def test_oversample_duplicates_minority_indices_up_to_the_majority_count() -> None:
    labels = np.array([2] * 9 + [0] * 5 + [1] * 2)
    sampler = OversampleSampler(labels, seed=7)
    drawn = list(sampler)
    assert dict(Counter(labels[drawn].tolist())) == _random_over_sampler_counts(labels)
    assert len(sampler) == len(drawn) == 27
    assert set(drawn) == set(range(len(labels)))  # every original sample kept
    majority = np.flatnonzero(labels == 2)
    assert sorted(i for i in drawn if i in majority) == majority.tolist()  # not duplicated
    assert list(sampler) == drawn  # deterministic per (seed, epoch)
    sampler.set_epoch(1)
    assert list(sampler) != drawn  # reshuffled (and redrawn) every epoch
    sampler.set_epoch(0)
    assert list(sampler) == drawn
    assert list(OversampleSampler(labels, seed=8)) != drawn


def test_create_sampler_by_name() -> None:
    labels = [0, 0, 0, 1]
    assert isinstance(create_sampler("shuffle", 4, None), ShuffleSampler)
    assert isinstance(create_sampler("class_uniform", 4, labels), ClassUniformSampler)
    assert len(create_sampler("oversample", 4, labels, num_replicas=2, rank=1)) == 3
    with pytest.raises(ValueError, match="sampler must be one of"):
        create_sampler("smote", 4, labels)
    with pytest.raises(ValueError, match="labels"):
        create_sampler("oversample", 4, None)
    with pytest.raises(ValueError, match="labels has 3 labels for 4 samples"):
        create_sampler("class_uniform", 4, labels[:3])
