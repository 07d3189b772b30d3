"""CAS(ME)^3 part A (Li et al., 2022): the ``label`` sheet of the part A ME label workbook.

Expected under ``root``::

    cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx      (or annotation=...)
    part_A/spNO.1/a/color/355.jpg ...              (unpadded, with dropped frames; 30 fps)

``Filename`` is a task letter and one video can hold several MEs: the first row of a
(subject, video) keeps the letter as clip id, later rows become ``a2``, ``a3``... (a row that
already spells ``a2`` keeps it). The frames of clip ``a3`` are those of video ``a``. Dropped
frames are allowed inside onset..offset; onset and offset must lie within the frames present.
"""

from __future__ import annotations

import re
from pathlib import Path

from recognizer.datasets.clips import RowFields, build_sample, parse_frame_cells
from recognizer.datasets.errors import ReleaseNotFoundError
from recognizer.datasets.frames import find_child, find_file, find_tree
from recognizer.datasets.report import LoadReport, LoadResult
from recognizer.datasets.sheets import column, read_table

FPS = 30.0
SHEET = "label"
SHEET_PATTERNS = ("cas(me)3_part_A_ME_label*.xlsx", "*part_A*label*.xlsx")
REQUIRED = ("Subject", "Filename", "Onset", "Apex", "Offset")


def load(
    root: str | Path,
    *,
    annotation: str | Path | None = None,
    sheet: str = SHEET,
    missing_apex: str = "middle",
) -> LoadResult:
    """Load CAS(ME)^3 part A (the ME rows of the label sheet, colour frames)."""
    root = Path(root)
    if not root.is_dir():
        raise ReleaseNotFoundError(f"CAS(ME)^3 root not found: {root}")
    if annotation is None:
        found = find_file(root, SHEET_PATTERNS)
        if not found:
            raise ReleaseNotFoundError(
                f"no CAS(ME)^3 label sheet (cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx) in {root}; "
                "pass annotation=PATH"
            )
        annotation = found[0]
    frames_root = find_tree(root, ("part_A", "partA")) or root
    table = read_table(annotation, required=REQUIRED, sheet=sheet, what="CAS(ME)^3 label sheet")
    report = LoadReport("casme3", f"{annotation} [{sheet}]", rows_read=len(table.rows))
    report.note(f"frames in {frames_root}/<subject>/<video>/color/")
    aus_col = column(table, "AU", "Action Units")
    emotion_col = column(table, "emotion", "Estimated Emotion") or "emotion"
    objective_col = column(table, "Objective class", "Objective Classes")
    seen: dict[tuple[str, str], set[str]] = {}
    samples = []
    for row, cells in table.records():
        subject, cell = cells["Subject"], cells["Filename"]
        video = re.sub(r"\d+$", "", cell) or cell
        used = seen.setdefault((subject, video), set())
        clip = cell
        k = 2
        while clip in used:
            clip, k = f"{video}{k}", k + 1
        used.add(clip)
        name = f"{subject}/{clip}"
        parsed = parse_frame_cells(
            report,
            row,
            name,
            {"onset": cells["Onset"], "apex": cells["Apex"], "offset": cells["Offset"]},
        )
        if parsed is None:
            continue
        subject_dir = find_child(frames_root, subject, match_number=False)
        video_dir = find_child(subject_dir, video, match_number=False) if subject_dir else None
        folder = None
        if video_dir is not None:
            folder = find_child(video_dir, "color", match_number=False) or video_dir
        extra = {"video": video}
        if objective_col:
            extra["objective_class"] = cells[objective_col]
        sample = build_sample(
            "casme3",
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
                apex_cell=cells["Apex"],
                extra=extra,
            ),
            report,
            missing_apex=missing_apex,
        )
        if sample is not None:
            samples.append(sample)
    report.kept = len(samples)
    return LoadResult(samples, report)
