"""ACC, UF1 and UAR, pooled over folds, per fold, and per dataset.

Convention (classes absent from a fold), as in the ME literature and scikit-learn:
- ``uf1`` (unweighted F1 = macro F1) averages over the classes present in ``y_true ∪ y_pred``:
  a class that is predicted but never true counts with F1 = 0; a class absent from both is
  skipped (its F1 is undefined). Equals ``sklearn.metrics.f1_score(average="macro")``.
- ``uar`` (unweighted average recall) averages over the classes present in ``y_true``: recall
  is undefined for a class with no true sample. Equals ``balanced_accuracy_score``.
- Pooled metrics compute these once over every fold's predictions together (the standard for
  LOSO, where a fold holds one subject and often lacks classes). Per-fold metrics compute them
  within each fold on that fold's own classes and report the mean and the population standard
  deviation (ddof 0) over folds (the k-fold convention).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def _arrays(y_true: Sequence[int], y_pred: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    t, p = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} labels but y_pred has {p.size}")
    if t.size == 0:
        raise ValueError("metrics need at least one prediction")
    return t, p


def confusion_matrix(
    y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[int] | None = None
) -> np.ndarray:
    """``(K, K)`` counts, rows = true class, columns = predicted, over ``labels`` (default: the
    sorted classes of ``y_true ∪ y_pred``)."""
    t, p = _arrays(y_true, y_pred)
    classes = np.unique(np.concatenate([t, p])) if labels is None else np.asarray(labels)
    index = {c: i for i, c in enumerate(classes.tolist())}
    matrix = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for a, b in zip(t.tolist(), p.tolist()):
        if a in index and b in index:
            matrix[index[a], index[b]] += 1
    return matrix


def accuracy(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    """Share of correct predictions."""
    t, p = _arrays(y_true, y_pred)
    return float((t == p).mean())


def uf1(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    """Unweighted (macro) F1 over the classes in ``y_true ∪ y_pred``: mean of
    ``2·TP / (2·TP + FP + FN)``."""
    t, p = _arrays(y_true, y_pred)
    scores = []
    for c in np.unique(np.concatenate([t, p])):
        tp = np.sum((t == c) & (p == c))
        fp = np.sum((t != c) & (p == c))
        fn = np.sum((t == c) & (p != c))
        scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


def uar(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    """Unweighted average recall over the classes in ``y_true``: mean of ``TP_c / N_c``."""
    t, p = _arrays(y_true, y_pred)
    return float(np.mean([np.mean(p[t == c] == c) for c in np.unique(t)]))


METRICS = {"acc": accuracy, "uf1": uf1, "uar": uar}


def scores(y_true: Sequence[int], y_pred: Sequence[int]) -> dict[str, float]:
    """``{"acc", "uf1", "uar", "n"}`` of one set of predictions."""
    out: dict[str, float] = {name: fn(y_true, y_pred) for name, fn in METRICS.items()}
    out["n"] = len(y_true)
    return out


def summarize(predictions: pd.DataFrame) -> dict[str, object]:
    """Pooled, per-fold and per-dataset metrics of a predictions table.

    Args:
        predictions: one row per test sample with columns ``true``, ``predicted``, ``fold`` and
            optionally ``dataset``.

    Returns:
        ``{"pooled": scores, "per_fold": [scores + fold], "fold_mean": {metric: mean},
        "fold_std": {metric: std}, "per_dataset": {dataset: pooled scores}}``.
    """
    missing = {"true", "predicted", "fold"} - set(predictions.columns)
    if missing:
        raise ValueError(f"predictions table lacks columns {sorted(missing)}")
    pooled = scores(predictions["true"], predictions["predicted"])
    per_fold = []
    for fold, group in predictions.groupby("fold", sort=True):
        per_fold.append({"fold": int(fold), **scores(group["true"], group["predicted"])})
    fold_mean = {m: float(np.mean([f[m] for f in per_fold])) for m in METRICS}
    fold_std = {m: float(np.std([f[m] for f in per_fold])) for m in METRICS}
    per_dataset = {}
    if "dataset" in predictions.columns:
        for dataset, group in predictions.groupby("dataset", sort=True):
            per_dataset[str(dataset)] = scores(group["true"], group["predicted"])
    return {
        "pooled": pooled,
        "per_fold": per_fold,
        "fold_mean": fold_mean,
        "fold_std": fold_std,
        "per_dataset": per_dataset,
    }
