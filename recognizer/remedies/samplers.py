"""Samplers that resample *indices* (never data), deterministic per epoch and DDP-aware.

Convention: every rank builds the same index sequence from ``(seed, epoch)`` and takes its own
slice ``sequence[rank::num_replicas]``; the sequence is padded (wrapping around) to a multiple of
``num_replicas`` so ranks get equal counts. Call ``set_epoch(e)`` before each epoch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler


class EpochIndexSampler(Sampler[int]):
    """Base of the samplers here: one index sequence per ``(seed, epoch)``, sliced per rank.

    Subclasses define :meth:`draw` (the epoch's sequence over all ranks, from the given
    generator) and ``num_samples`` (its length).

    Args:
        seed: global seed; epoch ``e`` uses the generator seeded from ``(seed, e)``.
        num_replicas, rank: DDP world size and this process's rank.
    """

    num_samples: int

    def __init__(self, *, seed: int = 0, num_replicas: int = 1, rank: int = 0) -> None:
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} outside [0, {num_replicas})")
        self.seed = int(seed)
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @property
    def total_size(self) -> int:
        return math.ceil(self.num_samples / self.num_replicas) * self.num_replicas

    def draw(self, generator: torch.Generator) -> list[int]:
        raise NotImplementedError

    def global_indices(self) -> list[int]:
        """The shared sequence of this epoch (all ranks), padded to ``total_size``."""
        generator = torch.Generator().manual_seed(
            int(np.random.SeedSequence([self.seed, self.epoch]).generate_state(1)[0])
        )
        drawn = self.draw(generator)
        pad = self.total_size - len(drawn)
        return drawn + (drawn * math.ceil(pad / len(drawn)))[:pad]

    def __iter__(self) -> Iterator[int]:
        return iter(self.global_indices()[self.rank :: self.num_replicas])

    def __len__(self) -> int:
        return self.total_size // self.num_replicas


class WeightedIndexSampler(EpochIndexSampler):
    """Draw indices with probability proportional to ``weights``.

    Args:
        weights: ``(N,)`` non-negative sampling weight per dataset index.
        num_samples: draws per epoch over all ranks (default ``N``).
        replacement: draw with replacement (``False`` with equal weights is a shuffle).
        seed: global seed; epoch ``e`` uses the generator seeded from ``(seed, e)``.
        num_replicas, rank: DDP world size and this process's rank.
    """

    def __init__(
        self,
        weights: Sequence[float] | np.ndarray | torch.Tensor,
        num_samples: int | None = None,
        *,
        replacement: bool = True,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        self.weights = torch.as_tensor(np.asarray(weights, dtype=np.float64))
        if self.weights.ndim != 1 or len(self.weights) == 0:
            raise ValueError("weights must be a non-empty 1D sequence")
        if (self.weights < 0).any() or self.weights.sum() <= 0:
            raise ValueError("weights must be non-negative with a positive sum")
        self.num_samples = len(self.weights) if num_samples is None else int(num_samples)
        if self.num_samples <= 0:
            raise ValueError(f"num_samples must be positive, got {num_samples!r}")
        if not replacement and self.num_samples > int((self.weights > 0).sum()):
            raise ValueError("without replacement num_samples cannot exceed the non-zero weights")
        super().__init__(seed=seed, num_replicas=num_replicas, rank=rank)
        self.replacement = replacement

    def draw(self, generator: torch.Generator) -> list[int]:
        return torch.multinomial(
            self.weights, self.num_samples, self.replacement, generator=generator
        ).tolist()


def class_uniform_weights(labels: Sequence[int] | np.ndarray) -> np.ndarray:
    """``(N,)`` weights ``1 / count(label)``: every class is drawn equally often on average."""
    labels_arr = np.asarray(labels, dtype=np.int64)
    if labels_arr.ndim != 1 or labels_arr.size == 0:
        raise ValueError("labels must be a non-empty 1D sequence")
    _, inverse, counts = np.unique(labels_arr, return_inverse=True, return_counts=True)
    return 1.0 / counts[inverse]


class ClassUniformSampler(WeightedIndexSampler):
    """Class-uniform resampling: each draw picks a class uniformly, then one of its samples.

    ``num_samples`` defaults to the dataset size, so an epoch has the usual length.
    """

    def __init__(
        self,
        labels: Sequence[int] | np.ndarray,
        num_samples: int | None = None,
        *,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        super().__init__(
            class_uniform_weights(labels),
            num_samples,
            replacement=True,
            seed=seed,
            num_replicas=num_replicas,
            rank=rank,
        )


class ShuffleSampler(WeightedIndexSampler):
    """A plain per-epoch shuffle (every index once), deterministic and DDP-aware."""

    def __init__(self, size: int, *, seed: int = 0, num_replicas: int = 1, rank: int = 0) -> None:
        super().__init__(
            np.ones(size), size, replacement=False, seed=seed, num_replicas=num_replicas, rank=rank
        )


class OversampleSampler(EpochIndexSampler):
    """Random oversampling (imbalanced-learn's ``RandomOverSampler``, strategy 'not majority')
    on indices: every index once, plus each smaller class topped up to the majority count
    with indices of that class drawn with replacement, the whole shuffled. Redrawn every epoch.

    An epoch has ``K × max(count)`` indices for ``K`` classes present in ``labels``.

    Args:
        labels: ``(N,)`` class index per dataset index.
        seed, num_replicas, rank: as in :class:`EpochIndexSampler`.
    """

    def __init__(
        self,
        labels: Sequence[int] | np.ndarray,
        *,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        labels_arr = np.asarray(labels, dtype=np.int64)
        if labels_arr.ndim != 1 or labels_arr.size == 0:
            raise ValueError("labels must be a non-empty 1D sequence")
        super().__init__(seed=seed, num_replicas=num_replicas, rank=rank)
        self.members = [
            torch.from_numpy(np.flatnonzero(labels_arr == c)) for c in np.unique(labels_arr)
        ]
        self.majority = max(len(m) for m in self.members)
        self.num_samples = self.majority * len(self.members)

    def draw(self, generator: torch.Generator) -> list[int]:
        extra = [
            m[torch.randint(len(m), (self.majority - len(m),), generator=generator)]
            for m in self.members
        ]
        indices = torch.cat([*self.members, *extra])
        return indices[torch.randperm(len(indices), generator=generator)].tolist()


#: sampler names a remedy chooses from (:func:`create_sampler`)
SAMPLERS = ("shuffle", "class_uniform", "oversample")


def create_sampler(
    name: str,
    size: int,
    labels: Sequence[int] | None,
    *,
    seed: int = 0,
    num_replicas: int = 1,
    rank: int = 0,
) -> EpochIndexSampler:
    """The training sampler ``name`` over a dataset of ``size`` items.

    Args:
        name: ``"shuffle"`` (every index once per epoch), ``"class_uniform"``
            (:class:`ClassUniformSampler`) or ``"oversample"`` (:class:`OversampleSampler`).
        size: N, the dataset length.
        labels: ``(N,)`` class indices; needed by ``class_uniform`` and ``oversample``.
        seed, num_replicas, rank: as in :class:`EpochIndexSampler`.

    Raises:
        ValueError: unknown ``name``, or ``labels`` missing or not of length ``size``.
    """
    if name not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {name!r}")
    ddp = {"seed": seed, "num_replicas": num_replicas, "rank": rank}
    if name == "shuffle":
        return ShuffleSampler(size, **ddp)
    if labels is None:
        raise ValueError(f"sampler {name!r} needs the training labels; labels is None")
    if len(labels) != size:
        raise ValueError(f"labels has {len(labels)} labels for {size} samples")
    if name == "class_uniform":
        return ClassUniformSampler(labels, **ddp)
    return OversampleSampler(labels, **ddp)
