"""run_protocol runs the leakage checker on every fold's actual data before training."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pytest

from recognizer.protocols.leakage import LeakageError
from recognizer.remedies import FoldContext, FoldData, Remedy
from tests.recognizer.helpers import LABELS, SAMPLES, kfold_run


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


def test_resampling_before_the_split_fails_before_any_training(tmp_path) -> None:
    with pytest.raises(LeakageError) as err:
        kfold_run(OversampledBeforeSplit("oversampled"), tmp_path)
    kinds = {v.kind for v in err.value.violations}
    assert kinds == {"subject", "duplicate"}
    assert "fold 0" in str(err.value)
    assert not list(tmp_path.rglob("*.pt")), "nothing may be trained on a leaking fold"


def test_clean_remedy_trains_only_on_training_subjects(tmp_path) -> None:
    remedy = RecordsTrainingSets("recording")
    result = kfold_run(remedy, tmp_path)
    assert len(remedy.seen) == len(result.folds) == 2
    for fold, seen in zip(result.folds, remedy.seen):
        assert seen == set(fold.train_subjects) and not seen & fold.test_subjects
        counts = json.loads((tmp_path / f"fold_{fold.index:02d}" / "class_counts.json").read_text())
        real = [LABELS[i] for i, s in enumerate(SAMPLES) if s.subject in fold.train_subjects]
        assert counts["real"] == counts["train"] == np.bincount(real, minlength=2).tolist()
