"""SAMM (Davison et al., 2018): ``SAMM_Micro_FACS_Codes_v2.xlsx``, sheet ``MICRO_ONLY``.

Expected under ``root``::

    SAMM_Micro_FACS_Codes_v2.xlsx          (or annotation=...; 13 preamble rows, header row 14)
    006/006_1_2/006_05562.jpg ...          (<subject>/<clip>/<subject>_<frame>.jpg)

The frame folders may also sit in ``root/SAMM/``. Padding is 4 or 5 digits depending on the
clip; frames are found by number. Subjects keep their text spelling ('006'). 200 fps.
"""

from __future__ import annotations

from pathlib import Path

from recognizer.datasets.clips import RowFields, build_sample, parse_frame_cells
from recognizer.datasets.errors import ReleaseNotFoundError
from recognizer.datasets.frames import find_child, find_file, find_tree
from recognizer.datasets.report import LoadReport, LoadResult
from recognizer.datasets.sheets import column, read_table

FPS = 200.0
SHEET = "MICRO_ONLY"
SHEET_PATTERNS = ("SAMM_Micro_FACS_Codes*.xlsx", "SAMM*FACS*.xlsx")
REQUIRED = ("Subject", "Filename", "Onset Frame", "Apex Frame", "Offset Frame")


def load(
    root: str | Path,
    *,
    annotation: str | Path | None = None,
    sheet: str = SHEET,
    missing_apex: str = "middle",
) -> LoadResult:
    """Load SAMM.

    Args:
        root: the release folder (subject folders, or a ``SAMM/`` folder holding them).
        annotation: the FACS-code sheet; default ``SAMM_Micro_FACS_Codes*.xlsx`` in ``root``.
        sheet: the sheet to read.
        missing_apex: ``"middle"`` or ``"skip"`` for rows without an apex.
    """
    root = Path(root)
    if not root.is_dir():
        raise ReleaseNotFoundError(f"SAMM root not found: {root}")
    if annotation is None:
        found = find_file(root, SHEET_PATTERNS)
        if not found:
            raise ReleaseNotFoundError(
                f"no SAMM sheet (SAMM_Micro_FACS_Codes_v2.xlsx) in {root}; pass annotation=PATH"
            )
        annotation = found[-1]
    frames_root = find_tree(root, ("SAMM",)) or root
    table = read_table(annotation, required=REQUIRED, sheet=sheet, what="SAMM FACS-code sheet")
    report = LoadReport("samm", f"{annotation} [{sheet}]", rows_read=len(table.rows))
    report.note(
        f"header on row {table.rows[0] - 1 if table.rows else '?'}; frames in {frames_root}"
    )
    aus_col = column(table, "Action Units")
    emotion_col = column(table, "Estimated Emotion", "Emotion") or "Estimated Emotion"
    objective_col = column(table, "Objective Classes")
    samples = []
    for row, cells in table.records():
        subject_cell, clip = cells["Subject"], cells["Filename"]
        subject_dir = find_child(frames_root, subject_cell)
        subject = subject_dir.name if subject_dir else subject_cell
        name = f"{subject}/{clip}"
        parsed = parse_frame_cells(
            report,
            row,
            name,
            {
                "onset": cells["Onset Frame"],
                "apex": cells["Apex Frame"],
                "offset": cells["Offset Frame"],
            },
        )
        if parsed is None:
            continue
        folder = find_child(subject_dir, clip, match_number=False) if subject_dir else None
        extra = {"objective_class": cells[objective_col]} if objective_col else {}
        sample = build_sample(
            "samm",
            RowFields(
                row=row,
                subject=subject,
                clip=clip,
                folder=folder,
                onset=parsed["onset"],
                apex=parsed["apex"],
                offset=parsed["offset"],
                fps=FPS,
                emotion=cells.get(emotion_col, ""),
                aus=cells[aus_col] if aus_col else "",
                sheet_subject=subject_cell,
                apex_cell=cells["Apex Frame"],
                extra=extra,
            ),
            report,
            missing_apex=missing_apex,
        )
        if sample is not None:
            samples.append(sample)
    report.kept = len(samples)
    return LoadResult(samples, report)
