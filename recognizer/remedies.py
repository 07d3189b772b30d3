"""Imbalance remedies selectable by name: what loss and which training sampler a run uses.

``none`` (cross-entropy, shuffled), ``resample`` (class-uniform sampling of indices), ``cb``
(class-balanced softmax loss, Cui et al.), ``focal`` and ``cb_focal``. Further remedies (the
synthetic ones, ``synth_fill``, ``synth_pretrain`` and ``synth_only`` in
:mod:`recognizer.synthetic`) register with :func:`register_remedy`.

A remedy may also change what a fold trains on: :meth:`Remedy.fold_data` receives the fold's
real training samples (after the split, so nothing of the test subjects) and returns the
training set and an optional pretraining set; :func:`recognizer.experiment.run_protocol` runs
the leakage checker on the result before training.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from torch import nn

from recognizer.losses import FocalLoss, class_balanced_weights


@dataclass(frozen=True)
class Remedy:
    """One remedy: its loss and whether training uses class-uniform resampling.

    Attributes:
        name: registry name.
        class_balanced: weight the loss by :func:`class_balanced_weights` with ``beta``.
        gamma: focal exponent (0: cross-entropy).
        beta: effective-number parameter of the class-balanced weights.
        resample: draw training indices with :class:`recognizer.samplers.ClassUniformSampler`.
    """

    name: str
    class_balanced: bool = False
    gamma: float = 0.0
    beta: float = 0.999
    resample: bool = False

    def criterion(self, class_counts: Sequence[int]) -> nn.Module:
        """The training loss for a fold whose training classes have ``class_counts`` ``(K,)``."""
        weight = None
        if self.class_balanced:
            counts = np.asarray(class_counts)
            if (counts == 0).any():
                missing = [int(i) for i in np.flatnonzero(counts == 0)]
                warnings.warn(
                    f"remedy {self.name!r}: classes {missing} have no training samples; they get "
                    "the weight of a class with one sample",
                    stacklevel=2,
                )
                counts = np.maximum(counts, 1)
            weight = class_balanced_weights(counts, self.beta)
        return FocalLoss(weight=weight, gamma=self.gamma)

    def settings(self) -> dict[str, object]:
        """The remedy's settings as plain values (stored in ``results.json``)."""
        return asdict(self)

    def fold_data(self, context: FoldContext) -> FoldData:
        """What the fold trains on; the loss/sampler remedies keep the real training data."""
        return FoldData(list(context.train), list(context.train_labels))


@dataclass(frozen=True)
class FoldContext:
    """What a remedy knows about one fold when it builds the fold's training data.

    Attributes:
        fold: the fold (a :class:`recognizer.protocols.Fold`: train/val/test subjects).
        train: ``(N,)`` the fold's real training samples (never a validation or test sample).
        train_labels: ``(N,)`` their class indices.
        class_names: the class name of each index (``(K,)``), e.g. a scheme's labels.
        fold_dir: the fold's output folder.
        seed: the run's seed.
    """

    fold: object
    train: Sequence[object]
    train_labels: Sequence[int]
    class_names: Sequence[str]
    fold_dir: Path
    seed: int = 0


@dataclass
class FoldData:
    """A fold's training data as a remedy builds it.

    Attributes:
        train: samples the model is trained (or fine-tuned) on.
        train_labels: their class indices.
        pretrain: samples to pretrain on before ``train`` (empty: no pretraining).
        pretrain_labels: their class indices.
        pretrain_key: a key of the pretraining set's content; folds with the same key share
            one pretrained model (``None``: pretrain per fold).
        pretrain_epochs: epochs of pretraining (``None``: the trainer's ``epochs``).
        notes: lines for the fold's log (e.g. where synthetic clips were cached).
    """

    train: list[object]
    train_labels: list[int]
    pretrain: list[object] = field(default_factory=list)
    pretrain_labels: list[int] = field(default_factory=list)
    pretrain_key: str | None = None
    pretrain_epochs: int | None = None
    notes: list[str] = field(default_factory=list)


RemedyBuilder = Callable[..., Remedy]

_REMEDIES: dict[str, RemedyBuilder] = {
    "none": lambda: Remedy("none"),
    "resample": lambda: Remedy("resample", resample=True),
    "cb": lambda beta=0.999: Remedy("cb", class_balanced=True, beta=beta),
    "focal": lambda gamma=2.0: Remedy("focal", gamma=gamma),
    "cb_focal": lambda beta=0.999, gamma=2.0: Remedy(
        "cb_focal", class_balanced=True, beta=beta, gamma=gamma
    ),
}


def _synthetic(name: str, mode: str) -> RemedyBuilder:
    def build(**kwargs: object) -> Remedy:
        from recognizer.synthetic import create_synth_remedy

        return create_synth_remedy(name, mode, **kwargs)

    return build


for _mode in ("fill", "pretrain", "only"):
    _REMEDIES[f"synth_{_mode}"] = _synthetic(f"synth_{_mode}", _mode)


class UnknownRemedyError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def list_remedies() -> list[str]:
    return sorted(_REMEDIES)


def register_remedy(name: str, builder: RemedyBuilder) -> None:
    """Add a remedy (``builder(**kw) -> Remedy`` or a subclass of it) under ``name``."""
    if name in _REMEDIES:
        raise ValueError(f"remedy {name!r} is already registered")
    _REMEDIES[name] = builder


def create_remedy(name: str, **kwargs: object) -> Remedy:
    """Build a remedy by name, e.g. ``create_remedy("cb", beta=0.9999)``.

    Raises:
        UnknownRemedyError: unknown ``name`` (the message lists the known ones).
        TypeError: a keyword the remedy does not take.
    """
    if name not in _REMEDIES:
        raise UnknownRemedyError(
            f"unknown remedy {name!r}; known remedies: {', '.join(list_remedies())}"
        )
    try:
        return _REMEDIES[name](**kwargs)
    except TypeError as err:
        raise TypeError(f"remedy {name!r}: {err}") from err
