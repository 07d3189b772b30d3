"""Domain-classifier two-sample test: can a simple classifier tell synthetic from real?

Features (e.g. pooled apex-flow images) of both sets are standardised and fed to a logistic
regression; its balanced accuracy is cross-validated with *grouped* folds, so one subject or
identity never sits on both sides of a split. 0.5 means the sets are indistinguishable to this
classifier. Two p-values for "better than chance":

- binomial: correct test predictions out of ``n`` against ``Binomial(n, 0.5)`` (the two sets
  are subsampled to equal size first, so accuracy and balanced accuracy agree);
- permutation: the same cross-validation with the domain labels shuffled *between groups*
  (whole subjects/identities swap domains), ``(1 + #{null >= observed}) / (1 + permutations)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


@dataclass(frozen=True)
class DomainTestResult:
    """Outcome of :func:`domain_classifier_test`.

    Attributes:
        accuracy: cross-validated balanced accuracy (0.5 = indistinguishable).
        correct, n: correct out-of-fold predictions and how many were made.
        binomial_p: one-sided binomial p-value of ``correct`` out of ``n`` against 0.5.
        permutation_p: group-permutation p-value.
        null_accuracies: ``(P,)`` accuracies under permuted labels.
        n_splits: folds used; grouped: whether folds kept groups whole (False when a domain
            had fewer than two groups and clips were split individually).
    """

    accuracy: float
    correct: int
    n: int
    binomial_p: float
    permutation_p: float
    null_accuracies: np.ndarray
    n_splits: int
    grouped: bool


def _cross_validated(
    features: np.ndarray, labels: np.ndarray, groups: np.ndarray, n_splits: int, seed: int, c: float
) -> np.ndarray:
    """Out-of-fold predictions ``(N,)``."""
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    predicted = np.empty_like(labels)
    for train, test in folds.split(features, labels, groups):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
        model.fit(features[train], labels[train])
        predicted[test] = model.predict(features[test])
    return predicted


def domain_classifier_test(
    real: np.ndarray,
    synthetic: np.ndarray,
    real_groups: np.ndarray,
    synthetic_groups: np.ndarray,
    *,
    n_splits: int = 5,
    n_permutations: int = 100,
    c: float = 0.1,
    seed: int = 0,
) -> DomainTestResult:
    """Cross-validated real-vs-synthetic classification with grouped folds.

    Args:
        real, synthetic: ``(N_r, F)`` and ``(N_s, F)`` feature rows.
        real_groups, synthetic_groups: group id of each row (subject / identity).
        n_splits: at most this many folds (fewer when there are fewer groups).
        n_permutations: group-label permutations for the permutation p-value (0: skip, p = 1).
        c: inverse L2 strength of the logistic regression.
        seed: subsampling, fold shuffling and permutations.

    Raises:
        ValueError: fewer than two rows in a set, or mismatched lengths.
    """
    real, synthetic = np.asarray(real, float), np.asarray(synthetic, float)
    if len(real) != len(real_groups) or len(synthetic) != len(synthetic_groups):
        raise ValueError("each feature row needs exactly one group id")
    if min(len(real), len(synthetic)) < 2:
        raise ValueError(
            f"the domain test needs >= 2 clips per set; got {len(real)} real, "
            f"{len(synthetic)} synthetic"
        )
    rng = np.random.default_rng(seed)
    n = min(len(real), len(synthetic))
    keep_real = np.sort(rng.choice(len(real), n, replace=False))
    keep_synthetic = np.sort(rng.choice(len(synthetic), n, replace=False))
    features = np.concatenate([real[keep_real], synthetic[keep_synthetic]])
    labels = np.repeat([0, 1], n)
    groups = np.concatenate(
        [
            [f"real:{g}" for g in np.asarray(real_groups)[keep_real]],
            [f"synthetic:{g}" for g in np.asarray(synthetic_groups)[keep_synthetic]],
        ]
    )
    fewest = min(len(set(groups[:n])), len(set(groups[n:])))
    grouped = fewest >= 2
    if not grouped:
        groups = np.array([f"clip{i}" for i in range(len(labels))])
        fewest = n
    splits = max(2, min(n_splits, fewest))
    predicted = _cross_validated(features, labels, groups, splits, seed, c)
    accuracy = float(balanced_accuracy_score(labels, predicted))
    correct = int((predicted == labels).sum())
    binomial = float(stats.binomtest(correct, len(labels), 0.5, alternative="greater").pvalue)
    unique, index = np.unique(groups, return_inverse=True)
    group_label = np.array([labels[index == g][0] for g in range(len(unique))])
    null = []
    for _ in range(n_permutations):
        shuffled = rng.permutation(group_label)[index]
        if len(set(shuffled)) < 2 or min(np.bincount(shuffled)) < splits:
            continue
        guess = _cross_validated(features, shuffled, groups, splits, seed, c)
        null.append(balanced_accuracy_score(shuffled, guess))
    null_array = np.asarray(null, dtype=float)
    permutation = float((1 + (null_array >= accuracy).sum()) / (1 + len(null_array)))
    return DomainTestResult(
        accuracy=accuracy,
        correct=correct,
        n=len(labels),
        binomial_p=binomial,
        permutation_p=permutation,
        null_accuracies=null_array,
        n_splits=splits,
        grouped=grouped,
    )
