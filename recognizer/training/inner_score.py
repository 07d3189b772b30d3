"""The inner score of fold-internal searches: the run's own model, trained on inner-fold data.

:class:`InnerScorer` is what :func:`recognizer.experiments.runner.run_protocol` puts on
:attr:`recognizer.remedies.base.FoldContext.inner_score`; remedies (utility calibration) call it
without importing the trainer, so ``recognizer.remedies`` never depends on
``recognizer.training``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np

from recognizer.evaluation.metrics import uar, uf1
from recognizer.mixing import DomainMixing

#: trainer settings that never change an inner score (speed, logging; epochs are the search's)
NEUTRAL_TRAINER_KEYS = (
    "epochs", "progress", "num_workers", "resume", "checkpoint_every", "data_path",
    "memory_budget_mb", "threads", "log_every", "tensorboard", "batched_folds",
)  # fmt: skip


@dataclass(frozen=True)
class InnerScorer:
    """Trains the run's own model on inner-fold data and scores it (``FoldContext.inner_score``).

    Attributes:
        model_factory: ``model_factory(num_classes) -> nn.Module`` of the run.
        dataset_factory: ``dataset_factory(samples, labels, train) -> Dataset`` of the run.
        trainer_config: the run's :class:`recognizer.training.trainer.TrainerConfig` (epochs
            replaced).
        remedy: the run's :class:`recognizer.remedies.base.Remedy` (its loss and sampler).
        num_classes: ``K``.
        dataset_factory_for_seed: ``seed -> dataset_factory`` (``None``: ``dataset_factory``
            for every call). Given, a call's ``seed`` decides its inner training whole
            (initialisation, sample order and the dataset's flips), so the scores are the
            same for every run seed and a search is shared by the seeds of a run.
    """

    model_factory: Callable
    dataset_factory: Callable
    trainer_config: object
    remedy: object
    num_classes: int
    dataset_factory_for_seed: Callable[[int], Callable] | None = None

    def settings(self) -> dict[str, object]:
        """What decides the scores (model, loss, sampler, trainer settings but epochs)."""
        config = asdict(self.trainer_config)
        for key in NEUTRAL_TRAINER_KEYS:
            config.pop(key, None)
        if self.dataset_factory_for_seed is not None:  # each call's seed replaces the run's
            config.pop("seed", None)
            config.pop("seeds", None)
        loss = getattr(self.remedy, "loss", None)
        return {
            "trainer": config,
            "loss": asdict(loss) if dataclasses.is_dataclass(loss) else repr(loss),
            "sampler": getattr(self.remedy, "sampler", "shuffle"),
            "num_classes": self.num_classes,
        }

    def __call__(
        self,
        train: Sequence[object],
        train_labels: Sequence[int],
        test: Sequence[object],
        test_labels: Sequence[int],
        *,
        epochs: int,
        seed: int = 0,
        sample_weights: Sequence[float] | None = None,
        domains: Sequence[bool] | None = None,
        mixing: DomainMixing | None = None,
    ) -> dict[str, object]:
        """Train a fresh model (seeded with ``seed``) for ``epochs`` epochs (each training
        sample's loss weighted by ``sample_weights``, ``None``: 1; ``domains``: ``(N,)``
        whether each training sample is synthetic, for ``mixing``, a
        :class:`recognizer.mixing.DomainMixing`), predict ``test``.

        Returns:
            ``{"uf1", "uar", "predicted"}``: the scores on ``test`` and ``(N,)`` predictions.
        """
        import torch

        from recognizer.training.trainer import Trainer

        config = replace(
            self.trainer_config, epochs=int(epochs), patience=None, selection="last",
            progress=False, resume=False, checkpoint_every=0, log_every=0, tensorboard=False,
            batched_folds=False,
        )  # fmt: skip
        factory = self.dataset_factory
        if self.dataset_factory_for_seed is not None:
            config = replace(config, seed=int(seed), seeds=None)
            factory = self.dataset_factory_for_seed(int(seed))
        torch.manual_seed(int(seed))
        counts = np.bincount(np.asarray(train_labels, int), minlength=self.num_classes)
        trainer = Trainer(
            self.model_factory(self.num_classes), self.remedy.criterion(counts), config
        )
        trainer.fit(
            factory(list(train), list(train_labels), True),
            sampler=self.remedy.sampler,
            labels=list(train_labels),
            sample_weights=sample_weights,
            domains=domains,
            mixing=mixing,
        )
        pred = trainer.predict(factory(list(test), list(test_labels), False))
        predicted = np.zeros(len(test), dtype=np.int64)
        predicted[np.asarray(pred.indices, int)] = pred.predicted
        return {
            "uf1": uf1(test_labels, predicted),
            "uar": uar(test_labels, predicted),
            "predicted": predicted.tolist(),
        }
