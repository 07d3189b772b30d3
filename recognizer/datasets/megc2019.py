"""The MEGC2019 composite: SMIC-HS (original), CASME II and SAMM in 3 classes (megc3).

Membership and labels come from the official ground-truth list when given (a headerless CSV
``db, subject, clip, label`` with 0 negative, 1 positive, 2 surprise); otherwise from the rules:
negative = repression, anger, contempt, disgust, fear, sadness; positive = happiness;
surprise = surprise; others dropped; for CASME II only disgust and repression are negative, and
the two CASME II clips with bad apex annotations (errata flagged ``megc2019_excluded``) are left
out as in the official list. The label of each member is stored in ``extra["label:megc3"]``.

List rows are matched to the loaded clips by :func:`~recognizer.datasets.names.match_name`:
subject and clip names exactly, then ignoring case and zero padding (the list's ``s01_ne_01``
is the release's ``s1_ne_01``, ``6`` is ``006``), then by subject number (``sub01`` is ``01``)
and, for CASME II clips, ignoring a trailing ``f``; a looser rule is used only when it finds
exactly one clip (sub17 holds both ``EP05_03`` and ``EP05_03f``). Every row not taken is
reported with its reason.

The per-dataset class counts are compared with the official ones (:data:`EXPECTED_COUNTS`);
every difference is a note of the report.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import pandas as pd

from mesynth.labels.emotions import scheme_labels, stored_label_key, to_scheme
from recognizer.data.samples import Sample
from recognizer.datasets.errors import AnnotationError, ReleaseNotFoundError
from recognizer.datasets.names import (
    SUBJECT_NUMBER,
    TRAILING_F,
    NameMatch,
    closest_names,
    match_name,
)
from recognizer.datasets.report import LoadReport, LoadResult, SkippedRow

SCHEME = "megc3"
LABEL_KEY = stored_label_key(SCHEME)
DATASETS = ("smic", "casme2", "samm")
TITLES = {"smic": "SMIC", "casme2": "CASME II", "samm": "SAMM"}
#: official class counts (negative, positive, surprise) and subjects per dataset.
EXPECTED_COUNTS: dict[str, dict[str, int]] = {
    "smic": {"negative": 70, "positive": 51, "surprise": 43},
    "casme2": {"negative": 88, "positive": 32, "surprise": 25},
    "samm": {"negative": 92, "positive": 26, "surprise": 15},
}
EXPECTED_SUBJECTS: dict[str, int] = {"smic": 16, "casme2": 24, "samm": 28}
EXPECTED_TOTAL = 442
EXPECTED_TOTAL_SUBJECTS = 68

Component = str | Path | LoadResult | Mapping[str, object]


def megc2019(
    casme2: Component,
    samm: Component,
    smic: Component,
    gt_csv: str | Path | None = None,
) -> LoadResult:
    """Build the composite.

    Args:
        casme2, samm, smic: each a release root, a ``LoadResult`` already loaded, or a mapping
            of loader options including ``root`` (SMIC defaults to the original HS release).
        gt_csv: the official ground-truth CSV; ``None`` derives membership from the rules.

    Returns:
        The member samples (label in ``extra["label:megc3"]``) and a report whose notes compare
        per-dataset counts with the official ones.
    """
    from recognizer.datasets import load

    parts: dict[str, LoadResult] = {}
    for name, given in (("smic", smic), ("casme2", casme2), ("samm", samm)):
        if isinstance(given, LoadResult):
            parts[name] = given
        elif isinstance(given, Mapping):
            options = dict(given)
            parts[name] = load(name, options.pop("root", None), **options)  # type: ignore[arg-type]
        else:  # MEGC2019 uses the original SMIC release, never SMIC-E
            parts[name] = load(name, given, **({"layout": "original"} if name == "smic" else {}))
    report = LoadReport("megc2019", str(gt_csv) if gt_csv else "membership from the rules")
    for name, part in parts.items():
        report.note(str(part.report).splitlines()[0])
        for skipped in part.report.skipped:
            report.skip(skipped.row, f"{name}:{skipped.clip}", skipped.reason)
    if gt_csv is not None:
        samples = _from_ground_truth(Path(gt_csv), parts, report)
    else:
        samples = _from_rules(parts, report)
    report.kept = len(samples)
    _compare_counts(samples, report)
    return LoadResult(samples, report)


def _with_label(sample: Sample, label: str, how: str) -> Sample:
    return replace(sample, extra={**sample.extra, LABEL_KEY: label, "megc2019": how})


def _from_rules(parts: Mapping[str, LoadResult], report: LoadReport) -> list[Sample]:
    samples = []
    for name, part in parts.items():
        report.rows_read += len(part.samples)
        for sample in part.samples:
            where = f"{name}:{sample.subject.split('/', 1)[1]}/{sample.clip}"
            row = int(sample.extra["row"]) if sample.extra.get("row") else None
            label = to_scheme(sample.emotion, SCHEME, dataset=name)
            if label is None:
                report.skip(row, where, f"emotion {sample.emotion!r} is not in {SCHEME}")
            elif name == "casme2" and sample.extra.get("megc2019_excluded"):
                report.skip(
                    row,
                    where,
                    f"bad apex annotation ({sample.extra.get('erratum')}): not in "
                    "the official list",
                )
            else:
                samples.append(_with_label(sample, label, "rules"))
    return samples


def _db_name(text: str) -> str | None:
    squashed = re.sub(r"[^a-z0-9]", "", text.lower())
    if squashed in ("casme2", "casmeii", "casme"):
        return "casme2"
    for name in ("samm", "smic"):
        if squashed.startswith(name):
            return name
    return None


class _Release:
    """One loaded release indexed by subject and clip, with the clips its loader skipped."""

    def __init__(self, name: str, part: LoadResult) -> None:
        self.title = TITLES[name]
        self.looser_clip = (TRAILING_F,) if name == "casme2" else ()
        self.clips: dict[str, dict[str, Sample | SkippedRow]] = {}
        for sample in part.samples:
            subject = sample.subject.split("/", 1)[1]
            self.clips.setdefault(subject, {})[sample.clip] = sample
        for skipped in part.report.skipped:
            if "/" in skipped.clip:
                subject, clip = skipped.clip.split("/", 1)
                self.clips.setdefault(subject, {}).setdefault(clip, skipped)

    def find(self, subject: str, clip: str) -> tuple[Sample | None, str]:
        """The listed clip's sample and the rule that matched it, or ``None`` and why not."""
        by_subject = match_name(subject, self.clips, (SUBJECT_NUMBER,))
        if by_subject.name is None:
            return None, self._missing("subject", subject, self.clips, by_subject)
        clips = self.clips[by_subject.name]
        by_clip = match_name(clip, clips, self.looser_clip)
        if by_clip.name is None:
            return None, self._missing("clip", clip, clips, by_clip)
        found = clips[by_clip.name]
        if isinstance(found, SkippedRow):
            return None, f"the {self.title} loader skipped it ({found})"
        return found, by_clip.rule

    def _missing(self, what: str, wanted: str, names: Iterable[str], match: NameMatch) -> str:
        if match.candidates:
            return (
                f"{what} {wanted!r} matches several {self.title} {what}s "
                f"{match.rule} ({', '.join(match.candidates)}); the list must name one exactly"
            )
        close = closest_names(wanted, names)
        closest = f"closest: {', '.join(close)}" if close else "nothing close"
        return f"no such {what} in the {self.title} release ({closest})"


