"""Collect an experiment grid (model × remedy × protocol × seed) into one report.

Every ``results.json`` under the given folders is one run. :func:`collect` writes:

- ``runs.csv``: one row per run, pooled ACC/UF1/UAR and the per-fold mean and std;
- ``folds.csv``: one row per run and fold;
- ``summary.csv``: one row per (model, protocol, remedy): mean and std over seeds of the pooled
  and the per-fold-mean metrics (std with ddof 0; 0 for a single seed);
- ``per_class.csv``: one row per (model, protocol, remedy, class): support and the mean over
  seeds of the pooled precision, recall and F1
  (:func:`recognizer.evaluation.report.per_class_table`);
- ``report.md``: the summary as a Markdown table (``mean ± std`` cells only where there are
  several seeds), per (model, protocol) with several remedies the paired comparison of
  :mod:`recognizer.evaluation.compare` (intervals over subjects and seeds, chance levels), then the
  figures: ``metrics.png`` (UF1/UAR bars per remedy labelled with their
  values, error bars over seeds), ``class_distribution.png`` (training clips per class before
  and after each remedy, from the folds' ``class_counts.json``), the per-class table and
  ``per_class_f1_<model>_<protocol>.png``, one confusion matrix per (model, protocol, remedy)
  summed over seeds, and ``curves_<model>_<protocol>_<remedy>.png``: the training curves of each
  fold (``fold_XX/curves.csv``) of the first seed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recognizer.evaluation.compare import runs_comparison_section
from recognizer.evaluation.report import (
    find_results,
    markdown_table,
    per_class_table,
    plot_class_distributions,
    plot_confusion,
    plot_curves,
    plot_metric_bars,
    plot_per_class_f1,
    read_curves,
)

METRIC_NAMES = ("UF1", "UAR", "ACC")
GROUP = ["model", "protocol", "remedy"]


@dataclass
class Collected:
    """What :func:`collect` wrote: the tables and the report's path."""

    runs: pd.DataFrame
    folds: pd.DataFrame
    summary: pd.DataFrame
    report: Path


def _settings(result: dict) -> dict:
    settings = result.get("settings", {})
    remedy = settings.get("remedy", {})
    trainer = settings.get("trainer", {})
    return {
        "model": str(settings.get("model", "")),
        "protocol": str(settings.get("protocol_name", "")),
        "remedy": str(remedy.get("name", "")) if isinstance(remedy, dict) else str(remedy),
        "seed": int(trainer.get("seed", 0)) if isinstance(trainer, dict) else 0,
    }


