"""Reading the frames of a sample: from the release's files, an array, or the preprocessing cache.

A frame source answers two questions for a :class:`~recognizer.data.samples.Sample`: which frame
numbers it can give (:meth:`frame_numbers`) and the pixels of some of them (:meth:`read`,
``(T, H, W, C)`` uint8 RGB). Representations read through a source, so the same code runs on
raw frames and on the cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from mesynth.face.image_io import decode_rgb
from mesynth.records import record_frame_numbers
from recognizer.data.samples import Sample
from recognizer.datasets.errors import FrameReadError


class FrameSource(Protocol):
    def frame_numbers(self, sample: Sample) -> tuple[int, ...]:
        """Frame numbers this source holds for ``sample``, ascending."""
        ...

    def read(self, sample: Sample, numbers: Sequence[int]) -> np.ndarray:
        """``(T, H, W, C)`` uint8 RGB frames of the given numbers."""
        ...


def clip_frame_numbers(sample: Sample) -> tuple[int, ...]:
    """The frame numbers a sample holds: its frame files', else those of its array.

    An array clip keeps its numbers in ``extra["frame_numbers"]`` (``"0;3;7"``); a single image
    is frame ``sample.onset``. (The same rule as :func:`mesynth.records.record_frame_numbers`.)
    """
    return record_frame_numbers(sample)


def read_image(path: str | Path) -> np.ndarray:
    """An image file as ``(H, W, 3)`` uint8 RGB (grayscale files are expanded).

    Raises:
        FrameReadError: missing, corrupt or not an image (the message names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FrameReadError(f"frame file not found: {path}")
    image = decode_rgb(path)
    if image is None:
        raise FrameReadError(f"cannot decode image {path} (corrupt or not an image)")
    return image


def _as_clip(array: np.ndarray, path: Path) -> np.ndarray:
    if array.dtype != np.uint8:
        raise FrameReadError(f"{path}: arrays must be uint8, got {array.dtype}")
    if array.ndim == 2:
        array = array[None, :, :, None]
    elif array.ndim == 3:
        array = array[None]
    if array.ndim != 4:
        raise FrameReadError(
            f"{path}: expected (T, H, W, C), (H, W, C) or (H, W); got {array.shape}"
        )
    if array.shape[3] == 1:
        array = np.repeat(array, 3, axis=3)
    return array


class RawFrames:
    """Frames straight from the sample's files, ``.npy`` array or single image."""

    def frame_numbers(self, sample: Sample) -> tuple[int, ...]:
        return clip_frame_numbers(sample)

    def read(self, sample: Sample, numbers: Sequence[int]) -> np.ndarray:
        if sample.frames:
            index = dict(zip(sample.frame_numbers, sample.frames))
            missing = [n for n in numbers if n not in index]
            if missing:
                raise FrameReadError(f"{sample.uid}: no frame files numbered {missing}")
            return np.stack([read_image(index[n]) for n in numbers])
        path = sample.array_path
        if path is None:
            raise FrameReadError(f"{sample.uid}: the sample has neither frames nor an array")
        if Path(path).suffix.lower() == ".npy":
            try:
                array = np.load(path, mmap_mode="r")
            except (OSError, ValueError) as err:
                raise FrameReadError(f"cannot read array {path} ({err})") from err
            array = _as_clip(array, Path(path))
        else:
            array = read_image(path)[None]
        position = {n: i for i, n in enumerate(clip_frame_numbers(sample))}
        missing = [n for n in numbers if n not in position]
        if missing or len(position) != array.shape[0]:
            raise FrameReadError(
                f"{path}: holds {array.shape[0]} frames numbered {sorted(position)[:5]}...; "
                f"asked for {list(numbers)[:5]}"
            )
        return np.ascontiguousarray(array[[position[n] for n in numbers]])
