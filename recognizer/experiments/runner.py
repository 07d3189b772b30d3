"""Run a protocol end to end: per fold, train (validation from training subjects), predict the
test subjects, pool, and write the results.

Before training, each fold's remedy builds the fold's training data (:meth:`Remedy.fold_data`:
the real training samples, plus synthetic ones for the synthetic remedies) and
:func:`recognizer.protocols.leakage.check_fold` checks the actual training, validation and test
samples; a leak raises :class:`recognizer.protocols.leakage.LeakageError` and nothing is trained.

Outputs in ``out_dir``: ``folds.json`` (the subject sets of every fold), ``fold_XX/`` (the
trainer's checkpoints and ``curves.csv``, that fold's ``predictions.csv`` and
``class_counts.json``: training class counts before and after the remedy), ``pretrain/<key>/``
(a pretrained model shared by the folds with the same pretraining set), ``predictions.csv``
(every test sample: index, subject, clip, fold, true, predicted, dataset, source) and
``results.json`` (pooled, per-fold, per-dataset metrics, confusion matrix, pooled per-class
precision, recall and F1 (``per_class``), settings, and ``fold_data``: per fold what the remedy
reported, e.g. the number of synthetic training samples and the subjects excluded for
leakage). A fold whose ``predictions.csv`` exists is not run again, so an interrupted protocol
resumes.

Progress: a bar over folds with an ETA (``trainer_config.progress``) and, bar or not, one line
per fold with its test metrics, its time, the pooled metrics so far and the time the remaining
folds will take at the mean pace of the folds this process ran.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from mesynth.environment import resolve_device
from recognizer.data.input_config import resolve_input_config
from recognizer.evaluation.metrics import (
    METRICS,
    accuracy,
    confusion_matrix,
    per_class,
    summarize,
    uar,
    uf1,
)
from recognizer.mixing import DomainMixing
from recognizer.protocols import Fold, Protocol, create_protocol
from recognizer.protocols.leakage import check_fold
from recognizer.remedies import FoldContext, FoldData, Remedy, create_remedy
from recognizer.training.batched import (
    FoldJob,
    config_reason,
    held_bytes,
    hold,
    share,
    train_folds_batched,
    unsupported_reason,
)
from recognizer.training.inner_score import InnerScorer
from recognizer.training.trainer import (
    Predictions,
    Trainer,
    TrainerConfig,
    derive_seed,
    distributed_env,
    init_distributed,
    read_checkpoint,
)

#: ``dataset_factory(samples_subset, labels_subset, train) -> Dataset`` of ``(x, label, index)``
DatasetFactory = Callable[[Sequence[object], Sequence[int], bool], Dataset]
#: ``model_factory(num_classes) -> nn.Module``
ModelFactory = Callable[[int], nn.Module]

PREDICTION_COLUMNS = [
    "index", "subject", "clip", "fold", "true", "predicted", "dataset", "source",
]  # fmt: skip


@dataclass
class ProtocolResult:
    """What :func:`run_protocol` returns (and writes).

    Attributes:
        predictions: one row per test sample (columns :data:`PREDICTION_COLUMNS`).
        summary: :func:`recognizer.evaluation.metrics.summarize` of the predictions plus the
            confusion matrix and settings (the content of ``results.json``).
        folds: the protocol's folds.
    """

    predictions: pd.DataFrame
    summary: dict[str, object]
    folds: list[Fold]


def class_counts(labels: Sequence[int], num_classes: int) -> np.ndarray:
    """``(K,)`` samples per class."""
    return np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)


def run_protocol(
    samples: Sequence[object],
    labels: Sequence[int],
    *,
    protocol: str | Protocol,
    dataset_factory: DatasetFactory,
    model_factory: ModelFactory,
    remedy: str | Remedy,
    trainer_config: TrainerConfig,
    out_dir: str | Path,
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    metadata: Mapping[str, object] | None = None,
    overwrite: bool = False,
    dataset_factory_for_seed: Callable[[int], DatasetFactory] | None = None,
) -> ProtocolResult:
    """Train and test one model under one protocol and remedy.

    ``out_dir`` is claimed for one run configuration (``run.json``: protocol, remedy, trainer
    settings that change results, data and labels, hashed like a clip store's): rerunning the
    same configuration resumes finished folds (their predictions are checked whole) and
    interrupted ones (from ``last.pt``); another configuration is refused, naming what differs,
    unless ``overwrite`` clears the folder's earlier results first.

    Under ``torchrun`` every rank calls this with the same arguments: the ranks share each
    fold's training (DDP), rank 0 alone writes files and reports progress, and every rank
    returns the same result once ``results.json`` is written (``docs/scale.md``).

    Args:
        samples: ``(N,)`` records with ``subject`` (dataset-qualified), and optionally
            ``dataset``, ``source`` and ``clip`` attributes (e.g. :class:`Sample`).
        labels: ``(N,)`` class indices in ``[0, num_classes)``.
        protocol: a name (``loso``, ``kfold``, ``dfme10``, ``megc2019``) or a :class:`Protocol`.
        dataset_factory: builds the torch dataset of a subset (``train=True`` enables
            augmentation); its items are ``(x, label, index into the subset)``.
        model_factory: builds a fresh model for ``num_classes`` classes (called per fold, after
            seeding torch from ``(trainer_config.seed, fold)``).
        remedy: a name (``none``, ``class_uniform``/``resample``, ``oversample``, ``cb``,
            ``focal``, ``cb_focal``, the synthetic ones) or a :class:`Remedy`.
        trainer_config: training settings.
        out_dir: results folder (created).
        num_classes: default ``max(labels) + 1``.
        class_names: optional names for reports.
        metadata: extra settings stored in ``results.json`` (e.g. the model name and data).
        overwrite: discard the results of another configuration in ``out_dir``.
        dataset_factory_for_seed: optional ``seed -> dataset_factory`` (``dataset_factory`` is
            that of ``trainer_config.seed``): fold-internal searches (utility calibration)
            then train their inner models with the search's own seed, flips included, so the
            search is the same for every run seed (see
            :class:`recognizer.training.inner_score.InnerScorer`).

    Raises:
        RunConfigError: ``out_dir`` holds a run of another configuration (without
            ``overwrite``), or the ranks of a DDP run were given different folders.
        recognizer.protocols.leakage.LeakageError: a fold's training or validation data carries
            anything of its test subjects (the message lists every leak).

    Warns:
        UserWarning: a fold's training data lacks a class (the counts are in the message).
    """
    if trainer_config.seeds is not None:
        raise ValueError(
            f"trainer_config.seeds={trainer_config.seeds} asks for one run per seed: call "
            "run_protocol_seeds (or set seeds=None to train the one seed)"
        )
    run = _open_run(
        samples, labels, protocol=protocol, remedy=remedy, trainer_config=trainer_config,
        dataset_factory=dataset_factory, out_dir=out_dir, num_classes=num_classes,
        class_names=class_names, metadata=metadata, overwrite=overwrite,
        dataset_factory_for_seed=dataset_factory_for_seed,
    )  # fmt: skip
    run.progress()
    for target, fold, table, seconds in _train_folds([run], samples, model_factory=model_factory):
        target.record(fold, table, seconds)
    return _close_run(run)


@dataclass
class _Run:
    """One run folder being filled (what :func:`run_protocol` does for one seed): its settings,
    folds, the folds' predictions so far and its progress bar."""

    out: Path
    trainer_config: TrainerConfig
    dataset_factory: DatasetFactory
    protocol: Protocol
    remedy: Remedy
    labels: np.ndarray
    subjects: np.ndarray
    num_classes: int
    class_names: list[str]
    metadata: dict[str, object]
    folds: list[Fold]
    done: dict[int, pd.DataFrame]
    rank: int
    world: int
    prefix: str = ""
    shared_dir: Path | None = None
    dataset_factory_for_seed: Callable[[int], DatasetFactory] | None = None
    ran: list[float] = field(default_factory=list)
    _bar: tqdm | None = None

    def progress(self) -> tqdm:
        """The bar over this run's folds (shown from the first call on)."""
        if self._bar is None:
            self._bar = tqdm(
                total=len(self.folds),
                initial=len(self.folds) - len(self.pending),
                desc=f"{self.prefix}folds",
                unit="fold",
                disable=not self.trainer_config.progress or self.rank != 0,
            )
        return self._bar

    @property
    def pending(self) -> list[Fold]:
        return [fold for fold in self.folds if fold.index not in self.done]

    def record(self, fold: Fold, table: pd.DataFrame, seconds: float) -> None:
        """Keep a finished fold's predictions; log its line (rank 0)."""
        bar = self.progress()
        self.done[fold.index] = table
        bar.update()
        self.ran.append(seconds)
        if self.rank == 0:
            position = [f.index for f in self.folds].index(fold.index) + 1
            left = len(self.folds) - len(self.done)
            so_far = pd.concat([self.done[f.index] for f in self.folds if f.index in self.done])
            tqdm.write(
                self.prefix
                + fold_line(position, len(self.folds), fold, table, so_far)
                + f" · {seconds:.1f} s"
                + (f" · about {np.mean(self.ran) * left:.0f} s left in this run" if left else "")
            )


def _open_run(
    samples: Sequence[object],
    labels: Sequence[int],
    *,
    protocol: str | Protocol,
    remedy: str | Remedy,
    trainer_config: TrainerConfig,
    dataset_factory: DatasetFactory,
    out_dir: str | Path,
    num_classes: int | None,
    class_names: Sequence[str] | None,
    metadata: Mapping[str, object] | None,
    overwrite: bool,
    prefix: str = "",
    shared_dir: Path | None = None,
    dataset_factory_for_seed: Callable[[int], DatasetFactory] | None = None,
) -> _Run:
    """Check the inputs, split the folds, claim ``out_dir`` and find the finished folds.

    ``shared_dir`` is the folder every seed of the run shares (``run_protocol_seeds``'
    ``out_dir``; default ``out_dir``): fold-internal calibration searches cache there."""
    labels_arr = np.asarray(labels, dtype=np.int64)
    if len(samples) != len(labels_arr):
        raise ValueError(f"{len(samples)} samples but {len(labels_arr)} labels")
    if labels_arr.size == 0 or labels_arr.min() < 0:
        raise ValueError("labels must be non-empty class indices >= 0")
    num_classes = int(num_classes or labels_arr.max() + 1)
    if labels_arr.max() >= num_classes:
        raise ValueError(f"label {labels_arr.max()} outside [0, {num_classes})")
    protocol = create_protocol(protocol) if isinstance(protocol, str) else protocol
    remedy = create_remedy(remedy) if isinstance(remedy, str) else remedy
    subjects = np.asarray([str(s.subject) for s in samples], dtype=object)
    datasets = [str(getattr(s, "dataset", "")) for s in samples]
    out = Path(out_dir)
    rank, world = init_distributed(resolve_device(trainer_config.device))
    _same_on_every_rank(world, str(out.resolve()))
    folds = protocol.split(list(subjects), labels_arr, datasets)
    config = _run_config(protocol, remedy, trainer_config, samples, labels_arr, num_classes,
                         class_names, metadata)  # fmt: skip
    refused = None
    if rank == 0:  # one process writes the shared files; the others wait for its verdict
        out.mkdir(parents=True, exist_ok=True)
        _write_json(out / "folds.json", [f.to_dict() for f in folds])
        try:
            _claim_run_folder(out, config, overwrite)
        except RunConfigError as err:
            refused = str(err)
    if world > 1:
        verdict = [refused]
        dist.broadcast_object_list(verdict, src=0)
        refused = verdict[0]
    if refused is not None:
        raise RunConfigError(refused)
    reusable = {}
    for f in folds:
        path = out / f"fold_{f.index:02d}/predictions.csv"
        if path.is_file():
            table = _reusable_predictions(path, f, subjects)
            if table is not None:
                reusable[f.index] = table
    if reusable and rank == 0:
        tqdm.write(
            f"{prefix}{len(reusable)} of {len(folds)} folds done earlier: reusing their predictions"
        )
    return _Run(out, trainer_config, dataset_factory, protocol, remedy, labels_arr, subjects,
                num_classes, list(class_names or []), dict(metadata or {}), folds, reusable,
                rank, world, prefix, shared_dir or out, dataset_factory_for_seed)  # fmt: skip


def _close_run(run: _Run) -> ProtocolResult:
    """Pool the folds' predictions; write ``predictions.csv`` and ``results.json``."""
    tables = [run.done[fold.index] for fold in run.folds]
    if run._bar is not None:
        run._bar.close()
    if run.protocol.has_test:
        predictions, summary = _pooled(tables, run.num_classes)
    else:
        predictions, summary = pd.DataFrame(columns=PREDICTION_COLUMNS), untested_summary()
    out = run.out
    summary["fold_data"] = [_fold_report(out / f"fold_{f.index:02d}", f) for f in run.folds]
    summary["settings"] = {
        "protocol": repr(run.protocol),
        "protocol_name": run.protocol.name,
        "pooled_primary": run.protocol.pooled_primary,
        "remedy": run.remedy.settings(),
        "selection": run.trainer_config.selection,
        "trainer": asdict(run.trainer_config),
        "num_classes": run.num_classes,
        "class_names": run.class_names,
        "num_samples": int(len(run.labels)),
        "num_folds": len(run.folds),
        **run.metadata,
    }
    if run.rank == 0:
        _write_csv(out / "predictions.csv", predictions)
        _write_json(out / "results.json", summary)
    if run.world > 1:  # every rank returns once the results are on disk
        dist.barrier()
    return ProtocolResult(predictions, summary, run.folds)


def untested_summary() -> dict[str, object]:
    """The metrics part of ``results.json`` for a run without a test set (protocol ``all``):
    ``has_test`` false and every score ``None``, so readers can tell it from a scored run."""
    return {
        "has_test": False,
        "note": "protocol=all: trained on every sample, no test set, so no test score",
        "pooled": None,
        "per_fold": [],
        "fold_mean": None,
        "fold_std": None,
        "per_dataset": {},
        "confusion_matrix": None,
        "per_class": None,
    }


def has_test_scores(summary: Mapping[str, object]) -> bool:
    """Whether a ``results.json`` content holds test scores (false for protocol ``all``)."""
    return summary.get("has_test", True) is not False and summary.get("pooled") is not None


#: the file naming the per-seed runs of a :func:`run_protocol_seeds` folder
SEEDS_FILE = "seeds.json"


def seed_folder(seed: int) -> str:
    """The sub-folder of seed ``seed``'s run in a :func:`run_protocol_seeds` folder."""
    return f"seed_{int(seed)}"


@dataclass
class SeedsResult:
    """What :func:`run_protocol_seeds` returns (and writes).

    Attributes:
        seeds: the seeds, in the order given.
        results: ``{seed: that seed's ProtocolResult}``.
        out_dir: the folder holding ``seeds.json`` and ``seed_<s>/``.
    """

    seeds: list[int]
    results: dict[int, ProtocolResult]
    out_dir: Path

    @property
    def runs(self) -> list[str]:
        """The seed folders (``seed_<s>``) under ``out_dir``, in the order of ``seeds``."""
        return [seed_folder(seed) for seed in self.seeds]

    def pooled(self) -> pd.DataFrame:
        """One row per seed: ``seed``, ``n`` and the pooled ``acc``, ``uf1``, ``uar``."""
        rows = []
        for seed in self.seeds:
            scores = self.results[seed].summary["pooled"]
            rows.append({"seed": seed, **{k: scores[k] for k in ("n", "acc", "uf1", "uar")}})
        return pd.DataFrame(rows, columns=["seed", "n", "acc", "uf1", "uar"])

    def spread(self) -> dict[str, tuple[float, float]]:
        """``{metric: (mean, sd)}`` of the pooled metrics over seeds (sample sd; 0 for one)."""
        table = self.pooled()
        ddof = 1 if len(table) > 1 else 0
        return {m: (float(table[m].mean()), float(table[m].std(ddof=ddof))) for m in METRICS}

    def markdown(self) -> str:
        """The pooled metrics per seed and their mean ± sd, as a Markdown table."""
        lines = ["| seed | N | ACC | UF1 | UAR |", "|---:|---:|---:|---:|---:|"]
        for row in self.pooled().itertuples():
            lines.append(
                f"| {row.seed} | {row.n} | {row.acc:.4f} | {row.uf1:.4f} | {row.uar:.4f} |"
            )
        cells = " | ".join(f"{m:.4f} ± {sd:.4f}" for m, sd in self.spread().values())
        lines.append(f"| mean ± sd ({len(self.seeds)} seeds) | | {cells} |")
        return "\n".join(lines)


def run_protocol_seeds(
    samples: Sequence[object],
    labels: Sequence[int],
    *,
    protocol: str | Protocol,
    dataset_factory_for_seed: Callable[[int], DatasetFactory],
    model_factory: ModelFactory,
    remedy: str | Remedy,
    trainer_config: TrainerConfig,
    out_dir: str | Path,
    seeds: Sequence[int] | None = None,
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    metadata: Mapping[str, object] | None = None,
    overwrite: bool = False,
) -> SeedsResult:
    """:func:`run_protocol` once per seed, into ``out_dir/seed_<s>/``.

    Each seed's folder is the complete run folder a single-seed :func:`run_protocol` with
    ``trainer_config.seed = s`` (and ``seeds=None``) writes, with the same results; each is
    claimed and resumed on its own, so rerunning an interrupted call reuses the finished seeds
    and folds. ``out_dir/seeds.json`` (``{"seeds": [...], "runs": ["seed_0", ...]}``) is
    written when every seed has finished. Fold by fold, the seeds run one after another; under
    batched folds (``trainer_config.batched_folds``) every pending ``(fold, seed)`` pair is one
    stream of the same batched training (its own initial weights, sampler order and flips;
    the seeds of a fold share one held copy of its training data when the data are the same).

    Args:
        samples, labels, protocol, model_factory, remedy, num_classes, class_names, metadata,
            overwrite: as for :func:`run_protocol` (``overwrite`` applies per seed folder).
        dataset_factory_for_seed: ``seed -> dataset_factory`` of that seed's run (e.g. a
            :class:`~recognizer.data.torch_dataset.ClipDataset` whose flips use the seed).
        trainer_config: training settings; ``seed`` is replaced by each seed.
        out_dir: the folder of the seed folders (created).
        seeds: the seeds (default ``trainer_config.seeds``): non-empty, distinct integers.

    Raises:
        ValueError: no seeds, or invalid ones.
        RunConfigError: ``out_dir`` holds a single-seed run, or a seed folder holds a run of
            another configuration (without ``overwrite``).
    """
    chosen = trainer_config.seeds if seeds is None else seeds
    if chosen is None:
        raise ValueError("run_protocol_seeds needs seeds (or trainer_config.seeds)")
    chosen = replace(trainer_config, seeds=list(chosen)).seeds or []  # validated
    out = Path(out_dir)
    if (out / "run.json").is_file():
        raise RunConfigError(
            f"{out} holds a single-seed run (run.json); a run of several seeds writes one "
            "folder per seed and needs another out_dir"
        )
    runs = [
        _open_run(
            samples,
            labels,
            protocol=protocol,
            remedy=remedy,
            trainer_config=replace(trainer_config, seed=seed, seeds=None),
            dataset_factory=dataset_factory_for_seed(seed),
            out_dir=out / seed_folder(seed),
            num_classes=num_classes,
            class_names=class_names,
            metadata=metadata,
            overwrite=overwrite,
            prefix=f"seed {seed}: ",
            shared_dir=out,
            dataset_factory_for_seed=dataset_factory_for_seed,
        )
        for seed in chosen
    ]
    mode = trainer_config.batched_folds
    world = distributed_env()[1]
    batched = mode is True or (mode == "auto" and config_reason(trainer_config, world) is None)
    together = [runs] if batched else [[run] for run in runs]  # else one seed after another
    for group in together:
        for run in group:
            run.progress()
        for run, fold, table, seconds in _train_folds(group, samples, model_factory=model_factory):
            run.record(fold, table, seconds)
    results = {seed: _close_run(run) for seed, run in zip(chosen, runs)}
    if runs[0].rank == 0:
        _write_json(out / SEEDS_FILE, {"seeds": chosen, "runs": [seed_folder(s) for s in chosen]})
    return SeedsResult(list(chosen), results, out)


def _same_on_every_rank(world: int, out_dir: str) -> None:
    """Raise ``RunConfigError`` when the ranks of a DDP run write to different folders (e.g.
    an unpinned Hydra output folder named by each process's own clock)."""
    if world == 1:
        return
    folders: list[object] = [None] * world
    dist.all_gather_object(folders, out_dir)
    if len(set(folders)) > 1:
        raise RunConfigError(
            f"the {world} processes of this run write to different folders {sorted(set(folders))};"
            " pin the folder on the command line (out_dir=...) so every rank uses the same one"
        )


def fold_line(
    position: int, total: int, fold: Fold, table: pd.DataFrame, pooled: pd.DataFrame
) -> str:
    """One log line for a finished fold: its test subjects and metrics, and the pooled metrics
    of every fold so far (``table`` and ``pooled`` have :data:`PREDICTION_COLUMNS`)."""
    if not fold.test_subjects:
        trained = len(fold.train_subjects)
        return f"fold {position}/{total} (trained on all {trained} subjects, no test set)"
    subjects = sorted(fold.test_subjects)
    named = ", ".join(subjects) if len(subjects) <= 2 else f"{len(subjects)} subjects"
    true, predicted = table["true"], table["predicted"]
    return (
        f"fold {position}/{total} (test {named}, {len(table)} samples): "
        f"acc {accuracy(true, predicted):.3f} uf1 {uf1(true, predicted):.3f} · pooled so far "
        f"uf1 {uf1(pooled['true'], pooled['predicted']):.3f} "
        f"uar {uar(pooled['true'], pooled['predicted']):.3f} (n={len(pooled)})"
    )


@dataclass
class _FoldRun:
    """A fold ready to train: its trainer (model, loss, settings) and its datasets."""

    fold: Fold
    trainer: Trainer
    train_set: Dataset
    val_set: Dataset | None
    test_set: Dataset
    test_idx: np.ndarray
    sampler: str
    train_labels: list[int]
    fold_dir: Path
    train_weights: list[float] | None = None
    train_domains: list[bool] | None = None
    mixing: DomainMixing | None = None


def _train_folds(
    runs: Sequence[_Run], samples: Sequence[object], *, model_factory: ModelFactory
) -> Iterator[tuple[_Run, Fold, pd.DataFrame, float]]:
    """Train and predict the pending folds of ``runs`` (one run, or one per seed); yields
    ``(run, fold, predictions, seconds)`` as each finishes: fold by fold, or in batches
    (``trainer_config.batched_folds``, see :mod:`recognizer.training.batched`), where the streams of
    a batch are the pending ``(fold, run)`` pairs in fold order, and the runs of one fold share
    one held copy of its training data when it is the same. A fold with a ``last.pt`` from an
    interrupted run resumes fold by fold."""
    first = runs[0]
    trainer_config = first.trainer_config
    labels, subjects = first.labels, first.subjects
    mode = trainer_config.batched_folds
    reason = config_reason(trainer_config, distributed_env()[1]) if mode else None
    if mode is True and reason is not None:
        raise ValueError(f"batched_folds=true but {reason}; use batched_folds=auto or false")
    order = {fold.index: position for position, fold in enumerate(first.folds)}
    pending = sorted(
        ((run, fold) for run in runs for fold in run.pending),
        key=lambda item: order.get(item[1].index, len(order)),
    )  # fold by fold, the runs of a fold next to each other (stable: in the runs' order)

    def last_pt(run: _Run, fold: Fold) -> Path:
        return run.out / f"fold_{fold.index:02d}/last.pt"

    batchable = set() if not mode or reason else {
        (id(run), fold.index) for run, fold in pending if not last_pt(run, fold).is_file()
    }  # fmt: skip
    if mode == "auto" and reason is not None and distributed_env()[0] == 0:
        tqdm.write(f"batched folds: off ({reason})")

    def prepare(run: _Run, fold: Fold) -> _FoldRun:
        return _prepare_fold(
            fold, samples, labels, subjects, trainer_config=run.trainer_config,
            fold_dir=run.out / f"fold_{fold.index:02d}", pretrain_root=run.out / "pretrain",
            num_classes=run.num_classes, class_names=run.class_names,
            dataset_factory=run.dataset_factory, model_factory=model_factory, remedy=run.remedy,
            shared_dir=run.shared_dir, dataset_factory_for_seed=run.dataset_factory_for_seed,
        )  # fmt: skip

    def finish(fold_run: _FoldRun) -> pd.DataFrame:
        return _finish_fold(fold_run, samples, labels, subjects)

    budget = int(trainer_config.memory_budget_mb * 2**20)
    batch: list[tuple[_Run, _FoldRun, FoldJob]] = []
    for position, (run, fold) in enumerate(pending):
        start = time.perf_counter()
        fold_run = prepare(run, fold)
        job = FoldJob(fold.index, fold_run.trainer, fold_run.train_set, fold_run.sampler,
                      fold_run.train_labels, has_val=fold_run.val_set is not None)  # fmt: skip
        if (id(run), fold.index) in batchable:
            weighted = "per-sample loss weights" if fold_run.train_weights is not None else None
            mixed = fold_run.mixing.unsupported_reason() if fold_run.mixing else None
            reason = weighted or mixed or unsupported_reason([job])
            if reason is None and not share(job, [j for _, _, j in batch]):
                reason = hold(job, budget)
            if reason is not None:
                if mode is True:
                    raise ValueError(f"batched_folds=true but {reason}; use batched_folds=auto")
                tqdm.write(f"batched folds: off from fold {fold.index} on ({reason})")
                batchable = set()
        if (id(run), fold.index) not in batchable:
            yield from _train_batch(batch, finish)
            batch = []
            fold_run.trainer.fit(
                fold_run.train_set, fold_run.val_set, sampler=fold_run.sampler,
                labels=fold_run.train_labels, sample_weights=fold_run.train_weights,
                domains=fold_run.train_domains, mixing=fold_run.mixing,
            )  # fmt: skip
            yield run, fold, finish(fold_run), time.perf_counter() - start
            continue
        batch.append((run, fold_run, job))
        rest = [(id(r), f.index) in batchable for r, f in pending[position + 1 :]]
        # the next stream costs nothing more when it is another run of this fold (shared data)
        following = pending[position + 1][1].index if rest else None
        extra = 0 if following == fold.index else job.held_bytes
        if not any(rest) or held_bytes([j for _, _, j in batch]) + extra > budget:
            yield from _train_batch(batch, finish)
            batch = []


def _train_batch(
    batch: Sequence[tuple[_Run, _FoldRun, FoldJob]], finish: Callable[[_FoldRun], pd.DataFrame]
) -> Iterator[tuple[_Run, Fold, pd.DataFrame, float]]:
    """Train the streams of ``batch`` together, then write and yield each one's results."""
    if not batch:
        return
    if distributed_env()[0] == 0:
        folds = sorted({fold_run.fold.index for _, fold_run, _ in batch})
        runs = len({id(run) for run, _, _ in batch})
        what = f"{len(folds)} folds" if runs == 1 else f"{len(batch)} streams ({len(folds)} folds"
        what += "" if runs == 1 else f" × {runs} seeds)"
        tqdm.write(f"batched folds: training {what} together ({folds[0]}..{folds[-1]})")
    start = time.perf_counter()
    train_folds_batched([job for _, _, job in batch])
    seconds = (time.perf_counter() - start) / len(batch)
    for run, fold_run, _ in batch:
        fold_run.trainer.save_last()
        fold_run.trainer.write_curves()
        yield run, fold_run.fold, finish(fold_run), seconds


def _prepare_fold(
    fold: Fold,
    samples: Sequence[object],
    labels: np.ndarray,
    subjects: np.ndarray,
    *,
    num_classes: int,
    class_names: Sequence[str],
    dataset_factory: DatasetFactory,
    model_factory: ModelFactory,
    remedy: Remedy,
    trainer_config: TrainerConfig,
    fold_dir: Path,
    pretrain_root: Path,
    shared_dir: Path | None = None,
    dataset_factory_for_seed: Callable[[int], DatasetFactory] | None = None,
) -> _FoldRun:
    """The fold's data (remedy, leakage check, ``class_counts.json``), its model (seeded from
    ``(seed, 3, fold)``, pretrained when the remedy asks) and its trainer."""
    train_mask, val_mask, test_mask = fold.masks(list(subjects))
    train_idx, val_idx, test_idx = (np.flatnonzero(m) for m in (train_mask, val_mask, test_mask))
    real_counts = class_counts(labels[train_idx], num_classes)
    if (real_counts == 0).any():
        warnings.warn(
            f"fold {fold.index}: training data lacks classes "
            f"{np.flatnonzero(real_counts == 0).tolist()}; training class counts "
            f"{dict(enumerate(real_counts.tolist()))}",
            stacklevel=4,
        )
    context = FoldContext(
        fold=fold,
        train=[samples[i] for i in train_idx],
        train_labels=labels[train_idx].tolist(),
        class_names=list(class_names) or [str(k) for k in range(num_classes)],
        fold_dir=fold_dir,
        seed=trainer_config.seed,
        pool=samples,
        pool_labels=labels.tolist(),
        inner_score=InnerScorer(
            model_factory, dataset_factory, trainer_config, remedy, num_classes,
            dataset_factory_for_seed,
        ),
        shared_dir=shared_dir,
    )  # fmt: skip
    data = remedy.fold_data(context)
    val_samples = [samples[i] for i in val_idx]
    test_samples = [samples[i] for i in test_idx]
    check_fold(
        fold.index,
        [*data.train, *data.pretrain],
        test_samples,
        val_samples,
        test_subjects=fold.test_subjects,
        searched=data.searched_subjects,
    )
    counts = class_counts(data.train_labels, num_classes)
    fold_dir.mkdir(parents=True, exist_ok=True)
    key = data.pretrain_key or f"fold_{fold.index:02d}"
    if data.pretrain:  # which pretrained weights the fold starts from
        data.report["pretrain"] = {
            "scope": "fold" if data.pretrain_group is None else f"group_{data.pretrain_group}",
            "group": data.pretrain_group,
            "key": key,
            "weights": f"{pretrain_root.name}/{key}/last.pt",
        }
    rank = distributed_env()[0]
    if rank == 0:
        _write_json(
            fold_dir / "class_counts.json",
            {
                "real": real_counts.tolist(),
                "train": counts.tolist(),
                "pretrain": class_counts(data.pretrain_labels, num_classes).tolist(),
                "notes": data.notes,
                "remedy": data.report,
            },
        )
        for note in data.notes:
            print(f"fold {fold.index}: {note}")

    torch.manual_seed(derive_seed(trainer_config.seed, 3, fold.index))
    model = model_factory(num_classes)
    pretrain_config = _pretrain_config(trainer_config, data)
    if data.pretrain and data.pretrain_group is not None:
        state = finished_pretraining(pretrain_root / key, pretrain_config.epochs)
        if state is None:
            state = pretrain_group(
                data, pretrain_root / key, num_classes=num_classes, remedy=remedy,
                trainer_config=pretrain_config, dataset_factory=dataset_factory,
                model_factory=model_factory,
            )  # fmt: skip
        model.load_state_dict(state)
    elif data.pretrain:  # per fold: the fold's own model (folds of one key share the first's)
        pretrainer = Trainer(
            model,
            remedy.criterion(class_counts(data.pretrain_labels, num_classes)),
            pretrain_config,
            out_dir=pretrain_root / key,
        )
        pretrainer.fit(dataset_factory(data.pretrain, data.pretrain_labels, True))
    trainer = Trainer(model, remedy.criterion(counts), trainer_config, out_dir=fold_dir)
    train_set = dataset_factory(data.train, data.train_labels, True)
    _warn_on_input_mismatch(fold.index, model, train_set)
    val_set = (
        dataset_factory(val_samples, labels[val_idx].tolist(), False) if len(val_idx) else None
    )
    test_set = dataset_factory(test_samples, labels[test_idx].tolist(), False)
    return _FoldRun(fold, trainer, train_set, val_set, test_set, test_idx, remedy.sampler,
                    list(data.train_labels), fold_dir, data.train_weights,
                    data.train_domains, data.mixing)  # fmt: skip


def _pretrain_config(trainer_config: TrainerConfig, data: FoldData) -> TrainerConfig:
    """The settings of a pretraining: the run's, for ``data.pretrain_epochs`` epochs (``None``:
    the run's), without early stopping, keeping the last weights."""
    epochs = data.pretrain_epochs or trainer_config.epochs
    return replace(trainer_config, epochs=epochs, patience=None, selection="last")


def finished_pretraining(folder: Path, epochs: int) -> dict[str, torch.Tensor] | None:
    """The weights of a finished pretraining in ``folder`` (its ``last.pt`` after ``epochs``
    epochs), or ``None`` when there is none (or it was interrupted: :func:`pretrain_group`
    resumes it)."""
    last = folder / "last.pt"
    if not last.is_file():
        return None
    ckpt = read_checkpoint(last)
    if int(ckpt.get("state", {}).get("epoch", 0)) < epochs:
        return None
    return ckpt["model"]


def pretrain_group(
    data: FoldData,
    folder: Path,
    *,
    num_classes: int,
    remedy: Remedy,
    trainer_config: TrainerConfig,
    dataset_factory: DatasetFactory,
    model_factory: ModelFactory,
) -> dict[str, torch.Tensor]:
    """Pretrain subject group ``data.pretrain_group``'s model on ``data.pretrain`` once, into
    ``folder`` (``last.pt``, which an interrupted pretraining resumes from).

    The model is built after seeding torch from ``(trainer_config.seed, 5, group)``, so the
    group's weights depend on the group, not on the fold that first needs them.

    Returns:
        The pretrained model's ``state_dict`` (weights and batch-norm statistics).
    """
    torch.manual_seed(derive_seed(trainer_config.seed, 5, int(data.pretrain_group or 0)))
    model = model_factory(num_classes)
    criterion = remedy.criterion(class_counts(data.pretrain_labels, num_classes))
    pretrainer = Trainer(model, criterion, trainer_config, out_dir=folder)
    pretrainer.fit(dataset_factory(data.pretrain, data.pretrain_labels, True))
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _finish_fold(
    run: _FoldRun, samples: Sequence[object], labels: np.ndarray, subjects: np.ndarray
) -> pd.DataFrame:
    """Predict the fold's test subjects with its trained model; write ``predictions.csv``
    (only its header for a fold without test subjects, protocol ``all``)."""
    if len(run.test_idx) == 0:
        table = pd.DataFrame(columns=PREDICTION_COLUMNS)
    else:
        pred = run.trainer.predict(run.test_set)
        table = _prediction_table(run.fold, pred, run.test_idx, samples, labels, subjects)
    if run.trainer.rank == 0:
        _write_csv(run.fold_dir / "predictions.csv", table)
    return table


def _fold_report(fold_dir: Path, fold: Fold) -> dict[str, object]:
    """A fold's ``results.json`` entry: what its remedy reported (``class_counts.json``)."""
    path = fold_dir / "class_counts.json"
    counts = json.loads(path.read_text()) if path.is_file() else {}
    return {"fold": fold.index, **counts.get("remedy", {})}


def _warn_on_input_mismatch(fold: int, model: nn.Module, dataset: Dataset) -> None:
    """Warn when a representation of ``dataset`` (a :class:`ClipDataset`, or the parts of a
    :class:`MixedDataset`) normalises otherwise than ``model`` declares."""
    if not hasattr(model, "default_cfg"):
        return
    wanted = resolve_input_config(model)
    expected = (wanted.mean, wanted.std, wanted.input_scale)
    for part in getattr(dataset, "datasets", [dataset]):
        representation = getattr(part, "representation", None)
        given = tuple(getattr(representation, k, None) for k in ("mean", "std", "input_scale"))
        if representation is not None and given != expected:
            warnings.warn(
                f"fold {fold}: the representation normalises with (mean, std, input_scale) = "
                f"{given} but model {model.default_cfg.name!r} declares {expected}; build it "
                "with representation.with_input_config(resolve_input_config(model))",
                stacklevel=3,
            )
            return


def _prediction_table(
    fold: Fold,
    pred: Predictions,
    test_idx: np.ndarray,
    samples: Sequence[object],
    labels: np.ndarray,
    subjects: np.ndarray,
) -> pd.DataFrame:
    """One row per test sample of ``fold`` (columns :data:`PREDICTION_COLUMNS`)."""
    rows = test_idx[pred.indices]
    if not np.array_equal(pred.labels, labels[rows]):
        raise ValueError(
            f"fold {fold.index}: the dataset's labels differ from the given labels; the "
            "dataset_factory must keep the order and labels of the subset it receives"
        )
    return pd.DataFrame(
        {
            "index": rows,
            "subject": subjects[rows],
            "clip": [str(getattr(samples[i], "clip", i)) for i in rows],
            "fold": fold.index,
            "true": labels[rows],
            "predicted": pred.predicted,
            "dataset": [str(getattr(samples[i], "dataset", "")) for i in rows],
            "source": [str(getattr(samples[i], "source", "real")) for i in rows],
        },
        columns=PREDICTION_COLUMNS,
    )


class RunConfigError(ValueError):
    """An output folder holds a run of another configuration (the message names the keys)."""


#: trainer settings that never change a run's results (speed, logging, resume mechanics)
_RESULT_NEUTRAL = frozenset(
    {"progress", "num_workers", "resume", "checkpoint_every", "data_path", "memory_budget_mb",
     "threads", "log_every", "tensorboard", "batched_folds", "seeds"}
)  # fmt: skip


def _run_config(
    protocol: Protocol,
    remedy: Remedy,
    trainer_config: TrainerConfig,
    samples: Sequence[object],
    labels: np.ndarray,
    num_classes: int,
    class_names: Sequence[str] | None,
    metadata: Mapping[str, object] | None,
) -> dict[str, object]:
    """Everything that decides a run's results, as plain values."""
    uids = [str(getattr(s, "uid", f"{s.subject}/{getattr(s, 'clip', i)}"))
            for i, s in enumerate(samples)]  # fmt: skip
    data = hashlib.sha1(json.dumps([uids, labels.tolist()]).encode()).hexdigest()[:16]
    trainer = {k: v for k, v in asdict(trainer_config).items() if k not in _RESULT_NEUTRAL}
    config = {
        "protocol": repr(protocol),
        "remedy": remedy.settings(),
        "trainer": trainer,
        "num_classes": num_classes,
        "class_names": list(class_names or []),
        "data": data,
        "metadata": dict(metadata or {}),
    }
    return json.loads(json.dumps(config, default=_jsonable))


def _claim_run_folder(out: Path, config: dict[str, object], overwrite: bool) -> None:
    """Record ``config`` in ``out/run.json``, or check it against the one there."""
    path = out / "run.json"
    digest = hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
    if path.is_file():
        old = json.loads(path.read_text())
        if old.get("hash") != digest:
            if not overwrite:
                raise RunConfigError(
                    f"{out} holds a run of another configuration (differs in: "
                    f"{', '.join(_differing_keys(old.get('config', {}), config)) or 'unknown'}); "
                    "use another out_dir, or overwrite=true to discard the earlier results"
                )
            for stale in sorted(out.glob("fold_*")) + sorted(out.glob("pretrain")):
                shutil.rmtree(stale)
            for name in ("predictions.csv", "results.json"):
                (out / name).unlink(missing_ok=True)
    elif any(out.glob("fold_*/predictions.csv")) or any(out.glob("fold_*/last.pt")):
        if not overwrite:
            raise RunConfigError(
                f"{out} holds fold results but no run.json, so their configuration is unknown; "
                "use another out_dir, or overwrite=true to discard them"
            )
        for stale in sorted(out.glob("fold_*")):
            shutil.rmtree(stale)
    _write_json(path, {"hash": digest, "config": config})


def _differing_keys(
    old: Mapping[str, object], new: Mapping[str, object], prefix: str = ""
) -> list[str]:
    keys = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            keys += _differing_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.append(f"{prefix}{key}")
    return keys


def _pooled(tables: list[pd.DataFrame], num_classes: int) -> tuple[pd.DataFrame, dict]:
    """All folds' predictions in sample order, and their metrics with the confusion matrix."""
    predictions = pd.concat(tables, ignore_index=True).sort_values("index", kind="stable")
    predictions = predictions.reset_index(drop=True)
    summary = summarize(predictions)
    summary["confusion_matrix"] = confusion_matrix(
        predictions["true"], predictions["predicted"], labels=range(num_classes)
    ).tolist()
    summary["per_class"] = per_class(
        predictions["true"], predictions["predicted"], labels=range(num_classes)
    )
    return predictions, summary


def _write_csv(path: Path, table: pd.DataFrame) -> None:
    """Write ``table`` atomically (temporary name, then rename): never a torn file."""
    tmp = path.with_suffix(".csv.tmp")
    table.to_csv(tmp, index=False)
    tmp.replace(path)


def _reusable_predictions(path: Path, fold: Fold, subjects: np.ndarray) -> pd.DataFrame | None:
    """A finished fold's predictions when they are whole: every column, one row per test
    sample of the fold, no missing value. ``None`` (with a warning) means: run the fold again.
    """
    reason = None
    try:
        table = pd.read_csv(path, dtype={"subject": str, "clip": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        table, reason = None, f"unreadable ({err})"
    if table is not None:
        expected = int(fold.masks(list(subjects))[2].sum())
        if list(table.columns) != list(PREDICTION_COLUMNS):
            reason = f"columns {list(table.columns)}"
        elif len(table) != expected:
            reason = f"{len(table)} rows for {expected} test samples"
        elif table[["index", "true", "predicted"]].isna().any().any():
            reason = "missing values"
    if reason is None:
        return table
    warnings.warn(f"{path} is not a whole fold result ({reason}); running fold {fold.index} "
                  "again", stacklevel=3)  # fmt: skip
    return None


def _write_json(path: Path, obj: object) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=_jsonable))
    tmp.replace(path)


def _jsonable(obj: object) -> object:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    return str(obj)


def evaluate_run(
    samples: Sequence[object],
    labels: Sequence[int],
    *,
    run_dir: str | Path,
    dataset_factory: DatasetFactory,
    model_factory: ModelFactory,
    trainer_config: TrainerConfig,
    out_dir: str | Path,
) -> ProtocolResult:
    """Re-predict every fold's test subjects of a :func:`run_protocol` folder with the weights
    its training selected (``last.pt`` for ``selection="last"``, ``best.pt`` for ``"best_val"``)
    and write fresh predictions and results.

    Raises:
        FileNotFoundError: ``run_dir`` lacks ``folds.json``/``results.json`` or a fold's weights.
        CheckpointMismatchError: the weights are of another model or class count.
    """
    run = Path(run_dir)
    for name in ("folds.json", "results.json"):
        if not (run / name).is_file():
            raise FileNotFoundError(f"{run / name} not found: is {run} a `mer train` folder?")
    results = json.loads((run / "results.json").read_text())
    if not has_test_scores(results):
        raise RunConfigError(
            f"{run} was trained on every sample (protocol=all) and has no test folds to "
            "re-predict; use `mer predict run_dir=...` with it, or evaluate a run of another "
            "protocol"
        )
    settings = results["settings"]
    # runs written before `selection` existed restored the best-validation weights whenever
    # they had them
    selection = settings.get("selection") or (
        "best_val" if any(run.glob("fold_*/best.pt")) else "last"
    )
    num_classes = int(settings["num_classes"])
    labels_arr = np.asarray(labels, dtype=np.int64)
    subjects = np.asarray([str(s.subject) for s in samples], dtype=object)
    folds = [
        Fold(
            f["index"],
            frozenset(f["train_subjects"]),
            frozenset(f["val_subjects"]),
            frozenset(f["test_subjects"]),
        )
        for f in json.loads((run / "folds.json").read_text())
    ]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables = []
    for fold in folds:
        fold_dir = run / f"fold_{fold.index:02d}"
        weights = fold_dir / ("best.pt" if selection == "best_val" else "last.pt")
        if not weights.is_file():
            raise FileNotFoundError(
                f"fold {fold.index}: no {weights.name} in {fold_dir} (selection={selection!r})"
            )
        trainer = Trainer(model_factory(num_classes), nn.CrossEntropyLoss(), trainer_config)
        ckpt = read_checkpoint(weights)
        trainer.check_compatible(ckpt, weights)
        trainer.model.load_state_dict(ckpt["model"])
        test_idx = np.flatnonzero(fold.masks(list(subjects))[2])
        test_set = dataset_factory(
            [samples[i] for i in test_idx], labels_arr[test_idx].tolist(), False
        )
        tables.append(
            _prediction_table(
                fold, trainer.predict(test_set), test_idx, samples, labels_arr, subjects
            )
        )
    predictions, summary = _pooled(tables, num_classes)
    summary["settings"] = {**settings, "evaluated_from": str(run)}
    _write_csv(out / "predictions.csv", predictions)
    _write_json(out / "results.json", summary)
    return ProtocolResult(predictions, summary, folds)
