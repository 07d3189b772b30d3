"""Someone's own clip, read for ``mer predict``: a video file, a folder of frames or an array.

A video is anything OpenCV's ``VideoCapture`` opens (MP4, AVI, MOV, ...); its frames are
numbered 0, 1, 2, ... and its frame rate is the container's. A folder of frames is read like a
release's clip folder (:func:`mesynth.face.frame_files.discover_frames`: image files numbered by
the trailing integer of their name); its frame rate is given (``fps``), since images carry none.
A ``.npy`` clip (``(T, H, W, 3)`` uint8, as a manifest row may point at) has frames 0..T-1 and
a given frame rate too.

Times (``onset=``, ``apex=``, ``offset=``) are frame numbers (``12``) or seconds from the first
frame (``"0.4s"``, ``"400ms"``): :func:`frame_of`.

Convention:
    Frames are ``(T, H, W, 3)`` uint8 RGB; ``numbers[i]`` is the frame number of ``frames[i]``,
    ascending.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mesynth.face.frame_files import FrameNumberError, discover_frames
from mesynth.face.image_io import ImageReadError, read_rgb


class PredictInputError(ValueError):
    """An input of ``mer predict`` cannot be used (the message names the file and the fix)."""


class ClipTooShortError(PredictInputError):
    """The onset..offset window holds fewer frames than the representation needs."""


@dataclass(frozen=True)
class ClipFrames:
    """Frames of one input clip.

    Attributes:
        path: the video file or frame folder.
        frames: ``(T, H, W, 3)`` uint8 RGB.
        numbers: ``(T,)`` frame numbers, ascending.
        fps: frames per second (``None``: unknown, a frame folder without ``fps``).
    """

    path: Path
    frames: np.ndarray
    numbers: tuple[int, ...]
    fps: float | None


_TIME = re.compile(r"^\s*(?P<value>[0-9]*\.?[0-9]+)\s*(?P<unit>ms|s)?\s*$")


def frame_of(value: object, *, fps: float | None, first: int, key: str, path: Path) -> int | None:
    """A time given on the command line as a frame number.

    Args:
        value: ``None``, a frame number (``12``, ``"12"``) or seconds from the first frame
            (``"0.4s"``, ``"400ms"``).
        fps: the clip's frame rate (needed for seconds).
        first: the first frame number of the clip (seconds count from it).
        key: the argument's name, for messages (``apex``).
        path: the input, for messages.

    Returns:
        ``first + round(seconds * fps)`` for seconds, the number itself for a frame number,
        ``None`` for ``None``.

    Raises:
        PredictInputError: not a number, a negative one, a fraction of a frame, or seconds
            without a frame rate.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise PredictInputError(f"{key}={value!r}: give a frame number or seconds like 0.4s")
    if isinstance(value, int):
        number = value
    else:
        found = _TIME.match(str(value))
        if not found:
            raise PredictInputError(
                f"{key}={value!r}: give a frame number (12) or seconds from the first frame "
                "(0.4s, 400ms)"
            )
        amount, unit = float(found.group("value")), found.group("unit")
        if unit is None:
            if amount != int(amount):
                raise PredictInputError(
                    f"{key}={value!r}: a frame number is a whole number; for seconds write {value}s"
                )
            number = int(amount)
        else:
            if not fps:
                raise PredictInputError(
                    f"{key}={value!r} is a time but {path} has no frame rate; give fps=<frames "
                    "per second> or a frame number"
                )
            seconds = amount / 1000.0 if unit == "ms" else amount
            number = first + int(np.floor(seconds * fps + 0.5))
    if number < 0:
        raise PredictInputError(f"{key}={value!r}: frame numbers are >= 0")
    return number


def video_fps(path: str | Path) -> float | None:
    """The frame rate a video declares (``None`` when it declares none)."""
    capture = _open(Path(path))
    try:
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
    finally:
        capture.release()
    return fps if fps > 0 and np.isfinite(fps) else None


