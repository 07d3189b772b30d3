"""Batched folds: train the folds of a protocol together, as one model over stacked weights.

Small models on small inputs (STSTNet on ``28×28`` apex flow) spend a LOSO sweep in dozens of
short, identical training runs. :func:`train_folds_batched` trains ``F`` of them in lockstep:
the weights of every fold are stacked along a leading fold axis ``F``
(:class:`StackedSTSTNet`), each step runs every fold's batch through its own slice of the
weights and back (each fold's backward pass fills only its own slice of the stacked
gradients), and one vectorised optimiser step (:class:`StackedOptimizer`) updates them all.

Convention (what stays per fold, as fold-by-fold training has it):

- initial weights: each fold's model is built by the caller exactly as
  :func:`recognizer.experiments.runner.run_protocol` builds it (torch seeded from
  ``(seed, 3, fold)``; for a synthetic pretraining remedy, the weights its pretraining left:
  the fold's own, or its subject group's, pretrained once for every fold of the group), then
  stacked, so the batched folds fine-tune from their pretrained weights;
- data: each fold draws its batches from its own sampler (its own trainer's seed, the epoch
  and the batch size) and its own in-memory flips (:class:`recognizer.data.in_memory.InMemoryData`),
  so fold ``f`` sees the batches of fold-by-fold training in the same order; a last batch of
  one sample is dropped, as the trainer drops it;
- seeds: the folds of several seeds' runs (:func:`recognizer.experiments.runner.run_protocol_seeds`)
  are simply more streams, one per (fold, seed), each with its own trainer (seed), initial
  weights, sampler and flips; streams of one fold may share one held copy of its data
  (:func:`share`), each drawing its flips from its own seed;
- loss: each fold's own criterion (e.g. its class-balanced weights), a mean over that fold's
  batch; the training loss summed over folds is only what the backward pass starts from;
- batch norm: each fold normalises over its own batch and updates its own running statistics;
- optimiser: per-fold step counts; a fold without a batch in a step (a shorter epoch) is not
  touched at all (weights, moments, step count); per-fold gradient-norm clipping;
- learning rate: each fold's own scheduler, stepped once per epoch as the trainer steps it.

Results equal fold-by-fold training up to float rounding (the model's three convolution
streams run as one 16-channel channels-last convolution, whose sums round differently), not
bit for bit. Dropout is not supported (its masks come from the global generator, one stream
per fold), nor validation sets, best-validation selection, early stopping, AMP, DDP or
periodic checkpoints: :func:`unsupported_reason` says which one blocks a run. Pretraining is
not part of the batched training: it runs before
(:func:`recognizer.experiments.runner.pretrain_group`), and the fine-tuning is an ordinary
training from other initial weights.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from recognizer.data.in_memory import InMemoryData, reseeded, tensorize
from recognizer.models.ststnet import STSTNet
from recognizer.remedies.samplers import create_sampler
from recognizer.runtime import intra_op_threads, keep_freed_memory
from recognizer.training.trainer import Trainer, TrainerConfig, TrainState

#: the values of ``TrainerConfig.batched_folds``
BATCHED_FOLDS = (False, True, "auto")


@dataclass
class FoldJob:
    """One fold to train in a batch of folds.

    Attributes:
        fold: the fold's index (for messages).
        trainer: the fold's :class:`Trainer` (its model, criterion, optimizer, scheduler and
            ``out_dir``), built as fold-by-fold training builds it; training leaves the
            trained weights in ``trainer.model``, the optimizer's and scheduler's states in
            theirs and the history in ``trainer.state``.
        train_set: the fold's training data, yielding ``(x, label, index)``.
        sampler: the remedy's sampler name (``"shuffle"``, ``"class_uniform"``,
            ``"oversample"``).
        labels: ``(N,)`` the labels of ``train_set`` for the class-aware samplers.
        has_val: whether the fold has a validation set (not supported).
        held: ``train_set`` as tensors on the trainer's device (:func:`hold`), or ``None``
            until held.
    """

    fold: int
    trainer: Trainer
    train_set: Dataset
    sampler: str
    labels: Sequence[int]
    has_val: bool = False
    held: InMemoryData | None = None

    @property
    def held_bytes(self) -> int:
        """Bytes of the held training data (0 when not held)."""
        if self.held is None:
            return 0
        tensors = [self.held.inputs, self.held.mirrored, self.held.labels]
        return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def config_reason(config: TrainerConfig, world_size: int = 1) -> str | None:
    """Why ``config`` cannot train batched folds (one line), or ``None`` when it can."""
    if config.selection != "best_val" and config.patience is None:
        problems = []
    else:
        problems = ["selection='best_val' (per-fold validation and early stopping)"]
    if config.amp != "none":
        problems.append(f"amp={config.amp!r}")
    if world_size > 1:
        problems.append(f"DDP ({world_size} processes)")
    if config.checkpoint_every > 0:
        problems.append(f"checkpoint_every={config.checkpoint_every} (checkpoints at the end)")
    if config.tensorboard:
        problems.append("tensorboard=true (curves.csv is written either way)")
    if config.data_path == "loader":
        problems.append("data_path='loader' (batched folds hold their data in memory)")
    return "; ".join(problems) or None


def model_reason(model: nn.Module) -> str | None:
    """Why ``model`` has no batched form (one line), or ``None`` when it has one.

    Supported: :class:`~recognizer.models.ststnet.STSTNet` with ReLU, affine batch norms that
    track running statistics (same ``eps`` and ``momentum`` in every stream) and no dropout.
    """
    if not isinstance(model, STSTNet):
        name = getattr(getattr(model, "default_cfg", None), "name", type(model).__name__)
        return f"model {name!r} has no batched form (supported: ststnet)"
    norms = [stream.norm for stream in model.streams]
    if not all(
        type(n) is nn.BatchNorm2d and n.affine and n.track_running_stats and n.momentum
        for n in norms
    ):
        return "ststnet's batched form needs affine BatchNorm2d with running statistics"
    if len({(n.eps, n.momentum) for n in norms}) != 1:
        return "ststnet's streams use different batch-norm eps or momentum"
    if not all(type(stream.act) is nn.ReLU for stream in model.streams):
        return "ststnet's batched form needs ReLU activations"
    if float(getattr(model.dropout, "p", 0.0)) > 0:
        return f"dropout {model.dropout.p} (its masks are drawn per fold from the global RNG)"
    return None


def unsupported_reason(jobs: Sequence[FoldJob]) -> str | None:
    """Why these folds cannot train batched (one line naming the first problem), or ``None``."""
    if not jobs:
        return "no folds to train"
    trainer = jobs[0].trainer
    reason = config_reason(trainer.config, trainer.world_size)
    if reason is not None:
        return reason
    for job in jobs[1:]:  # the streams share one epoch loop and one optimiser step
        if replace(job.trainer.config, seed=trainer.config.seed) != trainer.config:
            return (
                f"fold {job.fold}: trainer settings other than the seed differ from those "
                f"of fold {jobs[0].fold}"
            )
    for job in jobs:
        reason = model_reason(job.trainer.model)
        if reason is None and job.has_val:
            reason = "a validation set (protocol.val_fraction > 0)"
        if reason is not None:
            return f"fold {job.fold}: {reason}"
    return None


class StackedSTSTNet(nn.Module):
    """The weights of ``F`` STSTNets stacked along a leading fold axis, run fold by fold.

    The three streams of each STSTNet (``3×3`` convolution, ReLU, batch norm, ``3×3`` max-pool
    with stride 3) act on the same input and work channel by channel after the convolution,
    so they run as one convolution to ``S = sum(stream_channels)`` channels (channels-last
    memory, the fast layout for it on a CPU), one ReLU, one batch norm over ``S`` channels and
    one max-pool; the channels come out in the order the streams are concatenated in.

    Attributes (``F`` folds, ``C`` input channels, ``S`` stream channels, ``K`` classes,
    ``D = S·P²`` features for a pooled side ``P``):
        conv_weight: ``(F, S, C, 3, 3)``; conv_bias, norm_weight, norm_bias: ``(F, S)``.
        fc_weight: ``(F, K, D)``; fc_bias: ``(F, K)``.
        running_mean, running_var: ``(F, S)`` buffers; batches: ``(F,)`` int64 buffer, the
            batch norms' ``num_batches_tracked``.
    """

    def __init__(self, models: Sequence[STSTNet]) -> None:
        super().__init__()
        if not models:
            raise ValueError("StackedSTSTNet needs at least one model")
        for model in models:
            reason = model_reason(model)
            if reason is not None:
                raise ValueError(reason)
        first = models[0]
        norm = first.streams[0].norm
        pool = first.streams[0].pool
        self.eps, self.momentum = float(norm.eps), float(norm.momentum)
        self.pool = (pool.kernel_size, pool.stride, pool.padding)
        self.pooled_size = first.pooled_size
        self.widths = [stream.conv.out_channels for stream in first.streams]

        def stacked(get) -> torch.Tensor:
            return torch.stack(
                [torch.cat([get(stream).detach() for stream in m.streams]) for m in models]
            )

        self.conv_weight = nn.Parameter(stacked(lambda s: s.conv.weight).clone())
        self.conv_bias = nn.Parameter(stacked(lambda s: s.conv.bias).clone())
        self.norm_weight = nn.Parameter(stacked(lambda s: s.norm.weight).clone())
        self.norm_bias = nn.Parameter(stacked(lambda s: s.norm.bias).clone())
        self.fc_weight = nn.Parameter(torch.stack([m.fc.weight.detach() for m in models]).clone())
        self.fc_bias = nn.Parameter(torch.stack([m.fc.bias.detach() for m in models]).clone())
        self.register_buffer("running_mean", stacked(lambda s: s.norm.running_mean).clone())
        self.register_buffer("running_var", stacked(lambda s: s.norm.running_var).clone())
        self.register_buffer(
            "batches", torch.stack([m.streams[0].norm.num_batches_tracked for m in models])
        )

    @property
    def folds(self) -> int:
        return self.conv_weight.shape[0]

    def forward_fold(self, fold: int, x: torch.Tensor) -> torch.Tensor:
        """Fold ``fold``'s model in training mode: ``(B, C, H, W)`` -> ``(B, K)`` logits.

        Updates the fold's batch-norm running statistics (and its batch count), as a training
        forward pass of its STSTNet does.
        """
        if x.ndim != 4:
            raise ValueError(f"STSTNet takes (B, C, H, W) apex flow, got shape {tuple(x.shape)}")
        h = F.conv2d(
            x.contiguous(memory_format=torch.channels_last),
            self.conv_weight[fold],
            self.conv_bias[fold],
            padding=1,
        )
        h = F.batch_norm(
            torch.relu(h),
            self.running_mean[fold],
            self.running_var[fold],
            self.norm_weight[fold],
            self.norm_bias[fold],
            training=True,
            momentum=self.momentum,
            eps=self.eps,
        )
        with torch.no_grad():
            self.batches[fold] += 1
        h = F.adaptive_avg_pool2d(F.max_pool2d(h, *self.pool), self.pooled_size)
        return F.linear(h.flatten(1), self.fc_weight[fold], self.fc_bias[fold])

    def mapping(self) -> list[tuple[str, str, slice]]:
        """``(STSTNet state key, stacked name, channel slice)`` for every tensor of a fold."""
        rows, start = [], 0
        for s, width in enumerate(self.widths):
            part = slice(start, start + width)
            for key, name in (
                ("conv.weight", "conv_weight"),
                ("conv.bias", "conv_bias"),
                ("norm.weight", "norm_weight"),
                ("norm.bias", "norm_bias"),
                ("norm.running_mean", "running_mean"),
                ("norm.running_var", "running_var"),
            ):
                rows.append((f"streams.{s}.{key}", name, part))
            start += width
        whole = slice(None)
        return [*rows, ("fc.weight", "fc_weight", whole), ("fc.bias", "fc_bias", whole)]

    @torch.no_grad()
    def write_to(self, fold: int, model: STSTNet) -> None:
        """Copy fold ``fold``'s weights and batch-norm state into ``model`` (an STSTNet of the
        same shape)."""
        state = model.state_dict()
        for key, name, part in self.mapping():
            state[key].copy_(getattr(self, name)[fold][part])
        for s in range(len(self.widths)):
            state[f"streams.{s}.norm.num_batches_tracked"].copy_(self.batches[fold])


class StackedOptimizer:
    """SGD (momentum, L2 decay), Adam (L2 decay) or AdamW (decoupled decay) over ``(F, ...)``
    stacked parameters, with per-fold step counts and a per-fold active mask.

    Elementwise as ``torch.optim``'s single-tensor implementations (the CPU default), so each
    fold's slice follows its own optimizer; a fold outside ``active`` keeps its parameters,
    moments and step count.

    Args:
        params: ``(F, ...)`` stacked parameters.
        config: the trainer settings (``optimizer``, ``momentum``, ``weight_decay``).
        betas, eps: Adam's (torch's defaults).
    """

    def __init__(
        self,
        params: Sequence[torch.Tensor],
        config: TrainerConfig,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.params = list(params)
        self.kind = config.optimizer
        self.momentum = float(config.momentum)
        self.weight_decay = float(config.weight_decay)
        self.betas, self.eps = betas, eps
        folds = self.params[0].shape[0]
        self.steps = np.zeros(folds, dtype=np.int64)
        self.state: list[dict[str, torch.Tensor]] = [{} for _ in self.params]

    @torch.no_grad()
    def step(self, active: np.ndarray, lr: np.ndarray) -> None:
        """One step of the folds in ``active``.

        Args:
            active: ``(F,)`` bool, the folds that had a batch in this step.
            lr: ``(F,)`` float64 learning rate of each fold.
        """
        self.steps[active] += 1
        device = self.params[0].device
        for param, state in zip(self.params, self.state):
            grad = param.grad if param.grad is not None else torch.zeros_like(param)
            shape = (-1,) + (1,) * (param.dim() - 1)
            mask = torch.from_numpy(active).to(device).view(shape)
            for name, value in self._update(param, grad, state, lr, shape).items():
                target = param if name == "param" else state[name]
                target.copy_(torch.where(mask, value, target))

    def _update(
        self,
        param: torch.Tensor,
        grad: torch.Tensor,
        state: dict[str, torch.Tensor],
        lr: np.ndarray,
        shape: tuple[int, ...],
    ) -> dict[str, torch.Tensor]:
        """The new parameter and state of every fold (the caller keeps the inactive ones)."""

        def per_fold(values: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(values).to(param.device, param.dtype).view(shape)

        wd = self.weight_decay
        if self.kind == "sgd":
            if wd != 0:
                grad = grad.add(param, alpha=wd)
            if self.momentum == 0:
                return {"param": param - per_fold(lr) * grad}
            if "momentum_buffer" not in state:  # the first step copies the gradient
                state["momentum_buffer"] = grad.clone()
                buf = grad.clone()
            else:
                buf = state["momentum_buffer"] * self.momentum + grad
            return {"param": param - per_fold(lr) * buf, "momentum_buffer": buf}
        beta1, beta2 = self.betas
        if not state:
            state["exp_avg"] = torch.zeros_like(param)
            state["exp_avg_sq"] = torch.zeros_like(param)
        if self.kind == "adamw":
            param = param * per_fold(1 - lr * wd)
        elif wd != 0:
            grad = grad.add(param, alpha=wd)
        exp_avg = state["exp_avg"].lerp(grad, 1 - beta1)
        exp_avg_sq = torch.addcmul(state["exp_avg_sq"] * beta2, grad, grad, value=1 - beta2)
        steps = np.maximum(self.steps, 1).astype(np.float64)
        step_size = lr / (1 - beta1**steps)
        correction = np.sqrt(1 - beta2**steps)
        denom = exp_avg_sq.sqrt() / per_fold(correction) + self.eps
        new = param + per_fold(-step_size) * exp_avg / denom  # addcdiv's order
        return {"param": new, "exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}

    def fold_state(self, fold: int) -> list[dict[str, torch.Tensor]]:
        """Fold ``fold``'s per-parameter state in ``torch.optim``'s form (``step``,
        ``exp_avg``, ``exp_avg_sq`` or ``momentum_buffer``), one dict per stacked parameter."""
        out = []
        for state in self.state:
            entry = {name: value[fold].clone() for name, value in state.items()}
            if self.kind != "sgd" and entry:
                entry["step"] = torch.tensor(float(self.steps[fold]))
            out.append(entry)
        return out


def _clip(params: Sequence[torch.Tensor], max_norm: float) -> None:
    """Scale each fold's gradients to a global norm of at most ``max_norm``, as
    ``nn.utils.clip_grad_norm_`` does for one model."""
    grads = [p.grad for p in params if p.grad is not None]
    norms = torch.stack([torch.linalg.vector_norm(g.flatten(1), dim=1) for g in grads])  # (P, F)
    total = torch.linalg.vector_norm(norms, dim=0)
    coef = (max_norm / (total + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(coef.view((-1,) + (1,) * (g.dim() - 1)))


@dataclass
class _EpochPlan:
    """One fold's epoch: its sample order and flips, cut into batches as the trainer cuts them
    (a last batch of one sample is dropped for BatchNorm, as the trainer drops it)."""

    held: InMemoryData
    indices: torch.Tensor
    flips: torch.Tensor | None
    size: int

    @property
    def steps(self) -> int:
        n = len(self.indices)
        return math.ceil(n / self.size) - (1 if n > 1 and n % self.size == 1 else 0)

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)`` of batch ``step``: ``(B, ...)`` inputs and ``(B,)`` labels."""
        chunk = self.indices[step * self.size : (step + 1) * self.size]
        return self.held.batch(chunk, self.flips)


