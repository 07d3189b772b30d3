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

from collections.abc import Sequence
from dataclasses import replace

from mesynth.face.frame_files import split_trailing_number
from recognizer.datasets.engine import ReleaseSpec, sheet_loader
from recognizer.datasets.layouts import Row, SubjectClipFolders


def number_repeated_videos(rows: Sequence[Row]) -> list[Row]:
    """Give every ME of one (subject, video) its own clip id: ``a``, ``a2``, ``a3``...

    The video (the clip id without its trailing number) is kept in ``extra["video"]``.
    """
    seen: dict[tuple[str, str], set[str]] = {}
    out = []
    for row in rows:
        video = split_trailing_number(row.clip)[0] or row.clip
        used = seen.setdefault((row.subject, video), set())
        clip, k = row.clip, 2
        while clip in used:
            clip, k = f"{video}{k}", k + 1
        used.add(clip)
        values = {**row.values, "clip": clip}
        out.append(replace(row, values=values, extra={**row.extra, "video": video}))
    return out


def _video_folder(row: Row) -> tuple[str, ...]:
    return (row.extra["video"],)


SPEC = ReleaseSpec(
    name="casme3",
    title="CAS(ME)^3",
    what="CAS(ME)^3 label sheet",
    sheet_patterns=("cas(me)3_part_A_ME_label*.xlsx", "*part_A*label*.xlsx"),
    sheet_hint="cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx",
    sheet="label",
    columns={
        "subject": ("Subject",),
        "clip": ("Filename",),
        "onset": ("Onset",),
        "apex": ("Apex",),
        "offset": ("Offset",),
        "aus": ("AU", "Action Units"),
        "emotion": ("emotion", "Estimated Emotion"),
    },
    extra_columns={"objective_class": ("Objective class", "Objective Classes")},
    fps=30.0,
    frame_trees=("part_A", "partA"),
    layout=SubjectClipFolders(
        clip_names=_video_folder,
        inside="color",
        subject_by_number=False,
        subject_from_folder=False,
    ),
    prepare_rows=number_repeated_videos,
)


load = sheet_loader(SPEC, what="CAS(ME)^3 part A (the ME rows of the label sheet, colour frames)")
