"""Turn result folders of :func:`recognizer.experiments.runner.run_protocol` into tables (CSV and
Markdown) and PNG figures: confusion matrices, UF1/UAR bars per remedy labelled with their values
(error bars over seeds when there are several), per-class precision/recall/F1, training curves
per fold (``fold_XX/curves.csv``), and training class distributions before and after a
remedy."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from recognizer.evaluation.compare import runs_comparison_section
from recognizer.evaluation.metrics import per_class

#: columns of :func:`per_class_table`
PER_CLASS_COLUMNS = ("class", "support", "precision", "recall", "F1")


def find_results(paths: Sequence[str | Path]) -> list[Path]:
    """Every ``results.json`` in ``paths`` (folders are searched recursively), sorted.

    Raises:
        FileNotFoundError: a path does not exist, or no results were found at all.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_file() and path.name == "results.json":
            found.append(path)
        elif path.is_dir():
            found += sorted(path.rglob("results.json"))
        else:
            raise FileNotFoundError(f"result folder {path} not found")
    if not found:
        raise FileNotFoundError(f"no results.json under {[str(p) for p in paths]}")
    return sorted(set(found))


def results_table(paths: Sequence[str | Path]) -> pd.DataFrame:
    """One row per run: run folder, model, protocol, remedy, seed, N, pooled ACC/UF1/UAR, the
    per-fold mean ± std, and UF1/UAR per dataset for composites."""
    rows = []
    for path in find_results(paths):
        result = json.loads(path.read_text())
        settings = result.get("settings", {})
        remedy = settings.get("remedy", {})
        trainer = settings.get("trainer", {})
        row = {
            "run": str(path.parent),
            "model": settings.get("model", ""),
            "protocol": settings.get("protocol_name", ""),
            "remedy": remedy.get("name", "") if isinstance(remedy, dict) else str(remedy),
            "seed": trainer.get("seed", "") if isinstance(trainer, dict) else "",
            "N": result["pooled"]["n"] if result.get("pooled") else 0,
        }
        if not result.get("pooled"):  # protocol=all: a final model, no test score
            rows.append({**row, "ACC": float("nan"), "UF1": float("nan"), "UAR": float("nan")})
            continue
        for metric in ("acc", "uf1", "uar"):
            row[metric.upper()] = result["pooled"][metric]
            mean, std = result["fold_mean"][metric], result["fold_std"][metric]
            spread = len(result.get("per_fold", [])) > 1
            row[f"{metric.upper()} folds"] = f"{mean:.4f} ± {std:.4f}" if spread else f"{mean:.4f}"
        for dataset, scores in sorted(result.get("per_dataset", {}).items()):
            if len(result.get("per_dataset", {})) > 1:
                row[f"{dataset} UF1"] = scores["uf1"]
                row[f"{dataset} UAR"] = scores["uar"]
        rows.append(row)
    return pd.DataFrame(rows)


