"""Reading a clip store as clip records: the one reader behind calibration, the realism report
and ``recognizer``'s ``mesynth`` loader (the writing side is :mod:`mesynth.generation.store`).

Each manifest row becomes a :class:`StoreRecord` or, when its numbers or files are wrong or it
repeats an earlier row's ``clip_id``, a :class:`StoreProblem` naming the manifest line. A
synthetic face is named like a real subject, dataset-qualified: subject ``mesynth/<identity>``
(:func:`store_subject`), so grouped splits keep a face on one side and it never collides with a
real subject.

Convention:
    Frame numbers are full-rate numbers from onset (0); ``frame_numbers`` lists the stored
    frames. An array clip has no frame files: its numbers are in ``extra["frame_numbers"]``
    (``"0;3;7"``), the rule of :func:`mesynth.records.record_frame_numbers`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from mesynth.face.frame_files import FrameNumberError, discover_frames, parse_frame_numbers
from mesynth.face.identities import person_of
from mesynth.generation.store import META, StoreError, iter_manifest

#: the dataset name of stored clips; it qualifies their subjects.
DATASET = "mesynth"
PREFER = ("npy", "frames")
_PATH_COLUMN = {"npy": "npy_path", "frames": "frames_dir"}


def store_subject(identity: str) -> str:
    """The subject of a synthetic face: ``store_subject("astronaut") == "mesynth/astronaut"``."""
    return f"{DATASET}/{identity.strip()}"


@dataclass(frozen=True)
class StoreRecord:
    """One stored clip as a clip record (:mod:`mesynth.records`).

    Attributes:
        subject: ``"mesynth/<identity>"``.
        clip: the clip id (``"000042"``).
        onset, apex, offset: full-rate frame numbers.
        fps: frames per second of the full-rate clip.
        emotion: the clip's class label; ``aus`` its AU string.
        identity: the face identity as generated (unqualified).
        array_path: the ``.npy`` ``(T, H, W, C)`` uint8 clip, or ``None`` when read as frames.
        frames, frame_numbers: frame files and their numbers (empty for an array clip).
        extra: manifest line (``row``), template source, seed, store mode, the stored frame
            numbers (``"0;3;7"``) and the ``person`` the face shows (``meta.json``'s
            ``identity_persons``; stores written before it was recorded: derived from the
            identity name, :func:`mesynth.face.identities.person_of`).
    """

    subject: str
    clip: str
    onset: int
    apex: int
    offset: int
    fps: float
    emotion: str
    aus: str
    identity: str
    array_path: Path | None = None
    frames: tuple[Path, ...] = ()
    frame_numbers: tuple[int, ...] = ()
    extra: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StoreProblem:
    """A manifest row that gives no record: its line number, ``"<identity>/<clip>"`` and why."""

    row: int
    clip: str
    reason: str

    def __str__(self) -> str:
        return f"manifest line {self.row} {self.clip}: {self.reason}"


@dataclass(frozen=True)
class StoreContents:
    """Everything :func:`read_store` found: ``meta.json``, the records and the bad rows."""

    manifest: Path
    meta: Mapping[str, object]
    rows_read: int
    records: tuple[StoreRecord, ...]
    problems: tuple[StoreProblem, ...]


def read_store(root: str | Path, *, prefer: str = "npy") -> StoreContents:
    """Read every row of a clip store.

    Args:
        root: the store folder (holding ``manifest.csv``).
        prefer: ``"npy"`` (arrays when written, else frames) or ``"frames"`` (the reverse).

    Raises:
        ValueError: unknown ``prefer``.
        mesynth.generation.store.StoreNotFoundError: ``root`` has no ``manifest.csv``.
        StoreError: ``meta.json`` is not JSON, or the manifest's columns are not a store's.
    """
    if prefer not in PREFER:
        raise ValueError(f"prefer must be one of {PREFER}; got {prefer!r}")
    root = Path(root)
    rows = list(iter_manifest(root))
    meta = _read_meta(root / META)
    persons = meta.get("identity_persons")
    persons = persons if isinstance(persons, Mapping) else {}
    records, problems = [], []
    seen: dict[str, int] = {}
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        clip = row["clip_id"]
        if clip in seen:
            name = f"{row['identity']}/{clip}"
            problems.append(StoreProblem(line, name, f"duplicate of manifest line {seen[clip]}"))
            continue
        seen[clip] = line
        found = _read_row(root, line, row, prefer, persons)
        (records if isinstance(found, StoreRecord) else problems).append(found)
    return StoreContents(root / "manifest.csv", meta, len(rows), tuple(records), tuple(problems))


def store_records(root: str | Path, *, prefer: str = "npy") -> list[StoreRecord]:
    """The clips of a store as records for :func:`mesynth.calibration.calibrate.calibrate` and
    :func:`mesynth.evaluation.realism_report.realism_report`.

    Raises:
        StoreError: no store at ``root``, or rows whose numbers or files are wrong (the message
            lists them).
    """
    contents = read_store(root, prefer=prefer)
    if contents.problems:
        listed = "; ".join(str(p) for p in contents.problems[:5])
        raise StoreError(f"{contents.manifest}: {len(contents.problems)} bad rows: {listed}")
    return list(contents.records)


def _read_meta(path: Path) -> dict[str, object]:
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise StoreError(f"{path}: not valid JSON ({err})") from err


def _read_row(
    root: Path, line: int, row: Mapping[str, str], prefer: str, persons: Mapping[str, object]
) -> StoreRecord | StoreProblem:
    clip, identity = row["clip_id"], row["identity"]
    name = f"{identity}/{clip}"
    try:
        onset, apex, offset = (int(row[k]) for k in ("onset", "apex", "offset"))
        numbers = parse_frame_numbers(row["frame_numbers"])
        fps = float(row["fps"])
    except (ValueError, FrameNumberError) as err:
        return StoreProblem(line, name, f"bad number in manifest ({err})")
    if not onset <= apex <= offset:
        return StoreProblem(line, name, f"onset {onset}, apex {apex}, offset {offset} out of order")
    kinds = [k for k in (PREFER if prefer == "npy" else PREFER[::-1]) if row[_PATH_COLUMN[k]]]
    if not kinds:
        return StoreProblem(line, name, "neither frames_dir nor npy_path is set")
    record = StoreRecord(
        subject=store_subject(identity),
        clip=clip,
        onset=onset,
        apex=apex,
        offset=offset,
        fps=fps,
        emotion=row["label"],
        aus=row["aus"],
        identity=identity,
        extra={
            "row": str(line),
            "template_source": row["template_source"],
            "seed": row["seed"],
            "mode": row["mode"],
            "frame_numbers": row["frame_numbers"],
            "person": str(persons.get(identity) or person_of(identity)),
        },
    )
    if kinds[0] == "npy":
        return _with_array(record, root / row["npy_path"], numbers, line)
    return _with_frames(record, root / row["frames_dir"], numbers, line)


def _with_array(
    record: StoreRecord, path: Path, numbers: tuple[int, ...], line: int
) -> StoreRecord | StoreProblem:
    name = f"{record.identity}/{record.clip}"
    try:
        shape = np.load(path, mmap_mode="r").shape
    except (OSError, ValueError) as err:
        return StoreProblem(line, name, f"cannot read {path} ({err})")
    if len(shape) != 4 or shape[0] != len(numbers):
        return StoreProblem(
            line, name, f"{path} has shape {shape}; expected ({len(numbers)}, H, W, C)"
        )
    return replace(record, array_path=path)


def _with_frames(
    record: StoreRecord, folder: Path, numbers: tuple[int, ...], line: int
) -> StoreRecord | StoreProblem:
    name = f"{record.identity}/{record.clip}"
    if not folder.is_dir():
        return StoreProblem(line, name, f"frame folder not found: {folder}")
    try:
        frames, found = discover_frames(folder)
    except FrameNumberError as err:
        return StoreProblem(line, name, str(err))
    absent = sorted(set(numbers) - set(found))
    if absent:
        return StoreProblem(line, name, f"{folder} lacks frames {absent[:5]} named in the manifest")
    return replace(record, frames=frames, frame_numbers=found)
