"""The loss and sampler remedies: ``none`` (cross-entropy, shuffled), ``resample``
(class-uniform sampling of indices), ``cb`` (class-balanced softmax loss, Cui et al.),
``focal`` and ``cb_focal``. They train on the fold's real data unchanged."""

from __future__ import annotations

from recognizer.remedies.base import LossChoice, Remedy
from recognizer.remedies.registry import register_remedy


def none() -> Remedy:
    """Cross-entropy on shuffled batches."""
    return Remedy("none")


def resample() -> Remedy:
    """Cross-entropy with class-uniform sampling of training indices."""
    return Remedy("resample", resample=True)


def cb(beta: float = 0.999) -> Remedy:
    """Class-balanced cross-entropy (effective number of samples with ``beta``)."""
    return Remedy("cb", loss=LossChoice(class_balanced=True, beta=beta))


def focal(gamma: float = 2.0) -> Remedy:
    """Focal loss with exponent ``gamma``."""
    return Remedy("focal", loss=LossChoice(gamma=gamma))


def cb_focal(beta: float = 0.999, gamma: float = 2.0) -> Remedy:
    """Class-balanced focal loss."""
    return Remedy("cb_focal", loss=LossChoice(class_balanced=True, beta=beta, gamma=gamma))


for _builder in (none, resample, cb, focal, cb_focal):
    register_remedy(_builder.__name__, _builder)
