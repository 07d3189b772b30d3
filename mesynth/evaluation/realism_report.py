"""The realism report: how far synthetic clips are from real ones, in a recognizer's view.

:func:`realism_report` turns both sets into one representation (apex flow by default, frame
differences with ``representation="clip"``) and writes ``report.md`` plus figures:

- ``channels.png`` and a table: per-channel value distributions of each set;
- ``region_energy.png`` and a table: mean motion energy in face regions (brows, eyes, nose,
  mouth, cheeks of the canonical face) per class and set;
- ``class_means.png``: per class, the mean energy map of real clips, of synthetic clips and
  their difference, side by side;
- ``domain_test.png``: the domain-classifier test (:mod:`mesynth.evaluation.domain_test`), its
  accuracy against the permutation null;
- ``search_history.png`` (with ``history``): the balanced accuracy of every trial of an
  adversarial calibration (:mod:`mesynth.calibration.adversarial`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import cv2
import numpy as np
import pandas as pd

from mesynth.calibration.flow_images import REGIONS as REGIONS  # the report's face regions
from mesynth.calibration.flow_images import region_masks as face_region_masks
from mesynth.evaluation.domain_test import DomainTestResult, domain_classifier_test
from mesynth.evaluation.features import create_feature
from mesynth.face.canonical import canonical_landmarks
from mesynth.records import RecordReadError, record_name


class ReportError(ValueError):
    """The report cannot be made (a set is empty or unreadable); the message says which."""


@dataclass
class ReportResult:
    """What :func:`realism_report` wrote and found.

    Attributes:
        out_dir, markdown: the folder and its ``report.md``.
        figures: PNG paths.
        domain: the domain-classifier test.
        channel_stats: rows (set, channel) with mean, std and percentiles.
        region_energy: rows (set, class, region) with the mean energy.
        skipped: ``(clip, reason)`` of records that could not be read.
    """

    out_dir: Path
    markdown: Path
    figures: list[Path]
    domain: DomainTestResult
    channel_stats: pd.DataFrame
    region_energy: pd.DataFrame
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def domain_accuracy(self) -> float:
        return self.domain.accuracy


def region_masks(size: int, radius_iod: float = 0.15) -> dict[str, np.ndarray]:
    """``(size, size)`` bool masks of :data:`REGIONS` on the canonical face: the convex hull of
    each landmark group, grown by ``radius_iod``
    (:func:`mesynth.calibration.flow_images.region_masks` of the canonical landmarks)."""
    return face_region_masks(canonical_landmarks(size), size, radius_iod)


def _features(
    records: Sequence[object], feature: Callable[[object], np.ndarray], skipped: list
) -> tuple[np.ndarray, list[object]]:
    images, kept = [], []
    for record in records:
        try:
            images.append(feature(record))
        except (RecordReadError, ValueError, OSError) as err:
            skipped.append((record_name(record), str(err)))
            continue
        kept.append(record)
    if not images:
        return np.zeros((0, 1, 1, 1), np.float32), kept
    return np.stack(images), kept


def _feature(
    representation: str | Callable[[object], np.ndarray], size: int
) -> Callable[[object], np.ndarray]:
    """The feature of ``representation``: a name of :func:`create_feature`, or itself."""
    if isinstance(representation, str):
        return create_feature(representation, size=size)
    return representation


def _read_sets(
    sets: Mapping[str, Sequence[object]], feature: Callable[[object], np.ndarray]
) -> tuple[dict[str, np.ndarray], dict[str, list[object]], list[tuple[str, str]]]:
    """Each set's images and readable records, and the ``(clip, reason)`` of every skipped one.

    Raises:
        ReportError: a set has fewer than two readable clips.
    """
    skipped: list[tuple[str, str]] = []
    images: dict[str, np.ndarray] = {}
    kept: dict[str, list[object]] = {}
    for name, records in sets.items():
        images[name], kept[name] = _features(list(records), feature, skipped)
        if len(kept[name]) < 2:
            raise ReportError(
                f"the {name} set has {len(kept[name])} readable clips (need >= 2); "
                f"skipped: {skipped[:3]}"
            )
    return images, kept, skipped


@dataclass(frozen=True)
class MeasuredSets:
    """Clip sets read as one representation's images (:func:`measure_sets`).

    Attributes:
        feature: the representation (``record -> (H, W, C)``, with ``energy`` and optionally
            ``channels``).
        images: ``{set: (N, H, W, C)}`` of the readable records.
        kept: ``{set: records}`` that could be read, in order.
        skipped: ``(clip, reason)`` of every record that could not be read.
        energies: ``{set: (N, H, W)}``, the feature's energy of each image.
        labels: ``{set: (N,)}`` class names (``label_of`` of each kept record).
    """

    feature: Callable[[object], np.ndarray]
    images: dict[str, np.ndarray]
    kept: dict[str, list[object]]
    skipped: list[tuple[str, str]]
    energies: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]

    @property
    def shape(self) -> tuple[int, ...]:
        """``(H, W, C)`` of every set's images."""
        return next(iter(self.images.values())).shape[1:]

    def domain_test(
        self, name: str, pool: int, n_splits: int, n_permutations: int, seed: int
    ) -> DomainTestResult:
        """Set ``name`` against ``real`` in :func:`domain_classifier_test`, on images
        average-pooled to ``pool x pool``, folds grouped by identity (else subject)."""
        return domain_classifier_test(
            _pool(self.images["real"], pool),
            _pool(self.images[name], pool),
            _groups(self.kept["real"]),
            _groups(self.kept[name]),
            n_splits=n_splits,
            n_permutations=n_permutations,
            seed=seed,
        )


