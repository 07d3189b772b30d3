"""Reading the frames of a sample: from the release's files, an array, or the preprocessing cache.

A frame source answers two questions for a :class:`~recognizer.data.samples.Sample`: which frame
numbers it can give (:meth:`frame_numbers`) and the pixels of some of them (:meth:`read`,
``(T, H, W, C)`` uint8 RGB). Representations read through a source, so the same code runs on
raw frames and on the cache. Raw frames are read by :func:`mesynth.records.read_record_frames`,
the one reader of clip records (a ``Sample`` is one).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from mesynth.records import RecordReadError, read_record_frames, record_frame_numbers
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
    is frame ``sample.onset``. (The rule of :func:`mesynth.records.record_frame_numbers`.)
    """
    return record_frame_numbers(sample)


class RawFrames:
    """Frames straight from the sample's files, ``.npy`` array or single image."""

    def frame_numbers(self, sample: Sample) -> tuple[int, ...]:
        return clip_frame_numbers(sample)

    def read(self, sample: Sample, numbers: Sequence[int]) -> np.ndarray:
        """``(T, H, W, 3)`` uint8 RGB frames numbered ``numbers``.

        Raises:
            FrameReadError: a number the sample lacks, or a missing or undecodable file (the
                message names the sample and the file).
        """
        try:
            return read_record_frames(sample, numbers)
        except RecordReadError as err:
            raise FrameReadError(str(err)) from err
