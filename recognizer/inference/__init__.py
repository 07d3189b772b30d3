"""Inference: a final model applied to someone's own clip (``mer predict``).

:mod:`.clip_input` reads the clip (a video file or a folder of frames, times in frames or
seconds); :mod:`.prediction` aligns it, spots the apex, builds the model's input and predicts.
"""

from recognizer.inference.clip_input import (
    ClipFrames,
    ClipTooShortError,
    PredictInputError,
    read_frame_folder,
    read_video,
)
from recognizer.inference.prediction import ClipPrediction, predict, predict_clip

__all__ = [
    "ClipFrames",
    "ClipPrediction",
    "ClipTooShortError",
    "PredictInputError",
    "predict",
    "predict_clip",
    "read_frame_folder",
    "read_video",
]