def _from_ground_truth(
    path: Path, parts: Mapping[str, LoadResult], report: LoadReport
) -> list[Sample]:
    if not path.is_file():
        raise ReleaseNotFoundError(f"MEGC2019 ground-truth CSV not found: {path}")
    table = pd.read_csv(path, header=None, dtype=str, keep_default_na=False)
    if table.shape[1] < 4:
        raise AnnotationError(
            f"{path}: expected 4 columns (db, subject, clip, label), found {table.shape[1]}"
        )
    releases = {name: _Release(name, part) for name, part in parts.items()}
    labels: Sequence[str] = scheme_labels(SCHEME)
    samples: list[Sample] = []
    first_row: dict[str, int] = {}
    rules: Counter[str] = Counter()
    disagreements = 0
    for i, cells in enumerate(table.iloc[:, :4].itertuples(index=False)):
        db, subject, clip, label = (str(c).strip() for c in cells)
        row = i + 1
        if i == 0 and not label.isdigit():
            continue  # a header row some copies carry
        report.rows_read += 1
        where = f"{db}:{subject}/{clip}"
        dataset = _db_name(db)
        if dataset is None:
            report.skip(row, where, f"unknown db {db!r} (expected smic, casme2 or samm)")
            continue
        if not label.isdigit() or not 0 <= int(label) < len(labels):
            report.skip(row, where, f"label {label!r} is not 0, 1 or 2")
            continue
        sample, how = releases[dataset].find(subject, clip)
        if sample is None:
            report.skip(row, where, how)
            continue
        if sample.uid in first_row:
            report.skip(row, where, f"listed twice (first on row {first_row[sample.uid]})")
            continue
        first_row[sample.uid] = row
        rules[how] += 1
        name = labels[int(label)]
        if to_scheme(sample.emotion, SCHEME, dataset=dataset) != name:
            disagreements += 1
        samples.append(_with_label(sample, name, "ground truth"))
    if rules:
        matched = ", ".join(f"{n} {rule}" for rule, n in rules.most_common())
        report.note(f"ground-truth clip names matched: {matched}")
    if disagreements:
        report.note(
            f"{disagreements} ground-truth labels differ from the release's emotion mapping "
            "(the ground truth is used)"
        )
    return samples