def hold(job: FoldJob, budget: int) -> str | None:
    """Hold the fold's training data as tensors on its trainer's device (``job.held``).

    Returns:
        ``None``, or why the data cannot be held (one line): no in-memory form (e.g. key-frame
        clips) or more than ``budget`` bytes.
    """
    if job.held is None:
        held = tensorize(job.train_set, budget)
        if isinstance(held, str):
            return f"fold {job.fold}: the training data cannot be held in memory: {held}"
        job.held = held.to(job.trainer.device)
    return None


def share(job: FoldJob, others: Sequence[FoldJob]) -> bool:
    """Hold ``job``'s training data by sharing the tensors of a held job in ``others`` with
    the same items (:func:`recognizer.data.in_memory.reseeded`: e.g. another seed of the same
    fold); returns whether it did."""
    if job.held is not None:
        return False
    for other in others:
        if other.held is not None and other.fold == job.fold:
            held = reseeded(other.held, other.train_set, job.train_set)
            if held is not None:
                job.held = held
                return True
    return False


def held_bytes(jobs: Sequence[FoldJob]) -> int:
    """Bytes the jobs' held data take, counting tensors shared between jobs once."""
    distinct = {job.held.inputs.data_ptr(): job.held_bytes for job in jobs if job.held is not None}
    return sum(distinct.values())


