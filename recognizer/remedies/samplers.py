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


class WeightedIndexSampler(Sampler[int]):
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
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} outside [0, {num_replicas})")
        self.replacement = replacement
        self.seed = int(seed)
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @property
    def total_size(self) -> int:
        return math.ceil(self.num_samples / self.num_replicas) * self.num_replicas

    def global_indices(self) -> list[int]:
        """The shared sequence of this epoch (all ranks), padded to ``total_size``."""
        generator = torch.Generator().manual_seed(
            int(np.random.SeedSequence([self.seed, self.epoch]).generate_state(1)[0])
        )
        drawn = torch.multinomial(
            self.weights, self.num_samples, self.replacement, generator=generator
        ).tolist()
        pad = self.total_size - len(drawn)
        return drawn + (drawn * math.ceil(pad / len(drawn)))[:pad]

    def __iter__(self) -> Iterator[int]:
        return iter(self.global_indices()[self.rank :: self.num_replicas])

    def __len__(self) -> int:
        return self.total_size // self.num_replicas


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
