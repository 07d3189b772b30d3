"""What a remedy is: three separable concerns, and what it knows about a fold.

A :class:`Remedy` combines

- a **loss** (:class:`LossChoice`: cross-entropy, class-balanced weights, focal exponent),
- a **sampler** (``sampler``: plain shuffling, class-uniform sampling of training indices, or
  random oversampling of the smaller classes up to the majority count),
- a **fold-data source** (:class:`FoldDataSource`): what a fold trains on. :class:`RealData`
  keeps the fold's real training samples; the synthetic sources
  (:mod:`recognizer.remedies.synthetic`) add or substitute synthetic clips.

A source receives the fold's real training samples after the split (nothing of the test
subjects) and returns a :class:`FoldData`; :func:`recognizer.experiments.run_protocol` runs the
leakage checker on the result before training.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np
from torch import nn

from recognizer.mixing import DomainMixing
from recognizer.remedies.losses import FocalLoss, class_balanced_weights
from recognizer.remedies.samplers import SAMPLERS


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
        pool: ``(M,)`` every sample of the run, all subjects (empty: only ``train`` is
            known). Only for sources that make one synthetic pool for every fold and then
            keep, per fold, what touches no subject outside ``train``
            (:mod:`recognizer.remedies.synthetic`); never trained on directly.
        pool_labels: ``(M,)`` their class indices.
        inner_score: trains the run's own model (model, trainer settings, dataset and loss
            of the run) on the first two arguments and scores it on the last two:
            ``inner_score(train, train_labels, test, test_labels, epochs=, seed=,
            sample_weights=, domains=, mixing=) -> {"uf1", "uar", "predicted"}``
            (:class:`recognizer.training.inner_score.InnerScorer`; ``None``: the remedy runs
            outside :func:`recognizer.experiments.run_protocol`).
        shared_dir: the folder every seed of the run shares (the seeds folder of
            :func:`recognizer.experiments.run_protocol_seeds`, else the run folder; ``None``:
            the parent of ``fold_dir``). Fold-internal calibration caches under it, so the
            seeds of a run calibrate once.
    """

    fold: object
    train: Sequence[object]
    train_labels: Sequence[int]
    class_names: Sequence[str]
    fold_dir: Path
    seed: int = 0
    pool: Sequence[object] = ()
    pool_labels: Sequence[int] = ()
    inner_score: Callable[..., Mapping[str, object]] | None = None
    shared_dir: Path | None = None


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
        pretrain_group: the subject group whose pretrained model the fold starts from
            (``remedy.pretrain_groups``): the group's model is pretrained once, from initial
            weights seeded by the group, and reused by every fold of the group (``None``: the
            fold pretrains its own model, from its own initial weights).
        notes: lines for the fold's log (e.g. where synthetic clips were cached).
        report: plain values for the fold's entry in ``results.json`` (e.g. the number of
            synthetic training samples and the subjects excluded for leakage).
        train_weights: ``(len(train),)`` weight of each training sample's loss (``None``:
            all 1; e.g. ``remedy.synthetic_weight`` on synthetic clips).
        train_domains: ``(len(train),)`` whether each training sample is synthetic (``None``:
            not said; the synthetic fill says it), passed to ``Trainer.fit(domains=)``.
        mixing: how training mixes the real and synthetic samples of ``train``
            (:class:`recognizer.mixing.DomainMixing`: domain-specific BatchNorm, same-class
            mixup; ``None``: plain training), passed to ``Trainer.fit(mixing=)``; needs
            ``train_domains``.
        searched_subjects: ``{search step: subjects}`` whose samples, faces, templates or
            flows a search inside the fold used (e.g. each utility-calibration trial);
            :func:`recognizer.protocols.leakage.check_fold` refuses any test subject among them.
    """

    train: list[object]
    train_labels: list[int]
    pretrain: list[object] = field(default_factory=list)
    pretrain_labels: list[int] = field(default_factory=list)
    pretrain_key: str | None = None
    pretrain_epochs: int | None = None
    pretrain_group: int | None = None
    notes: list[str] = field(default_factory=list)
    report: dict[str, object] = field(default_factory=dict)
    searched_subjects: dict[str, list[str]] = field(default_factory=dict)
    train_weights: list[float] | None = None
    train_domains: list[bool] | None = None
    mixing: DomainMixing | None = None

    def __post_init__(self) -> None:
        if self.mixing is not None and self.mixing.enabled and self.train_domains is None:
            raise ValueError(
                f"FoldData: mixing {self.mixing.settings()} needs train_domains (which training "
                "samples are synthetic)"
            )
        for key in ("train_weights", "train_domains"):
            values = getattr(self, key)
            if values is not None and len(values) != len(self.train):
                raise ValueError(
                    f"FoldData: {key} has {len(values)} values for {len(self.train)} samples"
                )


class FoldDataSource(Protocol):
    """What a fold trains on (the fold-data concern of a remedy)."""

    def fold_data(self, context: FoldContext) -> FoldData: ...

    def settings(self) -> dict[str, object]: ...


@dataclass(frozen=True)
class RealData:
    """The fold's real training samples, unchanged."""

    def fold_data(self, context: FoldContext) -> FoldData:
        return FoldData(list(context.train), list(context.train_labels))

    def settings(self) -> dict[str, object]:
        return {}


