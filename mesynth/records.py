"""Reading the frames of a clip record without knowing its class.

Calibration and the realism report take *clip records*: any objects with ``subject``,
``onset``, ``apex``, ``offset``, ``fps`` and either ``frames`` + ``frame_numbers`` (image files
and their frame numbers) or ``array_path`` (a ``.npy`` ``(T, H, W, C)`` clip or one image, its
frame numbers in ``extra["frame_numbers"]`` as ``"0;3;7"``). ``recognizer``'s ``Sample``
qualifies; mesynth never imports it.

Convention:
    Frame numbers are the release's numbers (``img46.jpg`` is 46), not positions; frames are
    returned as ``(T, H, W, 3)`` uint8 RGB.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from mesynth.face.frame_files import parse_frame_numbers
from mesynth.face.image_io import ImageReadError, read_rgb

#: reads the frames numbered ``numbers`` of a record: ``(T, H, W, 3)`` uint8 RGB.
FrameReader = Callable[[object, Sequence[int]], np.ndarray]


class RecordReadError(ValueError):
    """A record's frames cannot be read; the message names the record and the file."""


def record_name(record: object) -> str:
    """``"<subject>/<clip>"`` for messages (whatever of those the record has)."""
    subject = getattr(record, "subject", "?")
    clip = getattr(record, "clip", "?")
    return f"{subject}/{clip}"


def record_frame_numbers(record: object) -> tuple[int, ...]:
    """The frame numbers a record holds: its frame files', else its array's, else its onset."""
    numbers = tuple(getattr(record, "frame_numbers", ()) or ())
    if numbers:
        return tuple(int(n) for n in numbers)
    extra = getattr(record, "extra", None) or {}
    stored = parse_frame_numbers(str(extra.get("frame_numbers", "")))
    return stored or (int(record.onset),)


def _read_image(path: Path, name: str) -> np.ndarray:
    try:
        return read_rgb(path)
    except ImageReadError as err:
        raise RecordReadError(f"{name}: {err}") from err


def _as_rgb_clip(array: np.ndarray, path: Path, name: str) -> np.ndarray:
    if array.dtype != np.uint8:
        raise RecordReadError(f"{name}: {path} must be uint8, got {array.dtype}")
    if array.ndim == 2:
        array = array[None, :, :, None]
    elif array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or array.shape[3] not in (1, 3):
        raise RecordReadError(f"{name}: {path} must be (T, H, W, C), got {array.shape}")
    return np.repeat(array, 3, axis=3) if array.shape[3] == 1 else array


def read_record_frames(record: object, numbers: Sequence[int]) -> np.ndarray:
    """The frames numbered ``numbers`` of a record, ``(T, H, W, 3)`` uint8 RGB.

    Raises:
        RecordReadError: a number the record lacks, or an unreadable file.
    """
    name = record_name(record)
    files = tuple(getattr(record, "frames", ()) or ())
    if files:
        index = dict(zip(record_frame_numbers(record), files))
        missing = [n for n in numbers if n not in index]
        if missing:
            raise RecordReadError(f"{name}: no frame files numbered {missing}")
        return np.stack([_read_image(Path(index[n]), name) for n in numbers])
    path = getattr(record, "array_path", None)
    if path is None:
        raise RecordReadError(f"{name}: the record has neither frames nor array_path")
    path = Path(path)
    if path.suffix.lower() == ".npy":
        try:
            array = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as err:
            raise RecordReadError(f"{name}: cannot read {path} ({err})") from err
        array = _as_rgb_clip(array, path, name)
    else:
        array = _read_image(path, name)[None]
    position = {n: i for i, n in enumerate(record_frame_numbers(record))}
    missing = [n for n in numbers if n not in position]
    if missing or len(position) != array.shape[0]:
        raise RecordReadError(
            f"{name}: {path} holds {array.shape[0]} frames; cannot give frames {list(numbers)}"
        )
    return np.ascontiguousarray(array[[position[n] for n in numbers]])


def apex_of(record: object) -> int:
    """The record's apex frame number, or the middle of onset..offset when it has none."""
    apex = getattr(record, "apex", None)
    if apex is not None:
        return int(apex)
    return (int(record.onset) + int(record.offset)) // 2