def train_folds_batched(jobs: Sequence[FoldJob]) -> list[TrainState]:
    """Train every job's model in lockstep, as :meth:`Trainer.fit` would one by one.

    Afterwards each ``job.trainer`` holds what its own ``fit`` would have left: the trained
    weights in ``model``, the optimizer and scheduler states, and a :class:`TrainState` whose
    history has, per epoch, ``epoch``, ``lr`` and the mean training ``loss``. Nothing is written
    to disk (see :meth:`Trainer.save_last`).

    Args:
        jobs: ``F`` folds with the same trainer settings (from one protocol run).

    Returns:
        ``(F,)`` the final training states.

    Raises:
        ValueError: :func:`unsupported_reason` names a setting or fold that batched training
            cannot honour, or a fold's data cannot be held in memory.
        FloatingPointError: a fold's loss is not finite (the message names the fold).
    """
    reason = unsupported_reason(jobs)
    if reason is not None:
        raise ValueError(f"batched folds cannot train these folds: {reason}")
    first = jobs[0].trainer
    cfg, device = first.config, first.device
    budget = int(cfg.memory_budget_mb * 2**20)
    for job in jobs:
        reason = hold(job, budget)
        if reason is not None:
            raise ValueError(f"batched folds cannot train these folds: {reason}")
    helds = [job.held for job in jobs]
    orders = [  # each stream's own seed: the order its fold-by-fold run would draw
        create_sampler(job.sampler, len(held), job.labels, seed=job.trainer.config.seed)
        for job, held in zip(jobs, helds)
    ]
    model = StackedSTSTNet([job.trainer.model for job in jobs]).to(device)
    params = list(model.parameters())
    optimizer = StackedOptimizer(params, cfg)
    states = [TrainState() for _ in jobs]
    if device.type == "cpu":
        keep_freed_memory()
    with intra_op_threads(first.threads.threads):
        for epoch in range(cfg.epochs):
            lr = np.array([job.trainer.optimizer.param_groups[0]["lr"] for job in jobs])
            plans = []
            for held, order in zip(helds, orders):
                order.set_epoch(epoch)
                indices = torch.tensor(list(order), dtype=torch.int64, device=device)
                flips = held.flips(epoch) if held.mirrored is not None else None
                plans.append(_EpochPlan(held, indices, flips, cfg.batch_size))
            steps = np.array([plan.steps for plan in plans])
            totals, counts = np.zeros(len(jobs)), np.zeros(len(jobs), dtype=np.int64)
            for step in range(int(steps.max())):
                active = step < steps
                for p in params:
                    p.grad = None
                for f in np.flatnonzero(active):
                    x, y = plans[f].batch(step)
                    loss = jobs[f].trainer.criterion(model.forward_fold(int(f), x), y)
                    if not torch.isfinite(loss):
                        raise FloatingPointError(
                            f"fold {jobs[f].fold}, epoch {epoch}: loss is {loss.item()}"
                        )
                    # the folds share no weight, so each backward pass fills only its fold's
                    # slice of the gradients; one pass per fold keeps one graph alive at a time
                    loss.backward()
                    totals[f] += float(loss.detach()) * len(y)
                    counts[f] += len(y)
                if cfg.grad_clip is not None:
                    _clip(params, cfg.grad_clip)
                optimizer.step(active, lr)
            for f, job in enumerate(jobs):
                record = {"epoch": float(epoch), "lr": float(lr[f])}
                record["loss"] = float(totals[f] / max(int(counts[f]), 1))
                with warnings.catch_warnings():  # its optimizer is the stacked one
                    warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step")
                    job.trainer.scheduler.step()
                states[f].history.append(record)
                states[f].epoch += 1
    for f, job in enumerate(jobs):
        _hand_back(job.trainer, model, optimizer, f, states[f])
    return states


def _hand_back(
    trainer: Trainer,
    model: StackedSTSTNet,
    optimizer: StackedOptimizer,
    fold: int,
    state: TrainState,
) -> None:
    """Leave fold ``fold``'s weights, optimizer state and progress in ``trainer``."""
    model.write_to(fold, trainer.model)
    stacked = [name for name, _ in model.named_parameters()]
    per_param = dict(zip(stacked, optimizer.fold_state(fold)))
    own = dict(trainer.model.named_parameters())
    for key, name, part in model.mapping():
        if key in own and name in per_param:  # parameters, not the batch-norm buffers
            trainer.optimizer.state[own[key]] = {
                item: value if item == "step" else value[part].clone()
                for item, value in per_param[name].items()
            }
    trainer.state = state
