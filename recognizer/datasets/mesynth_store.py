"""A clip store written by ``mesynth generate`` (layout: docs/datasets/mesynth.md).

Expected under ``root``::

    meta.json                     generation config, scheme, class names, format, mode
    manifest.csv                  one row per finished clip
    clips/<clip_id>/img<frame>.jpg|png     format "frames" (unpadded frame numbers)
    clips/<clip_id>.npy                    format "npy": uint8 (T, H, W, C)

The store is read by :func:`mesynth.generation.store_reader.read_store`; each record becomes
``Sample(dataset="mesynth", subject="mesynth/<identity>", clip=<clip_id>, source="synthetic",
identity=<identity>, emotion=<label>, aus=<aus>)``. Clips stored as arrays have no frame files:
the full-rate frame number of each array slice is kept in ``extra["frame_numbers"]``
(``"0;3;7"``); see :func:`recognizer.data.frame_source.clip_frame_numbers`.
"""

from __future__ import annotations

from pathlib import Path

from mesynth.generation.store import StoreError, StoreNotFoundError
from mesynth.generation.store_reader import DATASET, StoreRecord, read_store
from recognizer.data.samples import Sample
from recognizer.datasets.errors import AnnotationError, ReleaseNotFoundError
from recognizer.datasets.report import LoadReport, LoadResult


def load(root: str | Path, *, prefer: str = "npy") -> LoadResult:
    """Load a clip store.

    Args:
        root: the store folder (holding ``manifest.csv``).
        prefer: ``"npy"`` (arrays when written, else frames) or ``"frames"`` (the reverse).

    Raises:
        ReleaseNotFoundError: ``root`` is not a clip store (no ``manifest.csv``).
        AnnotationError: ``meta.json`` or the manifest is not a store's.
    """
    try:
        contents = read_store(root, prefer=prefer)
    except StoreNotFoundError as err:
        raise ReleaseNotFoundError(str(err)) from err
    except StoreError as err:
        raise AnnotationError(str(err)) from err
    report = LoadReport(DATASET, str(contents.manifest), rows_read=contents.rows_read)
    if contents.meta:
        meta = contents.meta
        report.note(f"scheme {meta.get('scheme', '?')}, format {meta.get('format', '?')}")
    for problem in contents.problems:
        report.skip(problem.row, problem.clip, problem.reason)
    samples = [_sample(record) for record in contents.records]
    report.kept = len(samples)
    return LoadResult(samples, report)


def _sample(record: StoreRecord) -> Sample:
    return Sample(
        dataset=DATASET,
        subject=record.subject,
        clip=record.clip,
        frames=record.frames,
        frame_numbers=record.frame_numbers,
        onset=record.onset,
        apex=record.apex,
        offset=record.offset,
        fps=record.fps,
        emotion=record.emotion,
        aus=record.aus,
        source="synthetic",
        identity=record.identity,
        array_path=record.array_path,
        extra=dict(record.extra),
    )
