"""AU templates and the bank the generator draws them from.

A :class:`TemplateBank` holds templates of one label scheme from any mix of sources:

* :meth:`TemplateBank.expert`: shipped AU-emotion tables (:mod:`mesynth.templates.expert`);
* :meth:`TemplateBank.mined`: (emotion, AU combination) counts in loaded annotations,
  restrictable to the subjects of a training fold (:mod:`mesynth.templates.mining`);
* :meth:`TemplateBank.macro_onset`: early-rise AU intensities of macro-expression videos
  (:mod:`mesynth.templates.macro_onset`);
* :meth:`TemplateBank.combine`: several banks with per-source weights.

Drawing (:meth:`TemplateBank.sample`): pick one of the emotion's templates with probability
proportional to its weight, fire its optional AUs, then scale intensities by one factor per
draw, uniform in ``intensity_range``, and one per AU, uniform in ``1 ± au_spread``, clipped to
(0, 1]. All randomness comes from the ``np.random.Generator`` passed in.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from mesynth.labels.emotions import UnknownLabelError, scheme_labels, to_scheme, validate_label
from mesynth.templates.expert import expert_templates
from mesynth.templates.macro_onset import early_rise_aus
from mesynth.templates.mining import mine_templates
from mesynth.templates.types import (
    BankReport,
    OptionalAU,
    SkippedRow,
    Template,
    TemplateAU,
    TemplateError,
    TemplateInstance,
    format_aus,
)

__all__ = [
    "BankReport",
    "OptionalAU",
    "SkippedRow",
    "Template",
    "TemplateAU",
    "TemplateBank",
    "TemplateError",
    "TemplateInstance",
    "format_aus",
]

_MIN_INTENSITY = 1e-3


class TemplateBank:
    """Templates of one label scheme, drawn per emotion by weight.

    Args:
        scheme: label scheme of every template's emotion.
        templates: the templates (emotions are validated against the scheme).
        reports: what building the bank read and left out, one report per source.
        intensity_range: per-draw intensity factor range, within (0, 1].
        au_spread: per-AU relative intensity jitter (0 disables it).
    """

    def __init__(
        self,
        scheme: str,
        templates: Iterable[Template],
        reports: Sequence[BankReport] = (),
        intensity_range: tuple[float, float] = (0.6, 1.0),
        au_spread: float = 0.15,
    ) -> None:
        scheme_labels(scheme)
        low, high = intensity_range
        if not 0.0 < low <= high <= 1.0:
            raise TemplateError(
                f"intensity_range must satisfy 0 < low <= high <= 1, got {intensity_range}"
            )
        if not 0.0 <= au_spread < 1.0:
            raise TemplateError(f"au_spread must be in [0, 1), got {au_spread}")
        self.scheme = scheme
        self.templates = tuple(templates)
        self.reports = tuple(reports)
        self.intensity_range = (float(low), float(high))
        self.au_spread = float(au_spread)
        self._by_emotion: dict[str, list[Template]] = defaultdict(list)
        for template in self.templates:
            validate_label(template.emotion, scheme)
            self._by_emotion[template.emotion].append(template)

    # --- construction ---------------------------------------------------------------------

    @classmethod
    def expert(
        cls, scheme: str, tables: Sequence[str | Path] | None = None, **kwargs
    ) -> TemplateBank:
        """Templates from expert tables: shipped names (``dfme_table6``, ``dfme_table4``,
        ``megc_objective``, ``casme2_criteria``, ``miex_rules``) or YAML paths; ``None`` uses the
        scheme's defaults (:data:`mesynth.templates.expert.DEFAULT_TABLES`)."""
        templates, report = expert_templates(scheme, tables)
        return cls(scheme, templates, [report], **kwargs)

    @classmethod
    def mined(
        cls,
        records: Iterable[object],
        scheme: str,
        subjects: Collection[str] | None = None,
        known_codes: Collection[int] | None = None,
        by_subject: bool = False,
        **kwargs,
    ) -> TemplateBank:
        """Templates counted in annotation records, optionally only from ``subjects``, and
        per source subject with ``by_subject`` (see
        :func:`mesynth.templates.mining.mine_templates`); ``bank.reports[0]`` lists what was
        left out."""
        templates, report = mine_templates(records, scheme, subjects, known_codes, by_subject)
        return cls(scheme, templates, [report], **kwargs)

    @classmethod
    def macro_onset(
        cls,
        csv_paths: Sequence[str | Path],
        labels: Sequence[str],
        scheme: str,
        fraction: tuple[float, float] = (0.25, 0.5),
        divisor: float = 5.0,
        active_threshold: float = 1.0,
        **kwargs,
    ) -> TemplateBank:
        """One template per OpenFace CSV of a macro-expression (see
        :mod:`mesynth.templates.macro_onset`).

        Args:
            csv_paths: OpenFace-style AU intensity CSVs.
            labels: emotion of each CSV (raw spelling or scheme label).
            scheme: label scheme.
            fraction: early-rise window, as fractions of the way to the peak.
            divisor: OpenFace intensity that maps to relative intensity 1 (MiE-X: 5).
            active_threshold: OpenFace intensity an AU must reach to count.

        Raises:
            UnknownLabelError: a label outside the scheme (the message lists the known labels).
            MacroOnsetError: a malformed CSV (file and row named).
        """
        if len(csv_paths) != len(labels):
            raise TemplateError(f"{len(csv_paths)} CSV paths but {len(labels)} labels")
        report = BankReport(source="macro-expression onsets")
        templates = []
        for path, raw in zip(csv_paths, labels):
            report.rows_read += 1
            label = _macro_label(raw, scheme, path)
            aus = early_rise_aus(path, fraction, divisor, active_threshold)
            templates.append(Template(label, aus, "macro_onset", 1.0, f"macro-expression {path}"))
            report.rows_used += 1
        return cls(scheme, templates, [report], **kwargs)

    @classmethod
    def combine(
        cls, banks: Sequence[TemplateBank], weights: Sequence[float] | None = None
    ) -> TemplateBank:
        """Merge banks of one scheme; within each emotion, bank ``i`` gets share ``weights[i]``.

        Each bank's templates are first normalised to weight 1 per emotion, then multiplied by
        the bank's weight (default: equal weights). The first bank's sampling settings are kept.
        """
        if not banks:
            raise TemplateError("combine needs at least one bank")
        weights = [1.0] * len(banks) if weights is None else list(weights)
        if len(weights) != len(banks) or any(not w > 0 for w in weights):
            raise TemplateError(
                f"need one positive weight per bank; got {weights} for {len(banks)} banks"
            )
        schemes = {bank.scheme for bank in banks}
        if len(schemes) != 1:
            raise TemplateError(f"banks of different schemes cannot be combined: {sorted(schemes)}")
        templates = []
        for bank, weight in zip(banks, weights):
            for group in bank._by_emotion.values():
                total = sum(t.weight for t in group)
                templates += [replace(t, weight=weight * t.weight / total) for t in group]
        reports = [report for bank in banks for report in bank.reports]
        first = banks[0]
        return cls(first.scheme, templates, reports, first.intensity_range, first.au_spread)

    def restrict_codes(self, codes: Collection[int]) -> TemplateBank:
        """A bank whose templates use only AU ``codes`` (e.g. ``MotionModel.known_codes``).

        Other AUs are removed; templates left without AU are dropped. Both are noted in a new
        report.
        """
        codes = set(codes)
        report = BankReport(source=f"restricted to AUs {sorted(codes)}")
        kept = []
        for template in self.templates:
            report.rows_read += 1
            aus = tuple(au for au in template.aus if au.code in codes)
            optional = []
            for option in template.optional:
                choices = tuple(c for c in option.choices if c.code in codes)
                if choices:
                    optional.append(OptionalAU(choices, option.probability))
            if len(aus) != len(template.aus) or len(optional) != len(template.optional):
                report.notes.append(
                    SkippedRow(template.citation, "AUs removed", template.canonical())
                )
            if not aus and not optional:
                report.skipped.append(
                    SkippedRow(template.citation, "no AU left", template.canonical())
                )
                continue
            report.rows_used += 1
            kept.append(replace(template, aus=aus, optional=tuple(optional)))
        return TemplateBank(
            self.scheme, kept, [*self.reports, report], self.intensity_range, self.au_spread
        )

    # --- use ------------------------------------------------------------------------------

    @property
    def emotions(self) -> tuple[str, ...]:
        """Scheme labels that have at least one template, in class-index order."""
        return tuple(label for label in scheme_labels(self.scheme) if self._by_emotion.get(label))

    def templates_for(self, emotion: str) -> tuple[Template, ...]:
        validate_label(emotion, self.scheme)
        return tuple(self._by_emotion.get(emotion, ()))

    def sample(self, emotion: str, generator: np.random.Generator) -> TemplateInstance:
        """Draw one template of ``emotion`` and its AU intensities.

        Raises:
            UnknownLabelError: ``emotion`` is not a label of the scheme.
            TemplateError: the bank has no template for ``emotion``.
        """
        group = self.templates_for(emotion)
        if not group:
            raise TemplateError(
                f"no template for {emotion!r} in this bank; emotions with templates: "
                f"{', '.join(self.emotions) or 'none'}"
            )
        weights = np.array([t.weight for t in group], dtype=np.float64)
        template = group[int(generator.choice(len(group), p=weights / weights.sum()))]
        aus = list(template.aus) + self._fire_optional(template, generator)
        aus = _merge_sides(aus)
        scale = generator.uniform(*self.intensity_range)
        spread = generator.uniform(1.0 - self.au_spread, 1.0 + self.au_spread, size=len(aus))
        drawn = tuple(
            TemplateAU(
                au.code, au.side, float(np.clip(au.intensity * scale * s, _MIN_INTENSITY, 1.0))
            )
            for au, s in zip(aus, spread)
        )
        return TemplateInstance(
            emotion, drawn, template.source, template.citation, template.subjects
        )

    @staticmethod
    def _fire_optional(template: Template, generator: np.random.Generator) -> list[TemplateAU]:
        if not template.optional:
            return []
        probabilities = np.array([o.probability for o in template.optional])
        fired = np.flatnonzero(generator.random(len(probabilities)) < probabilities)
        if fired.size == 0 and not template.aus:  # a template with only optional AUs needs one
            fired = np.array(
                [generator.choice(len(probabilities), p=probabilities / probabilities.sum())]
            )
        out = []
        for index in fired:
            choices = template.optional[index].choices
            out.append(choices[int(generator.integers(len(choices)))])
        return out

    def to_frame(self) -> pd.DataFrame:
        """One row per template: emotion, AUs, source, weight, share in its emotion, citation."""
        rows = []
        for emotion in self.emotions:
            group = self._by_emotion[emotion]
            total = sum(t.weight for t in group)
            rows += [
                {
                    "emotion": emotion,
                    "aus": t.canonical(),
                    "source": t.source,
                    "weight": t.weight,
                    "share": t.weight / total,
                    "citation": t.citation,
                }
                for t in group
            ]
        return pd.DataFrame(
            rows, columns=["emotion", "aus", "source", "weight", "share", "citation"]
        )

    def summary(self) -> pd.DataFrame:
        """One row per scheme label: number of templates, sources, AU codes, and the most likely
        AU combination (``top_template``) with its share of the label's sampling weight
        (``top_share``).

        The top template is taken among templates with a fixed AU set (a combination table's
        rows): an occurrence-rate template (optional AUs, each drawn on its own, like DFME
        Table 4) is no one combination, so it is the top only when the label has nothing
        else. Labels without templates are listed with ``templates == 0`` so a gap is visible.
        """
        rows = []
        for emotion in scheme_labels(self.scheme):
            group = self._by_emotion.get(emotion, [])
            total = sum(t.weight for t in group)
            fixed = [t for t in group if not t.optional]
            top = max(fixed or group, key=lambda t: t.weight) if group else None
            codes = sorted(
                {au.code for t in group for au in t.aus}
                | {c.code for t in group for o in t.optional for c in o.choices}
            )
            rows.append(
                {
                    "emotion": emotion,
                    "templates": len(group),
                    "sources": ", ".join(sorted({t.source for t in group})),
                    "aus": " ".join(map(str, codes)),
                    "top_template": top.canonical() if top else "",
                    "top_share": round(top.weight / total, 3) if top else 0.0,
                }
            )
        return pd.DataFrame(rows).set_index("emotion")

    def __len__(self) -> int:
        return len(self.templates)

    def __repr__(self) -> str:
        return (
            f"TemplateBank(scheme={self.scheme!r}, templates={len(self.templates)}, "
            f"emotions={self.emotions})"
        )


def _merge_sides(aus: list[TemplateAU]) -> list[TemplateAU]:
    """One entry per (code, side): the strongest; a bilateral AU absorbs one-sided ones."""
    best: dict[tuple[int, str | None], TemplateAU] = {}
    for au in aus:
        key = (au.code, au.side)
        if key not in best or au.intensity > best[key].intensity:
            best[key] = au
    for code, side in list(best):
        if side is not None and (code, None) in best:
            del best[(code, side)]
    return sorted(best.values(), key=lambda a: (a.code, a.side or ""))


def _macro_label(raw: str, scheme: str, path: str | Path) -> str:
    try:
        label = to_scheme(raw, scheme)
    except UnknownLabelError:
        label = None
    if label is None:
        known = ", ".join(scheme_labels(scheme))
        raise UnknownLabelError(
            f"{path}: label {raw!r} is not a {scheme} label; known labels: {known}"
        )
    return label
