"""Templates mined from real annotations: frequencies of (emotion, AU combination).

Each record (any object with ``subject``, ``emotion`` (raw), ``aus`` (raw string) and
``dataset``; :class:`recognizer.data.samples.Sample` qualifies) adds one count to the template
of its scheme label and AU combination. A cell with alternatives (``L12 or L14``) adds
``1 / n`` to each of its ``n`` readings. AUs coded ``ref(...)`` are not part of the expression
and are left out (noted); ``T``/``B`` half-face prefixes are dropped (the motion model has no
half-face variants); ``A/L12`` (asymmetric, stronger on the left) becomes ``L12``. An AU
coded on both sides and bilaterally (``12+L12``) is kept once, bilateral. Intensities are the
mean relative intensity of each AU's letters (:func:`mesynth.labels.au.letter_to_relative`).

Nothing is lost silently: every record left out is in the report with its reason. A code FACS
does not define (``99``) is dropped and noted like a code outside ``known_codes``; a token that
is no AU (``-5``) is noted; a cell with broken punctuation (``4++7``) is noted with what was
read from it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mesynth.labels.au import FACS_CODES, AUCombination, parse_aus
from mesynth.labels.emotions import UnknownLabelError, record_label, scheme_labels
from mesynth.templates.types import BankReport, SkippedRow, Template, TemplateAU, TemplateError

_Key = tuple[str, str, tuple[tuple[int, str | None], ...]]


def _record_id(index: int, record: object) -> str:
    parts = [
        getattr(record, "dataset", ""),
        getattr(record, "subject", ""),
        getattr(record, "clip", ""),
    ]
    return f"record {index} ({'/'.join(str(p) for p in parts if p not in (None, ''))})"


def _reading_aus(reading: AUCombination) -> dict[tuple[int, str | None], list[float]]:
    """(code, side) -> relative intensities, bilateral winning over one-sided codes."""
    aus: dict[tuple[int, str | None], list[float]] = defaultdict(list)
    for au in reading.aus:
        if not au.reference_only:
            aus[(au.code, au.side)].append(au.relative_intensity)
    for code, side in list(aus):
        if side is not None and (code, None) in aus:
            aus[(code, None)] += aus.pop((code, side))
    return aus


def mine_templates(
    records: Iterable[object],
    scheme: str,
    subjects: Collection[str] | None = None,
    known_codes: Collection[int] | None = None,
    by_subject: bool = False,
) -> tuple[list[Template], BankReport]:
    """Count (scheme label, AU combination) over ``records``.

    Args:
        records: annotation records (``subject``, ``emotion``, ``aus``, ``dataset``).
        scheme: label scheme (``dfme7``, ``casme2_5``, ``megc3``).
        subjects: keep only these (dataset-qualified) subjects, e.g. a training fold.
        known_codes: keep only these AU codes (e.g. ``MotionModel.known_codes``); others are
            dropped and noted, and a record left with no AU is skipped. Codes outside
            :data:`~mesynth.labels.au.FACS_CODES` are always dropped and noted.
        by_subject: count per source subject too, so each template comes from one subject
            (its weight is that subject's count, so the bank's per-emotion distribution of AU
            combinations is unchanged); a protocol fold can then drop exactly the templates of
            its test subjects.

    Returns:
        Templates (source ``mined``, weight = count, ``subjects`` = the subjects counted) and
        the report.
    """
    scheme_labels(scheme)
    subject_set = None if subjects is None else set(subjects)
    report = BankReport(source="mined annotations")
    counts: dict[_Key, float] = defaultdict(float)
    intensities: dict[_Key, dict[tuple[int, str | None], list[float]]] = defaultdict(
        lambda: defaultdict(list)
    )
    datasets: dict[_Key, set[str]] = defaultdict(set)
    owners: dict[_Key, set[str]] = defaultdict(set)
    for index, record in enumerate(records):
        report.rows_read += 1
        row = _record_id(index, record)
        if subject_set is not None and getattr(record, "subject", None) not in subject_set:
            report.skipped.append(SkippedRow(row, "subject not in the selected subjects"))
            continue
        dataset = getattr(record, "dataset", None)
        try:
            label = record_label(record, scheme)
        except UnknownLabelError as error:
            report.skipped.append(SkippedRow(row, "unknown emotion", str(error)))
            continue
        if label is None:
            report.skipped.append(
                SkippedRow(row, "emotion excluded by scheme", str(getattr(record, "emotion", "")))
            )
            continue
        combo = parse_aus(getattr(record, "aus", None))
        if combo.malformed:
            text = f"{getattr(record, 'aus', None)!r} read as {combo.canonical()!r}"
            report.notes.append(
                SkippedRow(row, "malformed AU string", f"{text}: {'; '.join(combo.malformed)}")
            )
        if combo.unknown_tokens:
            report.notes.append(
                SkippedRow(row, "unknown AU tokens ignored", ", ".join(combo.unknown_tokens))
            )
        readings = []
        for reading in combo.readings():
            aus = _reading_aus(reading)
            if any(au.reference_only for au in reading.aus):
                report.notes.append(
                    SkippedRow(row, "reference-only AUs left out", combo.canonical())
                )
            not_facs = sorted({code for code, _ in aus if code not in FACS_CODES})
            if not_facs:
                report.notes.append(
                    SkippedRow(row, "AU codes FACS does not define dropped", str(not_facs))
                )
                aus = {key: value for key, value in aus.items() if key[0] in FACS_CODES}
            if known_codes is not None:
                unknown = sorted({code for code, _ in aus if code not in known_codes})
                if unknown:
                    report.notes.append(
                        SkippedRow(row, "AUs outside known_codes dropped", str(unknown))
                    )
                aus = {key: value for key, value in aus.items() if key[0] in known_codes}
            if aus:
                readings.append(aus)
        if not readings:
            reason = (
                "no AU coded" if not combo.unknown_tokens and combo.is_empty else "no usable AU"
            )
            report.skipped.append(SkippedRow(row, reason, repr(getattr(record, "aus", None))))
            continue
        report.rows_used += 1
        subject = str(getattr(record, "subject", "") or "")
        for aus in readings:
            combination = tuple(sorted(aus, key=lambda k: (k[0], k[1] or "")))
            key: _Key = (label, subject if by_subject else "", combination)
            counts[key] += 1.0 / len(readings)
            for au_key, values in aus.items():
                intensities[key][au_key].extend(values)
            if dataset:
                datasets[key].add(str(dataset))
            if subject:
                owners[key].add(subject)
    templates = []
    for key, count in counts.items():
        label, _, au_keys = key
        aus = tuple(
            TemplateAU(code, side, sum(v) / len(v))
            for (code, side), v in ((k, intensities[key][k]) for k in au_keys)
        )
        origin = key[1] if by_subject and key[1] else ", ".join(sorted(datasets[key]))
        citation = f"mined from {origin or 'annotations'}: {count:g} clips"
        subjects = tuple(sorted(owners[key]))
        templates.append(Template(label, aus, "mined", count, citation, subjects=subjects))
    return templates, report


@dataclass(frozen=True)
class AnnotationRecord:
    """A minimal annotation row for :func:`mine_templates` (real loaders give ``Sample``)."""

    subject: str
    emotion: str
    aus: str
    dataset: str = ""
    clip: str = ""


def read_annotation_table(path: str | Path) -> list[AnnotationRecord]:
    """Read a CSV with columns ``subject, emotion, aus`` (optional ``dataset``, ``clip``).

    Every cell is read as text (so ``'006'`` stays ``'006'``).

    Raises:
        TemplateError: unreadable file or missing columns (the file is named).
    """
    path = Path(path)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise TemplateError(f"{path}: cannot read annotation table: {error}") from error
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in ("subject", "emotion", "aus") if c not in table.columns]
    if missing:
        raise TemplateError(
            f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(table.columns)}"
        )
    return [
        AnnotationRecord(
            subject=row["subject"],
            emotion=row["emotion"],
            aus=row["aus"],
            dataset=row.get("dataset", ""),
            clip=row.get("clip", ""),
        )
        for row in table.to_dict("records")
    ]