def markdown_table(table: pd.DataFrame, digits: int = 4) -> str:
    """A GitHub-flavoured Markdown table (floats rounded to ``digits``)."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return "" if np.isnan(value) else f"{value:.{digits}f}"
        return str(value).replace("|", "\\|")

    header = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(False)]
    return "\n".join([header, rule, *body])


def plot_confusion(
    matrix: np.ndarray | Sequence[Sequence[int]],
    path: str | Path,
    *,
    class_names: Sequence[str] | None = None,
    title: str = "",
) -> Path:
    """Save a row-normalised confusion matrix ``(K, K)`` (rows true, columns predicted) with the
    counts written in each cell as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = np.asarray(matrix, dtype=np.int64)
    names = list(class_names) if class_names else [str(i) for i in range(len(counts))]
    if len(names) != len(counts):
        raise ValueError(f"{len(names)} class names for a {len(counts)}-class matrix")
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = 1.2 + 0.6 * len(names)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(names)):
        for j in range(len(names)):
            colour = "white" if rates[i, j] > 0.5 else "black"
            ax.text(j, i, str(counts[i, j]), ha="center", va="center", color=colour)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of the true class")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def per_class_table(results_path: str | Path) -> pd.DataFrame | None:
    """Pooled per-class scores of one run (columns :data:`PER_CLASS_COLUMNS`, one row per
    class): ``results.json``'s ``per_class``, or for runs written before it, computed from the
    run's ``predictions.csv``; ``None`` when neither is there."""
    path = Path(results_path)
    result = json.loads(path.read_text())
    settings = result.get("settings", {})
    k = int(settings.get("num_classes") or len(result.get("confusion_matrix", [])))
    scores = result.get("per_class")
    if scores is None:
        predictions = path.parent / "predictions.csv"
        if not predictions.is_file() or k == 0:
            return None
        table = pd.read_csv(predictions)
        scores = per_class(table["true"], table["predicted"], labels=range(k))
    names = list(settings.get("class_names") or []) or [str(c) for c in range(k)]
    return pd.DataFrame(
        {
            "class": names,
            "support": scores["support"],
            "precision": scores["precision"],
            "recall": scores["recall"],
            "F1": scores["f1"],
        },
        columns=list(PER_CLASS_COLUMNS),
    )


def read_curves(run_dir: str | Path) -> dict[str, pd.DataFrame]:
    """``{"fold 0": curves, ...}``: every ``fold_XX/curves.csv`` of a run folder, fold order."""
    return {
        f"fold {int(path.parent.name.split('_')[-1])}": pd.read_csv(path)
        for path in sorted(Path(run_dir).glob("fold_*/curves.csv"))
    }


