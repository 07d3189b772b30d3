"""The trainer: one model, one loss, any torch ``Dataset`` yielding ``(x, label, index)``.

Defaults follow the DFME benchmark: SGD with momentum 0.9, batch 32, the initial learning rate
of the model family (R3D 0.005, P3D 0.01, D3D 0.05, I3D 0.005), divided by 10 every 10 epochs
(``scheduler="step"``), a fixed number of epochs and the last epoch's weights
(``selection="last"``). Options: Adam/AdamW, constant or cosine schedules, best-validation
weights with early stopping, AMP (bf16/fp16) and channels-last memory on CUDA, gradient
clipping, a deterministic mode, DDP through ``torchrun``.

Checkpoints: ``last.pt`` (model, optimizer, scheduler, AMP scaler, RNG states, epoch,
early-stopping state) when training ends, and every ``checkpoint_every`` epochs when that is
set; with ``selection="best_val"``, ``best.pt`` (the weights with the best validation UF1).
Both hold only tensors and primitive containers and load with ``torch.load(weights_only=True)``.
Training curves: after every epoch the trainer rewrites ``curves.csv`` in ``out_dir`` from its
history (one row per finished epoch, see :data:`CURVE_COLUMNS`), and with
``tensorboard=True`` also logs the same values to ``out_dir/tensorboard`` (the optional
``tensorboard`` package). The history is part of ``last.pt``, so a resumed fit writes the same
``curves.csv`` as an uninterrupted one. A rerun with the same ``out_dir`` resumes from the last
``last.pt`` written (an interrupted run without one starts again from its seed) and reproduces
the uninterrupted run exactly in deterministic mode: the sample order and the augmentation of
epoch *e* depend only on ``(seed, e)`` (the trainer calls the dataset's ``set_epoch(e)`` when it
has one), and the RNG states are restored.

Data paths (``data_path``): datasets whose items are fixed up to a flip (apex-flow images) are
held as tensors on the device and batched by indexing, with the same flips as the loader
(:mod:`recognizer.data.in_memory`); anything else goes through a ``DataLoader``. The process's
intra-op threads follow ``threads`` (:mod:`recognizer.runtime`). The trainer prints each choice
once per process.
"""

from __future__ import annotations

import contextlib
import math
import os
import pickle
import random
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from mesynth.environment import resolve_device
from recognizer.data.in_memory import InMemoryData, tensorize
from recognizer.evaluation.metrics import uar, uf1
from recognizer.mixing import (
    DomainMixing,
    DomainRouter,
    apply_mixup,
    domain_batchnorm,
    draw_mixup,
)
from recognizer.models.registry import default_learning_rate
from recognizer.remedies.samplers import EpochIndexSampler, create_sampler
from recognizer.runtime import intra_op_threads, keep_freed_memory, resolve_threads

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("none", "step", "cosine")
SELECTIONS = ("last", "best_val")
AMP_MODES = ("none", "bf16", "fp16")
DATA_PATHS = ("auto", "memory", "loader")
#: ``curves.csv`` columns, in order: the 1-based epoch, the learning rate of that epoch, the
#: mean training loss, accuracy and UF1 over the epoch's training batches (as trained, with
#: augmentation), and with a validation set the validation loss, accuracy, UF1 and UAR after
#: the epoch (absent columns are left out)
CURVE_COLUMNS = (
    "epoch", "lr", "loss", "train_acc", "train_uf1", "val_loss", "val_acc", "val_uf1", "val_uar",
)  # fmt: skip
CURVES = "curves.csv"
_PRINTED: set[str] = set()


