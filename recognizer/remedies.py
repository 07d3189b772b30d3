"""Imbalance remedies selectable by name: what loss and which training sampler a run uses.

``none`` (cross-entropy, shuffled), ``resample`` (class-uniform sampling of indices), ``cb``
(class-balanced softmax loss, Cui et al.), ``focal`` and ``cb_focal``. Further remedies (the
synthetic ones, ``synth_fill`` and ``synth_pretrain``) register with :func:`register_remedy`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

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


def create_remedy(name: str, **kwargs: float) -> Remedy:
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
