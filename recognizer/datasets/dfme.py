"""DFME (Zhao et al., 2023) through a column and path mapping the user can set.

No public sheet layout is known for DFME, so this loader reads any sheet or CSV through a
mapping. The default mapping expects under ``root``::

    DFME*.xlsx | DFME*.csv           columns Subject, Filename, OnsetFrame, ApexFrame,
                                     OffsetFrame, Action Units, Emotion, Part (A/B/C)
    <Part>/<Subject>/<Filename>/*.jpg   frame folders (frames="{part}/{subject}/{clip}")

and the frame rates of the paper: part A 500 fps, B 300 fps, C 200 fps. Override any of it::

    load("dfme", root, annotation="labels.csv",
         columns={"subject": "participant", "clip": "video", "emotion": "label"},
         frames="clips/{clip}", fps={"A": 500, "B": 300, "C": 200}, default_part="C")

``frames`` is a ``str.format`` pattern over ``subject``, ``clip``, ``part``, ``emotion`` and every
column of the sheet by its name.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from recognizer.datasets.clips import RowFields, build_sample, parse_frame_cells
from recognizer.datasets.errors import AnnotationError, ReleaseNotFoundError
from recognizer.datasets.frames import find_file
from recognizer.datasets.report import LoadReport, LoadResult
from recognizer.datasets.sheets import read_table

DEFAULT_COLUMNS: dict[str, str] = {
    "subject": "Subject",
    "clip": "Filename",
    "onset": "OnsetFrame",
    "apex": "ApexFrame",
    "offset": "OffsetFrame",
    "aus": "Action Units",
    "emotion": "Emotion",
    "part": "Part",
}
#: keys that must name a column; the others are optional.
REQUIRED_KEYS = ("subject", "clip", "onset", "offset", "emotion")
DEFAULT_FPS: dict[str, float] = {"A": 500.0, "B": 300.0, "C": 200.0}
DEFAULT_FRAMES = "{part}/{subject}/{clip}"
SHEET_PATTERNS = ("DFME*.xlsx", "DFME*.xls", "DFME*.csv")


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
        columns: overrides of :data:`DEFAULT_COLUMNS` (keys subject, clip, onset, apex, offset,
            aus, emotion, part).
        frames: frame-folder pattern relative to ``root``.
        fps: frames per second per part (default :data:`DEFAULT_FPS`).
        default_part: the part of rows without a part column or cell.
        missing_apex: ``"middle"`` or ``"skip"`` for rows without an apex.

    Raises:
        AnnotationError: a required mapped column is missing, or a row's part has no fps.
    """
    root = Path(root)
    if not root.is_dir():
        raise ReleaseNotFoundError(f"DFME root not found: {root}")
    mapping = {**DEFAULT_COLUMNS, **dict(columns or {})}
    unknown = set(mapping) - set(DEFAULT_COLUMNS)
    if unknown:
        raise ValueError(
            f"unknown column keys {sorted(unknown)}; known keys: {', '.join(DEFAULT_COLUMNS)}"
        )
    rates = dict(DEFAULT_FPS if fps is None else fps)
    if annotation is None:
        found = find_file(root, SHEET_PATTERNS)
        if not found:
            raise ReleaseNotFoundError(
                f"no DFME annotation (DFME*.xlsx or DFME*.csv) in {root}; pass annotation=PATH"
            )
        annotation = found[0]
    annotation = Path(annotation)
    if not annotation.is_absolute() and not annotation.exists():
        annotation = root / annotation
    required = [mapping[k] for k in REQUIRED_KEYS]
    table = read_table(annotation, required=required, sheet=sheet, what="DFME annotation")
    have = {c.lower(): c for c in table.columns}
    col = {k: have.get(v.lower()) for k, v in mapping.items()}
    report = LoadReport("dfme", table.where(), rows_read=len(table.rows))
    report.note(f"frame folders: {root}/{frames}; fps per part: {rates}")
    samples = []
    for row, cells in table.records():
        subject, clip = cells[col["subject"]], cells[col["clip"]]
        part = (cells[col["part"]] if col["part"] else "") or default_part
        name = f"{subject}/{clip}"
        if part not in rates:
            raise AnnotationError(
                f"{table.where()}, row {row}: part {part!r} has no frame rate; give fps="
                f"{{{part!r}: ...}} (known parts: {', '.join(rates)})"
            )
        parsed = parse_frame_cells(
            report,
            row,
            name,
            {
                "onset": cells[col["onset"]],
                "apex": cells[col["apex"]] if col["apex"] else "",
                "offset": cells[col["offset"]],
            },
        )
        if parsed is None:
            continue
        values = {**cells, "subject": subject, "clip": clip, "part": part}
        values["emotion"] = cells[col["emotion"]]
        try:
            folder = root / frames.format_map(values)
        except (KeyError, ValueError, IndexError) as err:
            raise AnnotationError(
                f"frames pattern {frames!r} cannot be filled from row {row} of {table.where()} "
                f"({err!r}); use subject, clip, part, emotion or a column name"
            ) from err
        sample = build_sample(
            "dfme",
            RowFields(
                row=row,
                subject=subject,
                clip=clip,
                folder=folder,
                onset=parsed["onset"],
                apex=parsed["apex"],
                offset=parsed["offset"],
                fps=float(rates[part]),
                emotion=cells[col["emotion"]],
                aus=cells[col["aus"]] if col["aus"] else "",
                apex_cell=cells[col["apex"]] if col["apex"] else "",
                extra={"part": part},
            ),
            report,
            missing_apex=missing_apex,
        )
        if sample is not None:
            samples.append(sample)
    report.kept = len(samples)
    return LoadResult(samples, report)
