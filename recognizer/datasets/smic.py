"""SMIC (Li et al., 2013): the original release (labels from folders) or SMIC-E (a sheet).

Original release, expected under ``root`` (``SMIC_all_raw`` or its parent)::

    HS/s1/micro/{negative,positive,surprise}/s1_ne_01/image<frame>.bmp   part="HS" (100 fps)
    VIS/..., NIR/...                                                   (25 fps; same layout)

It has no onset/apex/offset: onset and offset are the first and last frames present and the apex
is unknown (``apex=None``: the middle frame is used), which the report says.

SMIC-E, expected under ``root``::

    SMIC-HS-E_annotation.xlsx                (sheets HS, VIS; or annotation=...)
    SMIC-HS-E/s01/s1_ne_01/image<frame>.jpg

with columns ``Subject, Filename, OnsetF, OffsetF, ... Emotion``; an ``ApexF`` column is used
when present, else the middle frame. MEGC2019 uses the original HS release (164 clips).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from mesynth.face.frame_files import discover_frames
from recognizer.datasets.clips import RowFields, build_sample
from recognizer.datasets.engine import ReleaseSpec, load_release, release_root
from recognizer.datasets.errors import ReleaseNotFoundError
from recognizer.datasets.frames import find_child, find_file, find_tree
from recognizer.datasets.report import LoadReport, LoadResult

FPS = {"HS": 100.0, "VIS": 25.0, "NIR": 25.0}
LABELS = ("negative", "positive", "surprise")
E_SHEET_PATTERNS = ("SMIC*E*annotation*.xlsx", "SMIC*E*annotation*.xls", "SMIC*E*.csv")

#: SMIC-E; :func:`load` sets the sheet, frame rate and frame tree of the chosen part.
E_SPEC = ReleaseSpec(
    name="smic",
    title="SMIC",
    what="SMIC-E annotation",
    sheet_patterns=E_SHEET_PATTERNS,
    sheet_hint="SMIC-HS-E_annotation.xlsx",
    columns={
        "subject": ("Subject",),
        "clip": ("Filename",),
        "onset": ("OnsetF",),
        "apex": ("ApexF", "Apex"),
        "offset": ("OffsetF",),
        "emotion": ("Emotion",),
    },
    required=("subject", "clip", "onset", "offset", "emotion"),
    fps=FPS["HS"],
)


def load(
    root: str | Path,
    *,
    part: str = "HS",
    layout: str = "auto",
    annotation: str | Path | None = None,
) -> LoadResult:
    """Load SMIC.

    Args:
        root: ``SMIC_all_raw`` (or its parent) for the original; the SMIC-E folder for SMIC-E.
        part: ``"HS"``, ``"VIS"`` or ``"NIR"`` (the SMIC-E sheet has HS and VIS).
        layout: ``"auto"`` (SMIC-E when an annotation sheet is found), ``"original"`` or ``"e"``.
        annotation: the SMIC-E sheet (default: ``SMIC*E*annotation*.xlsx`` in ``root``).
    """
    if part not in FPS:
        raise ValueError(f"part must be one of {', '.join(FPS)}; got {part!r}")
    if layout not in ("auto", "original", "e"):
        raise ValueError(f"layout must be 'auto', 'original' or 'e'; got {layout!r}")
    root = release_root(E_SPEC, root)
    sheets = [Path(annotation)] if annotation else find_file(root, E_SHEET_PATTERNS)
    if layout == "e" or (layout == "auto" and sheets):
        if not sheets:
            raise ReleaseNotFoundError(f"no SMIC-E annotation sheet in {root}")
        spec = replace(
            E_SPEC, sheet=part, fps=FPS[part], frame_trees=(f"SMIC-{part}-E", f"SMIC_{part}_E")
        )
        return load_release(spec, root, annotation=sheets[0], extra={"part": part, "layout": "e"})
    return _load_original(root, part)


def _load_original(root: Path, part: str) -> LoadResult:
    base = find_tree(root, ("SMIC_all_raw",)) or root
    part_dir = find_child(base, part, match_number=False)
    if part_dir is None:
        raise ReleaseNotFoundError(
            f"no SMIC part folder {part!r} in {base} (expected SMIC_all_raw/{part}/s1/micro/...)"
        )
    report = LoadReport("smic", str(part_dir))
    samples = []
    for subject_dir in sorted(p for p in part_dir.iterdir() if p.is_dir()):
        micro = find_child(subject_dir, "micro", match_number=False)
        if micro is None:
            report.skip(None, subject_dir.name, f"no micro/ folder in {subject_dir}")
            continue
        for label_dir in sorted(p for p in micro.iterdir() if p.is_dir()):
            label = label_dir.name.lower()
            for clip_dir in sorted(p for p in label_dir.iterdir() if p.is_dir()):
                report.rows_read += 1
                name = f"{subject_dir.name}/{clip_dir.name}"
                if label not in LABELS:
                    report.skip(None, name, f"unknown label folder {label_dir}")
                    continue
                _, numbers = discover_frames(clip_dir)
                sample = build_sample(
                    "smic",
                    RowFields(
                        row=None,
                        subject=subject_dir.name,
                        clip=clip_dir.name,
                        folder=clip_dir,
                        onset=numbers[0] if numbers else None,
                        apex=None,
                        offset=numbers[-1] if numbers else None,
                        fps=FPS[part],
                        emotion=label,
                        extra={"part": part, "layout": "original"},
                    ),
                    report,
                    report_missing_apex=False,
                )
                if sample is not None:
                    samples.append(sample)
    report.note(
        f"original release, part {part}: labels from folders; no apex annotated, the middle "
        f"frame is used for all {len(samples)} clips; onset/offset = first/last frame present"
    )
    report.kept = len(samples)
    return LoadResult(samples, report)
