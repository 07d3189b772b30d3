"""Reading annotation sheets and CSVs the way the releases store them.

Traps handled here: ids stored as text ('01', '006') are read with ``dtype=str`` so they keep
their spelling; empty header cells (pandas' ``Unnamed: N`` columns) are dropped; preamble rows
above the header (SAMM has 13) are skipped by searching for the header row; single-AU cells
stored as numbers (``4`` or ``4.0``) come back as the text ``"4"``.

Row numbers are 1-based spreadsheet rows (what Excel shows), so a report line can be found in
the file.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from recognizer.datasets.errors import AnnotationError, ReleaseNotFoundError

_NUMBER = re.compile(r"^[+-]?\d+(\.0+)?$")
_FLOAT_INT = re.compile(r"^[+-]?\d+\.0+$")


@dataclass(frozen=True)
class Table:
    """An annotation table: cleaned column names, text cells, spreadsheet row numbers.

    Attributes:
        frame: ``pandas.DataFrame`` of strings (``""`` for empty cells).
        rows: the 1-based spreadsheet row number of each data row.
        path: the file read.
        sheet: the sheet name (``None`` for CSV).
        header_row: the 1-based spreadsheet row of the header (SAMM: 14).
    """

    frame: pd.DataFrame
    rows: tuple[int, ...]
    path: Path
    sheet: str | None
    header_row: int = 1

    @property
    def columns(self) -> list[str]:
        return list(self.frame.columns)

    def records(self) -> Iterator[tuple[int, dict[str, str]]]:
        """``(row number, {column: text})`` for every data row."""
        yield from zip(self.rows, self.frame.to_dict("records"))

    def where(self) -> str:
        return f"{self.path}" + (f" [sheet {self.sheet}]" if self.sheet else "")


def cell_text(value: object) -> str:
    """A cell as stripped text; empty/NaN -> ``""``; ``"4.0"`` -> ``"4"``; ``"006"`` stays."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    text = str(value).strip()
    if text.lower() == "nan":
        return ""
    if _FLOAT_INT.match(text):  # a number cell read as float; text ids ('006') keep their zeros
        return str(int(float(text)))
    return text


def cell_int(value: object) -> int | None:
    """A frame-number cell: ``"46"``, ``"46.0"``, ``46`` -> 46; empty, ``"/"``, ``"-"`` -> None.

    Raises:
        ValueError: any other text (the caller reports it with the row).
    """
    text = cell_text(value)
    if text in ("", "/", "-", "?", "NA", "N/A"):
        return None
    if not _NUMBER.match(text):
        raise ValueError(f"not a frame number: {text!r}")
    return int(float(text))


def read_table(
    path: str | Path,
    *,
    required: Sequence[str | Sequence[str]],
    sheet: str | None = None,
    header_search: int = 20,
    what: str = "annotation",
) -> Table:
    """Read an ``.xlsx``/``.xls``/``.csv`` table whose header row holds ``required`` columns.

    Args:
        path: the file.
        required: columns that identify the header row (matched ignoring case and surrounding
            spaces); an item may be a tuple of spellings, any one of which will do.
        sheet: sheet name for spreadsheets (``None``: the first sheet).
        header_search: how many top rows may precede the header (preamble rows).
        what: what the file should be, for messages (``"SAMM sheet"``).

    Raises:
        ReleaseNotFoundError: the file does not exist.
        AnnotationError: the sheet is missing (the message lists the sheets there) or no row in
            the first ``header_search`` rows holds every required column (a foreign file).
    """
    path = Path(path)
    if not path.is_file():
        raise ReleaseNotFoundError(f"{what} not found: {path}")
    try:
        if path.suffix.lower() == ".csv":
            raw = pd.read_csv(path, header=None, dtype=str, keep_default_na=False)
            sheet = None
        else:
            with pd.ExcelFile(path) as book:
                names = [str(n) for n in book.sheet_names]
                if sheet is None:
                    sheet = names[0]
                elif sheet not in names:
                    raise AnnotationError(
                        f"{path}: no sheet {sheet!r} in this {what}; sheets: {', '.join(names)}"
                    )
                raw = pd.read_excel(book, sheet_name=sheet, header=None, dtype=str)
    except AnnotationError:
        raise
    except Exception as err:
        raise AnnotationError(f"{path}: cannot read this {what} ({err})") from err
    raw = raw.map(cell_text) if hasattr(raw, "map") else raw.applymap(cell_text)
    header = _find_header(raw, required, header_search)
    if header is None:
        where = f"{path}" + (f" [sheet {sheet}]" if sheet else "")
        first = [c for c in raw.iloc[0].tolist() if c] if len(raw) else []
        raise AnnotationError(
            f"{where}: not a {what}: no row among the first {header_search} holds the columns "
            f"{', '.join(' or '.join(s) for s in _spellings(required))} "
            f"(first row: {', '.join(first) or 'empty'})"
        )
    names = [c if c else f"Unnamed: {j}" for j, c in enumerate(raw.iloc[header].tolist())]
    frame = raw.iloc[header + 1 :].copy()
    frame.columns = names
    frame = frame[[c for c in names if not c.startswith("Unnamed: ")]]
    frame = frame.loc[:, ~frame.columns.duplicated()]
    rows = [header + 2 + i for i in range(len(frame))]  # 1-based; header is row header + 1
    nonblank = (frame != "").any(axis=1).to_numpy()
    frame = frame[nonblank].reset_index(drop=True)
    rows = [r for r, keep in zip(rows, nonblank) if keep]
    return Table(frame, tuple(rows), path, sheet, header_row=header + 1)


def _spellings(required: Sequence[str | Sequence[str]]) -> list[tuple[str, ...]]:
    return [(r,) if isinstance(r, str) else tuple(r) for r in required]


def _find_header(
    raw: pd.DataFrame, required: Sequence[str | Sequence[str]], search: int
) -> int | None:
    wanted = [{s.strip().lower() for s in spellings} for spellings in _spellings(required)]
    for i in range(min(search, len(raw))):
        cells = {str(c).strip().lower() for c in raw.iloc[i].tolist()}
        if all(cells & spellings for spellings in wanted):
            return i
    return None


def column(table: Table, *names: str) -> str | None:
    """The first of ``names`` present in ``table`` (case-insensitive), as spelled there."""
    lower = {c.lower(): c for c in table.columns}
    for name in names:
        if name.lower() in lower:
            return lower[name.lower()]
    return None