def _open(path: Path) -> cv2.VideoCapture:
    if not path.is_file():
        raise PredictInputError(f"input={path} not found: give a video file, a folder of frames "
                                "or a manifest CSV")  # fmt: skip
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise PredictInputError(
            f"{path}: OpenCV cannot open this video (not a video, or a codec it lacks); convert "
            "it (e.g. `ffmpeg -i <file> clip.mp4`) or give a folder of its frames"
        )
    return capture


def read_video(
    path: str | Path, *, first: int = 0, last: int | None = None, fps: float | None = None
) -> ClipFrames:
    """Frames ``first..last`` (both included; ``last=None``: to the end) of a video.

    Args:
        path: a video file OpenCV opens.
        first, last: frame numbers (0-based) of the window to keep.
        fps: the frame rate to use when the video declares none.

    Raises:
        PredictInputError: the file is missing, cannot be opened, or has no frame in the
            window (the message names the file and how many frames it has).
    """
    path = Path(path)
    declared = video_fps(path)
    capture = _open(path)
    frames, numbers, index = [], [], 0
    try:
        while last is None or index <= last:
            if index < first:  # skip without decoding
                ok = capture.grab()
            else:
                ok, frame = capture.read()
                if ok:
                    frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
                    numbers.append(index)
            if not ok:
                break
            index += 1
    finally:
        capture.release()
    if not frames:
        where = f"from frame {first} on" if first else "at all"
        raise PredictInputError(
            f"{path}: no frame could be read {where} (the video has {index} readable frames); "
            "check onset= or give a folder of its frames"
        )
    return ClipFrames(path, np.stack(frames), tuple(numbers), declared or fps)


def read_array_clip(path: str | Path, *, fps: float | None = None) -> ClipFrames:
    """The frames of a ``.npy`` clip: ``(T, H, W, 3)`` (or ``(T, H, W, 1)`` grey) uint8 RGB,
    numbered 0..T-1.

    Raises:
        PredictInputError: the file is missing or unreadable, or holds no such array (the
            message names the file and the shape it holds).
    """
    path = Path(path)
    try:
        array = np.load(path, mmap_mode="r")
    except (OSError, ValueError, EOFError) as err:
        raise PredictInputError(f"{path}: cannot read this .npy array ({err})") from err
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[3] not in (1, 3) or not len(array):
        raise PredictInputError(
            f"{path}: a .npy clip is (T, H, W, 3) uint8 RGB; this one is {array.dtype} "
            f"{tuple(array.shape)}"
        )
    frames = np.repeat(array, 3, axis=3) if array.shape[3] == 1 else np.asarray(array)
    return ClipFrames(path, frames, tuple(range(len(frames))), fps)


def read_frame_folder(
    path: str | Path, *, first: int | None = None, last: int | None = None, fps: float | None = None
) -> ClipFrames:
    """The numbered image files of a folder whose numbers lie in ``first..last``.

    Raises:
        PredictInputError: no numbered image in the folder (or in the window), two files of
            one number, or an unreadable image (the message names the file).
    """
    path = Path(path)
    try:
        files, numbers = discover_frames(path)
    except FrameNumberError as err:
        raise PredictInputError(str(err)) from err
    if not files:
        raise PredictInputError(
            f"{path}: no numbered image files (img001.jpg, frame_12.png, ...) in this folder; "
            "give a folder of frames, a video file or a manifest CSV"
        )
    low = numbers[0] if first is None else first
    high = numbers[-1] if last is None else last
    kept = [(f, n) for f, n in zip(files, numbers) if low <= n <= high]
    if not kept:
        raise PredictInputError(
            f"{path}: no frame numbered {low}..{high} (its frames are {numbers[0]}..{numbers[-1]})"
        )
    try:
        frames = np.stack([read_rgb(f) for f, _ in kept])
    except ImageReadError as err:
        raise PredictInputError(str(err)) from err
    except ValueError as err:  # np.stack: frames of different sizes
        raise PredictInputError(f"{path}: the frames differ in size ({err})") from err
    return ClipFrames(path, frames, tuple(n for _, n in kept), fps)
