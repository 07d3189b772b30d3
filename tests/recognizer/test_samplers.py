import numpy as np
import pytest

from recognizer.remedies.samplers import ClassUniformSampler, ShuffleSampler, WeightedIndexSampler


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
