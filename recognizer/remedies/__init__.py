"""Imbalance remedies selectable by name: a loss, a sampler and what each fold trains on.

``none``, ``resample``, ``cb``, ``focal`` and ``cb_focal`` (:mod:`.imbalance`) change the loss or
the sampler; ``synth_fill``, ``synth_pretrain`` and ``synth_only`` (:mod:`.synthetic`) change the
fold's training data with leak-free synthetic clips. Importing this package registers them all;
:func:`register_remedy` adds more.
"""

from recognizer.remedies import imbalance, synthetic
from recognizer.remedies.base import (
    FoldContext,
    FoldData,
    FoldDataSource,
    LossChoice,
    RealData,
    Remedy,
)
from recognizer.remedies.registry import (
    RemedyBuilder,
    UnknownRemedyError,
    create_remedy,
    list_remedies,
    register_remedy,
)

__all__ = [
    "FoldContext",
    "FoldData",
    "FoldDataSource",
    "LossChoice",
    "RealData",
    "Remedy",
    "RemedyBuilder",
    "UnknownRemedyError",
    "create_remedy",
    "imbalance",
    "list_remedies",
    "register_remedy",
    "synthetic",
]