@dataclass(frozen=True)
class LossChoice:
    """The loss concern of a remedy.

    Attributes:
        class_balanced: weight the loss by :func:`class_balanced_weights` with ``beta``.
        gamma: focal exponent (0: cross-entropy).
        beta: effective-number parameter of the class-balanced weights.
    """

    class_balanced: bool = False
    gamma: float = 0.0
    beta: float = 0.999

    def criterion(self, class_counts: Sequence[int], owner: str = "remedy") -> nn.Module:
        """The training loss for a fold whose training classes have ``class_counts`` ``(K,)``.

        Classes without training samples get the weight of a class with one sample (warned,
        naming ``owner``).
        """
        weight = None
        if self.class_balanced:
            counts = np.asarray(class_counts)
            if (counts == 0).any():
                missing = [int(i) for i in np.flatnonzero(counts == 0)]
                warnings.warn(
                    f"remedy {owner!r}: classes {missing} have no training samples; they get "
                    "the weight of a class with one sample",
                    stacklevel=3,
                )
                counts = np.maximum(counts, 1)
            weight = class_balanced_weights(counts, self.beta)
        return FocalLoss(weight=weight, gamma=self.gamma)


@dataclass(frozen=True)
class Remedy:
    """One remedy: a loss, a sampler choice and a fold-data source.

    Attributes:
        name: registry name.
        loss: the training loss.
        sampler: how training indices are drawn each epoch (one of
            :data:`recognizer.remedies.samplers.SAMPLERS`): ``"shuffle"``, ``"class_uniform"``
            (:class:`~recognizer.remedies.samplers.ClassUniformSampler`) or ``"oversample"``
            (:class:`~recognizer.remedies.samplers.OversampleSampler`).
        data: what each fold trains on (:class:`RealData` by default).

    Raises:
        ValueError: an unknown ``sampler``.
    """

    name: str
    loss: LossChoice = field(default_factory=LossChoice)
    sampler: str = "shuffle"
    data: FoldDataSource = field(default_factory=RealData)

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ValueError(
                f"remedy {self.name!r}: sampler must be one of {SAMPLERS}, got {self.sampler!r}"
            )

    def criterion(self, class_counts: Sequence[int]) -> nn.Module:
        """The training loss for a fold whose training classes have ``class_counts`` ``(K,)``."""
        return self.loss.criterion(class_counts, owner=self.name)

    def fold_data(self, context: FoldContext) -> FoldData:
        """What the fold trains on (delegated to :attr:`data`)."""
        return self.data.fold_data(context)

    def for_representation(self, representation: object) -> Remedy:
        """The remedy for a run whose model sees ``representation``: a fold-data source with
        a ``for_representation`` method (the synthetic ones: what to render, from the
        representation's ``synthetic_frames()``) is bound to it; others are unchanged."""
        bind = getattr(self.data, "for_representation", None)
        return self if bind is None else replace(self, data=bind(representation))

    def settings(self) -> dict[str, object]:
        """The remedy's settings as plain values (stored in ``results.json``)."""
        return {
            "name": self.name,
            **asdict(self.loss),
            "sampler": self.sampler,
            **self.data.settings(),
        }
