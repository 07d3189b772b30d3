"""CASME II (Yan et al., 2014): the 2014 or 2019 coding sheet and one of three frame trees.

Expected under ``root``::

    CASME2-coding-20140508.xlsx | CASME2-coding-20190701.xlsx   (or annotation=...)
    CASME2-RAW/sub01/EP02_01f/img1.jpg ...            frames="raw"      (whole clips)
    CASME2_RAW_selected/sub01/EP02_01f/img46.jpg ...  frames="selected" (onset..offset)
    Cropped/sub01/EP02_01f/reg_img46.jpg ...          frames="cropped"  (aligned crops)

The sheet version is detected by its columns (2019 adds ``Objective Classes``). Frame numbers
in the sheet are file numbers. ``frames="auto"`` takes the first tree present in the order
selected, raw, cropped.
"""

from __future__ import annotations

from pathlib import Path

from recognizer.datasets.clips import RowFields, build_sample, parse_frame_cells
from recognizer.datasets.errors import AnnotationError, ReleaseNotFoundError
from recognizer.datasets.frames import find_child, find_file, find_tree
from recognizer.datasets.report import LoadReport, LoadResult
from recognizer.datasets.sheets import column, read_table

FPS = 200.0
SHEET_PATTERNS = ("CASME2-coding-*.xlsx", "CASME2*coding*.xlsx", "CASME2*coding*.xls")
TREES = {
    "selected": ("CASME2_RAW_selected", "CASME2-RAW-selected", "RAW_selected"),
    "raw": ("CASME2-RAW", "CASME2_RAW", "RAW"),
    "cropped": ("Cropped", "CASME2_Cropped", "CASME2-Cropped"),
}
REQUIRED = ("Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame")


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
    root = Path(root)
    if not root.is_dir():
        raise ReleaseNotFoundError(f"CASME II root not found: {root}")
    sheet_path = Path(annotation) if annotation else _find_sheet(root)
    tree_name, tree = _find_frames(root, frames)
    table = read_table(sheet_path, required=REQUIRED, what="CASME II coding sheet")
    version = "2019" if column(table, "Objective Classes") else "2014"
    report = LoadReport("casme2", str(sheet_path), rows_read=len(table.rows))
    report.note(
        f"sheet version {version} (detected by its columns); frame tree {tree_name}: {tree}"
    )
    aus_col = column(table, "Action Units")
    emotion_col = column(table, "Estimated Emotion", "Emotion")
    if emotion_col is None:
        raise AnnotationError(f"{table.where()}: no 'Estimated Emotion' column")
    objective_col = column(table, "Objective Classes")
    samples = []
    annotated = set()
    for row, cells in table.records():
        subject_cell, clip = cells["Subject"], cells["Filename"]
        subject_dir = find_child(tree, f"sub{subject_cell}") or find_child(tree, subject_cell)
        subject = subject_dir.name if subject_dir else f"sub{subject_cell}"
        name = f"{subject}/{clip}"
        parsed = parse_frame_cells(
            report,
            row,
            name,
            {
                "onset": cells["OnsetFrame"],
                "apex": cells["ApexFrame"],
                "offset": cells["OffsetFrame"],
            },
        )
        if parsed is None:
            continue
        folder = _clip_folder(subject_dir, clip) if subject_dir else None
        if folder is not None:
            annotated.add((subject_dir.name, folder.name))
        extra = {"version": version, "frames": tree_name}
        if objective_col:
            extra["objective_class"] = cells[objective_col]
        sample = build_sample(
            "casme2",
            RowFields(
                row=row,
                subject=subject,
                clip=clip,
                folder=folder,
                onset=parsed["onset"],
                apex=parsed["apex"],
                offset=parsed["offset"],
                fps=FPS,
                emotion=cells[emotion_col],
                aus=cells[aus_col] if aus_col else "",
                sheet_subject=subject_cell,
                apex_cell=cells["ApexFrame"],
                extra=extra,
            ),
            report,
            missing_apex=missing_apex,
        )
        if sample is not None:
            samples.append(sample)
    orphans = sorted(
        f"{s.name}/{c.name}"
        for s in tree.iterdir()
        if s.is_dir()
        for c in s.iterdir()
        if c.is_dir() and (s.name, c.name) not in annotated
    )
    if orphans:
        report.note(f"{len(orphans)} frame folders have no sheet row: {', '.join(orphans)}")
    report.kept = len(samples)
    return LoadResult(samples, report)


def _find_sheet(root: Path) -> Path:
    found = find_file(root, SHEET_PATTERNS)
    if not found:
        raise ReleaseNotFoundError(
            f"no CASME II coding sheet (CASME2-coding-*.xlsx) in {root}; pass annotation=PATH"
        )
    return sorted(found, key=lambda p: p.name)[-1]  # the newest date in the name


def _find_frames(root: Path, frames: str) -> tuple[str, Path]:
    if frames != "auto" and frames not in TREES:
        raise ValueError(f"frames must be 'auto' or one of {', '.join(TREES)}; got {frames!r}")
    order = list(TREES) if frames == "auto" else [frames]
    for name in order:
        tree = find_tree(root, TREES[name])
        if tree is not None:
            return name, tree
    wanted = ", ".join(TREES[n][0] for n in order)
    raise ReleaseNotFoundError(f"no CASME II frame tree ({wanted}) in {root}")


def _clip_folder(subject_dir: Path, clip: str) -> Path | None:
    """The clip folder; sheet and folder names may differ by a trailing 'f'."""
    for name in (clip, clip + "f", clip.removesuffix("f")):
        found = find_child(subject_dir, name, match_number=False)
        if found is not None:
            return found
    return None