@dataclass
class TrainerConfig:
    """Training settings (plain values, so Hydra can build it).

    Attributes:
        epochs: number of epochs (fewer only with early stopping).
        batch_size: samples per step and per process.
        optimizer: ``"sgd"`` (momentum ``momentum``), ``"adam"`` or ``"adamw"``.
        lr: initial learning rate; ``None`` takes the model family's DFME default.
        momentum: SGD momentum.
        weight_decay: L2 (SGD, Adam) or decoupled (AdamW) weight decay.
        scheduler: ``"step"`` (multiply the learning rate by ``gamma`` every ``step_size``
            epochs), ``"cosine"`` (cosine annealing to 0 over ``epochs``) or ``"none"``
            (constant).
        step_size, gamma: of the ``"step"`` schedule.
        selection: which weights the model ends with: ``"last"`` (the last epoch's) or
            ``"best_val"`` (the epoch with the best validation UF1, saved as ``best.pt``; needs
            a validation set and an ``out_dir``).
        amp: ``"none"``, ``"bf16"`` or ``"fp16"`` autocast (CUDA only; ignored with a warning on
            CPU). fp16 uses a gradient scaler.
        channels_last: channels-last memory format on CUDA.
        grad_clip: maximum global gradient norm, or ``None``.
        patience: stop after this many epochs without a better validation UF1 (``None``: never
            stop early); needs ``selection="best_val"``.
        deterministic: deterministic algorithms (slower), for exact reproduction.
        seed: seed of the sample order, dropout and initialisation in :func:`run_protocol`.
        seeds: several seeds, one run each (``None``: the one ``seed``); when given it
            overrides ``seed``: :func:`recognizer.experiments.runner.run_protocol_seeds` writes one
            complete run per seed under ``out_dir/seed_<s>/`` (each with ``seed=s``) and
            ``out_dir/seeds.json``; under batched folds the seeds train together with the
            folds. Non-empty, distinct integers.
        num_workers: data-loading processes (loader path only).
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        progress: show a tqdm progress bar.
        resume: continue from ``out_dir/last.pt`` when it exists.
        checkpoint_every: also write ``last.pt`` every this many epochs (``0``: only when
            training ends, so an interrupted fit starts again).
        data_path: ``"memory"`` (hold the dataset as tensors on the device; an error when it
            cannot be), ``"loader"`` (a ``DataLoader``) or ``"auto"`` (memory when possible).
        memory_budget_mb: the most a dataset may take in memory (plain and mirrored items).
        threads: intra-op threads while training and predicting: ``"auto"`` (the usable
            cores less those busy with other work, see :mod:`recognizer.runtime`) or a count.
        log_every: print one line every this many epochs (``0``: never): loss, training and
            validation metrics, seconds per epoch and the time left in this fit.
        tensorboard: also log the curves to ``out_dir/tensorboard`` (needs the ``tensorboard``
            package, ``pip install 'mesynth[tensorboard]'``; ``curves.csv`` is written either
            way).
        batched_folds: train a protocol's folds together as one model over stacked weights
            (:mod:`recognizer.training.batched`; used by
            :func:`recognizer.experiments.runner.run_protocol`): ``False``, ``True`` (an error
            when a setting, model or fold cannot be batched) or ``"auto"`` (batched when
            possible, else fold by fold with the reason logged).
    """

    epochs: int = 30
    batch_size: int = 32
    optimizer: str = "sgd"
    lr: float | None = None
    momentum: float = 0.9
    weight_decay: float = 1e-4
    scheduler: str = "step"
    step_size: int = 10
    gamma: float = 0.1
    selection: str = "last"
    amp: str = "none"
    channels_last: bool = True
    grad_clip: float | None = None
    patience: int | None = None
    deterministic: bool = False
    seed: int = 0
    seeds: list[int] | None = None
    num_workers: int = 0
    device: str = "auto"
    progress: bool = True
    resume: bool = True
    checkpoint_every: int = 0
    data_path: str = "auto"
    memory_budget_mb: float = 1024.0
    threads: int | str = "auto"
    log_every: int = 0
    tensorboard: bool = False
    batched_folds: bool | str = False

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.amp not in AMP_MODES:
            raise ValueError(f"amp must be one of {AMP_MODES}, got {self.amp!r}")
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler must be one of {SCHEDULERS}, got {self.scheduler!r}")
        if self.selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {SELECTIONS}, got {self.selection!r}")
        if self.patience is not None and self.selection != "best_val":
            raise ValueError(
                f"patience={self.patience} stops on the validation UF1 and needs "
                f"selection='best_val', got selection={self.selection!r}"
            )
        for name in ("epochs", "batch_size", "step_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.data_path not in DATA_PATHS:
            raise ValueError(f"data_path must be one of {DATA_PATHS}, got {self.data_path!r}")
        for name in ("checkpoint_every", "log_every"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.threads != "auto":
            resolve_threads(self.threads)
        if self.seeds is not None:
            self.seeds = _seed_list(self.seeds)
        if self.batched_folds not in (False, True, "auto"):
            raise ValueError(
                f"batched_folds must be false, true or 'auto', got {self.batched_folds!r}"
            )


def _seed_list(seeds: object) -> list[int]:
    """``seeds`` as a list of distinct ints (``TrainerConfig.seeds``), or a ValueError."""
    if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__iter__"):
        raise ValueError(f"seeds must be a list of distinct integers, got {seeds!r}")
    values = list(seeds)  # type: ignore[call-overload]
    if not values:
        raise ValueError("seeds must be a non-empty list of distinct integers, got []")
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, (int, np.integer))]
    if bad:
        raise ValueError(f"seeds must be a list of distinct integers, got {values!r} ({bad[0]!r})")
    ints = [int(v) for v in values]
    repeated = sorted({v for v in ints if ints.count(v) > 1})
    if repeated:
        raise ValueError(f"seeds must be distinct, got {ints!r} (repeated: {repeated})")
    return ints


