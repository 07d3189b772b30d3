"""MMEW (Ben et al., 2021): ``MMEW_Micro_Exp.xlsx`` and the ``Micro_Expression`` frame tree.

Expected under ``root``::

    MMEW_Micro_Exp.xlsx                               (or annotation=...)
    Micro_Expression/<emotion>/S01-01-001/1.jpg ...   (90 fps)

Some copies nest by subject first, or keep 'others' in a folder named ``repression``: clip
folders are therefore found by name anywhere below ``Micro_Expression`` (a clip folder name
must be unique there).
"""

from __future__ import annotations

from pathlib import Path

from recognizer.datasets.clips import RowFields, build_sample, parse_frame_cells
from recognizer.datasets.errors import ReleaseNotFoundError
from recognizer.datasets.frames import IMAGE_SUFFIXES, find_file, find_tree
from recognizer.datasets.report import LoadReport, LoadResult
from recognizer.datasets.sheets import column, read_table

FPS = 90.0
SHEET_PATTERNS = ("MMEW_Micro_Exp*.xlsx", "MMEW*Micro*.xlsx")
REQUIRED = ("Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame")


def load(
    root: str | Path,
    *,
    annotation: str | Path | None = None,
    missing_apex: str = "middle",
) -> LoadResult:
    """Load MMEW's micro-expressions."""
    root = Path(root)
    if not root.is_dir():
        raise ReleaseNotFoundError(f"MMEW root not found: {root}")
    if annotation is None:
        found = find_file(root, SHEET_PATTERNS)
        if not found:
            raise ReleaseNotFoundError(
                f"no MMEW sheet (MMEW_Micro_Exp.xlsx) in {root}; pass annotation=PATH"
            )
        annotation = found[0]
    tree = find_tree(root, ("Micro_Expression", "MicroExpression")) or root
    clip_dirs = _clip_folders(tree)
    table = read_table(annotation, required=REQUIRED, what="MMEW sheet")
    report = LoadReport("mmew", str(annotation), rows_read=len(table.rows))
    report.note(f"{len(clip_dirs)} clip folders found under {tree}")
    aus_col = column(table, "Action Units")
    emotion_col = column(table, "Estimated Emotion", "Emotion") or "Estimated Emotion"
    remarks_col = column(table, "remarks")
    samples = []
    for row, cells in table.records():
        subject, clip = cells["Subject"], cells["Filename"]
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
        candidates = clip_dirs.get(clip.lower(), [])
        if len(candidates) > 1:
            report.skip(row, name, f"clip folder name is not unique: {candidates}")
            continue
        extra = {"remarks": cells[remarks_col]} if remarks_col else {}
        sample = build_sample(
            "mmew",
            RowFields(
                row=row,
                subject=subject,
                clip=clip,
                folder=candidates[0] if candidates else tree / clip,
                onset=parsed["onset"],
                apex=parsed["apex"],
                offset=parsed["offset"],
                fps=FPS,
                emotion=cells.get(emotion_col, ""),
                aus=cells[aus_col] if aus_col else "",
                apex_cell=cells["ApexFrame"],
                extra=extra,
            ),
            report,
            missing_apex=missing_apex,
        )
        if sample is not None:
            samples.append(sample)
    report.kept = len(samples)
    return LoadResult(samples, report)


def _clip_folders(tree: Path) -> dict[str, list[Path]]:
    """Folders holding image files, by lower-case name."""
    out: dict[str, list[Path]] = {}
    for folder in sorted(p for p in tree.rglob("*") if p.is_dir()):
        if any(f.suffix.lower() in IMAGE_SUFFIXES for f in folder.iterdir() if f.is_file()):
            out.setdefault(folder.name.lower(), []).append(folder)
    return out
