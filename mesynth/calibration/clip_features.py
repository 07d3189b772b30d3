"""What the adversarial search's domain classifier sees of a *key-frame clip* (the input of
3D-CNNs), for real records and rendered trial clips alike.

A clip is reduced to its ``T`` key frames picked by the recognizer's rule
(:func:`mesynth.keyframes.sample_key_frames`, deterministic: no jitter), converted to grey,
resized to ``size x size`` (area interpolation) and scaled to ``[0, 1]``; the image is each
later key frame minus the first, ``(size, size, T - 1)`` in ``[-1, 1]`` (as
:class:`mesynth.evaluation.features.ClipFeature`). The search pools it and adds its texture
statistics (:func:`mesynth.calibration.adversarial.search_features`) exactly as for apex flow.

Convention:
    Frame numbers are a record's (release) numbers; frames ``(T, H, W, 3)`` uint8 RGB.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from mesynth.keyframes import sample_key_frames
from mesynth.records import FrameReader, apex_of, read_record_frames, record_frame_numbers

#: the representations :func:`mesynth.calibration.adversarial.adversarial_calibration` searches.
REPRESENTATIONS = ("apex_flow", "clip")


def frame_differences(frames: np.ndarray, size: int) -> np.ndarray:
    """``(T, H, W, 3)`` uint8 frames -> ``(size, size, T - 1)`` float32: grey frames in
    ``[0, 1]`` resized to ``size``, each later frame minus the first.

    Raises:
        ValueError: fewer than two frames.
    """
    if len(frames) < 2:
        raise ValueError(f"frame differences need >= 2 frames, got {len(frames)}")
    grey = [
        cv2.resize(
            cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY),
            (size, size),
            interpolation=cv2.INTER_AREA,
        ).astype(np.float32)
        / 255.0
        for f in frames
    ]
    return np.stack([g - grey[0] for g in grey[1:]], axis=-1)


def key_frame_positions(
    numbers: Sequence[int], onset: int, apex: int, offset: int, num_frames: int, sampling: str
) -> list[int]:
    """Positions in ``numbers`` (the frame numbers a clip holds, ascending) of its
    ``num_frames`` key frames under ``sampling`` (repeats when the clip holds fewer)."""
    picked = sample_key_frames(sampling, numbers, onset, apex, offset, num_frames)
    position = {int(n): i for i, n in enumerate(numbers)}
    return [position[n] for n in picked.frame_numbers]


def key_frame_clip_image(
    record: object,
    num_frames: int,
    size: int,
    sampling: str = "uniform",
    read_frames: FrameReader = read_record_frames,
) -> np.ndarray:
    """The key-frame difference image ``(size, size, num_frames - 1)`` of a clip record.

    Raises:
        ValueError: ``num_frames < 2``, or no frame between the record's onset and offset.
    """
    if num_frames < 2:
        raise ValueError(f"a key-frame clip needs num_frames >= 2, got {num_frames}")
    numbers = record_frame_numbers(record)
    picked = sample_key_frames(
        sampling, numbers, int(record.onset), apex_of(record), int(record.offset), num_frames
    )
    return frame_differences(read_frames(record, list(picked.frame_numbers)), size)
