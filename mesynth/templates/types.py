"""Records of the template layer: template AUs, templates, sampled instances, bank reports.

A *template* says which AUs move for an emotion, how strongly (relative apex intensity in
(0, 1], where 1 is a typical ME apex whose size :class:`mesynth.motion.au_basis.MotionModel`
calibrates),
on which side, where it comes from and how often it is drawn (its weight).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field


class TemplateError(ValueError):
    """A template table, row or argument that cannot be used; the message names it."""


@dataclass(frozen=True)
class TemplateAU:
    """One AU of a template.

    Attributes:
        code: FACS number.
        side: ``"L"``, ``"R"`` (the subject's side) or ``None`` (bilateral).
        intensity: relative apex intensity in (0, 1]; 1 is a typical ME apex.
    """

    code: int
    side: str | None = None
    intensity: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.code, int) or not 0 < self.code < 100:
            raise TemplateError(f"AU code must be an int in 1..99, got {self.code!r}")
        if self.side not in (None, "L", "R"):
            raise TemplateError(f"AU side must be 'L', 'R' or None, got {self.side!r}")
        if not (0.0 < self.intensity <= 1.0):
            raise TemplateError(f"AU{self.code} intensity must be in (0, 1], got {self.intensity}")

    def token(self) -> str:
        """Canonical AU token without intensity (``12``, ``L12``), parseable by ``parse_aus``."""
        return f"{self.side or ''}{self.code}"


def format_aus(aus: Sequence[TemplateAU]) -> str:
    """Canonical AU string of template AUs, sorted by code then side: ``6+12``, ``L12``."""
    return "+".join(au.token() for au in sorted(aus, key=lambda a: (a.code, a.side or "")))


@dataclass(frozen=True)
class OptionalAU:
    """An AU that fires with ``probability``; when it fires, one of ``choices`` is drawn
    uniformly (``L12`` or ``R12`` for DFME's "L/R-AU12")."""

    choices: tuple[TemplateAU, ...]
    probability: float

    def __post_init__(self) -> None:
        if not self.choices:
            raise TemplateError("an optional AU needs at least one choice")
        if not (0.0 < self.probability <= 1.0):
            raise TemplateError(
                f"optional AU probability must be in (0, 1], got {self.probability}"
            )


@dataclass(frozen=True)
class Template:
    """An emotion's AU pattern.

    Attributes:
        emotion: a label of the bank's scheme.
        aus: AUs always present.
        source: where it comes from: ``expert:<table>``, ``mined`` or ``macro_onset``.
        weight: relative frequency of this template among its emotion's templates (> 0).
        citation: the table row, dataset or file it was built from.
        optional: AUs that fire at random (rule and occurrence tables).
        subjects: dataset-qualified subjects whose annotations the template was mined from
            (empty for expert and macro-onset templates); clips made from it record them, so
            a protocol fold can leave out every clip touching its test subjects.
    """

    emotion: str
    aus: tuple[TemplateAU, ...]
    source: str
    weight: float
    citation: str = ""
    optional: tuple[OptionalAU, ...] = ()
    subjects: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.aus and not self.optional:
            raise TemplateError(f"template for {self.emotion!r} ({self.citation}) has no AU")
        if not (math.isfinite(self.weight) and self.weight > 0):
            raise TemplateError(f"template weight must be positive and finite, got {self.weight}")

    def canonical(self) -> str:
        """AU string of the fixed AUs, with optional ones as ``[p·AU]``: ``12+[0.50·6]``."""
        parts = [format_aus(self.aus)] if self.aus else []
        for option in self.optional:
            choices = "|".join(c.token() for c in option.choices)
            parts.append(f"[{option.probability:.2f}·{choices}]")
        return "+".join(parts)


@dataclass(frozen=True)
class TemplateInstance:
    """One draw from a bank: the AUs of one synthetic ME with their apex intensities, and the
    subjects its template was mined from (:attr:`Template.subjects`)."""

    emotion: str
    aus: tuple[TemplateAU, ...]
    source: str
    citation: str = ""
    subjects: tuple[str, ...] = ()

    @property
    def codes(self) -> tuple[int, ...]:
        return tuple(sorted({au.code for au in self.aus}))

    def canonical(self) -> str:
        """The AU string written to clip manifests (``6+12``, ``L12``)."""
        return format_aus(self.aus)


@dataclass(frozen=True)
class SkippedRow:
    """An input row a bank did not use: ``row`` names it, ``reason`` is a short category."""

    row: str
    reason: str
    detail: str = ""


@dataclass
class BankReport:
    """What building a bank read, used and left out (nothing is lost silently)."""

    source: str
    rows_read: int = 0
    rows_used: int = 0
    skipped: list[SkippedRow] = field(default_factory=list)
    notes: list[SkippedRow] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Number of skipped rows per reason."""
        return dict(Counter(s.reason for s in self.skipped))

    def __str__(self) -> str:
        lines = [f"{self.source}: read {self.rows_read} rows, used {self.rows_used}"]
        lines += [f"  skipped {n:4d}: {reason}" for reason, n in sorted(self.counts().items())]
        notes = Counter(n.reason for n in self.notes)
        lines += [f"  note    {n:4d}: {reason}" for reason, n in sorted(notes.items())]
        return "\n".join(lines)
