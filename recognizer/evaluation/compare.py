"""Compare arms of a study (runs over seeds on the same test samples) with paired intervals.

An *arm* is one setting (a remedy, a model...) run with one or more seeds, each run pooling
its folds' test predictions as LOSO is scored. Per arm :func:`compare_arms` reports the pooled
UF1/UAR/ACC mean ± sd over seeds; per arm against a named baseline the **paired** difference
(arm minus baseline, each a mean over seeds of the pooled metric) with a 95 % bootstrap
interval, and the chance level of each metric for the test label distribution.

What is resampled (``scipy.stats.bootstrap``, percentile intervals):

- **test subjects**, whole, with replacement: the unit LOSO leaves out, so the interval says
  how much the difference depends on which people happened to be tested. Both arms see the
  same resampled subjects (the pairing that removes the between-subject variance they share);
- **seeds**, with replacement: the same resampled seeds for both arms when their seed sets
  match (seed ``s`` of one arm against seed ``s`` of the other), else each arm's seeds
  independently (said in the result's ``pairing``). With one seed per arm the interval covers
  subjects only and seed noise is not in it (said in the verdict).

Percentile rather than BCa: BCa's acceleration comes from a jackknife over each sample, which
with 2 to 5 seeds (the usual budget) is unstable or undefined; the percentile interval is the
plain quantiles of the resampled differences, easy to check by hand.

A resample's metrics come from summed confusion matrices (one per test subject and seed,
computed once), with the conventions of :mod:`recognizer.evaluation.metrics`: UF1 over the
classes in true ∪ predicted, UAR over the classes in true.

Chance levels (:func:`chance_levels`) are those of a guess made without looking at the input,
for the pooled test label proportions ``p_k`` over ``K`` classes: UAR is ``1/K`` for *any* such
guess; a uniform guess has expected ACC ``1/K`` and per-class F1 ``2 p_k (1/K) / (p_k + 1/K)``
(UF1 their mean); always answering the majority class has ACC ``max p_k``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

METRICS = ("UF1", "UAR", "ACC")
PREDICTION_KEY = ["index", "subject", "true"]


class CompareError(ValueError):
    """Runs that cannot be compared (the message names the arm, folder or setting)."""


@dataclass
class Arm:
    """One arm: its runs by seed.

    Attributes:
        name: the arm's name in tables.
        runs: ``{seed: predictions}``; each table has ``index``, ``subject``, ``true`` and
            ``predicted`` columns (a run's ``predictions.csv``).
        folders: the run folders read, by seed (empty for tables given directly).
    """

    name: str
    runs: dict[int, pd.DataFrame]
    folders: dict[int, str] = field(default_factory=dict)

    @property
    def seeds(self) -> list[int]:
        return sorted(self.runs)


@dataclass
class Comparison:
    """What :func:`compare_arms` found.

    Attributes:
        baseline: the baseline arm's name.
        arms: ``(A, 6)`` per arm: arm, seeds, and ``<metric>`` mean and ``<metric> sd`` over
            seeds (sd with ddof 1; 0 for one seed).
        differences: one row per (arm other than the baseline, metric): arm, metric, diff,
            lo, hi, seeds, pairing, verdict.
        chance: ``{metric: level}`` (:func:`chance_levels`) plus ``ACC (majority)``.
        subjects: the number of test subjects (or units, see ``unit_of``) resampled.
        confidence, n_resamples, seed: the bootstrap's settings.
    """

    baseline: str
    arms: pd.DataFrame
    differences: pd.DataFrame
    chance: dict[str, float]
    subjects: int
    confidence: float
    n_resamples: int
    seed: int
    unit: str = "test subjects"

    def table(self) -> pd.DataFrame:
        """One row per (arm, metric): mean, sd, seeds, chance, and against the baseline
        diff, lo, hi, pairing and verdict (NaN and empty for the baseline itself)."""
        rows = []
        for _, arm in self.arms.iterrows():
            for metric in METRICS:
                row = {
                    "arm": arm["arm"],
                    "metric": metric,
                    "mean": arm[metric],
                    "sd": arm[f"{metric} sd"],
                    "seeds": int(arm["seeds"]),
                    "chance": self.chance[metric],
                }
                match = self.differences[
                    (self.differences["arm"] == arm["arm"]) & (self.differences["metric"] == metric)
                ]
                for column in ("diff", "lo", "hi", "pairing", "verdict"):
                    empty = "" if column in ("pairing", "verdict") else float("nan")
                    row[column] = match[column].iloc[0] if len(match) else empty
                rows.append(row)
        return pd.DataFrame(rows)

    def markdown(self) -> str:
        """The comparison as Markdown: per arm mean ± sd, then the paired differences."""
        level = f"{self.confidence:.0%}"
        lines = [
            f"Pooled metrics, mean ± sd over seeds; chance (a guess that ignores the input): "
            f"UF1 {self.chance['UF1']:.3f}, UAR {self.chance['UAR']:.3f}, ACC "
            f"{self.chance['ACC']:.3f} (always the majority class: ACC "
            f"{self.chance['ACC (majority)']:.3f}).",
            "",
            "| arm | seeds | UF1 | UAR | ACC |",
            "|---|---:|---|---|---|",
        ]
        for _, arm in self.arms.iterrows():
            cells = []
            for metric in METRICS:
                cell = f"{arm[metric]:.3f}"
                if arm["seeds"] > 1:
                    cell += f" ± {arm[f'{metric} sd']:.3f}"
                if metric in ("UF1", "UAR") and arm[metric] <= self.chance[metric]:
                    cell += " (at or below chance)"
                cells.append(cell)
            lines.append(f"| {arm['arm']} | {arm['seeds']} | " + " | ".join(cells) + " |")
        lines += [
            "",
            f"Paired difference to `{self.baseline}` with a {level} percentile bootstrap "
            f"interval ({self.n_resamples} resamples of the {self.subjects} {self.unit} and "
            "of the seeds):",
            "",
            "| arm | metric | difference | interval | seeds | reading |",
            "|---|---|---:|---|---:|---|",
        ]
        for _, row in self.differences.iterrows():
            lines.append(
                f"| {row['arm']} | {row['metric']} | {row['diff']:+.3f} | "
                f"[{row['lo']:+.3f}, {row['hi']:+.3f}] | {row['seeds']} | {row['verdict']} |"
            )
        return "\n".join(lines) + "\n"


def chance_levels(labels: Sequence[int], num_classes: int | None = None) -> dict[str, float]:
    """Chance level of each metric for the label distribution ``labels`` (see the module).

    Args:
        labels: ``(N,)`` true class indices of the pooled test samples.
        num_classes: K (default: the number of distinct labels).

    Returns:
        ``{"UF1", "UAR", "ACC", "ACC (majority)"}``: uniform guessing, and always guessing the
        majority class for ACC.
    """
    values = np.asarray(labels, dtype=np.int64)
    if values.size == 0:
        raise CompareError("chance levels need at least one label")
    counts = np.bincount(values)
    counts = (
        counts[counts > 0] if num_classes is None else np.bincount(values, minlength=num_classes)
    )
    k = len(counts)
    p = counts / counts.sum()
    guess = 1.0 / k
    f1 = np.where(p > 0, 2 * p * guess / (p + guess), 0.0)
    return {
        "UF1": float(f1.mean()),
        "UAR": guess,
        "ACC": guess,
        "ACC (majority)": float(p.max()),
    }


def metrics_from_confusion(matrix: np.ndarray) -> dict[str, np.ndarray]:
    """UF1, UAR and ACC of ``(..., K, K)`` confusion matrices (rows true), with the
    conventions of :mod:`recognizer.evaluation.metrics`; each value has shape ``(...)``."""
    c = np.asarray(matrix, dtype=np.float64)
    diag = np.diagonal(c, axis1=-2, axis2=-1)
    rows, cols = c.sum(-1), c.sum(-2)
    total = rows.sum(-1)
    present = (rows + cols) > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(present, 2 * diag / (rows + cols), 0.0)
        recall = np.where(rows > 0, diag / rows, 0.0)
        return {
            "UF1": f1.sum(-1) / present.sum(-1),
            "UAR": recall.sum(-1) / (rows > 0).sum(-1),
            "ACC": diag.sum(-1) / total,
        }


def _subject_confusions(
    table: pd.DataFrame, subjects: Sequence[str], num_classes: int
) -> np.ndarray:
    """``(S, K, K)`` confusion counts of each test subject in ``subjects``' order."""
    position = {s: i for i, s in enumerate(subjects)}
    out = np.zeros((len(subjects), num_classes, num_classes), dtype=np.int64)
    s = table["subject"].map(position).to_numpy()
    np.add.at(out, (s, table["true"].to_numpy(), table["predicted"].to_numpy()), 1)
    return out


def _check_same_samples(arms: Sequence[Arm]) -> pd.DataFrame:
    """The shared ``(index, subject, true)`` keys of every run, or a CompareError naming the
    arm and seed whose test samples differ from the first run's."""
    reference, where = None, ""
    for arm in arms:
        if not arm.runs:
            raise CompareError(f"arm {arm.name!r} has no run")
        for seed, table in arm.runs.items():
            missing = [c for c in (*PREDICTION_KEY, "predicted") if c not in table.columns]
            if missing:
                raise CompareError(f"arm {arm.name!r}, seed {seed}: predictions lack {missing}")
            keys = table[PREDICTION_KEY].astype({"subject": str}).sort_values("index")
            keys = keys.reset_index(drop=True)
            if reference is None:
                reference, where = keys, f"arm {arm.name!r}, seed {seed}"
            elif not keys.equals(reference):
                differ = len(
                    set(map(tuple, keys.to_numpy())) ^ set(map(tuple, reference.to_numpy()))
                )
                raise CompareError(
                    f"arm {arm.name!r}, seed {seed} holds other test samples than {where} "
                    f"({len(keys)} vs {len(reference)} samples, {differ} differ): compare "
                    "runs of the same data and protocol"
                )
    assert reference is not None
    return reference


def _verdict(lo: float, hi: float, baseline: str, seeds: int, level: str) -> str:
    if lo <= 0 <= hi:
        text = "no evidence of a difference"
    elif lo > 0:
        text = f"better than {baseline} ({level} interval excludes 0)"
    else:
        text = f"worse than {baseline} ({level} interval excludes 0)"
    if seeds < 2:
        text += "; 1 seed: the interval covers subjects only, seed noise is not in it"
    return text


def compare_arms(
    arms: Sequence[Arm],
    baseline: str | None = None,
    *,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    unit_of: Mapping[str, str] | None = None,
) -> Comparison:
    """Per arm mean ± sd over seeds, and per arm the paired bootstrap difference to
    ``baseline`` (see the module for what is resampled).

    Args:
        arms: at least two arms over the same test samples.
        baseline: the name of the arm to compare against (default: an arm named ``none``,
            else the first).
        confidence: the interval's level.
        n_resamples: bootstrap resamples.
        seed: the bootstrap's generator seed.
        unit_of: ``{subject: unit}``, the resampled unit of each test subject when subjects
            are not independent (e.g. augmented copies of one person:
            :func:`recognizer.protocols.leakage.subject_persons`); default: each subject is its
            own unit.

    Raises:
        CompareError: fewer than two arms, duplicate names, an unknown baseline, or arms whose
            runs hold different test samples.
    """
    if len(arms) < 2:
        raise CompareError(f"a comparison needs at least two arms, got {len(arms)}")
    names = [a.name for a in arms]
    if len(set(names)) != len(names):
        raise CompareError(f"arm names repeat: {names}")
    if baseline is None:
        baseline = "none" if "none" in names else names[0]
    if baseline not in names:
        raise CompareError(f"baseline {baseline!r} is not one of the arms {names}")
    if not 0 < confidence < 1:
        raise CompareError(f"confidence must be in (0, 1), got {confidence}")
    keys = _check_same_samples(arms)
    unit = (lambda subject: str(unit_of.get(subject, subject))) if unit_of else str
    subjects = sorted({unit(s) for s in keys["subject"]})
    num_classes = int(max(int(t["predicted"].max()) for a in arms for t in a.runs.values()))
    num_classes = max(num_classes, int(keys["true"].max())) + 1
    confusions = {
        a.name: np.stack(
            [_subject_confusions(a.runs[s].assign(subject=a.runs[s]["subject"].map(unit)),
                                 subjects, num_classes) for s in a.seeds]
        )  # (seeds, S, K, K)
        for a in arms
    }  # fmt: skip
    rows = []
    for a in arms:
        per_seed = metrics_from_confusion(confusions[a.name].sum(1))
        row: dict[str, object] = {"arm": a.name, "seeds": len(a.seeds)}
        for metric in METRICS:
            values = per_seed[metric]
            row[metric] = float(values.mean())
            row[f"{metric} sd"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        rows.append(row)
    base = next(a for a in arms if a.name == baseline)
    level = f"{confidence:.0%}"
    differences = []
    for a in arms:
        if a.name == baseline:
            continue
        for metric, (diff, lo, hi, pairing) in paired_differences(
            confusions[a.name],
            confusions[base.name],
            paired_seeds=a.seeds == base.seeds,
            confidence=confidence,
            n_resamples=n_resamples,
            seed=seed,
        ).items():
            seeds = min(len(a.seeds), len(base.seeds))
            differences.append(
                {
                    "arm": a.name, "metric": metric, "diff": diff, "lo": lo, "hi": hi,
                    "seeds": seeds, "pairing": pairing,
                    "verdict": _verdict(lo, hi, baseline, seeds, level),
                }
            )  # fmt: skip
    return Comparison(
        baseline=baseline,
        arms=pd.DataFrame(rows),
        differences=pd.DataFrame(differences),
        chance=chance_levels(keys["true"].to_numpy(), num_classes),
        subjects=len(subjects),
        confidence=confidence,
        n_resamples=n_resamples,
        seed=seed,
        unit="units of test subjects" if unit_of else "test subjects",
    )


def paired_differences(
    arm: np.ndarray,
    baseline: np.ndarray,
    *,
    paired_seeds: bool,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> dict[str, tuple[float, float, float, str]]:
    """Each metric's difference (mean over seeds of the pooled metric, arm minus baseline) and
    its percentile bootstrap interval over subjects and seeds.

    Args:
        arm, baseline: ``(R, S, K, K)`` confusion counts per seed (R) and test subject (S), the
            subjects in the same order.
        paired_seeds: seed ``r`` of the arm goes with seed ``r`` of the baseline (the same
            resampled seeds for both); else each arm's seeds are resampled independently.

    Returns:
        ``{metric: (difference, lo, hi, pairing)}``; ``pairing`` says what was resampled.
    """
    n_subjects = arm.shape[1]
    if baseline.shape[1] != n_subjects:
        raise CompareError("arm and baseline must hold the same test subjects")
    if paired_seeds and arm.shape[0] != baseline.shape[0]:
        raise CompareError("paired seeds need the same number of seeds in both arms")
    seeds_a, seeds_b = np.arange(arm.shape[0]), np.arange(baseline.shape[0])
    # the samples scipy resamples: subjects, then the seed axes that have two or more seeds
    if paired_seeds:
        axes = ["subjects"] + (["seeds"] if len(seeds_a) > 1 else [])
        pairing = "subjects and seeds (paired by seed)" if len(seeds_a) > 1 else "subjects only"
    else:
        axes = (
            ["subjects"] + (["a"] if len(seeds_a) > 1 else []) + (["b"] if len(seeds_b) > 1 else [])
        )
        pairing = "subjects (paired) and each arm's seeds independently (the seed sets differ)"
    if len(axes) == 1:
        pairing = "subjects only (one seed per arm)"
    data = {"subjects": np.arange(n_subjects), "seeds": seeds_a, "a": seeds_a, "b": seeds_b}

    def pooled(confusions: np.ndarray, subjects: np.ndarray, seeds: np.ndarray) -> dict:
        # subjects (B, S) and seeds (B, R') are resampled indices; a resample's pooled
        # matrix per seed is a weighted sum of the subjects' matrices
        weights = np.stack([np.bincount(row, minlength=n_subjects) for row in subjects])
        summed = np.einsum("bs,rskl->brkl", weights.astype(np.float64), confusions)
        chosen = np.take_along_axis(summed, seeds[:, :, None, None].astype(np.int64), axis=1)
        return {m: v.mean(-1) for m, v in metrics_from_confusion(chosen).items()}

    def statistic_of(metric: str):
        def statistic(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
            given = dict(zip(axes, samples))
            subjects = given["subjects"].reshape(-1, n_subjects)
            batch = len(subjects)

            def seeds(name: str, own: np.ndarray) -> np.ndarray:
                if name in given:
                    return given[name].reshape(batch, -1)
                return np.broadcast_to(own, (batch, len(own)))

            a = seeds("seeds" if paired_seeds else "a", seeds_a)
            b = seeds("seeds" if paired_seeds else "b", seeds_b)
            return pooled(arm, subjects, a)[metric] - pooled(baseline, subjects, b)[metric]

        return statistic

    out = {}
    for metric in METRICS:
        statistic = statistic_of(metric)
        point = float(statistic(*(data[name][None] for name in axes))[0])
        if n_subjects < 2:
            out[metric] = (point, point, point, pairing + "; one test subject: no interval")
            continue
        result = stats.bootstrap(
            tuple(data[name] for name in axes),
            statistic,
            n_resamples=n_resamples,
            confidence_level=confidence,
            method="percentile",
            paired=False,
            vectorized=True,
            rng=np.random.default_rng(seed),
        )
        interval = result.confidence_interval
        out[metric] = (point, float(interval.low), float(interval.high), pairing)
    return out


# --------------------------------------------------------------------------- reading runs


def _run_folders(folder: Path) -> list[Path]:
    if (folder / "results.json").is_file():
        return [folder]
    return sorted(p.parent for p in folder.rglob("results.json"))


def _read_run(folder: Path) -> tuple[int, pd.DataFrame, dict]:
    results = folder / "results.json"
    predictions = folder / "predictions.csv"
    try:
        summary = json.loads(results.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CompareError(f"{results}: not a readable results file ({err})") from err
    if not predictions.is_file():
        raise CompareError(f"{folder}: results.json without predictions.csv")
    if isinstance(summary, dict) and not summary.get("pooled", True):
        raise CompareError(
            f"{folder}: a final model (protocol=all) has no test predictions to compare; "
            "compare runs of a protocol with test folds (loso, kfold, ...)"
        )
    settings = summary.get("settings", {}) if isinstance(summary, dict) else {}
    trainer = settings.get("trainer", {}) if isinstance(settings, dict) else {}
    seed = int(trainer.get("seed", 0)) if isinstance(trainer, dict) else 0
    return seed, pd.read_csv(predictions), settings


def read_arm(name: str, folder: str | Path) -> Arm:
    """The arm ``name``: every run folder (with ``results.json``) under ``folder``, one per
    seed (e.g. a ``trainer.seeds=[...]`` run's ``seed_<s>/`` folders).

    Raises:
        CompareError: no run under ``folder``, or two runs with the same seed.
    """
    root = Path(folder)
    if not root.exists():
        raise CompareError(f"arm {name!r}: {root} does not exist")
    runs, folders = {}, {}
    for run in _run_folders(root):
        seed, table, _ = _read_run(run)
        if seed in runs:
            raise CompareError(
                f"arm {name!r}: seed {seed} twice under {root} ({folders[seed]} and {run}); "
                "give each arm its own folder"
            )
        runs[seed], folders[seed] = table, str(run)
    if not runs:
        raise CompareError(f"arm {name!r}: no run (results.json) under {root}")
    return Arm(name, runs, folders)


def arms_from_runs(paths: Sequence[str | Path]) -> list[Arm]:
    """The runs found under ``paths`` grouped into arms by their settings except the seed
    (model, protocol, remedy); an arm is named by its remedy, with the model and protocol
    added where those differ between arms."""
    found: dict[tuple[str, str, str], list[tuple[int, pd.DataFrame, str]]] = {}
    for path in paths:
        root = Path(path)
        if not root.exists():
            raise CompareError(f"{root} does not exist")
        for run in _run_folders(root):
            seed, table, settings = _read_run(run)
            remedy = settings.get("remedy", {})
            key = (
                str(settings.get("model", "")),
                str(settings.get("protocol_name", "")),
                str(remedy.get("name", "")) if isinstance(remedy, dict) else str(remedy),
            )
            found.setdefault(key, []).append((seed, table, str(run)))
    if not found:
        raise CompareError(f"no run (results.json) under {[str(p) for p in paths]}")
    vary = [len({k[i] for k in found}) > 1 for i in range(3)]
    arms = []
    for key, runs in found.items():
        parts = [key[2]] + [key[i] for i in (0, 1) if vary[i]]
        name = "/".join(p for p in parts if p) or "run"
        by_seed: dict[int, pd.DataFrame] = {}
        folders: dict[int, str] = {}
        for seed, table, run in runs:
            if seed in by_seed:
                raise CompareError(f"arm {name!r}: seed {seed} twice ({folders[seed]}, {run})")
            by_seed[seed], folders[seed] = table, run
        arms.append(Arm(name, by_seed, folders))
    return arms


# --------------------------------------------------------------------------- writing


def plot_differences(comparison: Comparison, path: str | Path) -> Path:
    """Per metric, each arm's paired difference to the baseline with its interval and a 0
    line (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = comparison.differences
    arms = list(dict.fromkeys(table["arm"]))
    fig, axes = plt.subplots(1, len(METRICS), figsize=(3.2 * len(METRICS), 0.6 + 0.45 * len(arms)),
                             sharey=True, squeeze=False)  # fmt: skip
    for ax, metric in zip(axes[0], METRICS):
        rows = table[table["metric"] == metric].set_index("arm").loc[arms]
        y = np.arange(len(arms))
        ax.errorbar(rows["diff"], y, xerr=[rows["diff"] - rows["lo"], rows["hi"] - rows["diff"]],
                    fmt="o", capsize=3)  # fmt: skip
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_yticks(y, arms)
        ax.set_title(f"{metric} − {comparison.baseline}", fontsize=9)
    fig.suptitle(f"paired difference, {comparison.confidence:.0%} interval", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_comparison(comparison: Comparison, out_dir: str | Path) -> dict[str, Path]:
    """Write ``compare.md``, ``compare.csv`` (one row per arm × metric) and ``compare.png``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    markdown = out / "compare.md"
    markdown.write_text(f"# Comparison with {comparison.baseline}\n\n{comparison.markdown()}")
    table = out / "compare.csv"
    comparison.table().to_csv(table, index=False)
    plot = plot_differences(comparison, out / "compare.png")
    return {"markdown": markdown, "csv": table, "plot": plot}


def comparison_section(arms: Sequence[Arm], baseline: str | None = None) -> str:
    """A report's "Comparison" section for ``arms`` (Markdown), or ``""`` with fewer than two
    arms; arms that cannot be compared are said in one line instead of failing the report."""
    if len(arms) < 2:
        return ""
    try:
        comparison = compare_arms(arms, baseline)
    except CompareError as err:
        return f"## Comparison\n\nNo paired comparison: {err}\n"
    return f"## Comparison with {comparison.baseline}\n\n{comparison.markdown()}"


def arms_from_mapping(mapping: Mapping[str, str | Path]) -> list[Arm]:
    """``{name: folder}`` as arms (:func:`read_arm`)."""
    return [read_arm(str(name), folder) for name, folder in mapping.items()]


def runs_comparison_section(paths: Sequence[str | Path]) -> str:
    """:func:`comparison_section` of the runs under ``paths`` grouped into arms
    (:func:`arms_from_runs`); runs that do not form comparable arms are said in one line."""
    try:
        arms = arms_from_runs(paths)
    except CompareError as err:
        return f"## Comparison\n\nNo paired comparison: {err}\n"
    return comparison_section(arms)