def measure_sets(
    sets: Mapping[str, Sequence[object]],
    representation: str | Callable[[object], np.ndarray],
    size: int,
    label_of: Callable[[object], str],
    what: str = "the sets",
) -> MeasuredSets:
    """Read every set of records as ``representation`` images at ``size``, with their energies
    and class labels: the measurements both reports start from.

    Raises:
        ReportError: a set has fewer than two readable clips, or the sets (``what``, for the
            message) give different image shapes.
    """
    feature = _feature(representation, size)
    images, kept, skipped = _read_sets(sets, feature)
    shapes = {name: x.shape[1:] for name, x in images.items()}
    if len(set(shapes.values())) > 1:
        raise ReportError(f"{what} give different image shapes: {shapes}")
    energy = feature.energy
    energies = {name: np.stack([energy(x) for x in imgs]) for name, imgs in images.items()}
    labels = {name: np.array([str(label_of(r)) for r in kept[name]]) for name in kept}
    return MeasuredSets(feature, images, kept, skipped, energies, labels)


def write_markdown(
    out_dir: Path, text: str, figures: list[Path], history: str | Path | None
) -> Path:
    """Write ``out_dir/report.md``: ``text``, followed by the section of an adversarial search
    ``history`` (a ``history.csv``) when given, whose figure is added to ``figures``.

    Raises:
        ReportError: ``history`` is not a readable search history.
    """
    if history is not None:
        from mesynth.evaluation.figures import plot_search_history

        trials = _read_history(history)
        figures.append(plot_search_history(trials, out_dir / "search_history.png"))
        text += _history_markdown(trials, Path(history))
    markdown = out_dir / "report.md"
    markdown.write_text(text)
    return markdown


def _groups(records: Sequence[object]) -> np.ndarray:
    return np.array([str(getattr(r, "identity", None) or r.subject) for r in records])


def emotion_or_all(record: object) -> str:
    """The class of a record for the report: its ``emotion`` (``"all"`` when it has none)."""
    return str(getattr(record, "emotion", "") or "all")


def _pool(images: np.ndarray, size: int) -> np.ndarray:
    return np.stack(
        [cv2.resize(x, (size, size), interpolation=cv2.INTER_AREA).reshape(-1) for x in images]
    )


def channel_statistics(sets: dict[str, np.ndarray], channels: Sequence[str]) -> pd.DataFrame:
    """Mean, std and 5/50/95th percentiles of every channel of each set's ``(N, H, W, C)``."""
    rows = []
    for name, images in sets.items():
        for c, channel in enumerate(channels):
            values = images[..., c].ravel()
            p5, p50, p95 = np.percentile(values, [5, 50, 95])
            rows.append(
                {
                    "set": name,
                    "channel": channel,
                    "mean": values.mean(),
                    "std": values.std(),
                    "p5": p5,
                    "median": p50,
                    "p95": p95,
                }
            )
    return pd.DataFrame(rows)