@dataclass
class Predictions:
    """Model outputs on a dataset, in dataset order.

    Attributes:
        indices: ``(N,)`` the dataset indices each ``(x, label, index)`` item reported.
        labels: ``(N,)`` true labels.
        predicted: ``(N,)`` arg-max classes.
        logits: ``(N, K)`` float32.
    """

    indices: np.ndarray
    labels: np.ndarray
    predicted: np.ndarray
    logits: np.ndarray


@dataclass
class TrainState:
    """Progress that a checkpoint stores besides the tensors."""

    epoch: int = 0
    best_score: float = -math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    stopped: bool = False
    history: list[dict[str, float]] = field(default_factory=list)


class CheckpointMismatchError(RuntimeError):
    """A checkpoint belongs to another model or class count (the message says what differs)."""


class CheckpointReadError(RuntimeError):
    """A checkpoint file is empty, truncated or not a checkpoint (the message names it)."""


def read_checkpoint(path: str | Path) -> dict:
    """``torch.load(path, weights_only=True)`` on CPU, with a message that names the file.

    Raises:
        CheckpointReadError: the file is empty, truncated or not a checkpoint.
    """
    path = Path(path)
    if path.is_file() and path.stat().st_size == 0:
        raise CheckpointReadError(
            f"checkpoint {path} is empty (an interrupted write?); delete it to restart this fold"
        )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as err:
        raise CheckpointReadError(
            f"checkpoint {path} cannot be read ({type(err).__name__}: {err}); it is truncated "
            "or not a checkpoint: delete it to restart this fold"
        ) from err
    if not isinstance(ckpt, dict):
        raise CheckpointReadError(f"checkpoint {path} is not a trainer checkpoint; delete it")
    return ckpt


