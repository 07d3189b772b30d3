"""Classification losses for imbalanced data: cross-entropy, class-balanced, focal.

References: Y. Cui et al., "Class-Balanced Loss Based on Effective Number of Samples", CVPR
2019; T.-Y. Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017.

Convention (reduction): the weighted losses average ``weight[y_i] · loss_i`` over the batch, as
Cui et al.'s reference softmax implementation does. This is NOT ``F.cross_entropy(weight=w)``,
which divides by the summed weights of the batch instead of the batch size.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def class_balanced_weights(counts: Sequence[int] | np.ndarray, beta: float) -> torch.Tensor:
    """Per-class weights from the effective number of samples.

    ``E_n = (1 - beta**n) / (1 - beta)``; weights are ``1 / E_n`` normalised to sum to the
    number of classes. Counts ``[803, 1801, 634]`` with ``beta=0.999`` give
    ``[1.057480, 0.699313, 1.243206]``.

    Args:
        counts: ``(K,)`` training samples per class, each > 0.
        beta: in ``[0, 1)``; 0 gives equal weights, towards 1 inverse-frequency weights.

    Returns:
        ``(K,)`` float32 weights.

    Raises:
        ValueError: ``beta`` outside ``[0, 1)``, or a count that is not positive (a class absent
            from the training data has no defined weight; drop it or fill it first).
    """
    counts_arr = np.asarray(counts, dtype=np.float64)
    if counts_arr.ndim != 1 or counts_arr.size == 0:
        raise ValueError(f"counts must be a non-empty 1D sequence, got {counts!r}")
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must be in [0, 1), got {beta!r}")
    if (counts_arr <= 0).any():
        missing = [int(i) for i in np.flatnonzero(counts_arr <= 0)]
        raise ValueError(f"class-balanced weights need every count > 0; classes {missing} have 0")
    effective = (1.0 - np.power(beta, counts_arr)) / (1.0 - beta)
    weights = 1.0 / effective
    weights = weights / weights.sum() * counts_arr.size
    return torch.as_tensor(weights, dtype=torch.float32)


def weighted_focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    gamma: float = 0.0,
    sample_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean over the batch of ``sample_weight · weight[y] · (1 - p_y)**gamma · CE``.

    Args:
        logits: ``(B, K)``.
        target: ``(B,)`` int64 class indices.
        weight: ``(K,)`` per-class weights or ``None`` (all 1).
        gamma: focal exponent; 0 gives (weighted) cross-entropy.
        sample_weight: ``(B,)`` per-sample weights (e.g. of synthetic samples) or ``None``
            (all 1); the mean is still over the batch size, as for class weights.

    Returns:
        Scalar loss.
    """
    log_p = F.log_softmax(logits.float(), dim=1)
    log_pt = log_p.gather(1, target.unsqueeze(1)).squeeze(1)
    loss = -log_pt
    if gamma != 0.0:
        loss = loss * (1.0 - log_pt.exp()).clamp(min=0.0).pow(gamma)
    if weight is not None:
        loss = loss * weight.to(loss.device, loss.dtype)[target]
    if sample_weight is not None:
        loss = loss * sample_weight.to(loss.device, loss.dtype)
    return loss.mean()


class FocalLoss(nn.Module):
    """Weighted focal loss as a module (``weight`` is a buffer); see :func:`weighted_focal_loss`.

    ``FocalLoss()`` is plain cross-entropy, ``FocalLoss(weight=w)`` the class-balanced softmax
    loss, ``FocalLoss(gamma=2)`` the focal loss, both together the class-balanced focal loss.
    """

    def __init__(self, weight: torch.Tensor | None = None, gamma: float = 0.0) -> None:
        super().__init__()
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {gamma!r}")
        self.gamma = float(gamma)
        self.register_buffer("weight", None if weight is None else torch.as_tensor(weight))

    def forward(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        sample_weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return weighted_focal_loss(logits, target, self.weight, self.gamma, sample_weight)

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, weighted={self.weight is not None}"
