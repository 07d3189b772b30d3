"""ACC, UF1 and UAR, pooled over folds, per fold, and per dataset.

Thin wrappers over scikit-learn that fix the ME-literature conventions and check inputs.

Convention (classes absent from a fold):
- ``uf1`` (unweighted F1 = macro F1) averages over the classes present in ``y_true ∪ y_pred``:
  a class that is predicted but never true counts with F1 = 0; a class absent from both is
  skipped (its F1 is undefined).
- ``uar`` (unweighted average recall) averages over the classes present in ``y_true``: recall
  is undefined for a class with no true sample.
- ``per_class`` gives precision, recall and F1 of every class in ``labels`` with
  ``zero_division=0``: a class never predicted has precision 0, a class never true has recall 0
  and support 0, and a class absent from both reports 0 everywhere (UF1 skips it).
- Pooled metrics compute these once over every fold's predictions together (the standard for
  LOSO, where a fold holds one subject and often lacks classes). Per-fold metrics compute them
  within each fold on that fold's own classes and report the mean and the population standard
  deviation (ddof 0) over folds (the k-fold convention).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn import metrics as sk


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
    """``(K, K)`` int64 counts, rows = true class, columns = predicted, over ``labels``
    (default: the sorted classes of ``y_true ∪ y_pred``). Pairs with a class outside
    ``labels`` are not counted; a label with no sample gets a row and column of zeros.

    Raises:
        ValueError: if ``labels`` is given and none of them occurs in ``y_true``.
    """
    t, p = _arrays(y_true, y_pred)
    chosen = None if labels is None else np.asarray(labels)
    return sk.confusion_matrix(t, p, labels=chosen).astype(np.int64)


def accuracy(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    """Share of correct predictions."""
    t, p = _arrays(y_true, y_pred)
    return float(sk.accuracy_score(t, p))


def uf1(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    """Unweighted (macro) F1 over the classes in ``y_true ∪ y_pred``: mean of
    ``2·TP / (2·TP + FP + FN)``."""
    t, p = _arrays(y_true, y_pred)
    return float(sk.f1_score(t, p, labels=np.unique(np.concatenate([t, p])), average="macro"))


def uar(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    """Unweighted average recall over the classes in ``y_true``: mean of ``TP_c / N_c``."""
    t, p = _arrays(y_true, y_pred)
    return float(sk.recall_score(t, p, labels=np.unique(t), average="macro"))


def per_class(
    y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[int]
) -> dict[str, list[float]]:
    """Per-class scores over ``labels`` (in that order), from scikit-learn's
    ``precision_recall_fscore_support`` with ``zero_division=0``.

    Returns:
        ``{"precision", "recall", "f1": (K,) floats, "support": (K,) true samples per class}``
        as lists (JSON-ready).
    """
    t, p = _arrays(y_true, y_pred)
    precision, recall, f1, support = sk.precision_recall_fscore_support(
        t, p, labels=np.asarray(labels), zero_division=0
    )
    return {
        "precision": [float(v) for v in precision],
        "recall": [float(v) for v in recall],
        "f1": [float(v) for v in f1],
        "support": [int(v) for v in support],
    }


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
