"""A dataset held as tensors, for training small inputs without a DataLoader.

When every item of a dataset is cheap and fixed up to its flip (apex-flow images: a
representation with ``views(sample, source) -> (plain, mirrored)``, see
:meth:`recognizer.data.representations.ApexFlow.views`), :func:`tensorize` computes each item
once, and :meth:`InMemoryData.batch` builds a batch by indexing, on the tensors' device.

Convention (same augmentation as the loader path): item ``i`` of a part with seed ``s`` is
mirrored in epoch ``e`` when the first uniform draw of ``numpy.random.default_rng([s, e, i])``
is below :data:`~recognizer.data.representations.FLIP_PROBABILITY`, the draw
:class:`~recognizer.data.torch_dataset.ClipDataset` makes for that item; so both paths give the
same batches, bit for bit. Key-frame clips jitter their frames per item and keep the loader
path when training.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from torch.utils.data import Dataset

from recognizer.data.representations import FLIP_PROBABILITY
from recognizer.data.torch_dataset import ClipDataset, MixedDataset

_BLOCK = 128


@lru_cache(maxsize=1 << 16)
def _draw_block(seed: int, epoch: int, block: int) -> np.ndarray:
    start = block * _BLOCK
    return np.array(
        [np.random.default_rng([seed, epoch, i]).random() for i in range(start, start + _BLOCK)]
    )


def first_draws(seed: int, epoch: int, n: int) -> np.ndarray:
    """``(n,)`` the first uniform draw of ``default_rng([seed, epoch, i])`` for ``i < n``.

    Cached in blocks, so the folds of a protocol (same seed, overlapping index ranges) draw
    each value once.
    """
    blocks = [_draw_block(int(seed), int(epoch), b) for b in range(-(-n // _BLOCK))]
    return np.concatenate(blocks)[:n] if blocks else np.zeros(0)


@dataclass
class Part:
    """A contiguous run of items sharing one generator seed.

    Attributes:
        start: first item of the run in the dataset.
        length: items in the run.
        seed: the seed of their generators.
        flips: whether these items are mirrored by their draws (training with a flip).
    """

    start: int
    length: int
    seed: int
    flips: bool


@dataclass
class InMemoryData:
    """A dataset of ``(x, label, index)`` items as tensors.

    Attributes:
        inputs: ``(N, ...)`` float32 items without augmentation, as the model sees them.
        mirrored: ``(N, ...)`` the mirrored items (the plain ones where an item never flips), or
            ``None`` when no item flips.
        labels: ``(N,)`` int64 class indices.
        parts: the runs of items and how their flips are drawn.
    """

    inputs: torch.Tensor
    mirrored: torch.Tensor | None
    labels: torch.Tensor
    parts: list[Part]

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device) -> InMemoryData:
        """The same data on ``device``."""
        mirrored = self.mirrored.to(device) if self.mirrored is not None else None
        return InMemoryData(self.inputs.to(device), mirrored, self.labels.to(device), self.parts)

    def flips(self, epoch: int) -> torch.Tensor:
        """``(N,)`` bool: which items are mirrored in ``epoch``."""
        mask = np.zeros(len(self), dtype=bool)
        for part in self.parts:
            if part.flips:
                draws = first_draws(part.seed, epoch, part.length)
                mask[part.start : part.start + part.length] = draws < FLIP_PROBABILITY
        return torch.from_numpy(mask).to(self.inputs.device)

    def batch(
        self, indices: torch.Tensor, flips: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)`` of the items ``indices``.

        Args:
            indices: ``(B,)`` int64 item indices, on the data's device.
            flips: ``(N,)`` bool from :meth:`flips` of the epoch (``None``: no flips).

        Returns:
            ``x`` ``(B, ...)`` and ``y`` ``(B,)``, as a DataLoader would stack them.
        """
        x = self.inputs.index_select(0, indices)
        if flips is not None and self.mirrored is not None:
            chosen = flips.index_select(0, indices)
            if bool(chosen.any()):
                shape = (-1,) + (1,) * (x.dim() - 1)
                x = torch.where(chosen.view(shape), self.mirrored.index_select(0, indices), x)
        return x, self.labels.index_select(0, indices)


def tensorize(dataset: Dataset, max_bytes: int) -> InMemoryData | str:
    """``dataset`` as :class:`InMemoryData`, or why it cannot be (one line for the log).

    A :class:`ClipDataset` qualifies when its representation has ``views`` (apex flow), a
    :class:`MixedDataset` when all its parts do. The size is checked on the first item before
    anything else is computed.

    Args:
        dataset: the dataset to hold.
        max_bytes: the memory budget (plain and mirrored items together).
    """
    parts = dataset.datasets if isinstance(dataset, MixedDataset) else [dataset]
    for part in parts:
        if not isinstance(part, ClipDataset):
            return f"a {type(part).__name__} has no in-memory form"
        if not hasattr(part.representation, "views"):
            return f"representation {type(part.representation).__name__} has no fixed views"
    total = sum(len(p) for p in parts)
    if total == 0:
        return "the dataset is empty"
    first = parts[0]
    plain, mirrored = first.representation.views(first.samples[0], first.source)
    copies = 2 if any(p.train and p.representation.flip for p in parts) else 1
    needed = plain.numel() * plain.element_size() * total * copies
    if needed > max_bytes:
        return f"needs {needed / 2**20:.2f} MB, over the budget of {max_bytes / 2**20:.2f} MB"
    inputs, flipped, layout, start = [], [], [], 0
    for part in parts:
        flips = part.train and part.representation.flip
        for sample in part.samples:
            plain, mirrored = part.representation.views(sample, part.source)
            inputs.append(plain)
            flipped.append(mirrored if flips and mirrored is not None else plain)
        layout.append(Part(start, len(part), part.seed, flips))
        start += len(part)
    labels = torch.tensor([label for part in parts for label in part.labels], dtype=torch.int64)
    return InMemoryData(
        torch.stack(inputs), torch.stack(flipped) if copies == 2 else None, labels, layout
    )


def _same(a: object, b: object) -> bool:
    return a is b or a == b


def reseeded(held: InMemoryData, dataset: Dataset, other: Dataset) -> InMemoryData | None:
    """``other``'s held form, sharing ``held``'s tensors (the held form of ``dataset``), or
    ``None`` when the two datasets' items may differ.

    Shared when every part holds the same samples in the same order with the same labels,
    representation, frame source and training mode (so :func:`tensorize` would compute the
    same tensors); the parts' seeds may differ (e.g. the runs of several seeds of one fold),
    and the result draws its flips from ``other``'s seeds. Synthetic parts rendered per seed
    hold other samples and are not shared.
    """
    parts = dataset.datasets if isinstance(dataset, MixedDataset) else [dataset]
    others = other.datasets if isinstance(other, MixedDataset) else [other]
    if len(parts) != len(others) or len(parts) != len(held.parts):
        return None
    for a, b in zip(parts, others):
        if not (isinstance(a, ClipDataset) and isinstance(b, ClipDataset)):
            return None
        if len(a.samples) != len(b.samples) or a.train != b.train or a.labels != b.labels:
            return None
        if not (_same(a.representation, b.representation) and _same(a.source, b.source)):
            return None
        if not all(_same(x, y) for x, y in zip(a.samples, b.samples)):
            return None
    layout = [Part(p.start, p.length, b.seed, p.flips) for p, b in zip(held.parts, others)]
    return InMemoryData(held.inputs, held.mirrored, held.labels, layout)