def region_energy(
    energies: dict[str, np.ndarray],
    labels: dict[str, np.ndarray],
    masks: dict[str, np.ndarray],
) -> pd.DataFrame:
    """Mean energy per (set, class, region); class ``"all"`` pools every clip of a set."""
    rows = []
    for name, maps in energies.items():
        classes = ["all", *sorted(set(labels[name]))]
        for label in classes:
            chosen = maps if label == "all" else maps[labels[name] == label]
            for region, mask in masks.items():
                rows.append(
                    {
                        "set": name,
                        "class": label,
                        "region": region,
                        "energy": float(chosen[:, mask].mean()),
                        "n": len(chosen),
                    }
                )
    return pd.DataFrame(rows)


class ReportSettings(TypedDict, total=False):
    """The measuring and domain-test keywords :func:`realism_report` shares with
    :func:`~mesynth.evaluation.calibration_comparison.calibration_comparison` (its defaults)."""

    size: int
    pool: int
    n_splits: int
    n_permutations: int
    seed: int
    label_of: Callable[[object], str]


def report_settings(settings: Mapping[str, Any], caller: str) -> dict[str, Any]:
    """``settings`` over :func:`realism_report`'s defaults, every :class:`ReportSettings` key set.

    Raises:
        TypeError: a key that is not a :class:`ReportSettings` key, named as Python would.
    """
    keys = tuple(ReportSettings.__annotations__)
    for key in settings:
        if key not in keys:
            raise TypeError(f"{caller}() got an unexpected keyword argument {key!r}")
    parameters = inspect.signature(realism_report).parameters
    return {key: settings.get(key, parameters[key].default) for key in keys}


