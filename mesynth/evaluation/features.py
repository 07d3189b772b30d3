"""Recognizer-style views of a clip record for comparing synthetic and real clips.

A *feature* maps a clip record (:mod:`mesynth.records`) to an ``(H, W, C)`` float32 image in
``[0, 1]`` (apex flow) or ``[-1, 1]`` (frame differences), plus an *energy map* ``(H, W)``
saying how much the face moves at each pixel.

Convention:
    Images are on the aligned crop resized to ``size x size``; the canonical face
    (:func:`mesynth.face.canonical.canonical_landmarks`) gives the regions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import cv2
import numpy as np

from mesynth.flow import apex_flow
from mesynth.records import (
    FrameReader,
    apex_of,
    read_record_frames,
    record_frame_numbers,
)


@dataclass(frozen=True)
class ApexFlowFeature:
    """The apex-flow image ``(size, size, 3)`` ``(u, v, strain)`` scaled to ``[0, 1]``.

    A record that *is* one image (a manifest row pointing at a precomputed apex-flow PNG/NPY:
    a single frame) is read as that image, resized to ``size`` when needed.
    """

    size: int = 28
    method: str = "auto"
    read_frames: FrameReader = read_record_frames

    channels: ClassVar[tuple[str, ...]] = ("u", "v", "strain")

    def __call__(self, record: object) -> np.ndarray:
        numbers = record_frame_numbers(record)
        if len(numbers) == 1:
            image = self.read_frames(record, numbers)[0]
            if image.shape[:2] != (self.size, self.size):
                image = cv2.resize(image, (self.size, self.size), interpolation=cv2.INTER_AREA)
        else:
            onset, apex = int(record.onset), apex_of(record)
            frames = self.read_frames(record, [onset, apex])
            image = apex_flow(frames[0], frames[1], self.size, self.method)
        return image.astype(np.float32) / 255.0

    @staticmethod
    def energy(image: np.ndarray) -> np.ndarray:
        """Flow magnitude about the image's median flow: ``|(u, v) - median(u, v)|``."""
        uv = image[:, :, :2] - np.median(image[:, :, :2].reshape(-1, 2), axis=0)
        return np.sqrt((uv**2).sum(-1))


@dataclass(frozen=True)
class ClipFeature:
    """``num_frames`` frames from onset to offset (those the record holds), grayscale, resized;
    channels are each later frame minus the onset frame, ``(size, size, num_frames - 1)``."""

    num_frames: int = 4
    size: int = 28
    read_frames: FrameReader = read_record_frames

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(f"d{i}" for i in range(1, self.num_frames))

    def __call__(self, record: object) -> np.ndarray:
        numbers = [n for n in record_frame_numbers(record) if record.onset <= n <= record.offset]
        if len(numbers) < 2:
            raise ValueError(f"{record}: a clip feature needs two frames between onset and offset")
        picks = np.round(np.linspace(0, len(numbers) - 1, self.num_frames)).astype(int)
        frames = self.read_frames(record, [numbers[i] for i in picks])
        gray = [
            cv2.resize(
                cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY),
                (self.size, self.size),
                interpolation=cv2.INTER_AREA,
            ).astype(np.float32)
            / 255.0
            for f in frames
        ]
        return np.stack([g - gray[0] for g in gray[1:]], axis=-1)

    @staticmethod
    def energy(image: np.ndarray) -> np.ndarray:
        """Mean absolute frame difference."""
        return np.abs(image).mean(-1)


def create_feature(name: str, **options: object) -> ApexFlowFeature | ClipFeature:
    """``"apex_flow"`` -> :class:`ApexFlowFeature`, ``"clip"`` -> :class:`ClipFeature`."""
    features = {"apex_flow": ApexFlowFeature, "clip": ClipFeature}
    if name not in features:
        raise ValueError(f"unknown representation {name!r}; known: {', '.join(features)}")
    return features[name](**options)
