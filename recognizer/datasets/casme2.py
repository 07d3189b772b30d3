"""CASME II (Yan et al., 2014): the 2014 or 2019 coding sheet and one of three frame trees.

Expected under ``root``::

    CASME2-coding-20140508.xlsx | CASME2-coding-20190701.xlsx   (or annotation=...)
    CASME2-RAW/sub01/EP02_01f/img1.jpg ...            frames="raw"      (whole clips)
    CASME2_RAW_selected/sub01/EP02_01f/img46.jpg ...  frames="selected" (onset..offset)
    Cropped/sub01/EP02_01f/reg_img46.jpg ...          frames="cropped"  (aligned crops)

The sheet version is detected by its columns (2019 adds ``Objective Classes``). Frame numbers
in the sheet are file numbers. ``frames="auto"`` takes the first tree present in the order
selected, raw, cropped. Sheet and folder names of a clip may differ by a trailing 'f'.
"""

from __future__ import annotations

from pathlib import Path

from recognizer.datasets.engine import (
    COMMON_COLUMNS,
    ReleaseSpec,
    find_annotation,
    load_release,
    release_root,
)
from recognizer.datasets.errors import ReleaseNotFoundError
from recognizer.datasets.frames import find_tree
from recognizer.datasets.layouts import Row, SubjectClipFolders
from recognizer.datasets.report import LoadResult
from recognizer.datasets.sheets import Table, column

TREES = {
    "selected": ("CASME2_RAW_selected", "CASME2-RAW-selected", "RAW_selected"),
    "raw": ("CASME2-RAW", "CASME2_RAW", "RAW"),
    "cropped": ("Cropped", "CASME2_Cropped", "CASME2-Cropped"),
}


def _sheet_version(table: Table) -> str:
    return "2019" if column(table, "Objective Classes") else "2014"


def _subject_folders(subject: str) -> tuple[str, ...]:
    return (f"sub{subject}", subject)


def _clip_folders(row: Row) -> tuple[str, ...]:
    return (row.clip, row.clip + "f", row.clip.removesuffix("f"))


SPEC = ReleaseSpec(
    name="casme2",
    title="CASME II",
    what="CASME II coding sheet",
    sheet_patterns=("CASME2-coding-*.xlsx", "CASME2*coding*.xlsx", "CASME2*coding*.xls"),
    sheet_hint="CASME2-coding-*.xlsx",
    newest_sheet=True,
    columns=COMMON_COLUMNS,
    extra_columns={"objective_class": ("Objective Classes",)},
    fps=200.0,
    layout=SubjectClipFolders(subject_names=_subject_folders, clip_names=_clip_folders),
    sheet_version=_sheet_version,
    report_unannotated=True,
)


def load(
    root: str | Path,
    *,
    frames: str = "auto",
    annotation: str | Path | None = None,
    missing_apex: str = "middle",
) -> LoadResult:
    """Load CASME II.

    Args:
        root: the release folder (holding the sheet and the frame trees).
        frames: ``"auto"``, ``"selected"``, ``"raw"`` or ``"cropped"``.
        annotation: the coding sheet; default: the newest ``CASME2-coding-*.xlsx`` in ``root``.
        missing_apex: ``"middle"`` or ``"skip"`` for rows without an apex (see the errata).
    """
    if frames != "auto" and frames not in TREES:
        raise ValueError(f"frames must be 'auto' or one of {', '.join(TREES)}; got {frames!r}")
    root = release_root(SPEC, root)
    sheet = find_annotation(SPEC, root, annotation)
    tree_name, tree = _find_frames(root, frames)
    return load_release(
        SPEC,
        root,
        annotation=sheet,
        frames_root=tree,
        missing_apex=missing_apex,
        extra={"frames": tree_name},
        notes=[f"frame tree {tree_name}: {tree}"],
    )


def _find_frames(root: Path, frames: str) -> tuple[str, Path]:
    order = list(TREES) if frames == "auto" else [frames]
    for name in order:
        tree = find_tree(root, TREES[name])
        if tree is not None:
            return name, tree
    wanted = ", ".join(TREES[n][0] for n in order)
    raise ReleaseNotFoundError(f"no CASME II frame tree ({wanted}) in {root}")
