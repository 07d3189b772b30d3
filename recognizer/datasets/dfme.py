"""DFME (Zhao et al., 2023) through a column and path mapping the user can set.

No public sheet layout is known for DFME, so this loader reads any sheet or CSV through a
mapping. The default mapping (:data:`SPEC`) expects under ``root``::

    DFME*.xlsx | DFME*.csv           columns Subject, Filename, OnsetFrame, ApexFrame,
                                     OffsetFrame, Action Units, Emotion, Part (A/B/C)
    <Part>/<Subject>/<Filename>/*.jpg   frame folders (frames="{part}/{subject}/{clip}")

and the frame rates of the paper: part A 500 fps, B 300 fps, C 200 fps. Override any of it::

    load("dfme", root, annotation="labels.csv",
         columns={"subject": "participant", "clip": "video", "emotion": "label"},
         frames="clips/{clip}", fps={"A": 500, "B": 300, "C": 200}, default_part="C")

``columns`` overrides the spec's columns (:meth:`ReleaseSpec.with_columns`); ``frames`` is a
``str.format`` pattern over ``subject``, ``clip``, ``part``, ``emotion`` and every column of the
sheet by its name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from recognizer.datasets.engine import COMMON_COLUMNS, ReleaseSpec, load_release
from recognizer.datasets.layouts import FolderPattern
from recognizer.datasets.report import LoadResult

DEFAULT_FPS: dict[str, float] = {"A": 500.0, "B": 300.0, "C": 200.0}
DEFAULT_FRAMES = "{part}/{subject}/{clip}"

SPEC = ReleaseSpec(
    name="dfme",
    title="DFME",
    what="DFME annotation",
    sheet_patterns=("DFME*.xlsx", "DFME*.xls", "DFME*.csv"),
    sheet_hint="DFME*.xlsx or DFME*.csv",
    columns={**COMMON_COLUMNS, "emotion": ("Emotion",), "part": ("Part",)},
    required=("subject", "clip", "onset", "offset", "emotion"),
    fps=DEFAULT_FPS,
    default_part="C",
    layout=FolderPattern(DEFAULT_FRAMES),
)


def load(
    root: str | Path,
    *,
    annotation: str | Path | None = None,
    sheet: str | None = None,
    columns: Mapping[str, str] | None = None,
    frames: str = DEFAULT_FRAMES,
    fps: Mapping[str, float] | None = None,
    default_part: str = "C",
    missing_apex: str = "middle",
) -> LoadResult:
    """Load DFME (or any release with one row per clip) through a column mapping.

    Args:
        root: the release folder; frame patterns are relative to it.
        annotation: sheet or CSV (default: ``DFME*.xlsx``/``DFME*.csv`` in ``root``).
        sheet: sheet name of a spreadsheet (default: the first).
        columns: overrides of the default columns (keys subject, clip, onset, apex, offset,
            aus, emotion, part).
        frames: frame-folder pattern relative to ``root``.
        fps: frames per second per part (default :data:`DEFAULT_FPS`).
        default_part: the part of rows without a part column or cell.
        missing_apex: ``"middle"`` or ``"skip"`` for rows without an apex.

    Raises:
        ValueError: an unknown key in ``columns``.
        AnnotationError: a required mapped column is missing, a row's part has no fps, or the
            frames pattern cannot be filled from a row.
    """
    spec = replace(
        SPEC.with_columns(columns or {}),
        fps=dict(DEFAULT_FPS if fps is None else fps),
        default_part=default_part,
        layout=FolderPattern(frames),
    )
    return load_release(spec, root, annotation=annotation, sheet=sheet, missing_apex=missing_apex)
