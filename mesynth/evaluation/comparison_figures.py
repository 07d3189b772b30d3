"""Figures of the before/after calibration report
(:mod:`mesynth.evaluation.calibration_comparison`); matplotlib figures without pyplot, PNG."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mesynth.evaluation.domain_test import DomainTestResult
from mesynth.evaluation.figures import _figure, _save

COLOURS = {"real": "tab:blue", "uncalibrated": "tab:orange", "calibrated": "tab:green"}


def plot_domain_before_after(domain: Mapping[str, DomainTestResult], path: Path) -> Path:
    """One bar per synthetic set: its balanced accuracy against the real set, with the 5-95 %
    range of its permutation null (when computed) and chance marked."""
    figure, axes = _figure(1, 1, (4.5, 3))
    axis = axes[0, 0]
    names = list(domain)
    positions = np.arange(len(names))
    accuracies = [domain[n].accuracy for n in names]
    axis.bar(positions, accuracies, 0.6, color=[COLOURS.get(n, "grey") for n in names])
    for x, name in zip(positions, names):
        null = domain[name].null_accuracies
        if len(null):
            low, high = np.percentile(null, [5, 95])
            axis.plot([x, x], [low, high], color="black", linewidth=3, alpha=0.4)
        axis.text(x, domain[name].accuracy + 0.02, f"{domain[name].accuracy:.2f}", ha="center")
    axis.axhline(0.5, color="black", linestyle=":", label="chance")
    axis.set_xticks(positions, names)
    axis.set_ylim(0, 1.05)
    axis.set_ylabel("balanced accuracy vs real")
    axis.legend(fontsize=8, loc="lower right")
    return _save(figure, path)


def plot_class_means_side_by_side(
    energies: Mapping[str, np.ndarray],
    labels: Mapping[str, np.ndarray],
    sets: Sequence[str],
    path: Path,
) -> Path:
    """Per class present in every set (else all clips pooled): the mean ``(H, W)`` energy map
    of each set in ``sets`` order, one colour scale per row."""
    classes = sorted(set.intersection(*(set(labels[s]) for s in sets))) or ["all"]
    figure, axes = _figure(len(classes), len(sets), (2.6 * len(sets), 2.4 * len(classes)))
    for row, label in enumerate(classes):
        means = [
            energies[s][labels[s] == label].mean(0) if label != "all" else energies[s].mean(0)
            for s in sets
        ]
        top = max(max(float(m.max()) for m in means), 1e-9)
        for column, (axis, name, mean) in enumerate(zip(axes[row], sets, means)):
            shown = axis.imshow(mean, cmap="viridis", vmin=0, vmax=top)
            axis.set_title(f"{label}: {name}" if column == 0 else name, fontsize=9)
            axis.axis("off")
        figure.colorbar(shown, ax=axes[row, -1], fraction=0.046)
    return _save(figure, path)


def plot_region_ratios(ratios: pd.DataFrame, sets: Sequence[str], path: Path) -> Path:
    """Bars of ``<set> / real`` mean energy per face region for each synthetic set; 1 marked."""
    figure, axes = _figure(1, 1, (6, 3))
    axis = axes[0, 0]
    positions = np.arange(len(ratios))
    width = 0.8 / len(sets)
    for k, name in enumerate(sets):
        offset = (k - (len(sets) - 1) / 2) * width
        values = ratios[f"{name} / real"].to_numpy(dtype=float)
        axis.bar(positions + offset, values, width, label=name, color=COLOURS.get(name))
    axis.axhline(1.0, color="black", linestyle=":", label="as real")
    axis.set_xticks(positions, ratios["region"])
    axis.set_ylabel("energy, synthetic / real")
    axis.legend(fontsize=8)
    return _save(figure, path)


def plot_value_histograms(
    values: Mapping[str, np.ndarray], statistics: pd.DataFrame, path: Path
) -> Path:
    """Density histograms of each set's values in ``[0, 1]``, overlaid, with each set's median
    (``statistics``: ``set`` and ``median`` columns) as a dashed line."""
    figure, axes = _figure(1, 1, (6, 3))
    axis = axes[0, 0]
    medians = statistics.set_index("set")["median"]
    bins = np.linspace(0, 1, 41)
    for name, data in values.items():
        colour = COLOURS.get(name)
        axis.hist(np.ravel(data), bins=bins, density=True, alpha=0.45, color=colour, label=name)
        axis.axvline(float(medians[name]), color=colour, linestyle="--")
    axis.set_xlabel("strain (min-max scaled per image)")
    axis.set_ylabel("density")
    axis.legend(fontsize=8)
    return _save(figure, path)
