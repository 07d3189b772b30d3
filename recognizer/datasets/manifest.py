"""A generic CSV of clips preprocessed elsewhere (apex-flow images, cropped frame folders...).

Columns: ``subject, clip, label, path`` and optionally ``onset, apex, offset, dataset, fps,
emotion, aus, face, source``. ``path`` (relative to the CSV's folder, or absolute) is

- a frame folder: frames are found by their trailing number; onset/offset default to the first
  and last frame, the apex to none (middle frame);
- a ``.npy`` array: ``(T, H, W, C)`` is a clip with frames 0..T-1, ``(H, W, C)`` or ``(H, W)`` is
  one image;
- an image file (``.png``, ``.jpg``...): one image (e.g. an apex-flow image).

``aus`` (the clip's AU codes, e.g. ``4+7``) lets the synthetic remedies mine templates from the
row. ``face`` (relative to the CSV's folder, or absolute) is an image of the row's subject, e.g.
the onset crop: the synthetic remedies animate it (``identities.source: data``) and record
the row's subject as its owner; it is kept in ``extra["face"]`` as an absolute path.

``label`` becomes the sample's emotion (an ``emotion`` cell is kept in ``extra``);
``dataset`` (default: the ``dataset=`` argument, ``"manifest"``) qualifies the subject. A subject
already qualified (``casme2/sub01``) is kept as is: on a row without a ``dataset`` cell its
qualifier is the row's dataset; on a row whose ``dataset`` cell names another dataset
(``samm/006`` on a ``casme2`` row) it is refused with an :class:`AnnotationError` naming the file
and row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mesynth.face.frame_files import discover_frames
from mesynth.face.image_io import IMAGE_SUFFIXES
from recognizer.data.samples import SOURCES, Sample, qualify_subject
from recognizer.datasets.checks import drop_duplicates, media_problem
from recognizer.datasets.errors import AnnotationError
from recognizer.datasets.report import LoadReport, LoadResult
from recognizer.datasets.sheets import cell_int, read_table

REQUIRED = ("subject", "clip", "label", "path")


@dataclass(frozen=True)
class ManifestRow:
    """One manifest row with its cells checked, before its media is looked at: what a sample
    (:func:`load`) or a prediction (:mod:`recognizer.inference.manifest_input`) is made from.

    Attributes:
        row: the 1-based spreadsheet row number.
        subject: the dataset-qualified subject (``casme2/sub01``); ``dataset``: its dataset.
        clip: the ``clip`` cell.
        path: the ``path`` cell, resolved against the CSV's folder (not checked to exist).
        onset, apex, offset: the frame-number cells (``None``: blank).
        fps: the ``fps`` cell (``None``: blank).
        face: the ``face`` cell, resolved like ``path`` (``None``: blank).
        cells: every cell of the row as text.
    """

    row: int
    subject: str
    dataset: str
    clip: str
    path: Path
    onset: int | None
    apex: int | None
    offset: int | None
    fps: float | None
    face: Path | None
    cells: Mapping[str, str]


def manifest_csv(root: str | Path) -> Path:
    """The CSV of ``root``: the file itself, or ``manifest.csv`` in a folder."""
    root = Path(root)
    return root / "manifest.csv" if root.is_dir() else root


def parse_row(csv: Path, row: int, cells: Mapping[str, str], dataset: str) -> ManifestRow:
    """Check one row's cells (see the module for the columns).

    Args:
        csv: the manifest file (``path`` cells are relative to its folder).
        row: the row's spreadsheet number, for messages.
        cells: the row's cells as text (:meth:`recognizer.datasets.sheets.Table.records`).
        dataset: the dataset of a row without a ``dataset`` cell.

    Raises:
        AnnotationError: a blank or path-like subject or dataset cell, or a subject qualified
            with another dataset than the row's (the file and row are named).
        ValueError: an onset, apex, offset or fps cell that is no number (the caller names
            the row).
    """
    subject, dataset_name = _qualified_subject(
        csv, row, cells["subject"], cells.get("dataset") or "", dataset
    )
    path, face = Path(cells["path"]), cells.get("face") or ""
    onset, apex, offset = (cell_int(cells.get(k, "")) for k in ("onset", "apex", "offset"))
    fps = cells.get("fps") or ""
    try:
        rate = float(fps) if fps else None
    except ValueError as err:
        raise ValueError(f"fps {fps!r} is no number") from err
    return ManifestRow(
        row=row,
        subject=subject,
        dataset=dataset_name,
        clip=cells["clip"],
        path=_resolved(csv, path),
        onset=onset,
        apex=apex,
        offset=offset,
        fps=rate,
        face=_resolved(csv, Path(face)) if face else None,
        cells=dict(cells),
    )


def _resolved(csv: Path, path: Path) -> Path:
    return path if path.is_absolute() else csv.parent / path


def load(root: str | Path, *, fps: float = 0.0, dataset: str = "manifest") -> LoadResult:
    """Load a manifest CSV.

    Args:
        root: the CSV file, or a folder holding ``manifest.csv``.
        fps: frame rate of rows without an ``fps`` cell (0 = unknown).
        dataset: dataset name of rows without a ``dataset`` cell.

    Raises:
        AnnotationError: a required column is missing, or a subject is qualified with another
            dataset than its row's (``samm/006`` on a ``casme2`` row), or a subject or dataset
            cell is blank or no plain name (``../x``); the file and row are named.
    """
    csv = manifest_csv(root)
    table = read_table(csv, required=REQUIRED, what="manifest CSV")
    report = LoadReport("manifest", str(csv), rows_read=len(table.rows))
    samples = []
    for row, cells in table.records():
        try:
            sample = _row_sample(parse_row(csv, row, cells, dataset), fps, report)
        except AnnotationError:
            raise
        except ValueError as err:
            report.skip(row, f"{cells['subject']}/{cells['clip']}", str(err))
            continue
        if sample is not None:
            samples.append(sample)
    samples = drop_duplicates(samples, report)
    report.kept = len(samples)
    return LoadResult(samples, report)


def _qualified_subject(
    csv: Path, row: int, subject: str, cell: str, default: str
) -> tuple[str, str]:
    """``(dataset/subject, dataset)`` of a row: a qualified subject keeps its qualifier, which
    must equal the row's ``dataset`` cell when there is one; else the cell (or ``default``)
    qualifies it."""
    _check_name(csv, row, "subject", subject)
    if cell:
        _check_name(csv, row, "dataset", cell)
    qualifier, slash, _ = subject.strip().partition("/")
    if not slash:
        dataset = cell or default
        return qualify_subject(dataset, subject), dataset
    dataset = cell or qualifier
    if qualifier != dataset:
        raise AnnotationError(
            f"{csv}, row {row}: subject {subject!r} is qualified with dataset {qualifier!r} "
            f"but the row's dataset is {dataset!r}; fix the dataset cell or the subject"
        )
    return subject.strip(), dataset


def _check_name(csv: Path, row: int, column: str, value: str) -> None:
    """Refuse a subject or dataset cell that is blank or is no plain name: ``..``, ``.``, an
    empty part (``a//b``, ``/x``), a backslash, or more than ``dataset/subject``. Such a cell
    would become a wrong subject (``manifest/``) or dataset (``..``) and move cache files."""
    text = value.strip()
    parts = text.split("/")
    bad = (
        not text
        or "\\" in text
        or len(parts) > (2 if column == "subject" else 1)
        or any(part.strip() in ("", ".", "..") for part in parts)
    )
    if bad:
        what = "blank" if not text else f"{value!r} is no plain name"
        form = "a name or dataset/name" if column == "subject" else "a name"
        raise AnnotationError(
            f"{csv}, row {row}: {column} cell {what}; give {form} (no '..', '.', empty part "
            "or backslash)"
        )


def _row_sample(parsed: ManifestRow, fps: float, report: LoadReport) -> Sample | None:
    cells, row, path = parsed.cells, parsed.row, parsed.path
    name = f"{cells['subject']}/{cells['clip']}"
    source = cells.get("source") or "real"
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    onset, apex, offset = parsed.onset, parsed.apex, parsed.offset
    frames: tuple[Path, ...] = ()
    numbers: tuple[int, ...] = ()
    array_path = None
    if path.is_dir():
        frames, numbers = discover_frames(path)  # FrameNumberError is a ValueError
        if not numbers:
            raise ValueError(f"no numbered image files in {path}")
        first, last = numbers[0], numbers[-1]
    elif path.is_file() and path.suffix.lower() == ".npy":
        problem = media_problem(path)
        if problem:
            raise ValueError(problem)
        try:
            shape = np.load(path, mmap_mode="r").shape
        except (OSError, ValueError, EOFError) as err:
            raise ValueError(f"cannot read {path} ({err})") from err
        array_path = path
        first, last = 0, (shape[0] - 1 if len(shape) == 4 else 0)
    elif path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        array_path = path
        first = last = 0
    else:
        raise ValueError(f"path not found or not a folder, .npy or image: {path}")
    onset = first if onset is None else onset
    offset = last if offset is None else offset
    if not first <= onset <= offset <= last:
        raise ValueError(f"onset {onset}..offset {offset} outside the frames {first}..{last}")
    if apex is not None and not onset <= apex <= offset:
        raise ValueError(f"apex {apex} outside onset..offset ({onset}..{offset})")
    if apex is None and offset > onset:
        report.fix(row, name, "no apex: middle frame used")
    elif apex is None:
        apex = onset
    extra = {"row": str(row), "emotion": cells.get("emotion", "")}
    if parsed.face is not None:
        if not parsed.face.is_file():
            raise ValueError(f"face image not found: {parsed.face}")
        extra["face"] = str(parsed.face.resolve())
    if array_path is not None and numbers == ():
        extra["frame_numbers"] = ";".join(str(n) for n in range(first, last + 1))
    return Sample(
        dataset=parsed.dataset,
        subject=parsed.subject,
        clip=parsed.clip,
        frames=frames,
        frame_numbers=numbers,
        onset=onset,
        apex=apex,
        offset=offset,
        fps=float(parsed.fps or fps),
        emotion=cells["label"],
        aus=cells.get("aus", ""),
        source=source,
        identity=parsed.subject,
        array_path=array_path,
        extra=extra,
    )
