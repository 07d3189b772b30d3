"""Statistics of a clip store: class counts, durations, AU frequencies and intensities (tables
and figures)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from mesynth.generation.store import StoreError, iter_manifest
from mesynth.labels.au import parse_aus


def store_table(root: str | Path) -> pd.DataFrame:
    """One row per clip: label, identity, aus, duration_ms, onset_to_apex_ms, n_stored and the
    mean/max sampled apex AU intensity (from ``params/<clip_id>.json`` when present)."""
    root = Path(root)
    records = []
    for row in iter_manifest(root):
        fps = float(row["fps"])
        params_path = root / "params" / f"{row['clip_id']}.json"
        intensities: list[float] = []
        if params_path.is_file():
            params = json.loads(params_path.read_text())
            intensities = [float(a["intensity"]) for a in params["template"]["aus"]]
        records.append(
            {
                "clip_id": row["clip_id"],
                "label": row["label"],
                "identity": row["identity"],
                "aus": row["aus"],
                "n_aus": len(intensities),
                "duration_ms": 1000.0 * int(row["n_frames"]) / fps,
                "onset_to_apex_ms": 1000.0 * int(row["apex"]) / fps,
                "n_stored": len(row["frame_numbers"].split(";")),
                "mean_intensity": sum(intensities) / len(intensities) if intensities else None,
                "max_intensity": max(intensities) if intensities else None,
            }
        )
    if not records:
        raise StoreError(f"{root}/manifest.csv lists no clips")
    return pd.DataFrame.from_records(records)


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Per class: clips, identities, mean duration, mean onset->apex, mean apex intensity."""
    return table.groupby("label").agg(
        clips=("clip_id", "count"),
        identities=("identity", "nunique"),
        duration_ms=("duration_ms", "mean"),
        onset_to_apex_ms=("onset_to_apex_ms", "mean"),
        mean_intensity=("mean_intensity", "mean"),
    )


def au_frequencies(table: pd.DataFrame) -> pd.DataFrame:
    """Per class (rows) and AU (columns): the percentage of the class's clips whose ``aus``
    contain that AU, laterality kept: ``AU12`` (both sides, or ``L12+R12``), ``L12`` and
    ``R12`` (the subject's left or right side only) are separate columns, sorted by code then
    side; AUs no clip uses are left out.

    Args:
        table: :func:`store_table`'s rows (``label`` and ``aus`` are used).

    Returns:
        Percentages in 0..100, one row per class in sorted order.
    """
    keys = [_sided_codes(aus) for aus in table["aus"]]
    present = sorted(set().union(*keys))
    flags = pd.DataFrame(
        [[key in row for key in present] for row in keys],
        columns=[f"{side}{code}" if side else f"AU{code}" for code, side in present],
        index=table.index,
        dtype=float,
    )
    return 100.0 * flags.groupby(table["label"]).mean()


def _sided_codes(aus: str) -> set[tuple[int, str]]:
    """``(code, side)`` of every AU in one cell: side ``""`` when bilateral (an AU coded on both
    sides, ``L12+R12``, is bilateral), ``"L"``/``"R"`` when one side only."""
    sides: dict[int, set[str]] = {}
    parsed = parse_aus(aus)
    for reading in parsed.readings():
        for au in reading.aus:
            sides.setdefault(au.code, set()).add(au.side or "")
    keys = set()
    for code, found in sides.items():
        bilateral = "" in found or {"L", "R"} <= found
        keys.update({(code, "")} if bilateral else {(code, side) for side in found})
    return keys


def plot_stats(table: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """``class_histogram.png`` and ``timing_intensity.png`` (durations, onset->apex,
    apex intensities) in ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    counts = table["label"].value_counts().sort_index()
    fig, ax = plt.subplots(figsize=(max(4, 0.9 * len(counts)), 3.2))
    ax.bar(counts.index, counts.values, color="tab:blue")
    for x, v in enumerate(counts.values):
        ax.text(x, v, str(v), ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("clips")
    ax.set_title(f"clips per class ({len(table)} in all)")
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    histogram = out / "class_histogram.png"
    fig.savefig(histogram, dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    axes[0].hist(table["duration_ms"], bins=15, color="tab:green")
    axes[0].set_xlabel("onset -> offset (ms)")
    axes[1].hist(table["onset_to_apex_ms"], bins=15, color="tab:orange")
    axes[1].set_xlabel("onset -> apex (ms)")
    by_label = [g["mean_intensity"].dropna().to_numpy() for _, g in table.groupby("label")]
    axes[2].boxplot(by_label, tick_labels=sorted(table["label"].unique()))
    axes[2].set_ylabel("mean apex AU intensity")
    axes[2].tick_params(axis="x", rotation=30)
    for ax in axes[:2]:
        ax.set_ylabel("clips")
    fig.tight_layout()
    timing = out / "timing_intensity.png"
    fig.savefig(timing, dpi=110)
    plt.close(fig)
    return [histogram, timing]
