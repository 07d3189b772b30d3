import warnings

import numpy as np
import pandas as pd
import pytest

from recognizer.evaluation.metrics import accuracy, confusion_matrix, summarize, uar, uf1

# Worked example: classes 0-2 are true; class 3 is predicted once but never true; class 4 is
# absent from both. Per class (TP, FP, FN): 0 -> (2, 1, 1), 1 -> (1, 1, 1), 2 -> (2, 0, 1),
# 3 -> (0, 1, 0).
Y_TRUE = [0, 0, 0, 1, 1, 2, 2, 2]
Y_PRED = [0, 0, 1, 1, 3, 2, 0, 2]


def _count_matrix(t: np.ndarray, p: np.ndarray, labels: list[int]) -> np.ndarray:
    """Independent count: one pass over the pairs, skipping classes outside ``labels``."""
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for a, b in zip(t.tolist(), p.tolist()):
        if a in labels and b in labels:
            matrix[labels.index(a), labels.index(b)] += 1
    return matrix


def _count_uf1_uar(t: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """Independent count of the definitions in the module docstring."""
    f1s = []
    for c in sorted(set(t.tolist()) | set(p.tolist())):
        tp = int(np.sum((t == c) & (p == c)))
        fp = int(np.sum((t != c) & (p == c)))
        fn = int(np.sum((t == c) & (p != c)))
        f1s.append(2 * tp / (2 * tp + fp + fn))
    recalls = [float(np.mean(p[t == c] == c)) for c in sorted(set(t.tolist()))]
    return float(np.mean(f1s)), float(np.mean(recalls))


def test_worked_example() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the missing classes must not make the metrics warn
        assert uf1(Y_TRUE, Y_PRED) == pytest.approx((2 / 3 + 1 / 2 + 4 / 5 + 0) / 4)
        assert uar(Y_TRUE, Y_PRED) == pytest.approx((2 / 3 + 1 / 2 + 2 / 3) / 3)
        assert accuracy(Y_TRUE, Y_PRED) == pytest.approx(5 / 8)
    expected = [[2, 1, 0, 0, 0], [0, 1, 0, 1, 0], [1, 0, 2, 0, 0], [0] * 5, [0] * 5]
    assert confusion_matrix(Y_TRUE, Y_PRED, labels=range(5)).tolist() == expected
    # Default labels: the classes of y_true ∪ y_pred (0-3), so no row for class 4.
    assert confusion_matrix(Y_TRUE, Y_PRED).tolist() == [row[:4] for row in expected[:4]]
    # A class left out of ``labels`` drops its pairs (the 1 -> 3 mistake).
    assert confusion_matrix(Y_TRUE, Y_PRED, labels=[0, 1, 2]).tolist() == [
        [2, 1, 0],
        [0, 1, 0],
        [1, 0, 2],
    ]


@pytest.mark.parametrize("seed", range(6))
def test_metrics_equal_an_independent_count(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 5, 40)
    y_pred = rng.integers(0, 5, 40)
    if seed % 2:  # class 4 never true (only predicted); class 3 absent from both
        y_true[y_true == 4] = 0
        y_true[y_true == 3] = 1
        y_pred[y_pred == 3] = 2
    expected_uf1, expected_uar = _count_uf1_uar(y_true, y_pred)
    assert uf1(y_true, y_pred) == pytest.approx(expected_uf1)
    assert uar(y_true, y_pred) == pytest.approx(expected_uar)
    assert accuracy(y_true, y_pred) == pytest.approx(np.mean(y_true == y_pred))
    labels = list(range(6))
    assert (confusion_matrix(y_true, y_pred, labels) == _count_matrix(y_true, y_pred, labels)).all()


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
    # Pooled F1 per class: 0 -> 1/2, 1 -> 2/3, 2 -> 4/5.
    assert result["pooled"]["uf1"] == pytest.approx((1 / 2 + 2 / 3 + 4 / 5) / 3)
    fold0 = (2 / 3 + 2 / 3) / 2  # classes 0 and 1
    fold1 = (4 / 5 + 0) / 2  # class 2, and class 0 predicted but never true
    assert result["fold_mean"]["uf1"] == pytest.approx((fold0 + fold1) / 2)
    assert result["fold_std"]["uf1"] == pytest.approx(abs(fold0 - fold1) / 2)
    assert result["per_dataset"]["samm"]["uar"] == pytest.approx(2 / 3)
    assert result["per_dataset"]["casme2"]["n"] == 3


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="y_pred has 2"):
        uf1([0, 1, 2], [0, 1])
    with pytest.raises(ValueError, match="at least one"):
        uar([], [])
    with pytest.raises(ValueError, match="columns"):
        summarize(pd.DataFrame({"true": [0], "predicted": [0]}))
