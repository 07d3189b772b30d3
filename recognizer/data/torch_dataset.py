"""PyTorch datasets over samples: one source of clips, or a mix of sources with tags kept.

Each item is ``(x, label, index)``: ``x`` from the representation (``(C, T, H, W)`` for clips,
``(C, H, W)`` for apex flow), the class index, and the item's index (so predictions can be
pooled per sample, subject and source afterwards).

Randomness: item ``i`` in epoch ``e`` uses ``numpy.random.default_rng([seed, e, i])``, so a clip
gets the same jitter and flip whatever the worker count or batch size; call
:meth:`ClipDataset.set_epoch` to vary it between epochs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset

from recognizer.data.frame_source import FrameSource, RawFrames
from recognizer.data.representations import Representation
from recognizer.data.samples import Sample


class ClipDataset(Dataset):
    """Samples + labels + a representation, read from a frame source.

    Args:
        samples: the clips.
        labels: class index per sample.
        representation: e.g. :class:`~recognizer.data.representations.KeyFrameClip` or
            :class:`~recognizer.data.representations.ApexFlow`.
        train: jitter key frames and flip (from per-item generators).
        seed: global seed of those generators.
        source: where frames come from (default: the release files,
            :class:`~recognizer.data.frame_source.RawFrames`; the preprocessing cache:
            :class:`~recognizer.data.preprocess.CachedFrames`).
        source_tag: tag of every item for reports (default: each sample's ``source``).
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        labels: Sequence[int],
        representation: Representation,
        *,
        train: bool = False,
        seed: int = 0,
        source: FrameSource | None = None,
        source_tag: str | None = None,
    ) -> None:
        if len(samples) != len(labels):
            raise ValueError(f"{len(samples)} samples but {len(labels)} labels")
        self.samples = list(samples)
        self.labels = [int(label) for label in labels]
        self.representation = representation
        self.train = train
        self.seed = seed
        self.epoch = 0
        self.source = source if source is not None else RawFrames()
        self.sources = [source_tag or s.source for s in self.samples]

    def set_epoch(self, epoch: int) -> None:
        """Vary training randomness between epochs."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.samples)

    def generator(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, index])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        if not 0 <= index < len(self.samples):
            raise IndexError(f"index {index} out of range for {len(self.samples)} samples")
        x = self.representation(
            self.samples[index],
            self.source,
            train=self.train,
            generator=self.generator(index) if self.train else None,
        )
        return x, self.labels[index], index


class MixedDataset(ConcatDataset):
    """Several datasets end to end (e.g. real + synthetic), each with a source tag.

    A :class:`torch.utils.data.ConcatDataset` whose items are ``(x, label, index)`` with
    ``index`` into the mix (not into the part), and whose :attr:`sources` say where each item
    came from, for per-source reporting.

    Args:
        parts: ``{source tag: dataset}`` in mix order; each dataset yields ``(x, label, index)``
            and has a ``labels`` list.
    """

    def __init__(self, parts: Mapping[str, Dataset]) -> None:
        if not parts:
            raise ValueError("MixedDataset needs at least one part")
        super().__init__(list(parts.values()))
        self.names = list(parts)

    @property
    def sources(self) -> list[str]:
        """Source tag of every item, in mix order."""
        return [name for name, part in zip(self.names, self.datasets) for _ in range(len(part))]  # type: ignore[arg-type]

    @property
    def labels(self) -> list[int]:
        """Class index of every item, in mix order."""
        return [int(label) for part in self.datasets for label in part.labels]  # type: ignore[attr-defined]

    def set_epoch(self, epoch: int) -> None:
        """Forward the epoch to every part that varies its randomness with it."""
        for part in self.datasets:
            if hasattr(part, "set_epoch"):
                part.set_epoch(epoch)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        x, label, _ = super().__getitem__(index)
        return x, label, index
