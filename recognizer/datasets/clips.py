"""From one annotation row to one checked :class:`Sample` (or a reported skip).

Every loader funnels its rows through :func:`build_sample`, so every dataset gets the same
checks: the frame folder exists and holds numbered images, the known errata are applied, and
``onset <= apex <= offset`` holds with onset and offset inside the frames present.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mesynth.face.frame_files import FrameNumberError, discover_frames
from recognizer.data.samples import Sample, qualify_subject
from recognizer.datasets.errata import find_erratum
from recognizer.datasets.report import LoadReport
from recognizer.datasets.sheets import cell_int


@dataclass
class RowFields:
    """What a loader read from one row, before any check.

    ``subject`` is the subject as released (the folder spelling when the loader knows it);
    ``sheet_subject`` is the sheet's spelling, used to match errata.
    """

    row: int | None
    subject: str
    clip: str
    folder: Path | None
    onset: int | None
    apex: int | None
    offset: int | None
    fps: float
    emotion: str
    aus: str = ""
    sheet_subject: str | None = None
    apex_cell: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)


def build_sample(
    dataset: str,
    fields: RowFields,
    report: LoadReport,
    *,
    missing_apex: str = "middle",
    report_missing_apex: bool = True,
) -> Sample | None:
    """Check one row against its frames; return the sample or record a skip and return None.

    Args:
        dataset: loader name (qualifies the subject).
        fields: the row as read.
        report: receives skips, fixes and notes.
        missing_apex: ``"middle"`` keeps rows without an apex (``apex=None``, middle frame used)
            and reports it; ``"skip"`` skips them.
        report_missing_apex: report each row without an apex (loaders of releases that never
            have one, like SMIC, write one note instead).
    """
    name = f"{fields.subject}/{fields.clip}"
    row = fields.row
    apex = fields.apex
    extra = dict(fields.extra)
    if row is not None:
        extra["row"] = str(row)
    erratum = find_erratum(dataset, fields.sheet_subject or fields.subject, fields.clip)
    if erratum is not None:
        extra["erratum"] = erratum.problem
        if erratum.megc2019_excluded:
            extra["megc2019_excluded"] = "1"
        if erratum.action == "skip":
            report.skip(row, name, f"known erratum: {erratum.problem}")
            return None
        if erratum.action == "drop_apex":
            report.fix(
                row, name, f"known erratum ({erratum.problem}): apex dropped, middle frame used"
            )
            apex = None
    known = f" (known erratum: {erratum.problem})" if erratum is not None else ""

    if fields.folder is None or not fields.folder.is_dir():
        report.skip(row, name, f"frame folder not found: {fields.folder}")
        return None
    try:
        frames, numbers = discover_frames(fields.folder)
    except FrameNumberError as err:
        report.skip(row, name, str(err))
        return None
    if not numbers:
        report.skip(row, name, f"no numbered image files in {fields.folder}")
        return None
    if fields.onset is None or fields.offset is None:
        missing = "onset" if fields.onset is None else "offset"
        report.skip(row, name, f"{missing} missing{known}")
        return None
    onset, offset = fields.onset, fields.offset
    if offset < onset:
        report.skip(row, name, f"offset {offset} before onset {onset}{known}")
        return None
    if onset < numbers[0] or offset > numbers[-1]:
        report.skip(
            row,
            name,
            f"frames {onset}..{offset} not all present: {fields.folder} holds "
            f"{numbers[0]}..{numbers[-1]}{known}",
        )
        return None
    if not any(onset <= n <= offset for n in numbers):
        report.skip(row, name, f"no frame between onset {onset} and offset {offset}")
        return None
    if apex is not None and not onset <= apex <= offset:
        where = "before onset" if apex < onset else "after offset"
        report.skip(row, name, f"apex {apex} {where} ({onset}..{offset}){known}")
        return None
    if apex is None and erratum is None:
        cell = repr(fields.apex_cell) if fields.apex_cell else "empty"
        if missing_apex == "skip":
            report.skip(row, name, f"no apex ({cell})")
            return None
        if report_missing_apex:
            report.fix(row, name, f"no apex ({cell}): middle frame used")
    return Sample(
        dataset=dataset,
        subject=qualify_subject(dataset, fields.subject),
        clip=fields.clip,
        frames=frames,
        frame_numbers=numbers,
        onset=onset,
        apex=apex,
        offset=offset,
        fps=float(fields.fps),
        emotion=fields.emotion,
        aus=fields.aus,
        source="real",
        identity=qualify_subject(dataset, fields.subject),
        extra=extra,
    )


def parse_frame_cells(
    report: LoadReport, row: int | None, name: str, cells: Mapping[str, str]
) -> dict[str, int | None] | None:
    """Parse onset/apex/offset cells; on text that is no frame number, skip the row."""
    out: dict[str, int | None] = {}
    for key, text in cells.items():
        try:
            out[key] = cell_int(text)
        except ValueError as err:
            report.skip(row, name, f"{key}: {err}")
            return None
    return out