def realism_report(
    real: Sequence[object],
    synthetic: Sequence[object],
    out_dir: str | Path,
    representation: str | Callable[[object], np.ndarray] = "apex_flow",
    *,
    size: int = 28,
    pool: int = 14,
    n_splits: int = 5,
    n_permutations: int = 100,
    seed: int = 0,
    label_of: Callable[[object], str] = emotion_or_all,
    title: str = "Realism report",
    history: str | Path | None = None,
) -> ReportResult:
    """Compare a synthetic and a real set of clip records and write the report.

    Args:
        real, synthetic: clip records (:mod:`mesynth.records`); ``emotion`` gives the class,
            ``identity`` (else ``subject``) the group of the domain test. A record that is a
            single image is read as a precomputed apex-flow image.
        out_dir: folder for ``report.md`` and the PNGs (created).
        representation: ``"apex_flow"``, ``"clip"`` or a callable ``record -> (H, W, C)``
            (with an ``energy(image) -> (H, W)`` attribute and optional ``channels``).
        size: side of the representation images.
        pool: the domain classifier sees images average-pooled to ``pool x pool``.
        n_splits, n_permutations, seed: the domain test (:func:`domain_classifier_test`).
        label_of: the class of a record (default its ``emotion``), e.g. a raw emotion mapped
            to the synthetic set's label scheme.
        title: first heading of the Markdown.
        history: an adversarial calibration's ``history.csv``: adds its per-trial accuracy
            figure and best trial to the report.

    Raises:
        ReportError: a set has fewer than two readable clips, or ``history`` is not a readable
            search history.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sets = {"real": real, "synthetic": synthetic}
    measured = measure_sets(sets, representation, size, label_of, what="the two sets")
    images, kept = measured.images, measured.kept
    energies, labels = measured.energies, measured.labels
    channels = tuple(
        getattr(measured.feature, "channels", None) or (f"c{i}" for i in range(measured.shape[-1]))
    )
    domain = measured.domain_test("synthetic", pool, n_splits, n_permutations, seed)
    stats = channel_statistics(images, channels)
    regions = region_energy(energies, labels, region_masks(measured.shape[0]))

    from mesynth.evaluation.figures import (
        plot_channels,
        plot_class_means,
        plot_domain_test,
        plot_region_energy,
    )

    figures = [
        plot_channels(images, channels, out_dir / "channels.png"),
        plot_region_energy(regions, out_dir / "region_energy.png"),
        plot_class_means(energies, labels, out_dir / "class_means.png"),
        plot_domain_test(domain, out_dir / "domain_test.png"),
    ]
    skipped = measured.skipped
    text = _markdown(title, kept, representation, domain, stats, regions, skipped, pool)
    markdown = write_markdown(out_dir, text, figures, history)
    return ReportResult(out_dir, markdown, figures, domain, stats, regions, skipped)


HISTORY_COLUMNS = ("trial", "accuracy", "objective", "best_accuracy")


def _read_history(path: str | Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise ReportError(f"{path}: cannot read the search history ({err})") from err
    missing = [c for c in HISTORY_COLUMNS if c not in frame.columns]
    if missing or frame.empty:
        raise ReportError(f"{path}: not a search history (missing columns {missing} or no rows)")
    return frame


def _history_markdown(trials: pd.DataFrame, path: Path) -> str:
    best = trials.loc[trials["objective"].idxmin()]
    return "\n".join(
        [
            "## Adversarial calibration",
            "",
            f"Search history `{path}`: {len(trials)} trials; the search's own classifier "
            "(pooled apex flow plus texture statistics) on its rendered trial clips.",
            "",
            f"- best trial {int(best['trial'])}: balanced accuracy: **{best['accuracy']:.3f}**",
            f"- first trial: {trials['accuracy'].iloc[0]:.3f}",
            "",
            "![search history](search_history.png)",
            "",
        ]
    )


def markdown_text(lines: list[str], skipped: Sequence[tuple[str, str]]) -> str:
    """A report's Markdown: ``lines``, then a "Skipped clips" section listing the ``(clip,
    reason)`` of ``skipped`` when there are any."""
    if skipped:
        lines = [*lines, "## Skipped clips", "", *(f"- {n}: {r}" for n, r in skipped), ""]
    return "\n".join(lines)


def _table(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = [
        "| " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row) + " |"
        for row in frame.itertuples(index=False)
    ]
    return "\n".join([header, rule, *body])


def _markdown(
    title: str,
    kept: dict[str, list[object]],
    representation: object,
    domain: DomainTestResult,
    stats: pd.DataFrame,
    regions: pd.DataFrame,
    skipped: list[tuple[str, str]],
    pool: int,
) -> str:
    name = representation if isinstance(representation, str) else type(representation).__name__
    verdict = (
        "indistinguishable to this classifier (p >= 0.05)"
        if domain.permutation_p >= 0.05 and domain.binomial_p >= 0.05
        else "distinguishable (p < 0.05)"
    )
    wide = regions[regions["class"] == "all"].pivot(index="region", columns="set", values="energy")
    wide["synthetic / real"] = wide["synthetic"] / wide["real"].where(wide["real"] > 0)
    lines = [
        f"# {title}",
        "",
        f"Representation: `{name}`; {len(kept['real'])} real and {len(kept['synthetic'])} "
        f"synthetic clips ({len(skipped)} skipped).",
        "",
        "## Domain-classifier test",
        "",
        f"Logistic regression on {pool}x{pool}-pooled images, {domain.n_splits}-fold "
        + ("grouped by subject/identity" if domain.grouped else "split by clip (too few groups)")
        + f", equal set sizes ({domain.n // 2} each).",
        "",
        f"- balanced accuracy: **{domain.accuracy:.3f}** (0.5 = indistinguishable)",
        f"- correct: {domain.correct} / {domain.n}; binomial p = {domain.binomial_p:.3g}",
        f"- permutation p = {domain.permutation_p:.3g} "
        f"({len(domain.null_accuracies)} group permutations)",
        f"- verdict: {verdict}",
        "",
        "![domain test](domain_test.png)",
        "",
        "## Channel statistics",
        "",
        _table(stats),
        "",
        "![channels](channels.png)",
        "",
        "## Motion energy by face region",
        "",
        _table(wide.reset_index()),
        "",
        "Per class:",
        "",
        _table(regions[regions["class"] != "all"]),
        "",
        "![region energy](region_energy.png)",
        "",
        "## Class-mean energy maps",
        "",
        "Left: real; middle: synthetic; right: synthetic minus real.",
        "",
        "![class means](class_means.png)",
        "",
    ]
    return markdown_text(lines, skipped)