def distributed_env() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` from torchrun's environment (``(0, 1, 0)`` without)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    return rank, world, local


def init_distributed(device: torch.device) -> tuple[int, int]:
    """Join torchrun's process group when ``WORLD_SIZE > 1``; returns ``(rank, world_size)``."""
    rank, world, _ = distributed_env()
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":  # NCCL's object collectives use the current device
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return rank, world


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integer parts (e.g. global seed, fold, epoch)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0] >> 1)


@contextlib.contextmanager
def deterministic_mode(enabled: bool) -> Iterator[None]:
    """Deterministic algorithms inside the block (restored after)."""
    if not enabled:
        yield
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    previous = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0])
        torch.backends.cudnn.benchmark = previous[1]


def _rng_state() -> dict[str, object]:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": list(random.getstate()[1]),
    }


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    npy = state["numpy"]
    keys = npy["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, npy["pos"], npy["has_gauss"], npy["cached_gaussian"]))
    random.setstate((3, tuple(state["python"]), None))


class Trainer:
    """Trains ``model`` with ``criterion`` under ``config``; checkpoints into ``out_dir``.

    Args:
        model: any module mapping ``(B, ...)`` inputs to ``(B, K)`` logits; models from
            :func:`recognizer.models.create_model` also give the default learning rate.
        criterion: ``criterion(logits, target) -> scalar``.
        config: a :class:`TrainerConfig`.
        out_dir: folder for ``last.pt``/``best.pt``; ``None`` keeps nothing on disk (no resume).
    """

    def __init__(
        self,
        model: nn.Module,
        criterion: nn.Module,
        config: TrainerConfig,
        *,
        out_dir: str | Path | None = None,
    ) -> None:
        self.config = config
        self.device = resolve_device(config.device)
        self.rank, self.world_size = init_distributed(self.device)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.model = model.to(self.device)
        self.criterion = criterion.to(self.device)
        self.amp = config.amp
        if self.amp != "none" and self.device.type != "cuda":
            warnings.warn(f"amp={self.amp!r} needs CUDA; training in float32", stacklevel=2)
            self.amp = "none"
        self.channels_last = config.channels_last and self.device.type == "cuda"
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last_3d)
        lr = config.lr
        if lr is None:
            name = getattr(getattr(model, "default_cfg", None), "name", "")
            lr = default_learning_rate(name)
            if lr is None:
                raise ValueError(f"no default learning rate for model {name!r}; set config.lr")
        self.lr = float(lr)
        self.optimizer = self._make_optimizer()
        self.scheduler = self._make_scheduler()
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp == "fp16")
        self.state = TrainState()
        self.threads = resolve_threads(config.threads)
        self._print_once(f"threads: {self.threads.threads} ({self.threads.reason})")
        if config.tensorboard:
            _summary_writer_class()  # fail before training, not after the first epoch
        self._saved_epoch = -1
        #: the path of the last fit: ``"memory"`` or ``"loader"``
        self.data_path = ""

    # -- construction ---------------------------------------------------------------------
    def _make_optimizer(self) -> torch.optim.Optimizer:
        params = [p for p in self.model.parameters() if p.requires_grad]
        if self.config.optimizer == "sgd":
            return torch.optim.SGD(
                params,
                lr=self.lr,
                momentum=self.config.momentum,
                weight_decay=self.config.weight_decay,
            )
        if self.config.optimizer == "adam":
            return torch.optim.Adam(params, lr=self.lr, weight_decay=self.config.weight_decay)
        return torch.optim.AdamW(params, lr=self.lr, weight_decay=self.config.weight_decay)

    def _make_scheduler(self) -> torch.optim.lr_scheduler.LRScheduler:
        cfg, lr_scheduler = self.config, torch.optim.lr_scheduler
        if cfg.scheduler == "step":
            return lr_scheduler.StepLR(self.optimizer, step_size=cfg.step_size, gamma=cfg.gamma)
        if cfg.scheduler == "cosine":
            return lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=cfg.epochs)
        return lr_scheduler.ConstantLR(self.optimizer, factor=1.0, total_iters=0)

    def _train_module(self) -> nn.Module:
        if self.world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            return nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        return self.model

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp == "none":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.amp == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        if self.channels_last:
            fmt = torch.channels_last_3d if x.ndim == 5 else torch.channels_last
            x = x.contiguous(memory_format=fmt)
        return x

    # -- checkpoints ----------------------------------------------------------------------
    def checkpoint(self) -> dict[str, object]:
        """Everything needed to resume exactly (tensors and primitive containers only)."""
        cfg = getattr(self.model, "default_cfg", None)
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": _rng_state(),
            "state": asdict(self.state),
            "model_name": getattr(cfg, "name", type(self.model).__name__),
            "num_classes": getattr(cfg, "num_classes", -1),
        }

    def save_last(self) -> None:
        """Write ``last.pt`` (:meth:`checkpoint`) now, unless it holds this epoch already."""
        if self._saved_epoch != self.state.epoch:
            self._save(self.checkpoint(), "last.pt")
            self._saved_epoch = self.state.epoch

    def _print_once(self, line: str) -> None:
        if self.rank == 0 and line not in _PRINTED:
            _PRINTED.add(line)
            tqdm.write(f"trainer: {line}")

    def _save(self, obj: dict, name: str) -> None:
        if self.out_dir is None or self.rank != 0:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.out_dir / f".{name}.tmp"
        torch.save(obj, tmp)
        tmp.replace(self.out_dir / name)

    def check_compatible(self, ckpt: dict, path: Path) -> None:
        """Raise :class:`CheckpointMismatchError` naming what differs from this model."""
        problems = []
        cfg = getattr(self.model, "default_cfg", None)
        name = getattr(cfg, "name", type(self.model).__name__)
        if ckpt.get("model_name") != name:
            problems.append(f"model {ckpt.get('model_name')!r} vs {name!r}")
        classes = getattr(cfg, "num_classes", -1)
        if ckpt.get("num_classes") != classes:
            problems.append(f"num_classes {ckpt.get('num_classes')} vs {classes}")
        own = self.model.state_dict()
        theirs = ckpt["model"]
        missing = sorted(set(own) - set(theirs))
        extra = sorted(set(theirs) - set(own))
        shapes = [
            f"{k}: {tuple(theirs[k].shape)} vs {tuple(v.shape)}"
            for k, v in own.items()
            if k in theirs and theirs[k].shape != v.shape
        ]
        if missing:
            problems.append(f"{len(missing)} keys missing from the checkpoint, e.g. {missing[:3]}")
        if extra:
            problems.append(f"{len(extra)} unexpected keys, e.g. {extra[:3]}")
        if shapes:
            problems.append("shape mismatches: " + "; ".join(shapes[:3]))
        if problems:
            raise CheckpointMismatchError(
                f"checkpoint {path} does not match this model: " + "; ".join(problems)
            )

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore model, optimizer, scheduler, scaler, RNG and progress from ``path``."""
        path = Path(path)
        ckpt = read_checkpoint(path)
        self.check_compatible(ckpt, path)
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        _set_rng_state(ckpt["rng"])
        self.state = TrainState(**ckpt["state"])
        self._saved_epoch = self.state.epoch

    def load_best(self) -> bool:
        """Load ``best.pt`` weights when they exist; returns whether it did."""
        if self.out_dir is None or not (self.out_dir / "best.pt").is_file():
            return False
        path = self.out_dir / "best.pt"
        ckpt = read_checkpoint(path)
        self.check_compatible(ckpt, path)
        self.model.load_state_dict(ckpt["model"])
        return True

    # -- training -------------------------------------------------------------------------
    def _loader(self, dataset: Dataset, sampler: Sampler[int] | None, seed: int) -> DataLoader:
        # a last training batch of one sample would stop BatchNorm: drop that one sample
        size = len(sampler) if sampler is not None else len(dataset)  # type: ignore[arg-type]
        single = size > 1 and size % self.config.batch_size == 1
        return DataLoader(
            dataset,
            batch_size=self.config.batch_size,
            sampler=sampler,
            shuffle=False,
            num_workers=self.config.num_workers,
            pin_memory=self.device.type == "cuda",
            drop_last=single,
            generator=torch.Generator().manual_seed(seed),
            persistent_workers=False,
        )

    def fit(
        self,
        train_set: Dataset,
        val_set: Dataset | None = None,
        *,
        sampler: str = "shuffle",
        labels: Sequence[int] | None = None,
        sample_weights: Sequence[float] | None = None,
        domains: Sequence[bool] | None = None,
        mixing: DomainMixing | None = None,
    ) -> TrainState:
        """Train for ``config.epochs`` (or until early stopping), resuming when possible.

        Before each epoch *e* the trainer calls ``train_set.set_epoch(e)`` when the dataset has
        it (:class:`~recognizer.data.torch_dataset.ClipDataset`, ``MixedDataset``), so
        augmentation varies between epochs and is the same for the same ``(seed, e)``.

        Args:
            train_set: yields ``(x, label, index)``.
            val_set: validation data: its UF1 is logged every epoch, and with
                ``selection="best_val"`` picks the weights and drives early stopping.
            sampler: ``"shuffle"``, ``"class_uniform"`` or ``"oversample"``
                (:func:`recognizer.remedies.samplers.create_sampler`).
            labels: ``(N,)`` labels of ``train_set`` for the class-aware samplers (default:
                ``train_set.labels`` when it has them).
            sample_weights: ``(N,)`` weight of each training item's loss (``None``: all 1),
                passed to the criterion as ``criterion(logits, y, sample_weight=w)``
                (:class:`recognizer.remedies.losses.FocalLoss` takes it).
            domains: ``(N,)`` whether each training item is synthetic (``None``: all real);
                read by ``mixing``.
            mixing: domain-specific BatchNorm and same-class mixup between the real and
                synthetic items (:class:`recognizer.mixing.DomainMixing`; ``None``: off).

        Returns:
            The final :class:`TrainState` (history of loss, lr and validation metrics).
            Afterwards the model holds the weights ``config.selection`` chose.

        Raises:
            ValueError: ``selection="best_val"`` without a validation set or ``out_dir``;
                ``sample_weights`` or ``domains`` of another length than ``train_set``.
        """
        cfg = self.config
        if cfg.selection == "best_val" and (val_set is None or len(val_set) == 0):  # type: ignore[arg-type]
            raise ValueError(
                "selection='best_val' needs a validation set (e.g. protocol.val_fraction > 0); "
                "use selection='last' to train a fixed number of epochs"
            )
        if cfg.selection == "best_val" and self.out_dir is None:
            raise ValueError("selection='best_val' keeps best.pt and needs an out_dir")
        last = self.out_dir / "last.pt" if self.out_dir is not None else None
        if cfg.resume and last is not None and last.is_file():
            self.load_checkpoint(last)
            self._print_once(f"resumed from {last} at epoch {self.state.epoch}")
        else:
            torch.manual_seed(derive_seed(cfg.seed, 1))
        if self.device.type == "cpu" and keep_freed_memory():
            self._print_once("allocator: freed memory kept for the next step (glibc mallopt)")
        held = self._hold(train_set)
        self.data_path = "loader" if held is None else "memory"
        held_val = self._hold(val_set) if val_set is not None and len(val_set) > 0 else None  # type: ignore[arg-type]
        order = create_sampler(
            sampler,
            len(train_set),  # type: ignore[arg-type]
            labels if labels is not None else getattr(train_set, "labels", None),
            seed=cfg.seed,
            num_replicas=self.world_size,
            rank=self.rank,
        )
        weights = None
        if sample_weights is not None:
            if len(sample_weights) != len(train_set):  # type: ignore[arg-type]
                raise ValueError(
                    f"sample_weights has {len(sample_weights)} values for "
                    f"{len(train_set)} training items"  # type: ignore[arg-type]
                )
            weights = torch.as_tensor(sample_weights, dtype=torch.float32, device=self.device)
        synthetic = None
        if domains is not None:
            if len(domains) != len(train_set):  # type: ignore[arg-type]
                raise ValueError(
                    f"domains has {len(domains)} values for {len(train_set)} training items"  # type: ignore[arg-type]
                )
            synthetic = torch.as_tensor([bool(d) for d in domains], dtype=torch.bool)
        mixing = mixing if mixing is not None and mixing.enabled else None
        if mixing is not None:
            self._print_once(f"domain mixing: {mixing.settings()}")
        writer = self._summary_writer()
        first_epoch, start = self.state.epoch, time.perf_counter()
        with deterministic_mode(cfg.deterministic), intra_op_threads(self.threads.threads):
            module = self._train_module()
            while self.state.epoch < cfg.epochs and not self.state.stopped:
                epoch = self.state.epoch
                order.set_epoch(epoch)
                record = {"epoch": float(epoch), "lr": self.optimizer.param_groups[0]["lr"]}
                record.update(
                    self._train_epoch(
                        module,
                        self._batches(train_set, held, order, epoch),
                        epoch,
                        weights,
                        synthetic,
                        mixing,
                    )
                )
                self.scheduler.step()
                self._sync_buffers()
                self._after_epoch(record, val_set, held_val)
                self.write_curves(writer)
                self._log_epoch(record, (time.perf_counter() - start) / (epoch + 1 - first_epoch))
        self.write_curves(None)
        if writer is not None:
            writer.close()
        if self._saved_epoch != self.state.epoch:
            self._save(self.checkpoint(), "last.pt")
            self._saved_epoch = self.state.epoch
        if cfg.selection == "best_val":
            self.load_best()
        return self.state

    def _hold(self, dataset: Dataset) -> InMemoryData | None:
        """``dataset`` as tensors on the device when ``data_path`` allows, else ``None``.

        Raises:
            ValueError: ``data_path="memory"`` and the dataset cannot be held (says why).
        """
        if self.config.data_path == "loader":
            self._print_once("data: loader (data_path=loader)")
            return None
        held = tensorize(dataset, int(self.config.memory_budget_mb * 2**20))
        if isinstance(held, str):
            if self.config.data_path == "memory":
                raise ValueError(f"data_path='memory' but the dataset cannot be held: {held}")
            self._print_once(f"data: loader ({held})")
            return None
        self._print_once(
            f"data: in memory on {self.device.type} (flips per (seed, epoch, index)), no workers"
        )
        return held.to(self.device)

    def _batches(
        self,
        dataset: Dataset,
        held: InMemoryData | None,
        order: EpochIndexSampler,
        epoch: int,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """The ``(x, y, item indices)`` batches of ``epoch`` in ``order``, from memory or a
        DataLoader."""
        if held is None:
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(epoch)
            loader = self._loader(dataset, order, derive_seed(self.config.seed, 2, epoch))
            yield from loader
            return
        indices = torch.tensor(list(order), dtype=torch.int64, device=held.inputs.device)
        flips = held.flips(epoch) if held.mirrored is not None else None
        size = self.config.batch_size
        for start in range(0, len(indices), size):
            chunk = indices[start : start + size]
            if len(chunk) == 1 and len(indices) > 1:  # as the loader: keep BatchNorm working
                return
            yield (*held.batch(chunk, flips), chunk)

    def _train_epoch(
        self,
        module: nn.Module,
        batches: Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
        epoch: int,
        weights: torch.Tensor | None = None,
        synthetic: torch.Tensor | None = None,
        mixing: DomainMixing | None = None,
    ) -> dict[str, float]:
        """One epoch; returns the mean ``loss`` and the ``train_acc`` and ``train_uf1`` of the
        arg-max predictions on the batches as trained (``weights``: ``(N,)`` per item;
        ``synthetic``: ``(N,)`` bool per item, on CPU, for ``mixing``; mixup draws come from a
        generator seeded by ``(seed, 4, epoch)``)."""
        module.train()
        with contextlib.ExitStack() as stack:
            router = None
            if mixing is not None and mixing.domain_bn and synthetic is not None:
                router = stack.enter_context(domain_batchnorm(self.model))
            rng = np.random.default_rng(derive_seed(self.config.seed, 4, epoch))
            return self._train_batches(
                module, batches, epoch, weights, synthetic, mixing, router, rng
            )

    def _train_batches(
        self,
        module: nn.Module,
        batches: Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
        epoch: int,
        weights: torch.Tensor | None,
        synthetic: torch.Tensor | None,
        mixing: DomainMixing | None,
        router: DomainRouter | None,
        rng: np.random.Generator,
    ) -> dict[str, float]:
        """The steps of :meth:`_train_epoch` (``router``: routes BatchNorm per domain when
        domain BatchNorm is on)."""
        total, count = 0.0, 0
        seen: list[torch.Tensor] = []
        guessed: list[torch.Tensor] = []
        bar = tqdm(
            batches,
            desc=f"epoch {epoch + 1}/{self.config.epochs}",
            disable=not self.config.progress or self.rank != 0,
            leave=False,
        )
        for x, y, index in bar:
            x, y = self._to_device(x), y.to(self.device, non_blocking=True)
            self.optimizer.zero_grad(set_to_none=True)
            mask = None if synthetic is None else synthetic[torch.as_tensor(index).cpu()]
            if mask is not None and mixing is not None and mixing.mixup > 0:
                draw = draw_mixup(y, mask, mixing.mixup, mixing.mixup_alpha, rng)
                x = apply_mixup(x, draw)
            routing = router.route(mask) if router is not None else contextlib.nullcontext()
            with self._autocast(), routing:
                logits = module(x)
                if weights is None:
                    loss = self.criterion(logits, y)
                else:
                    chosen = weights[torch.as_tensor(index, device=weights.device)]
                    loss = self.criterion(logits, y, sample_weight=chosen)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"epoch {epoch}: loss is {loss.item()}")
            self.scaler.scale(loss).backward()
            if self.config.grad_clip is not None:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            total += float(loss.detach()) * len(y)
            count += len(y)
            seen.append(y.detach().cpu())
            guessed.append(logits.detach().argmax(dim=1).cpu())
            bar.set_postfix(loss=f"{total / count:.4f}")
        if self.world_size > 1:  # the epoch over every rank's samples, as one process logs it
            sums = torch.tensor([total, float(count)], dtype=torch.float64)
            dist.all_reduce(sums)
            total, count = float(sums[0]), int(sums[1])
            mine = [torch.cat(v).numpy() if v else np.zeros(0, np.int64) for v in (seen, guessed)]
            parts: list[object] = [None] * self.world_size
            dist.all_gather_object(parts, mine)
            seen = [torch.from_numpy(part[0]) for part in parts]  # type: ignore[index]
            guessed = [torch.from_numpy(part[1]) for part in parts]  # type: ignore[index]
        record = {"loss": total / max(count, 1)}
        if seen:
            true, predicted = torch.cat(seen).numpy(), torch.cat(guessed).numpy()
            record["train_acc"] = float((true == predicted).mean())
            record["train_uf1"] = uf1(true, predicted)
        return record

    def _sync_buffers(self) -> None:
        """Give every rank rank 0's buffers (BatchNorm running statistics).

        DDP broadcasts buffers at the start of each forward pass, so after an epoch's last step
        every rank holds running statistics updated from its own last batch. Without this,
        ranks would validate and predict with different models (and could disagree on early
        stopping, leaving one rank waiting for the other).
        """
        if self.world_size == 1:
            return
        for buffer in self.model.buffers():
            dist.broadcast(buffer.data, src=0)

    def _after_epoch(
        self, record: dict[str, float], val_set: Dataset | None, held_val: InMemoryData | None
    ) -> None:
        state = self.state
        if val_set is not None and len(val_set) > 0:  # type: ignore[arg-type]
            pred = self._predict_held(held_val) if held_val is not None else self.predict(val_set)
            score = uf1(pred.labels, pred.predicted)
            record["val_loss"] = self._loss_of(pred)
            record["val_acc"] = float((pred.labels == pred.predicted).mean())
            record["val_uf1"] = score
            record["val_uar"] = uar(pred.labels, pred.predicted)
            if score > state.best_score:
                state.best_score, state.best_epoch, state.bad_epochs = score, state.epoch, 0
                if self.config.selection == "best_val":
                    self._save(self._weights_only(), "best.pt")
            else:
                state.bad_epochs += 1
                patience = self.config.patience
                state.stopped = patience is not None and state.bad_epochs >= patience
        state.history.append(record)
        state.epoch += 1
        every = self.config.checkpoint_every
        if every > 0 and state.epoch % every == 0:
            self._save(self.checkpoint(), "last.pt")
            self._saved_epoch = state.epoch

    @torch.no_grad()
    def _loss_of(self, pred: Predictions) -> float:
        """The criterion's mean loss on predicted ``(N, K)`` logits and their labels."""
        logits = torch.from_numpy(pred.logits).to(self.device)
        return float(self.criterion(logits, torch.from_numpy(pred.labels).to(self.device)))

    def _summary_writer(self) -> object | None:
        """A TensorBoard writer on ``out_dir/tensorboard`` (rank 0, ``tensorboard=True``) that
        drops what an interrupted earlier fit logged after the epoch this fit resumes from."""
        if not self.config.tensorboard or self.out_dir is None or self.rank != 0:
            return None
        writer_class = _summary_writer_class()
        return writer_class(str(self.out_dir / "tensorboard"), purge_step=self.state.epoch + 1)

    def write_curves(self, writer: object | None = None) -> None:
        """Rewrite ``out_dir/curves.csv`` from the history (atomically; rank 0 only) and log the
        last epoch to ``writer``."""
        if self.out_dir is None or self.rank != 0 or not self.state.history:
            return
        rows = [{**r, "epoch": int(r["epoch"]) + 1} for r in self.state.history]
        present = {key for row in rows for key in row}
        columns = [c for c in CURVE_COLUMNS if c in present]
        columns += sorted(present - set(columns))
        lines = [",".join(columns)]
        lines += [",".join(_csv_value(row.get(c)) for c in columns) for row in rows]
        self.out_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.out_dir / f".{CURVES}.tmp"
        tmp.write_text("\n".join(lines) + "\n")
        tmp.replace(self.out_dir / CURVES)
        if writer is not None:
            last = rows[-1]
            for key in columns[1:]:
                if last.get(key) is not None:
                    writer.add_scalar(key, last[key], last["epoch"])  # type: ignore[attr-defined]
            writer.flush()  # type: ignore[attr-defined]

    def _log_epoch(self, record: dict[str, float], seconds_per_epoch: float) -> None:
        """Every ``log_every`` epochs: one line with the epoch's values and the time left."""
        every, epoch = self.config.log_every, int(record["epoch"]) + 1
        if every <= 0 or self.rank != 0 or (epoch % every and epoch != self.config.epochs):
            return
        values = " ".join(f"{key} {record[key]:.3f}" for key in CURVE_COLUMNS[2:] if key in record)
        left = seconds_per_epoch * (self.config.epochs - epoch)
        tqdm.write(
            f"  epoch {epoch}/{self.config.epochs}: {values} · "
            f"{seconds_per_epoch:.1f} s/epoch, about {left:.0f} s left in this fit"
        )

    def _weights_only(self) -> dict[str, object]:
        cfg = getattr(self.model, "default_cfg", None)
        return {
            "model": self.model.state_dict(),
            "model_name": getattr(cfg, "name", type(self.model).__name__),
            "num_classes": getattr(cfg, "num_classes", -1),
            "epoch": self.state.epoch,
        }

    def predict(self, dataset: Dataset, batch_size: int | None = None) -> Predictions:
        """Outputs of the model on every item of ``dataset`` (each process predicts all); held
        in memory like training data when ``data_path`` allows and nothing is augmented."""
        held = self._hold(dataset)
        with intra_op_threads(self.threads.threads):
            if held is not None and held.mirrored is None:
                return self._predict_held(held, batch_size)
            return self._predict_loader(dataset, batch_size)

    @torch.no_grad()
    def _predict_held(self, held: InMemoryData, batch_size: int | None = None) -> Predictions:
        self.model.eval()
        size = batch_size or self.config.batch_size
        logits = []
        for start in range(0, len(held), size):
            with self._autocast():
                out = self.model(self._to_device(held.inputs[start : start + size]))
            logits.append(out.float().cpu())
        return _predictions(torch.arange(len(held)), held.labels.cpu(), logits)

    @torch.no_grad()
    def _predict_loader(self, dataset: Dataset, batch_size: int | None = None) -> Predictions:
        self.model.eval()
        loader = DataLoader(
            dataset,
            batch_size=batch_size or self.config.batch_size,
            shuffle=False,
            num_workers=self.config.num_workers,
            pin_memory=self.device.type == "cuda",
            # its own generator: predicting (validation every epoch) must not draw from the
            # global RNG that dropout uses, so both data paths train alike
            generator=torch.Generator().manual_seed(0),
        )
        indices, labels, logits = [], [], []
        for x, y, index in loader:
            with self._autocast():
                out = self.model(self._to_device(x))
            logits.append(out.float().cpu())
            labels.append(torch.as_tensor(y))
            indices.append(torch.as_tensor(index))
        if not logits:
            empty = np.zeros(0, dtype=np.int64)
            return Predictions(empty, empty, empty, np.zeros((0, 0), np.float32))
        return _predictions(torch.cat(indices), torch.cat(labels), logits)


def _csv_value(value: float | None) -> str:
    """A ``curves.csv`` cell: empty for a missing value, else the shortest exact float text."""
    return "" if value is None else repr(float(value))


def _summary_writer_class() -> type:
    """``torch.utils.tensorboard.SummaryWriter``, imported on first use.

    Raises:
        ImportError: the ``tensorboard`` package is not installed (the message says how to get
            it and how to train without it).
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        raise ImportError(
            "trainer.tensorboard=true needs the tensorboard package: "
            "pip install 'mesynth[tensorboard]' (or pip install tensorboard), or set "
            f"trainer.tensorboard=false; curves.csv is written either way ({err})"
        ) from err
    return SummaryWriter


def _predictions(
    indices: torch.Tensor, labels: torch.Tensor, logits: list[torch.Tensor]
) -> Predictions:
    """:class:`Predictions` from ``(N,)`` indices and labels and per-batch ``(B, K)`` logits."""
    all_logits = torch.cat(logits).numpy()
    return Predictions(
        indices=indices.numpy().astype(np.int64),
        labels=labels.numpy().astype(np.int64),
        predicted=all_logits.argmax(axis=1).astype(np.int64),
        logits=all_logits,
    )
