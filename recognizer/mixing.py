"""Training-side options for mixing a real and a synthetic domain in one training set.

:class:`DomainMixing` holds the two options (the remedy keys ``remedy.domain_bn`` and
``remedy.mixup``/``remedy.mixup_alpha``); :class:`recognizer.training.trainer.Trainer` applies
them when ``Trainer.fit`` gets each training item's domain (``domains``: ``True`` for a
synthetic item).

- **Domain-specific BatchNorm** (:func:`domain_batchnorm`): while training, every
  ``nn.BatchNorm1d/2d/3d`` of the model normalises a batch's real rows and its synthetic rows
  separately, each with the batch statistics of its own sub-batch. Only the real sub-batches
  update the running statistics, so evaluation (which uses the running statistics) sees real
  statistics only. Synthetic running statistics are discarded, not kept: the test data are
  real, and the model's ``state_dict`` stays exactly that of the plain model (a plain model
  loads it). A sub-batch with one value per channel (one row into a ``BatchNorm1d`` on
  ``(B, C)``) cannot give batch statistics and is normalised with the running statistics
  instead (no update).
- **Same-class mixup** (:func:`draw_mixup`, :func:`apply_mixup`): each synthetic item of a batch
  is, with probability ``p``, replaced by ``λ·x_real + (1−λ)·x_syn`` with a real item of the
  same class drawn uniformly from the batch, ``λ ~ Beta(α, α)``; its label is unchanged (both
  have it). A synthetic item whose class has no real item in the batch stays as it is. Real
  items are never changed. The draws (a uniform per item for the probability, a uniform for the
  partner, a λ) are made in one step from a generator seeded by ``(seed, 4, epoch)`` and
  applied in another, so a batch is the same for the same ``(seed, epoch)`` whatever the
  device, and a resumed fit repeats them.

Convention: a batch is ``x: (B, ...)`` (``(B, C, T, H, W)`` clips or ``(B, C, H, W)`` apex-flow
images), ``y: (B,)`` class indices and ``synthetic: (B,)`` bool.
"""

from __future__ import annotations

import contextlib
import math
import types
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


class MixingError(ValueError):
    """A bad mixing setting; the message names the ``remedy`` key."""


