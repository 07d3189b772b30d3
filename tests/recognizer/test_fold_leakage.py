"""run_protocol runs the leakage checker on every fold's actual data before training."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pytest

from recognizer.experiments.runner import run_protocol
from recognizer.models import create_model
from recognizer.protocols import create_protocol
from recognizer.protocols.leakage import LeakageError
from recognizer.remedies import FoldContext, FoldData, Remedy
from recognizer.training.trainer import TrainerConfig
from tests.recognizer.helpers import FakeSample, feature_factory


def _samples() -> tuple[list[FakeSample], list[int]]:
    rng = np.random.default_rng(0)
    samples, labels = [], []
    for s in range(4):
        for c in range(6):
            label = c % 2
            feature = tuple(float(v) for v in np.eye(3)[label] + rng.normal(0, 0.1, 3))
            samples.append(FakeSample("casme2", f"casme2/s{s}", f"c{c}", feature=feature))
            labels.append(label)
    return samples, labels


SAMPLES, LABELS = _samples()


@dataclass(frozen=True)
class OversampledBeforeSplit(Remedy):
    """Adds minority copies drawn from the whole dataset, i.e. resampling before the split."""

    def fold_data(self, context: FoldContext) -> FoldData:
        extra = [s for s, y in zip(SAMPLES, LABELS) if y == 1]
        return FoldData(
            [*context.train, *extra],
            [*context.train_labels, *([1] * len(extra))],
        )


@dataclass(frozen=True)
class RecordsTrainingSets(Remedy):
    """Keeps the real data and remembers what each fold trained on."""

    seen: list = field(default_factory=list)

    def fold_data(self, context: FoldContext) -> FoldData:
        self.seen.append({s.subject for s in context.train})
        return super().fold_data(context)


def _run(remedy: Remedy, out, epochs: int = 1):
    return run_protocol(
        SAMPLES,
        LABELS,
        protocol=create_protocol("kfold", n_splits=2, val_fraction=0.0),
        dataset_factory=feature_factory,
        model_factory=lambda k: create_model("ststnet", k),
        remedy=remedy,
        trainer_config=TrainerConfig(
            epochs=epochs, batch_size=8, lr=0.05, device="cpu", progress=False
        ),
        out_dir=out,
    )


def test_resampling_before_the_split_fails_before_any_training(tmp_path) -> None:
    with pytest.raises(LeakageError) as err:
        _run(OversampledBeforeSplit("oversampled"), tmp_path)
    kinds = {v.kind for v in err.value.violations}
    assert kinds == {"subject", "duplicate"}
    assert "fold 0" in str(err.value)
    assert not list(tmp_path.rglob("*.pt")), "nothing may be trained on a leaking fold"


def test_clean_remedy_trains_only_on_training_subjects(tmp_path) -> None:
    remedy = RecordsTrainingSets("recording")
    result = _run(remedy, tmp_path)
    assert len(remedy.seen) == len(result.folds) == 2
    for fold, seen in zip(result.folds, remedy.seen):
        assert seen == set(fold.train_subjects) and not seen & fold.test_subjects
        counts = json.loads((tmp_path / f"fold_{fold.index:02d}" / "class_counts.json").read_text())
        real = [LABELS[i] for i, s in enumerate(SAMPLES) if s.subject in fold.train_subjects]
        assert counts["real"] == counts["train"] == np.bincount(real, minlength=2).tolist()
