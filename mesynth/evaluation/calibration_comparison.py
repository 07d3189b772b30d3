"""Before and after calibration: one report comparing real clips with an uncalibrated and a
calibrated synthetic set.

:func:`calibration_comparison` turns the three sets into one representation (as
:func:`~mesynth.evaluation.realism_report.realism_report` does) and writes ``report.md`` plus:

- ``domain_before_after.png`` and a table: the domain-classifier test
  (:func:`~mesynth.evaluation.domain_test.domain_classifier_test`) of real vs uncalibrated and
  of real vs calibrated, balanced accuracy with its permutation null;
- ``class_means_comparison.png``: per class, the mean energy map of real | uncalibrated |
  calibrated clips on one colour scale;
- ``region_ratios.png`` and a table: per face region (brows, eyes, nose, cheeks, mouth) the
  mean motion energy of each synthetic set divided by the real set's (1 = as much motion as
  real);
- ``strain_histograms.png`` and a table (apex flow only): the strain channel's values with
  median, 5th and 95th percentile per set;
- ``search_history.png`` (with ``history``): the adversarial search's per-trial accuracy.

Convention:
    Apex-flow images are ``(size, size, 3)`` ``(u, v, strain)``, each channel min-max scaled
    per image to ``[0, 1]`` (:func:`mesynth.flow.apex_flow` stores ``[0, 255]``; the feature
    divides by 255), which is how the MEGC2019 composite stores its apex flows and how
    :class:`recognizer.data.representations.ApexFlow` feeds STSTNet. Energy maps are
    ``(size, size)`` (the feature's ``energy``); region masks come from
    :func:`~mesynth.evaluation.realism_report.region_masks`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mesynth.evaluation.domain_test import DomainTestResult
from mesynth.evaluation.realism_report import (
    REGIONS,
    ReportSettings,
    _table,
    markdown_text,
    measure_sets,
    region_energy,
    region_masks,
    report_settings,
    write_markdown,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

#: the three sets of a comparison, in report order.
SETS = ("real", "uncalibrated", "calibrated")
#: the two synthetic sets, each compared with ``real``.
SYNTHETIC_SETS = SETS[1:]
#: the apex-flow channel whose histogram the report shows.
STRAIN = "strain"


@dataclass
class ComparisonResult:
    """What :func:`calibration_comparison` wrote and found.

    Attributes:
        out_dir, markdown: the folder and its ``report.md``.
        figures: PNG paths.
        domain: ``{"uncalibrated": test, "calibrated": test}``, each against the real set.
        domain_table: rows ``set`` with ``accuracy``, ``binomial_p``, ``permutation_p``, ``n``.
        region_ratios: rows ``region`` (:data:`~mesynth.evaluation.realism_report.REGIONS`
            order) with the mean energy of every set and ``<set> / real`` for both synthetic
            sets (all classes pooled).
        strain: rows ``set`` with ``median``, ``p5``, ``p95`` of the strain channel's values
            in ``[0, 1]`` (empty when the representation has no strain channel).
        region_energy: rows (set, class, region) with the mean energy, as in the realism report.
        skipped: ``(clip, reason)`` of records that could not be read.
    """

    out_dir: Path
    markdown: Path
    figures: list[Path]
    domain: dict[str, DomainTestResult]
    domain_table: pd.DataFrame
    region_ratios: pd.DataFrame
    strain: pd.DataFrame
    region_energy: pd.DataFrame
    skipped: list[tuple[str, str]] = field(default_factory=list)


def region_ratios(regions: pd.DataFrame) -> pd.DataFrame:
    """Per region, each set's mean energy (all classes pooled) and ``<set> / real`` for the
    synthetic sets (NaN where the real energy is 0); ``regions`` as :func:`region_energy`
    returns it."""
    pooled = regions[regions["class"] == "all"]
    pooled = pooled.pivot(index="region", columns="set", values="energy")
    table = pooled.reindex(index=list(REGIONS), columns=[s for s in SETS if s in pooled.columns])
    real = table["real"].where(table["real"] > 0)
    for name in SYNTHETIC_SETS:
        if name in table.columns:
            table[f"{name} / real"] = table[name] / real
    return table.reset_index()


def search_history_path(path: str | Path) -> Path:
    """An adversarial search's ``history.csv``: ``path`` itself, or ``path/history.csv`` when
    ``path`` is the search's ``out_dir``."""
    path = Path(path)
    return path / "history.csv" if path.is_dir() else path


def strain_statistics(images: dict[str, np.ndarray], channel: int) -> pd.DataFrame:
    """Median, 5th and 95th percentile of channel ``channel`` of each set's ``(N, H, W, C)``
    images, over every pixel of every image."""
    rows = []
    for name, stack in images.items():
        p5, median, p95 = np.percentile(stack[..., channel].ravel(), [5, 50, 95])
        rows.append({"set": name, "median": median, "p5": p5, "p95": p95})
    return pd.DataFrame(rows)


