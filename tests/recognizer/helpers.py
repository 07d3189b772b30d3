"""Small synthetic data for recognizer tests: tensors yielding ``(x, label, index)``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import Dataset

from recognizer.datasets.engine import ReleaseSpec


class TensorClips(Dataset):
    """``(x, label, index)`` items over a stacked tensor ``(N, ...)``."""

    def __init__(self, x: torch.Tensor, labels: Sequence[int]) -> None:
        self.x = x
        self.labels = [int(v) for v in labels]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        return self.x[i], self.labels[i], i


def moving_blobs(n: int, seed: int, frames: int = 8, size: int = 32) -> tuple[torch.Tensor, list]:
    """``(N, 3, T, H, W)`` clips of a Gaussian blob moving right (label 1) or left (label 0)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    yy, xx = np.mgrid[0:size, 0:size]
    clips = np.zeros((n, 3, frames, size, size), np.float32)
    for i, label in enumerate(labels):
        step = 2.0 if label == 1 else -2.0
        x0 = rng.uniform(size * 0.3, size * 0.7) - step * frames / 2
        y0 = rng.uniform(size * 0.3, size * 0.7)
        for t in range(frames):
            cx = x0 + step * t
            clips[i, :, t] = np.exp(-((xx - cx) ** 2 + (yy - y0) ** 2) / 8.0)
    clips += rng.normal(0, 0.05, clips.shape).astype(np.float32)
    return torch.from_numpy(clips), labels.tolist()


@dataclass(frozen=True)
class FakeSample:
    """The fields of :class:`recognizer.data.samples.Sample` that protocols and reports use."""

    dataset: str
    subject: str
    clip: str
    source: str = "real"
    feature: tuple[float, ...] = ()
    extra: dict[str, str] = field(default_factory=dict)


def feature_factory(samples: Sequence[FakeSample], labels: Sequence[int], train: bool) -> Dataset:
    """Apex-flow-like ``(3, 28, 28)`` inputs whose mean encodes the sample's features."""
    x = torch.stack(
        [
            torch.tensor(s.feature, dtype=torch.float32).view(3, 1, 1).expand(3, 28, 28)
            for s in samples
        ]
    )
    return TensorClips(x, labels)


def two_class_samples() -> tuple[list[FakeSample], list[int]]:
    """24 samples of 4 CASME II subjects, 6 clips each, two classes told apart by the feature."""
    rng = np.random.default_rng(0)
    samples, labels = [], []
    for s in range(4):
        for c in range(6):
            label = c % 2
            feature = tuple(float(v) for v in np.eye(3)[label] + rng.normal(0, 0.1, 3))
            samples.append(FakeSample("casme2", f"casme2/s{s}", f"c{c}", feature=feature))
            labels.append(label)
    return samples, labels


SAMPLES, LABELS = two_class_samples()


def kfold_run(remedy: object, out_dir: object, epochs: int = 1, **trainer: object) -> object:
    """:func:`~recognizer.experiments.runner.run_protocol` of a tiny STSTNet with ``remedy`` over
    :data:`SAMPLES`, 2-fold without validation, on the CPU; ``trainer``: more
    :class:`~recognizer.training.trainer.TrainerConfig` settings."""
    from recognizer.experiments.runner import run_protocol
    from recognizer.models import create_model
    from recognizer.protocols import create_protocol
    from recognizer.training.trainer import TrainerConfig

    return run_protocol(
        SAMPLES,
        LABELS,
        protocol=create_protocol("kfold", n_splits=2, val_fraction=0.0),
        dataset_factory=feature_factory,
        model_factory=lambda k: create_model("ststnet", k),
        remedy=remedy,
        trainer_config=TrainerConfig(
            epochs=epochs, batch_size=8, lr=0.05, device="cpu", progress=False, **trainer
        ),
        out_dir=out_dir,
    )


def held_out_fold_context(
    rows: Sequence, subjects: Sequence[str], tested: str, classes: Sequence[str], fold_dir, **extra
) -> object:
    """The :class:`~recognizer.remedies.FoldContext` of fold 0 testing ``tested``: training on
    the rows of the other ``subjects``, no validation subjects, every row in the pool;
    ``extra``: more context fields (``inner_score``)."""
    from recognizer.protocols import Fold
    from recognizer.remedies import FoldContext

    train = [r for r in rows if r.subject != tested]
    fold = Fold(0, frozenset(subjects) - {tested}, frozenset(), frozenset([tested]))
    return FoldContext(
        fold,
        train,
        [classes.index(r.emotion) for r in train],
        list(classes),
        fold_dir,
        pool=rows,
        pool_labels=[classes.index(r.emotion) for r in rows],
        **extra,
    )


#: ``mer train`` overrides of a tiny run: R3D of width 4 on 4 key-frames of 16 px, 2-fold
#: k-fold without validation subjects, the debug trainer
TINY_KFOLD = [
    "representation.num_frames=4",
    "representation.size=16",
    "+model.widths=[4,4,4,4]",
    "protocol=kfold",
    "protocol.n_splits=2",
    "protocol.val_fraction=0",
    "trainer=debug",
]

#: a toy release declared by a spec alone (tests of the engine and of load checks)
TOY = ReleaseSpec(
    name="toy",
    title="Toy",
    what="toy sheet",
    sheet_patterns=("toy*.csv",),
    sheet_hint="toy_labels.csv",
    columns={
        "subject": ("Person",),
        "clip": ("Take",),
        "onset": ("Start",),
        "apex": ("Peak",),
        "offset": ("End",),
        "emotion": ("Feeling",),
    },
    extra_columns={"comment": ("Comment",)},
    fps=50.0,
    frame_trees=("frames",),
)
