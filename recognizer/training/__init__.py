"""Training: the trainer, batched folds, the inner score of fold-internal searches, and the
final model a run leaves behind.

:mod:`.trainer` trains one model (AMP, channels-last, exact resume, DDP; memory or loader data
path); :mod:`.batched` trains a protocol's STSTNet folds together over stacked weights;
:mod:`.inner_score` scores a remedy's inner-fold search with the run's own model;
:mod:`.final_model` writes and reads ``final.pt``. How training uses the machine
(:mod:`recognizer.runtime`) and the real/synthetic mixing options (:mod:`recognizer.mixing`)
stay outside this package: the remedies use them too, and the trainer uses the remedies.
"""

from recognizer.training.batched import FoldJob, StackedSTSTNet, train_folds_batched
from recognizer.training.final_model import (
    FinalModel,
    FinalModelError,
    load_final_model,
    save_final_model,
)
from recognizer.training.inner_score import InnerScorer
from recognizer.training.trainer import (
    CheckpointMismatchError,
    CheckpointReadError,
    Predictions,
    Trainer,
    TrainerConfig,
    TrainState,
    read_checkpoint,
)

__all__ = [
    "CheckpointMismatchError",
    "CheckpointReadError",
    "FinalModel",
    "FinalModelError",
    "FoldJob",
    "InnerScorer",
    "Predictions",
    "StackedSTSTNet",
    "TrainState",
    "Trainer",
    "TrainerConfig",
    "load_final_model",
    "read_checkpoint",
    "save_final_model",
    "train_folds_batched",
]
