"""The loss and sampler remedies: ``none`` (cross-entropy, shuffled), ``class_uniform``
(class-uniform sampling of indices; ``resample`` is the same under its older name),
``oversample`` (imbalanced-learn's random oversampling, on indices), ``cb`` (class-balanced
softmax loss, Cui et al.), ``focal`` and ``cb_focal``. They train on the fold's real data
unchanged."""

from __future__ import annotations

from recognizer.remedies.base import LossChoice, Remedy
from recognizer.remedies.registry import register_remedy


def none() -> Remedy:
    """Cross-entropy on shuffled batches."""
    return Remedy("none")


def class_uniform() -> Remedy:
    """Cross-entropy; each draw picks a class uniformly, then one of its samples (with
    replacement), N draws per epoch."""
    return Remedy("class_uniform", sampler="class_uniform")


def resample() -> Remedy:
    """``class_uniform`` under its older name (results keep the name ``resample``)."""
    return Remedy("resample", sampler="class_uniform")


def oversample() -> Remedy:
    """Cross-entropy; every sample once plus random duplicates of the smaller classes up to
    the majority count, reshuffled every epoch (imbalanced-learn's ``RandomOverSampler``)."""
    return Remedy("oversample", sampler="oversample")


def cb(beta: float = 0.999) -> Remedy:
    """Class-balanced cross-entropy (effective number of samples with ``beta``)."""
    return Remedy("cb", loss=LossChoice(class_balanced=True, beta=beta))


def focal(gamma: float = 2.0) -> Remedy:
    """Focal loss with exponent ``gamma``."""
    return Remedy("focal", loss=LossChoice(gamma=gamma))


def cb_focal(beta: float = 0.999, gamma: float = 2.0) -> Remedy:
    """Class-balanced focal loss."""
    return Remedy("cb_focal", loss=LossChoice(class_balanced=True, beta=beta, gamma=gamma))


for _builder in (none, class_uniform, resample, oversample, cb, focal, cb_focal):
    register_remedy(_builder.__name__, _builder)
