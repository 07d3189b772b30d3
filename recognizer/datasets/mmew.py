"""MMEW (Ben et al., 2021): ``MMEW_Micro_Exp.xlsx`` and the ``Micro_Expression`` frame tree.

Expected under ``root``::

    MMEW_Micro_Exp.xlsx                               (or annotation=...)
    Micro_Expression/<emotion>/S01-01-001/1.jpg ...   (90 fps)

Some copies nest by subject first, or keep 'others' in a folder named ``repression``: clip
folders are therefore found by name anywhere below ``Micro_Expression`` (a clip folder name
must be unique there).
"""

from __future__ import annotations

from recognizer.datasets.engine import COMMON_COLUMNS, ReleaseSpec, sheet_loader
from recognizer.datasets.layouts import ClipFoldersAnywhere

SPEC = ReleaseSpec(
    name="mmew",
    title="MMEW",
    what="MMEW sheet",
    sheet_patterns=("MMEW_Micro_Exp*.xlsx", "MMEW*Micro*.xlsx"),
    sheet_hint="MMEW_Micro_Exp.xlsx",
    columns=COMMON_COLUMNS,
    extra_columns={"remarks": ("remarks",)},
    fps=90.0,
    frame_trees=("Micro_Expression", "MicroExpression"),
    layout=ClipFoldersAnywhere(),
)


load = sheet_loader(SPEC, what="MMEW's micro-expressions")