def calibration_comparison(
    real: Sequence[object],
    uncalibrated: Sequence[object],
    calibrated: Sequence[object],
    out_dir: str | Path,
    representation: str | Callable[[object], np.ndarray] = "apex_flow",
    *,
    title: str = "Realism before and after calibration",
    history: str | Path | None = None,
    **settings: Unpack[ReportSettings],
) -> ComparisonResult:
    """Compare real clips with synthetic clips rendered before and after calibration.

    Args:
        real: real clip records (:mod:`mesynth.records`).
        uncalibrated, calibrated: synthetic clip records rendered without and with the
            calibrated profile.
        out_dir: folder for ``report.md`` and the PNGs (created).
        representation: as in :func:`~mesynth.evaluation.realism_report.realism_report`.
        title: first heading of the Markdown.
        history: an adversarial calibration's ``history.csv`` or its ``out_dir``: adds its
            per-trial accuracy figure.
        **settings: ``size``, ``pool``, ``n_splits``, ``n_permutations``, ``seed``,
            ``label_of`` (:class:`~mesynth.evaluation.realism_report.ReportSettings`), as in
            and with the defaults of :func:`~mesynth.evaluation.realism_report.realism_report`;
            both domain tests use the same settings and the same real features.

    Raises:
        ReportError: a set has fewer than two readable clips, the sets give different image
            shapes, or ``history`` is not a readable search history.
    """
    options = report_settings(settings, "calibration_comparison")
    size, pool, label_of = options["size"], options["pool"], options["label_of"]
    n_splits, n_permutations, seed = (options[k] for k in ("n_splits", "n_permutations", "seed"))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sets = dict(zip(SETS, (real, uncalibrated, calibrated)))
    measured = measure_sets(sets, representation, size, label_of)
    images, kept = measured.images, measured.kept
    energies, labels = measured.energies, measured.labels
    channels = tuple(getattr(measured.feature, "channels", None) or ())
    domain = {
        name: measured.domain_test(name, pool, n_splits, n_permutations, seed)
        for name in SYNTHETIC_SETS
    }
    domain_table = pd.DataFrame(
        [
            {
                "set": name,
                "accuracy": test.accuracy,
                "binomial_p": test.binomial_p,
                "permutation_p": test.permutation_p,
                "n": test.n,
            }
            for name, test in domain.items()
        ]
    )
    regions = region_energy(energies, labels, region_masks(measured.shape[0]))
    ratios = region_ratios(regions)
    strain = (
        strain_statistics(images, channels.index(STRAIN))
        if STRAIN in channels
        else pd.DataFrame(columns=["set", "median", "p5", "p95"])
    )

    from mesynth.evaluation.comparison_figures import (
        plot_class_means_side_by_side,
        plot_domain_before_after,
        plot_region_ratios,
        plot_value_histograms,
    )

    figures = [
        plot_domain_before_after(domain, out_dir / "domain_before_after.png"),
        plot_class_means_side_by_side(
            energies, labels, SETS, out_dir / "class_means_comparison.png"
        ),
        plot_region_ratios(ratios, SYNTHETIC_SETS, out_dir / "region_ratios.png"),
    ]
    if not strain.empty:
        strain_values = {name: x[..., channels.index(STRAIN)] for name, x in images.items()}
        figures.append(
            plot_value_histograms(strain_values, strain, out_dir / "strain_histograms.png")
        )
    name = representation if isinstance(representation, str) else type(representation).__name__
    skipped = measured.skipped
    text = _markdown(title, name, kept, skipped, pool, domain, domain_table, ratios, strain)
    history = None if history is None else search_history_path(history)
    markdown = write_markdown(out_dir, text, figures, history)
    return ComparisonResult(
        out_dir, markdown, figures, domain, domain_table, ratios, strain, regions, skipped
    )


def _markdown(
    title: str,
    representation: str,
    kept: dict[str, list[object]],
    skipped: list[tuple[str, str]],
    pool: int,
    domain: dict[str, DomainTestResult],
    domain_table: pd.DataFrame,
    ratios: pd.DataFrame,
    strain: pd.DataFrame,
) -> str:
    counts = ", ".join(f"{len(kept[name])} {name}" for name in SETS)
    before, after = (domain[name].accuracy for name in SYNTHETIC_SETS)
    lines = [
        f"# {title}",
        "",
        f"Representation: `{representation}`; {counts} clips ({len(skipped)} skipped).",
        "",
        "## Domain-classifier test before and after calibration",
        "",
        f"Logistic regression on {pool}x{pool}-pooled images, folds grouped by "
        "subject/identity, equal set sizes; each synthetic set against the same real clips. "
        "0.5 = indistinguishable.",
        "",
        f"- balanced accuracy: **{before:.3f}** uncalibrated -> **{after:.3f}** calibrated",
        "",
        _table(domain_table),
        "",
        "![domain before and after](domain_before_after.png)",
        "",
        "## Class-mean energy maps",
        "",
        "Per class: real | uncalibrated | calibrated, one colour scale per row.",
        "",
        "![class means](class_means_comparison.png)",
        "",
        "## Motion energy by face region, synthetic / real",
        "",
        "Mean energy per region (all classes pooled); a ratio of 1 is as much motion as the "
        "real clips.",
        "",
        _table(ratios),
        "",
        "![region ratios](region_ratios.png)",
        "",
    ]
    if not strain.empty:
        lines += [
            "## Strain channel",
            "",
            "Strain values of the apex-flow images (min-max scaled per image to [0, 1], as the "
            "MEGC2019 composite stores them), every pixel of every image.",
            "",
            _table(strain),
            "",
            "![strain histograms](strain_histograms.png)",
            "",
        ]
    return markdown_text(lines, skipped)
