"""SAMM (Davison et al., 2018): ``SAMM_Micro_FACS_Codes_v2.xlsx``, sheet ``MICRO_ONLY``.

Expected under ``root``::

    SAMM_Micro_FACS_Codes_v2.xlsx          (or annotation=...; 13 preamble rows, header row 14)
    006/006_1_2/006_05562.jpg ...          (<subject>/<clip>/<subject>_<frame>.jpg)

The frame folders may also sit in ``root/SAMM/``. Padding is 4 or 5 digits depending on the
clip; frames are found by number. Subjects keep their text spelling ('006'). 200 fps.
"""

from __future__ import annotations

from recognizer.datasets.engine import COMMON_COLUMNS, ReleaseSpec, sheet_loader

SPEC = ReleaseSpec(
    name="samm",
    title="SAMM",
    what="SAMM FACS-code sheet",
    sheet_patterns=("SAMM_Micro_FACS_Codes*.xlsx", "SAMM*FACS*.xlsx"),
    sheet_hint="SAMM_Micro_FACS_Codes_v2.xlsx",
    newest_sheet=True,
    sheet="MICRO_ONLY",
    columns=COMMON_COLUMNS,
    extra_columns={"objective_class": ("Objective Classes",)},
    fps=200.0,
    frame_trees=("SAMM",),
)


load = sheet_loader(
    SPEC,
    what="SAMM",
    root_doc="the release folder (subject folders, or a ``SAMM/`` folder holding them).",
)
