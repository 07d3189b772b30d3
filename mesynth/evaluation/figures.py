"""Figures of the realism report (matplotlib figures without pyplot, so no GUI backend; PNG)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from mesynth.evaluation.domain_test import DomainTestResult

COLOURS = {"real": "tab:blue", "synthetic": "tab:orange"}


def _figure(rows: int, columns: int, figsize: tuple[float, float]) -> tuple[Figure, np.ndarray]:
    figure = Figure(figsize=figsize)
    return figure, figure.subplots(rows, columns, squeeze=False)


def _save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return path


def plot_channels(sets: dict[str, np.ndarray], channels: Sequence[str], path: Path) -> Path:
    """One histogram per channel, both sets overlaid (densities)."""
    figure, axes = _figure(1, len(channels), (3.2 * len(channels), 2.8))
    for c, (axis, channel) in enumerate(zip(axes[0], channels)):
        for name, images in sets.items():
            axis.hist(
                images[..., c].ravel(),
                bins=40,
                density=True,
                alpha=0.5,
                color=COLOURS.get(name),
                label=name,
            )
        axis.set_title(channel)
    axes[0, 0].legend()
    return _save(figure, path)


def plot_region_energy(regions: pd.DataFrame, path: Path) -> Path:
    """Bars of mean motion energy per face region, real vs synthetic, all classes pooled."""
    pooled = regions[regions["class"] == "all"].pivot(
        index="region", columns="set", values="energy"
    )
    figure, axes = _figure(1, 1, (6, 3))
    axis = axes[0, 0]
    positions = np.arange(len(pooled))
    for offset, name in zip((-0.2, 0.2), pooled.columns):
        axis.bar(positions + offset, pooled[name], 0.4, label=name, color=COLOURS.get(name))
    axis.set_xticks(positions, pooled.index)
    axis.set_ylabel("mean energy")
    axis.legend()
    return _save(figure, path)


def plot_class_means(
    energies: dict[str, np.ndarray], labels: dict[str, np.ndarray], path: Path
) -> Path:
    """Per class present in both sets: mean real map, mean synthetic map, their difference."""
    classes = sorted(set(labels["real"]) & set(labels["synthetic"])) or ["all"]
    figure, axes = _figure(len(classes), 3, (7.5, 2.4 * len(classes)))
    for row, label in enumerate(classes):
        means = {}
        for name in ("real", "synthetic"):
            chosen = labels[name] == label if label != "all" else np.ones(len(labels[name]), bool)
            means[name] = energies[name][chosen].mean(0)
        top = max(means["real"].max(), means["synthetic"].max(), 1e-9)
        difference = means["synthetic"] - means["real"]
        bound = max(np.abs(difference).max(), 1e-9)
        panels = [
            (means["real"], "viridis", 0, top, f"{label}: real"),
            (means["synthetic"], "viridis", 0, top, "synthetic"),
            (difference, "coolwarm", -bound, bound, "synthetic - real"),
        ]
        for axis, (image, cmap, low, high, text) in zip(axes[row], panels):
            shown = axis.imshow(image, cmap=cmap, vmin=low, vmax=high)
            axis.set_title(text, fontsize=9)
            axis.axis("off")
            figure.colorbar(shown, ax=axis, fraction=0.046)
    return _save(figure, path)


def plot_domain_test(domain: DomainTestResult, path: Path) -> Path:
    """Histogram of permutation-null accuracies with the observed accuracy and chance marked."""
    figure, axes = _figure(1, 1, (5, 3))
    axis = axes[0, 0]
    if len(domain.null_accuracies):
        axis.hist(domain.null_accuracies, bins=20, color="grey", alpha=0.7, label="permuted")
    axis.axvline(0.5, color="black", linestyle=":", label="chance")
    axis.axvline(domain.accuracy, color="tab:red", label=f"observed {domain.accuracy:.2f}")
    axis.set_xlim(0, 1)
    axis.set_xlabel("balanced accuracy (real vs synthetic)")
    axis.legend(fontsize=8)
    return _save(figure, path)


def plot_utility_history(history: pd.DataFrame, baseline: float, path: Path) -> Path:
    """Objective (mean of inner UF1 and UAR) of every utility-calibration trial, the best so
    far, and the no-synthetic baseline as a line (``history``: ``trial`` and ``objective``
    columns, as :func:`recognizer.remedies.utility.calibrate_utility` writes them)."""
    figure, axes = _figure(1, 1, (6, 3))
    axis = axes[0, 0]
    if len(history):
        axis.scatter(history["trial"], history["objective"], s=14, color="grey", label="trial")
        axis.step(history["trial"], history["objective"].cummax(), where="post",
                  color="tab:red", label="best so far")  # fmt: skip
    axis.axhline(baseline, color="black", linestyle=":", label="no synthetic")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_ylim(0, 1)
    axis.set_xlabel("trial")
    axis.set_ylabel("(UF1 + UAR) / 2, inner folds")
    axis.legend(fontsize=8)
    return _save(figure, path)


def plot_search_history(history: pd.DataFrame, path: Path) -> Path:
    """Balanced accuracy of every adversarial-calibration trial, the best trial so far (the one
    closest to chance) and chance itself (``history``: ``trial``, ``accuracy``,
    ``best_accuracy`` columns, as :func:`mesynth.calibration.adversarial.adversarial_calibration`
    writes to ``history.csv``)."""
    figure, axes = _figure(1, 1, (6, 3))
    axis = axes[0, 0]
    axis.scatter(history["trial"], history["accuracy"], s=14, color="grey", label="trial")
    axis.step(
        history["trial"],
        history["best_accuracy"],
        where="post",
        color="tab:red",
        label="best so far",
    )
    axis.axhline(0.5, color="black", linestyle=":", label="chance")
    axis.set_ylim(0, 1)
    axis.set_xlabel("trial")
    axis.set_ylabel("balanced accuracy")
    axis.legend(fontsize=8)
    return _save(figure, path)