@dataclass(frozen=True)
class DomainMixing:
    """How training mixes real and synthetic items (default: not at all).

    Attributes:
        domain_bn: normalise real and synthetic rows of a batch separately while training
            (running statistics from real rows only; :func:`domain_batchnorm`).
        mixup: probability in ``[0, 1]`` that a synthetic item is mixed with a real item of its
            class in the batch (``0``: never).
        mixup_alpha: ``α > 0`` of ``λ ~ Beta(α, α)``, the real item's share.

    Raises:
        MixingError: a value of the wrong type or out of range (names ``remedy.<key>``).
    """

    domain_bn: bool = False
    mixup: float = 0.0
    mixup_alpha: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.domain_bn, bool):
            raise MixingError(f"remedy.domain_bn must be true or false, got {self.domain_bn!r}")
        for key, value in (("mixup", self.mixup), ("mixup_alpha", self.mixup_alpha)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise MixingError(f"remedy.{key} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise MixingError(f"remedy.{key} must be finite, got {value!r}")
        if not 0.0 <= self.mixup <= 1.0:
            raise MixingError(f"remedy.mixup must be a probability in [0, 1], got {self.mixup!r}")
        if not self.mixup_alpha > 0:
            raise MixingError(f"remedy.mixup_alpha must be > 0, got {self.mixup_alpha!r}")
        object.__setattr__(self, "mixup", float(self.mixup))
        object.__setattr__(self, "mixup_alpha", float(self.mixup_alpha))

    @property
    def enabled(self) -> bool:
        """Whether training differs from plain training (domain BN on or ``mixup > 0``)."""
        return self.domain_bn or self.mixup > 0

    def unsupported_reason(self) -> str | None:
        """Why batched folds (:mod:`recognizer.training.batched`) cannot train with these options
        (``None``: they can, the options are off)."""
        names = [k for k, on in (("domain_bn", self.domain_bn), ("mixup", self.mixup > 0)) if on]
        if not names:
            return None
        return " and ".join(f"remedy.{k}" for k in names) + " (trained fold by fold)"

    def settings(self) -> dict[str, object]:
        """The options as plain values (for ``results.json``); empty when off, so runs
        without them keep their settings."""
        if not self.enabled:
            return {}
        out: dict[str, object] = {"domain_bn": self.domain_bn, "mixup": self.mixup}
        if self.mixup > 0:
            out["mixup_alpha"] = self.mixup_alpha
        return out


# --------------------------------------------------------------------------- domain BatchNorm


class DomainRouter:
    """The synthetic mask of the batch being trained, read by the patched BatchNorm layers.

    Attributes:
        synthetic: ``(B,)`` bool of the current batch (``None``: plain BatchNorm).
    """

    def __init__(self) -> None:
        self.synthetic: torch.Tensor | None = None

    @contextlib.contextmanager
    def route(self, synthetic: torch.Tensor | None) -> Iterator[None]:
        """Normalise per domain inside the block (``synthetic``: ``(B,)`` bool)."""
        self.synthetic = synthetic
        try:
            yield
        finally:
            self.synthetic = None


def _one_value_per_channel(x: torch.Tensor) -> bool:
    return x.numel() // max(x.shape[1], 1) <= 1


def _running_norm(module: nn.modules.batchnorm._BatchNorm, x: torch.Tensor) -> torch.Tensor:
    """``x`` normalised with ``module``'s running statistics (no update)."""
    if module.running_mean is None:  # no running statistics: nothing better than identity
        return x
    return F.batch_norm(
        x, module.running_mean, module.running_var, module.weight, module.bias,
        False, 0.0, module.eps,
    )  # fmt: skip


def _domain_forward(
    module: nn.modules.batchnorm._BatchNorm, router: DomainRouter, x: torch.Tensor
) -> torch.Tensor:
    """``module``'s forward with the real and synthetic rows of ``x`` (``(B, C, ...)``)
    normalised separately while training (see the module docstring)."""
    plain = type(module).forward
    mask = router.synthetic
    if not module.training or mask is None or not bool(mask.any()):
        return plain(module, x)
    mask = mask.to(x.device)
    real, synthetic = x[~mask], x[mask]
    out = torch.empty_like(x)
    if len(real):
        out[~mask] = (
            _running_norm(module, real) if _one_value_per_channel(real) else plain(module, real)
        )
    if _one_value_per_channel(synthetic):
        out[mask] = _running_norm(module, synthetic)
    else:  # batch statistics of the synthetic rows; the running statistics stay real
        out[mask] = F.batch_norm(
            synthetic, None, None, module.weight, module.bias, True, 0.0, module.eps
        )
    return out


@contextlib.contextmanager
def domain_batchnorm(model: nn.Module) -> Iterator[DomainRouter]:
    """Route every ``nn.BatchNorm1d/2d/3d`` of ``model`` per domain inside the block.

    Yields a :class:`DomainRouter`; a forward pass inside ``router.route(synthetic)`` normalises
    the rows where ``synthetic`` (``(B,)`` bool) is true apart from the others (training mode
    only; in eval mode, or outside ``route``, the layers are plain). The layers' parameters
    and buffers are untouched, so ``model.state_dict()`` is that of the plain model; the
    layers are restored on exit.
    """
    router = DomainRouter()
    patched = [m for m in model.modules() if isinstance(m, _NORMS)]
    for module in patched:
        # the instance attribute shadows the class's forward for this module only
        module.forward = types.MethodType(  # type: ignore[method-assign]
            lambda self, x: _domain_forward(self, router, x), module
        )
    try:
        yield router
    finally:
        for module in patched:
            del module.forward


# --------------------------------------------------------------------------- same-class mixup


@dataclass(frozen=True)
class MixupDraw:
    """One batch's mixup parameters (:func:`draw_mixup`).

    Attributes:
        partner: ``(B,)`` int64, the batch row each row is mixed with (``-1``: unchanged).
        lam: ``(B,)`` float32, the partner's (real item's) share ``λ`` (``0`` where unchanged).
    """

    partner: torch.Tensor
    lam: torch.Tensor

    @property
    def mixed(self) -> torch.Tensor:
        """``(B,)`` bool: rows that are mixed."""
        return self.partner >= 0


def draw_mixup(
    labels: torch.Tensor,
    synthetic: torch.Tensor,
    p: float,
    alpha: float,
    rng: np.random.Generator,
) -> MixupDraw:
    """Draw which synthetic rows of a batch are mixed, with which real row of their class, and
    how much.

    Three ``(B,)`` draws are always made from ``rng`` (a uniform against ``p``, a uniform for
    the partner, ``λ ~ Beta(alpha, alpha)``), whatever the batch holds, so the stream stays
    aligned across batches.

    Args:
        labels: ``(B,)`` class indices.
        synthetic: ``(B,)`` bool, true for synthetic rows.
        p: probability that a synthetic row with a real row of its class is mixed.
        alpha: Beta parameter (> 0).
        rng: the trainer's mixup generator.

    Returns:
        A :class:`MixupDraw` on CPU.
    """
    y = labels.detach().cpu().numpy().astype(np.int64)
    syn = synthetic.detach().cpu().numpy().astype(bool)
    size = len(y)
    coin, pick, lam = rng.random(size), rng.random(size), rng.beta(alpha, alpha, size)
    partner = np.full(size, -1, dtype=np.int64)
    for i in np.flatnonzero(syn & (coin < p)):
        candidates = np.flatnonzero(~syn & (y == y[i]))
        if len(candidates):
            partner[i] = candidates[min(int(pick[i] * len(candidates)), len(candidates) - 1)]
    lam = np.where(partner >= 0, lam, 0.0).astype(np.float32)
    return MixupDraw(torch.from_numpy(partner), torch.from_numpy(lam))


def apply_mixup(x: torch.Tensor, draw: MixupDraw) -> torch.Tensor:
    """``x`` (``(B, ...)``) with each mixed row ``i`` replaced by
    ``λ_i·x[partner_i] + (1−λ_i)·x[i]``; other rows are returned unchanged (a new tensor when
    any row is mixed, ``x`` itself otherwise)."""
    rows = torch.nonzero(draw.mixed).flatten()
    if len(rows) == 0:
        return x
    rows = rows.to(x.device)
    partners = draw.partner.to(x.device)[rows]
    lam = draw.lam.to(device=x.device, dtype=x.dtype)[rows].view(-1, *([1] * (x.ndim - 1)))
    out = x.clone()
    out[rows] = lam * x[partners] + (1 - lam) * x[rows]
    return out