def _compare_counts(samples: Sequence[Sample], report: LoadReport) -> None:
    counts = Counter((s.dataset, s.extra[LABEL_KEY]) for s in samples)
    subjects = {name: {s.subject for s in samples if s.dataset == name} for name in DATASETS}
    differences = []
    for name in DATASETS:
        found = [counts[(name, label)] for label in EXPECTED_COUNTS[name]]
        expected = list(EXPECTED_COUNTS[name].values())
        report.note(
            f"{name}: negative/positive/surprise {'/'.join(map(str, found))} "
            f"(official {'/'.join(map(str, expected))}), {len(subjects[name])} subjects "
            f"(official {EXPECTED_SUBJECTS[name]})"
        )
        for label, got, want in zip(EXPECTED_COUNTS[name], found, expected):
            if got != want:
                differences.append(f"{name} {label} {got} vs {want}")
        if len(subjects[name]) != EXPECTED_SUBJECTS[name]:
            differences.append(
                f"{name} subjects {len(subjects[name])} vs {EXPECTED_SUBJECTS[name]}"
            )
    total_subjects = len(set().union(*subjects.values()))
    report.note(
        f"total {len(samples)} samples (official {EXPECTED_TOTAL}), {total_subjects} subjects "
        f"(official {EXPECTED_TOTAL_SUBJECTS})"
    )
    report.note(
        "matches the official counts"
        if not differences
        else "differs from the official counts: " + "; ".join(differences)
    )


def composite_counts(result: LoadResult) -> dict[str, dict[str, int]]:
    """``{dataset: {label: count}}`` of a composite result."""
    out: dict[str, dict[str, int]] = {
        name: dict.fromkeys(EXPECTED_COUNTS[name], 0) for name in DATASETS
    }
    for sample in result.samples:
        out[sample.dataset][sample.extra[LABEL_KEY]] += 1
    return out
