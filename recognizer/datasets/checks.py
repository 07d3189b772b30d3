"""Row checks every loader shares: media files that will not read, repeated clips.

:func:`verify_media` (the ``verify=True`` option of :func:`recognizer.datasets.load`,
:func:`~recognizer.datasets.engine.load_release` and ``mer prepare verify=true``) drops the
samples whose frame files or arrays are empty or not what their name says, so a corrupt file is
reported by path at load time instead of crashing training mid-fold. :func:`drop_duplicates`
keeps the first of repeated clips and reports the repeats. Both check headers only: a file
whose header is sound but whose pixels are truncated still passes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from mesynth.face.image_io import IMAGE_SUFFIXES
from recognizer.data.samples import Sample
from recognizer.datasets.report import LoadReport, LoadResult


def media_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be read as a frame or clip array, or ``None`` when its header is sound.

    Checks that the file exists and is not empty; a ``.npy`` file must have a readable array
    header and hold the bytes it announces (memory-mapped, not read); an image file must carry a
    signature OpenCV can decode. The message names the file.
    """
    path = Path(path)
    if not path.is_file():
        return f"file not found: {path}"
    if path.stat().st_size == 0:
        return f"empty file (0 bytes): {path}"
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return _npy_problem(path)
    if suffix in IMAGE_SUFFIXES and not cv2.haveImageReader(str(path)):
        return f"not a readable {suffix} image: {path}"
    return None


def _npy_problem(path: Path) -> str | None:
    try:
        np.load(path, mmap_mode="r")  # reads the header and maps the announced bytes
    except (ValueError, OSError, EOFError) as err:
        return f"not a readable .npy array ({err}): {path}"
    return None


def verify_media(result: LoadResult) -> LoadResult:
    """``result`` without the samples whose media fail :func:`media_problem`.

    Every frame file from onset to offset and the clip array are checked; a failing sample is
    reported as skipped with the first bad file's path.
    """
    report = _copy(result.report)
    kept = []
    checked = 0
    for sample in result.samples:
        paths = [*sample.frames_between(sample.onset, sample.offset)]
        if sample.array_path is not None:
            paths.append(sample.array_path)
        checked += len(paths)
        problem = next(filter(None, map(media_problem, paths)), None)
        if problem is None:
            kept.append(sample)
        else:
            report.skip(_row(sample), f"{sample.subject}/{sample.clip}", problem)
    report.note(
        f"media verified: {checked} files checked, {len(result.samples) - len(kept)} clips dropped"
    )
    report.kept = len(kept)
    return LoadResult(kept, report)


def drop_duplicates(samples: Sequence[Sample], report: LoadReport) -> list[Sample]:
    """``samples`` with every repeated uid dropped (the first is kept) and reported as skipped
    (``"duplicate of row N"``)."""
    first: dict[str, Sample] = {}
    for sample in samples:
        if sample.uid not in first:
            first[sample.uid] = sample
            continue
        row = _row(first[sample.uid])
        where = f"row {row}" if row is not None else sample.uid
        report.skip(_row(sample), f"{sample.subject}/{sample.clip}", f"duplicate of {where}")
    return list(first.values())


def _copy(report: LoadReport) -> LoadReport:
    return replace(
        report, skipped=list(report.skipped), fixes=list(report.fixes), notes=list(report.notes)
    )


def _row(sample: Sample) -> int | None:
    row = sample.extra.get("row")
    return int(row) if row else None


__all__ = ["drop_duplicates", "media_problem", "verify_media"]
