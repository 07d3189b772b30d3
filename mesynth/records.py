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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mesynth.face.image_io import decode_rgb

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
    text = str(extra.get("frame_numbers", ""))
    if text:
        return tuple(int(n) for n in text.split(";") if n.strip())
    return (int(record.onset),)


def _read_image(path: Path, name: str) -> np.ndarray:
    image = decode_rgb(path)
    if image is None:
        raise RecordReadError(f"{name}: cannot read image {path}")
    return image


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


@dataclass(frozen=True)
class StoreRecord:
    """A clip of a ``mesynth generate`` store as a clip record (:func:`store_records`).

    The identity is the subject (``synthetic/<identity>``), so grouped splits keep a face on one
    side; ``extra["frame_numbers"]`` lists the stored frames (``"0;3;7"``).
    """

    subject: str
    clip: str
    onset: int
    apex: int
    offset: int
    fps: float
    aus: str
    emotion: str
    identity: str
    array_path: Path | None = None
    frames: tuple[Path, ...] = ()
    frame_numbers: tuple[int, ...] = ()
    extra: dict[str, str] = field(default_factory=dict)


def store_records(root: str | Path) -> list[StoreRecord]:
    """The clips of a clip store as records for :func:`mesynth.calibration.calibrate.calibrate` and
    :func:`mesynth.evaluation.realism_report.realism_report` (``.npy`` clips, else frame files).

    Raises:
        mesynth.generation.store.StoreError: ``root`` has no ``manifest.csv``.
    """
    from mesynth.generation.store import iter_manifest

    root = Path(root)
    records = []
    for row in iter_manifest(root):
        numbers = tuple(int(n) for n in row["frame_numbers"].split(";") if n)
        files: tuple[Path, ...] = ()
        if not row.get("npy_path"):
            folder = root / row["frames_dir"]
            files = tuple(next(iter(sorted(folder.glob(f"img{n}.*"))), folder) for n in numbers)
        records.append(
            StoreRecord(
                subject=f"synthetic/{row['identity']}",
                clip=row["clip_id"],
                onset=int(row["onset"]),
                apex=int(row["apex"]),
                offset=int(row["offset"]),
                fps=float(row["fps"]),
                aus=row["aus"],
                emotion=row["label"],
                identity=row["identity"],
                array_path=root / row["npy_path"] if row.get("npy_path") else None,
                frames=files,
                frame_numbers=numbers if files else (),
                extra={"frame_numbers": row["frame_numbers"]},
            )
        )
    return records
