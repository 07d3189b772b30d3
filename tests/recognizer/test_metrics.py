import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from recognizer.metrics import accuracy, confusion_matrix, summarize, uar, uf1


@pytest.mark.parametrize("seed", range(6))
def test_metrics_equal_sklearn_including_missing_classes(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 5, 40)
    y_pred = rng.integers(0, 5, 40)
    if seed % 2:  # class 4 never true (only predicted); class 3 absent from both
        y_true[y_true == 4] = 0
        y_true[y_true == 3] = 1
        y_pred[y_pred == 3] = 2
    assert uf1(y_true, y_pred) == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert accuracy(y_true, y_pred) == pytest.approx(accuracy_score(y_true, y_pred))
    with warnings.catch_warnings():  # sklearn warns about classes predicted but never true
        warnings.simplefilter("ignore")
        expected_uar = balanced_accuracy_score(y_true, y_pred)
    assert uar(y_true, y_pred) == pytest.approx(expected_uar)
    assert (confusion_matrix(y_true, y_pred) == sk_confusion_matrix(y_true, y_pred)).all()


def test_pooled_differs_from_per_fold_mean() -> None:
    table = pd.DataFrame(
        {
            "fold": [0, 0, 0, 1, 1, 1],
            "true": [0, 0, 1, 2, 2, 2],
            "predicted": [0, 1, 1, 2, 2, 0],
            "dataset": ["casme2", "casme2", "casme2", "samm", "samm", "samm"],
        }
    )
    result = summarize(table)
    assert result["pooled"]["uf1"] == pytest.approx(
        f1_score(table["true"], table["predicted"], average="macro")
    )
    fold0 = f1_score([0, 0, 1], [0, 1, 1], average="macro")
    fold1 = f1_score([2, 2, 2], [2, 2, 0], average="macro")
    assert result["fold_mean"]["uf1"] == pytest.approx((fold0 + fold1) / 2)
    assert result["fold_std"]["uf1"] == pytest.approx(abs(fold0 - fold1) / 2)
    assert result["per_dataset"]["samm"]["uar"] == pytest.approx(2 / 3)
    assert result["per_dataset"]["casme2"]["n"] == 3


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="y_pred has 2"):
        uf1([0, 1, 2], [0, 1])
    with pytest.raises(ValueError, match="columns"):
        summarize(pd.DataFrame({"true": [0], "predicted": [0]}))