def runs_table(paths: Sequence[str | Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(runs, folds)``: one row per run and one row per run and fold.

    ``runs`` columns: run, model, protocol, remedy, seed, N, UF1, UAR, ACC (pooled),
    ``<metric> fold mean`` and ``<metric> fold std``.
    """
    runs, folds = [], []
    for path in find_results(paths):
        result = json.loads(path.read_text())
        if not result.get("pooled"):  # protocol=all (a final model): nothing to tabulate
            print(f"collect: {path.parent} has no test score (protocol=all); left out")
            continue
        keys = {"run": str(path.parent), **_settings(result)}
        row = {**keys, "N": int(result["pooled"]["n"])}
        for metric in METRIC_NAMES:
            row[metric] = float(result["pooled"][metric.lower()])
        for metric in METRIC_NAMES:
            row[f"{metric} fold mean"] = float(result["fold_mean"][metric.lower()])
            row[f"{metric} fold std"] = float(result["fold_std"][metric.lower()])
        runs.append(row)
        for fold in result["per_fold"]:
            folds.append(
                {
                    **keys,
                    "fold": int(fold["fold"]),
                    "N": int(fold["n"]),
                    **{m: float(fold[m.lower()]) for m in METRIC_NAMES},
                }
            )
    return pd.DataFrame(runs), pd.DataFrame(folds)


def summary_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds per (model, protocol, remedy), in first-seen order."""
    rows = []
    for key, group in runs.groupby(GROUP, sort=False):
        row = dict(zip(GROUP, key))
        row["seeds"] = int(group["seed"].nunique())
        row["N"] = int(group["N"].iloc[0])
        for metric in METRIC_NAMES:
            for column in (metric, f"{metric} fold mean"):
                values = group[column].to_numpy(dtype=float)
                row[column] = float(values.mean())
                row[f"{column} std"] = float(values.std())
        rows.append(row)
    return pd.DataFrame(rows)


def mean_std(mean: float, std: float, seeds: int, digits: int = 4) -> str:
    """``"mean ± std"`` over several seeds; only the mean for one seed (its std says nothing)."""
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if seeds > 1 else f"{mean:.{digits}f}"


def _display(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary with ``mean ± std`` cells (the mean alone for a single seed)."""
    table = summary[[*GROUP, "seeds", "N"]].copy()
    for metric in METRIC_NAMES:
        table[f"{metric} pooled"] = [
            mean_std(m, s, n)
            for m, s, n in zip(summary[metric], summary[f"{metric} std"], summary["seeds"])
        ]
    for metric in METRIC_NAMES:
        mean, std = summary[f"{metric} fold mean"], summary[f"{metric} fold mean std"]
        table[f"{metric} per-fold"] = [
            mean_std(m, s, n) for m, s, n in zip(mean, std, summary["seeds"])
        ]
    return table


def per_class_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, protocol, remedy, class): support and the mean over seeds of the
    pooled precision, recall and F1; runs without per-class scores are skipped."""
    rows = []
    for key, group in runs.groupby(GROUP, sort=False):
        tables = [per_class_table(Path(run) / "results.json") for run in group["run"]]
        tables = [t for t in tables if t is not None]
        if not tables:
            continue
        scores = np.mean([t[["precision", "recall", "F1"]].to_numpy() for t in tables], axis=0)
        for i, name in enumerate(tables[0]["class"]):
            rows.append(
                {
                    **dict(zip(GROUP, key)),
                    "seeds": len(tables),
                    "class": name,
                    "support": int(tables[0]["support"].iloc[i]),
                    "precision": float(scores[i, 0]),
                    "recall": float(scores[i, 1]),
                    "F1": float(scores[i, 2]),
                }
            )
    return pd.DataFrame(rows)


def per_class_display(table: pd.DataFrame) -> pd.DataFrame:
    """One (model, protocol)'s per-class rows as a wide table: class, support, then precision,
    recall and F1 of each remedy."""
    remedies = list(dict.fromkeys(table["remedy"]))
    first = table[table["remedy"] == remedies[0]]
    wide = pd.DataFrame({"class": first["class"].to_numpy(), "support": first["support"]})
    wide = wide.reset_index(drop=True)
    for remedy in remedies:
        part = table[table["remedy"] == remedy].reset_index(drop=True)
        for column, short in (("precision", "P"), ("recall", "R"), ("F1", "F1")):
            wide[f"{remedy} {short}"] = part[column]
    return wide


def class_distributions(runs: pd.DataFrame) -> dict[str, dict[str, list[int]]]:
    """Training class counts per remedy, summed over the folds of one run per remedy (the
    first seed: the counts do not depend on the seed)."""
    out: dict[str, dict[str, list[int]]] = {}
    for remedy, group in runs.groupby("remedy", sort=False):
        run = Path(group.sort_values("seed")["run"].iloc[0])
        totals: dict[str, np.ndarray] = {}
        for path in sorted(run.glob("fold_*/class_counts.json")):
            counts = json.loads(path.read_text())
            for part in ("real", "train", "pretrain"):
                values = np.asarray(counts.get(part, []), dtype=np.int64)
                if values.size:
                    totals[part] = totals.get(part, 0) + values
        if "real" in totals:
            out[str(remedy)] = {k: v.tolist() for k, v in totals.items()}
    return out


def collect(
    paths: Sequence[str | Path], out_dir: str | Path, *, title: str = "Experiment"
) -> Collected:
    """Write the tables, figures and ``report.md`` of every run under ``paths``.

    Raises:
        FileNotFoundError: a path does not exist or holds no ``results.json``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs, folds = runs_table(paths)
    if runs.empty:
        raise FileNotFoundError(
            f"no run with test scores under {[str(p) for p in paths]} (final models of "
            "protocol=all have none)"
        )
    summary = summary_table(runs)
    classes = per_class_summary(runs)
    runs.to_csv(out / "runs.csv", index=False)
    folds.to_csv(out / "folds.csv", index=False)
    summary.to_csv(out / "summary.csv", index=False)
    classes.to_csv(out / "per_class.csv", index=False)
    spread = (
        "metrics as mean ± std over seeds"
        if (summary["seeds"] > 1).any()
        else "one seed per remedy, so no spread over seeds"
    )
    lines = [
        f"# {title}",
        "",
        f"{len(runs)} runs; {spread}. *pooled*: computed once over every fold's test "
        "predictions; *per-fold*: the mean over folds.",
        "",
        markdown_table(_display(summary)),
        "",
        "## UF1 and UAR per remedy",
        "",
        f"![UF1 and UAR per remedy]({plot_metric_bars(runs, out / 'metrics.png').name})",
        "",
    ]
    for (model, protocol), group in runs.groupby(["model", "protocol"], sort=False):
        section = runs_comparison_section(list(group["run"]))
        if section:
            lines += [section.replace("## Comparison", f"## {model} / {protocol}: comparison"), ""]
    first = json.loads(find_results([runs["run"].iloc[0]])[0].read_text())
    names = first.get("settings", {}).get("class_names") or None
    distributions = class_distributions(runs)
    if distributions:
        png = plot_class_distributions(
            distributions, out / "class_distribution.png", class_names=names
        )
        lines += ["## Training clips per class, before and after each remedy", ""]
        lines += [f"![class distributions]({png.name})", ""]
    if len(classes):
        lines += [
            "## Per class: precision (P), recall (R) and F1",
            "",
            "Pooled over every fold's test predictions"
            + (" (mean over seeds)" if (classes["seeds"] > 1).any() else "")
            + "; *support*: test clips of the class.",
            "",
        ]
        for (model, protocol), part in classes.groupby(["model", "protocol"], sort=False):
            png = plot_per_class_f1(
                part, out / f"per_class_f1_{model}_{protocol}.png", title=f"{model} / {protocol}"
            )
            lines += [f"### {model} / {protocol}", "", markdown_table(per_class_display(part), 3)]
            lines += ["", f"![F1 per class, {model} / {protocol}]({png.name})", ""]
    lines += ["## Confusion matrices (summed over seeds)", ""]
    for key, group in runs.groupby(GROUP, sort=False):
        matrix = sum(
            np.asarray(json.loads((Path(run) / "results.json").read_text())["confusion_matrix"])
            for run in group["run"]
        )
        stem = "confusion_" + "_".join(str(k) for k in key)
        png = plot_confusion(matrix, out / f"{stem}.png", class_names=names, title=" / ".join(key))
        lines += [f"![{' / '.join(key)}]({png.name})", ""]
    curve_lines = []
    for key, group in runs.groupby(GROUP, sort=False):
        first_seed = group.sort_values("seed").iloc[0]
        curves = read_curves(first_seed["run"])
        if curves:
            label = " / ".join(str(k) for k in key)
            png = plot_curves(
                curves,
                out / ("curves_" + "_".join(str(k) for k in key) + ".png"),
                title=f"{label}, seed {first_seed['seed']}",
            )
            curve_lines += [f"![training curves, {label}]({png.name})", ""]
    if curve_lines:
        lines += ["## Training curves per fold", "", *curve_lines]
    lines += ["## Per-fold results", "", markdown_table(folds.drop(columns=["run"])), ""]
    report = out / "report.md"
    report.write_text("\n".join(lines))
    return Collected(runs, folds, summary, report)