def plot_curves(curves: Mapping[str, pd.DataFrame], path: str | Path, *, title: str = "") -> Path:
    """Training curves, one line per fold: the loss (training solid, validation dashed), then
    accuracy and UF1 (training solid, validation dashed) per epoch; ``title`` gets a note on the
    line styles.

    Args:
        curves: ``{fold label: curves.csv table}``
            (:data:`recognizer.training.trainer.CURVE_COLUMNS`; the ``val_*`` columns are drawn
            when present).

    Raises:
        ValueError: no curves, or a table without ``epoch`` and ``loss``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    if not curves:
        raise ValueError("no training curves to plot")
    for label, table in curves.items():
        if not {"epoch", "loss"} <= set(table.columns):
            raise ValueError(f"curves of {label} lack an epoch or loss column")
    panels = (("loss", "loss", "val_loss"), ("accuracy", "train_acc", "val_acc"),
              ("UF1", "train_uf1", "val_uf1"))  # fmt: skip
    fig, axes = plt.subplots(1, len(panels), figsize=(10.5, 3.0), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    validated = False
    for i, (label, table) in enumerate(curves.items()):
        colour = colours[i % len(colours)]
        for ax, (_, train, val) in zip(axes[0], panels):
            if train in table:
                ax.plot(table["epoch"], table[train], color=colour, label=f"{label} train")
            if val in table and table[val].notna().any():
                ax.plot(table["epoch"], table[val], "--", color=colour, label=f"{label} val")
                validated = True
    for ax, (name, _, _) in zip(axes[0], panels):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        if name != "loss":
            ax.set_ylim(0, 1)
    axes[0][-1].legend(fontsize=6)
    note = "solid: training, dashed: validation" if validated else "training; no validation split"
    fig.suptitle(f"{title or 'training curves per fold'} ({note})", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def write_report(paths: Sequence[str | Path], out_dir: str | Path) -> Path:
    """Write ``report.md`` (the table; with runs of two or more settings, their paired
    comparison (:func:`recognizer.evaluation.compare.comparison_section`); then per run its
    confusion matrix, per-class precision,
    recall and F1, and training curves) with one ``confusion_<i>.png`` and, where the folds kept
    ``curves.csv``, one ``curves_<i>.png`` per run."""
    out = Path(out_dir)
    table = results_table(paths)  # runs that are no results are refused before out_dir exists
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# Results", "", markdown_table(table), ""]
    section = runs_comparison_section(paths)
    if section:
        lines += [section, ""]
    for i, path in enumerate(find_results(paths)):
        result = json.loads(path.read_text())
        names = result.get("settings", {}).get("class_names") or None
        png = plot_confusion(
            result["confusion_matrix"],
            out / f"confusion_{i:02d}.png",
            class_names=names,
            title=str(path.parent.name),
        )
        lines += [f"## {path.parent}", "", f"![confusion matrix]({png.name})", ""]
        classes = per_class_table(path)
        if classes is not None:
            lines += ["Per class (pooled test predictions):", "", markdown_table(classes, 3), ""]
        lines += domain_maps_lines(result, out, i)
        curves = read_curves(path.parent)
        if curves:
            png = plot_curves(curves, out / f"curves_{i:02d}.png", title=str(path.parent.name))
            lines += [f"![training curves]({png.name})", ""]
    report = out / "report.md"
    report.write_text("\n".join(lines))
    return report


def domain_maps_lines(result: Mapping[str, object], out: Path, index: int) -> list[str]:
    """The report lines of a synthetic run's real-vs-synthetic class-mean maps
    (:mod:`recognizer.remedies.domain_maps`): the figure, copied to
    ``domain_maps_<index>_<j>.png``, and per class the counts, energy ratio and map correlation;
    none for a run without them (or whose maps are no longer on disk)."""
    import shutil

    paths = sorted({str(e["domain_maps"]) for e in result.get("fold_data") or [] if
                    isinstance(e, Mapping) and e.get("domain_maps")})  # fmt: skip
    lines: list[str] = []
    for j, name in enumerate(paths):
        path = Path(name)
        if not path.is_file():
            continue
        record = json.loads(path.read_text())
        figure = out / f"domain_maps_{index:02d}_{j}.png"
        shutil.copyfile(path.parent / str(record["figure"]), figure)
        table = pd.DataFrame(record["classes"]).rename(columns={
            "real": "real clips", "synthetic": "synthetic clips",
            "energy_ratio": "energy synthetic / real", "map_correlation": "map correlation",
        }).astype(object).fillna("n/a")  # fmt: skip
        lines += [
            f"Real vs synthetic apex flow, class-mean motion energy (the run's real samples "
            f"against its synthetic pool, `{path.parent}`):",
            "",
            f"![real vs synthetic class means]({figure.name})",
            "",
            markdown_table(table, 2),
            "",
        ]
    return lines


def plot_metric_bars(
    table: pd.DataFrame,
    path: str | Path,
    *,
    metrics: Sequence[str] = ("UF1", "UAR"),
    title: str = "",
) -> Path:
    """Bars of each metric per remedy (one bar group per model/protocol), height the mean over
    seeds written above each bar, and error bars ± one standard deviation (ddof 0) where a
    remedy has several seeds (none for a single seed).

    Args:
        table: :func:`recognizer.evaluation.grid.runs_table` rows (columns ``model``, ``protocol``,
            ``remedy``, ``seed`` and the metrics).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    missing = {"model", "protocol", "remedy", *metrics} - set(table.columns)
    if missing:
        raise ValueError(f"table lacks columns {sorted(missing)}")
    remedies = list(dict.fromkeys(table["remedy"]))
    groups = list(dict.fromkeys(zip(table["model"], table["protocol"])))
    width_in = max(5.0, 1.6 + 0.9 * len(remedies) * len(groups))
    fig, axes = plt.subplots(1, len(metrics), figsize=(width_in, 3.6), squeeze=False)
    width = 0.8 / max(len(groups), 1)
    several = False
    for ax, metric in zip(axes[0], metrics):
        for g, (model, protocol) in enumerate(groups):
            sub = table[(table["model"] == model) & (table["protocol"] == protocol)]
            means, stds = [], []
            for remedy in remedies:
                values = sub.loc[sub["remedy"] == remedy, metric].astype(float).to_numpy()
                means.append(values.mean() if values.size else np.nan)
                stds.append(values.std() if values.size > 1 else np.nan)
            several = several or not np.isnan(stds).all()
            x = np.arange(len(remedies)) + (g - (len(groups) - 1) / 2) * width
            errors = None if np.isnan(stds).all() else np.nan_to_num(stds)
            bars = ax.bar(x, means, width, yerr=errors, capsize=3, label=f"{model} / {protocol}")
            ax.bar_label(bars, fmt="%.3f", fontsize=7, padding=2)
        ax.set_xticks(range(len(remedies)), remedies, rotation=30, ha="right")
        ax.set_ylabel(metric)
        ax.set_ylim(0, 1)
        ax.grid(axis="y", alpha=0.3)
    if len(groups) > 1:
        axes[0][0].legend(fontsize=7)
    spread = "mean ± std over seeds" if several else "one seed"
    fig.suptitle(title or " / ".join(metrics) + f" per remedy ({spread})", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_class_distributions(
    counts: dict[str, dict[str, Sequence[int]]],
    path: str | Path,
    *,
    class_names: Sequence[str] | None = None,
) -> Path:
    """Training samples per class before (``real``) and after (``train`` + ``pretrain``) each
    remedy, one panel per remedy.

    Args:
        counts: ``{remedy: {"real": (K,), "train": (K,), "pretrain": (K,)}}`` summed over folds.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not counts:
        raise ValueError("no class counts to plot")
    fig, axes = plt.subplots(
        1, len(counts), figsize=(0.4 + 2.6 * len(counts), 3.0), squeeze=False, sharey=True
    )
    for ax, (remedy, parts) in zip(axes[0], counts.items()):
        real = np.asarray(parts["real"], dtype=float)
        k = np.arange(len(real))
        names = list(class_names) if class_names else [str(i) for i in k]
        ax.bar(k - 0.2, real, 0.4, label="real training")
        ax.bar(k + 0.2, np.asarray(parts["train"], dtype=float), 0.4, label="trained on")
        pretrain = np.asarray(parts.get("pretrain", np.zeros_like(real)), dtype=float)
        if pretrain.any():
            ax.bar(k + 0.2, pretrain, 0.4, bottom=parts["train"], label="pretrained on")
        ax.set_xticks(k, names, rotation=45, ha="right", fontsize=7)
        ax.set_title(remedy, fontsize=9)
        ax.legend(fontsize=6)
    axes[0][0].set_ylabel("clips (summed over folds)")
    fig.tight_layout()
    return _save(fig, path)


def plot_per_class_f1(table: pd.DataFrame, path: str | Path, *, title: str = "") -> Path:
    """Grouped bars of the F1 of each class (x) per remedy (one bar each), values written on
    the bars.

    Args:
        table: one row per (remedy, class) with columns ``remedy``, ``class`` and ``F1``
            (e.g. :func:`recognizer.evaluation.grid.per_class_summary`), classes in display order.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    missing = {"remedy", "class", "F1"} - set(table.columns)
    if missing:
        raise ValueError(f"table lacks columns {sorted(missing)}")
    remedies = list(dict.fromkeys(table["remedy"]))
    classes = list(dict.fromkeys(table["class"]))
    width = 0.8 / max(len(remedies), 1)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 + 0.45 * len(classes) * len(remedies)), 3.4))
    for r, remedy in enumerate(remedies):
        scores = table[table["remedy"] == remedy].set_index("class")["F1"]
        x = np.arange(len(classes)) + (r - (len(remedies) - 1) / 2) * width
        bars = ax.bar(x, [float(scores.get(c, np.nan)) for c in classes], width, label=remedy)
        ax.bar_label(bars, fmt="%.2f", fontsize=6, padding=1)
    ax.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
    ax.set_ylabel("F1 (pooled test predictions)")
    ax.set_ylim(0, 1.05)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(title or "F1 per class and remedy", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig: object, path: str | Path) -> Path:
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]
    return path
