"""What a loader did: rows read, samples kept, rows skipped (with row number, clip and reason).

Every loader returns a :class:`LoadResult`: the :class:`~recognizer.data.samples.Sample` records
and a :class:`LoadReport`. ``print(result.report)`` shows the report in a readable form.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from mesynth.labels.emotions import label_indices, record_label
from recognizer.data.samples import Sample


@dataclass(frozen=True)
class SkippedRow:
    """One annotation row (or clip) that produced no sample.

    Attributes:
        row: 1-based row number in the annotation file as a spreadsheet shows it (``None`` when
            the clip comes from a folder, not a row).
        clip: ``"<subject>/<clip>"`` as released.
        reason: why it was skipped.
    """

    row: int | None
    clip: str
    reason: str

    def __str__(self) -> str:
        where = f"row {self.row}" if self.row is not None else "folder"
        return f"{where} {self.clip}: {self.reason}"


@dataclass
class LoadReport:
    """Rows read, samples kept, rows skipped, fixes applied and notes of one load.

    Attributes:
        dataset: loader name.
        source: the annotation file (or root folder) read.
        rows_read: annotation rows (or clip folders) seen.
        kept: samples returned.
        skipped: rows that produced no sample, with reasons.
        fixes: errata and repairs applied to kept rows (``"row 12 04/EP12_01f: ..."``).
        notes: facts about the load (sheet version, frame tree, middle-frame apex, ...).
    """

    dataset: str
    source: str = ""
    rows_read: int = 0
    kept: int = 0
    skipped: list[SkippedRow] = field(default_factory=list)
    fixes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def skip(self, row: int | None, clip: str, reason: str) -> None:
        self.skipped.append(SkippedRow(row, clip, reason))

    def fix(self, row: int | None, clip: str, text: str) -> None:
        where = f"row {row}" if row is not None else "folder"
        self.fixes.append(f"{where} {clip}: {text}")

    def note(self, text: str) -> None:
        self.notes.append(text)

    def skip_reasons(self) -> Counter[str]:
        """How many rows were skipped for each reason."""
        return Counter(s.reason for s in self.skipped)

    def __str__(self) -> str:
        lines = [
            f"{self.dataset}: {self.rows_read} rows read, {self.kept} kept, "
            f"{len(self.skipped)} skipped ({self.source})"
        ]
        lines += [f"  note: {n}" for n in self.notes]
        lines += [f"  fixed {f}" for f in self.fixes]
        lines += [f"  skipped {s}" for s in self.skipped]
        return "\n".join(lines)


@dataclass
class LoadResult:
    """Samples of one load and its report."""

    samples: list[Sample]
    report: LoadReport

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def subjects(self) -> list[str]:
        """Sorted unique dataset-qualified subjects."""
        return sorted({s.subject for s in self.samples})

    def scheme_labels(self, scheme: str) -> list[str | None]:
        """The ``scheme`` label of every sample (``None`` = excluded from the scheme).

        A label stored by a composite in ``extra["label:<scheme>"]`` (e.g. from an official
        ground-truth list) wins over the mapping of the raw emotion.
        """
        return [record_label(sample, scheme) for sample in self.samples]

    def select_scheme(self, scheme: str) -> LoadResult:
        """Only the samples that ``scheme`` keeps; the others are reported as skipped."""
        report = LoadReport(
            self.report.dataset,
            self.report.source,
            self.report.rows_read,
            skipped=list(self.report.skipped),
            fixes=list(self.report.fixes),
            notes=[*self.report.notes, f"scheme {scheme}"],
        )
        kept = []
        for sample, label in zip(self.samples, self.scheme_labels(scheme)):
            if label is None:
                report.skip(
                    _row(sample),
                    f"{sample.subject}/{sample.clip}",
                    f"{sample.emotion!r} is excluded from scheme {scheme}",
                )
            else:
                kept.append(sample)
        report.kept = len(kept)
        return LoadResult(kept, report)

    def label_indices(self, scheme: str) -> list[int]:
        """Class indices under ``scheme``; every sample must be in it (:meth:`select_scheme`)."""
        labels = self.scheme_labels(scheme)
        missing = [s.uid for s, lab in zip(self.samples, labels) if lab is None]
        if missing:
            raise ValueError(
                f"{len(missing)} samples are excluded from scheme {scheme} (first: {missing[0]}); "
                "call select_scheme(scheme) first"
            )
        return label_indices([str(lab) for lab in labels], scheme)


def _row(sample: Sample) -> int | None:
    row = sample.extra.get("row")
    return int(row) if row else None
