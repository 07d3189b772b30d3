"""Templates from the early rise of macro-expressions in OpenFace-style AU intensity CSVs.

An OpenFace CSV has a ``frame`` column, optionally ``success`` (1 when the face was tracked)
and AU intensity columns ``AU01_r`` ... ``AU45_r`` on OpenFace's 0-5 scale; OpenFace writes
headers with a leading space (`` AU01_r``), which is accepted.

For one video (frames with ``success == 0`` dropped, sorted by frame):

1. baseline: each AU's intensity on the first frame, subtracted and clipped at 0;
2. active AUs: those whose raw intensity reaches ``active_threshold`` somewhere;
3. apex: the frame where the summed baseline-free intensity of the active AUs peaks;
4. progress: that sum divided by its peak, over the frames up to the apex; the *early rise*
   is the frames whose progress lies in ``fraction`` (default 25-50 % of the way to the peak;
   if the rise jumps over the window, the first frame past its start);
5. the template intensity of each active AU is its mean baseline-free intensity over the early
   rise divided by ``divisor`` (default 5, as MiE-X did: 5 is OpenFace's maximum, so the
   result is the fraction of a maximal macro-expression, a ME-level size), clipped to 1. AUs
   still at 0 in the early rise are left out.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from mesynth.templates.types import TemplateAU, TemplateError

_AU_COLUMN = re.compile(r"^AU(\d{1,2})_r$")


class MacroOnsetError(TemplateError):
    """A macro-expression CSV that cannot be used; the message names the file and row."""


def read_openface_intensities(path: str | Path) -> tuple[np.ndarray, tuple[int, ...], np.ndarray]:
    """Read an OpenFace-style AU intensity CSV.

    Returns:
        ``frames`` ``(T,)`` int64 (sorted), AU ``codes`` ``(K,)`` and ``intensities``
        ``(T, K)`` float64 on OpenFace's 0-5 scale, tracked frames only.

    Raises:
        MacroOnsetError: unreadable file, missing ``frame`` or AU columns, a non-numeric cell
            (file and CSV line named), or no tracked frame.
    """
    path = Path(path)
    try:
        table = pd.read_csv(path, skipinitialspace=True, dtype=str)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise MacroOnsetError(f"{path}: cannot read CSV: {error}") from error
    table.columns = [str(c).strip() for c in table.columns]
    columns = {int(m[1]): c for c in table.columns if (m := _AU_COLUMN.match(c))}
    if "frame" not in table.columns or not columns:
        raise MacroOnsetError(
            f"{path}: expected a 'frame' column and AU intensity columns like 'AU01_r'; "
            f"found {', '.join(table.columns)}"
        )
    needed = ["frame", *(["success"] if "success" in table.columns else []), *columns.values()]
    numeric = table[needed].apply(lambda col: pd.to_numeric(col.str.strip(), errors="coerce"))
    bad = numeric.isna()
    if bad.to_numpy().any():
        row, column = np.argwhere(bad.to_numpy())[0]
        raise MacroOnsetError(
            f"{path}: line {row + 2} (data row {row + 1}), column {needed[column]!r}: "
            f"{table[needed[column]].iloc[row]!r} is not a number"
        )
    if "success" in numeric:
        numeric = numeric[numeric["success"] > 0.5]
    if numeric.empty:
        raise MacroOnsetError(f"{path}: no tracked frame (success == 1)")
    numeric = numeric.sort_values("frame", kind="stable")
    codes = tuple(sorted(columns))
    intensities = numeric[[columns[c] for c in codes]].to_numpy(dtype=np.float64)
    return numeric["frame"].to_numpy(dtype=np.int64), codes, intensities


def early_rise_aus(
    path: str | Path,
    fraction: tuple[float, float] = (0.25, 0.5),
    divisor: float = 5.0,
    active_threshold: float = 1.0,
) -> tuple[TemplateAU, ...]:
    """Bilateral template AUs at the early rise of the macro-expression in ``path``.

    Raises:
        MacroOnsetError: bad CSV (see :func:`read_openface_intensities`), bad arguments, or no
            AU that rises past ``active_threshold``.
    """
    low, high = fraction
    if not 0.0 <= low <= high <= 1.0:
        raise MacroOnsetError(f"fraction must satisfy 0 <= low <= high <= 1, got {fraction}")
    if divisor <= 0:
        raise MacroOnsetError(f"divisor must be positive, got {divisor}")
    _, codes, raw = read_openface_intensities(path)
    rise = np.clip(raw - raw[0], 0.0, None)
    active = (raw.max(0) >= active_threshold) & (rise.max(0) > 0)
    if not active.any():
        raise MacroOnsetError(
            f"{path}: no AU rises to active_threshold={active_threshold} (OpenFace 0-5 scale)"
        )
    total = rise[:, active].sum(1)
    apex = int(np.argmax(total))
    progress = total[: apex + 1] / total[apex]
    window = np.flatnonzero((progress >= low) & (progress <= high))
    if window.size == 0:
        window = np.flatnonzero(progress >= low)[:1]
    values = rise[window].mean(0) / divisor
    return tuple(
        TemplateAU(code, None, float(min(values[k], 1.0)))
        for k, code in enumerate(codes)
        if active[k] and values[k] > 0
    )
