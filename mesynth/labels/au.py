"""Facial Action Unit (AU) strings as coded in real annotation sheets, parsed into structure.

One parser for every spelling found in the releases (CASME II, SAMM, SMIC, CAS(ME)^3, MMEW,
DFME): ``4+7``, ``L10``, ``R12``, ``L/R-AU12``, ``AU4``, ``15A``, ``10A/B``, ``T23``, ``B28``,
``A/L12``, ``ref(7B)+43``, ``(R6 or R12)+R15``, ``L12 or L14``, ``?``, ``/``, ``NULL``,
``R14+17+soft focus``, numbers stored as numbers (``4``, ``4.0``), full-width commas and stray
spaces. Nothing is dropped silently: a token that is not an AU (``-5``, ``soft focus``) lands in
:attr:`AUCombination.unknown_tokens`, and a cell whose punctuation is broken (``4++7``, a ``(``
never closed) is read as well as it can be and says why in :attr:`AUCombination.malformed`.
:data:`FACS_CODES` are the codes FACS defines; a parsed code outside them (``99``) is kept for
the caller to report (template mining does).

Convention:
    ``L``/``R`` are the *subject's* left/right (subject-right is image-left).
    ``T``/``B`` prefixes (CAS(ME)^3, SAMM) mark the top/bottom half of the action, e.g. ``T23``
    upper-lip tightener; they are kept as :attr:`ActionUnit.region`.
    ``A/L12`` / ``A/R12`` (SAMM) are read as *asymmetric*: a bilateral action stronger on the
    named side; they parse to side ``L``/``R`` with ``asymmetric=True``.
    ``L/R-AU12`` (DFME: "the left or the right half") is a one-sided action of unknown side;
    it parses to the alternatives ``L12 or R12``.
    ``ref(...)`` (SAMM) marks AUs coded for reference only (not part of the expression):
    ``reference_only=True``.
    A ``?`` after a code marks that AU uncertain; a bare ``?`` marks the whole cell uncertain.
    ``/``, ``NULL``, ``-``, empty cells and NaN mean "no AU coded". A ``-`` inside a token only
    follows a side (``L-12``, ``L/R-AU12``) or ``AU`` (``AU-12``); ``-5`` is no AU.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field, replace

#: FACS intensity letters, weakest (trace) to strongest (maximum).
INTENSITY_LETTERS = "ABCDE"

#: the codes FACS defines: action units and descriptors 1..46 (there is no AU 3), head
#: positions 51..58 and eye positions 61..66.
FACS_CODES = frozenset({1, 2, *range(4, 47), *range(51, 59), *range(61, 67)})

_EMPTY_CELLS = {"", "/", "-", "null", "none", "nan", "n/a", "na"}

_AU_RE = re.compile(
    r"""^
    (?P<asym>A\s*/\s*)?                         # A/L12: asymmetric, stronger on L
    (?P<region>[TB])?                           # top / bottom half
    (?:(?P<side>L\s*/\s*R|R\s*/\s*L|[LR])\s*-?)?  # subject's side; L/R: one side, unknown
    \s*
    (?:AU\s*-?)?\s*
    (?P<code>\d{1,2})(?:\.0+)?                  # 4, 04, 4.0 (numbers stored as numbers)
    \s*
    (?P<intensity>[A-E](?:\s*/\s*[A-E])?)?      # 15A, 10A/B
    \s*
    (?P<uncertain>\?)?
    $""",
    re.IGNORECASE | re.VERBOSE,
)

# delimiters: ref( ... ), parentheses, '+', ',', full-width comma, ';', '&' and the word 'or'
_SPLIT_RE = re.compile(r"(ref\s*\(|\(|\)|\+|,|，|;|&|\bor\b)", re.IGNORECASE)
# the delimiters that join AUs within one reading
_JOINERS = ("+", ",", "，", ";", "&")


@dataclass(frozen=True)
class ActionUnit:
    """One coded AU token.

    Attributes:
        code: FACS number, e.g. ``12``.
        side: ``"L"`` or ``"R"`` (the subject's side) or ``None`` (bilateral).
        intensity: FACS letter ``"A"``..``"E"``, a range such as ``"A/B"``, or ``None``.
        region: ``"T"`` (top half) or ``"B"`` (bottom half) or ``None``.
        uncertain: the coder marked this AU with ``?``.
        reference_only: coded inside ``ref(...)``: noted for reference, not part of the ME.
        asymmetric: ``A/L``-style code: bilateral, stronger on ``side``.
    """

    code: int
    side: str | None = None
    intensity: str | None = None
    region: str | None = None
    uncertain: bool = False
    reference_only: bool = False
    asymmetric: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.code < 100:
            raise ValueError(f"AU code must be in 1..99, got {self.code}")
        if self.side not in (None, "L", "R"):
            raise ValueError(f"side must be 'L', 'R' or None, got {self.side!r}")
        if self.region not in (None, "T", "B"):
            raise ValueError(f"region must be 'T', 'B' or None, got {self.region!r}")

    def canonical(self) -> str:
        """The token in canonical spelling, e.g. ``12``, ``L12``, ``A/R14A``, ``ref(7B)``."""
        text = f"{'A/' if self.asymmetric else ''}{self.region or ''}{self.side or ''}"
        text += f"{self.code}{self.intensity or ''}{'?' if self.uncertain else ''}"
        return f"ref({text})" if self.reference_only else text

    @property
    def relative_intensity(self) -> float:
        """The intensity letter as a relative ME apex intensity (:func:`letter_to_relative`)."""
        return letter_to_relative(self.intensity)


def letter_to_relative(intensity: str | None) -> float:
    """Map a FACS intensity letter (or range ``"A/B"``) to a relative ME apex intensity.

    ``A`` 0.5, ``B`` 0.75, ``C``..``E`` 1.0; no letter means a typical ME (1.0). A range is the
    mean of its ends. The scale is relative to a typical ME apex, whose size the motion model
    calibrates (MEs rarely pass FACS C, so C and above saturate).
    """
    if intensity is None:
        return 1.0
    table = {"A": 0.5, "B": 0.75, "C": 1.0, "D": 1.0, "E": 1.0}
    letters = [part.strip().upper() for part in intensity.split("/")]
    if not letters or any(letter not in table for letter in letters):
        raise ValueError(f"unknown FACS intensity {intensity!r}; expected letters A..E")
    return sum(table[letter] for letter in letters) / len(letters)


def _au_key(au: ActionUnit) -> tuple:
    return (
        au.code,
        au.side or "",
        au.region or "",
        au.intensity or "",
        au.reference_only,
        au.uncertain,
        au.asymmetric,
    )


@dataclass(frozen=True)
class AUCombination:
    """What :func:`parse_aus` returns: the AUs of one annotation cell.

    Attributes:
        aus: the AUs present in every reading, sorted by code then side. For a cell with
            alternatives these are the AUs shared by all alternatives (``R15`` in
            ``(R6 or R12)+R15``).
        alternatives: the full readings of a cell with ``or`` (each without alternatives of
            its own): ``L12 or L14`` gives ``(L12, L14)``; empty when there is no ``or``.
        unknown_tokens: tokens that are not AUs (``soft focus``), in order of appearance.
        uncertain: the cell holds a bare ``?``.
        malformed: what is wrong with the cell's punctuation (``"'+' with no AU before it"``);
            empty for a well-formed cell. The AUs are what could still be read.
    """

    aus: tuple[ActionUnit, ...] = ()
    alternatives: tuple[AUCombination, ...] = ()
    unknown_tokens: tuple[str, ...] = ()
    uncertain: bool = False
    malformed: tuple[str, ...] = field(default=(), compare=False)  # about the text, not the AUs

    @property
    def codes(self) -> tuple[int, ...]:
        """Sorted unique AU codes mentioned anywhere in the cell (all alternatives included)."""
        codes = {au.code for au in self.aus}
        for alternative in self.alternatives:
            codes.update(alternative.codes)
        return tuple(sorted(codes))

    @property
    def has_alternatives(self) -> bool:
        return bool(self.alternatives)

    @property
    def is_empty(self) -> bool:
        """No AU at all (``/``, ``NULL``, ``?``, empty, or only unknown tokens)."""
        return not self.codes

    def readings(self) -> tuple[AUCombination, ...]:
        """The alternatives, or ``(self,)`` when there are none."""
        return self.alternatives or (self,)

    def canonical(self) -> str:
        """Canonical string: AUs sorted by code and side joined by ``+``, then unknown tokens,
        alternatives joined by `` or ``; ``?`` alone for an uncertain empty cell, ``""`` for an
        empty one. ``parse_aus(c.canonical()).canonical() == c.canonical()``.
        """
        if self.alternatives:
            return " or ".join(alternative.canonical() for alternative in self.alternatives)
        parts = [au.canonical() for au in self.aus] + list(self.unknown_tokens)
        if self.uncertain:
            parts.append("?")
        return "+".join(parts)

    def __str__(self) -> str:
        return self.canonical()


# One reading: a tuple of items, each an ActionUnit, an unknown token (str) or None for '?'.
_Reading = tuple


def _parse_atom(text: str) -> list[_Reading]:
    token = " ".join(text.split())
    if not token:
        return [()]
    if token == "?":
        return [(None,)]
    match = _AU_RE.match(token)
    if match is None or int(match["code"]) == 0:
        return [(token,)]
    side = (match["side"] or "").upper().replace(" ", "")
    intensity = match["intensity"]
    base = ActionUnit(
        code=int(match["code"]),
        side=side if side in ("L", "R") else None,
        intensity=intensity.upper().replace(" ", "") if intensity else None,
        region=match["region"].upper() if match["region"] else None,
        uncertain=match["uncertain"] is not None,
        asymmetric=match["asym"] is not None,
    )
    if side in ("L/R", "R/L"):
        return [(replace(base, side="L"),), (replace(base, side="R"),)]
    return [(base,)]


class _Parser:
    """Recursive descent over ``expr := seq ('or' seq)*; seq := term (('+'|',') term)*``."""

    def __init__(self, text: str) -> None:
        self.tokens = [t for t in _SPLIT_RE.split(text) if t.strip()]
        self.pos = 0
        self.problems: list[str] = []

    def _peek(self) -> str | None:
        return self.tokens[self.pos].strip().lower() if self.pos < len(self.tokens) else None

    def _previous(self) -> str:
        return self.tokens[self.pos - 1].strip().lower().replace(" ", "")

    def parse(self) -> list[_Reading]:
        readings = self._expr()
        while self.pos < len(self.tokens):  # an unmatched ')' is kept as an unknown token
            stray = (self.tokens[self.pos].strip(),)
            self.problems.append(f"unmatched {stray[0]!r}")
            self.pos += 1
            readings = [a + stray + b for a in readings for b in self._expr()]
        return readings

    def _expr(self) -> list[_Reading]:
        readings = self._seq()
        while self._peek() == "or":
            self.pos += 1
            readings = readings + self._seq()
        return readings

    def _seq(self) -> list[_Reading]:
        readings: list[_Reading] = [()]
        before = "the start" if self.pos == 0 else self._previous()
        while True:
            head = self._peek()
            if head is None or head in ("or", ")"):
                if before in _JOINERS:
                    self.problems.append(f"{before!r} with no AU after it")
                elif before != "term":
                    self.problems.append(f"no AU between {before} and {head or 'the end'}")
                return readings
            if head in _JOINERS:
                if before != "term":
                    self.problems.append(f"{head!r} with no AU before it")
                before = head
                self.pos += 1
                continue
            before = "term"
            term = self._term()
            readings = [a + b for a, b in itertools.product(readings, term)]

    def _term(self) -> list[_Reading]:
        head = self.tokens[self.pos].strip().lower()
        self.pos += 1
        if head == "(" or head.replace(" ", "") == "ref(":
            inner = self._expr()
            if self._peek() == ")":
                self.pos += 1
            else:
                self.problems.append(f"{head!r} never closed")
            if head != "(":
                inner = [
                    tuple(
                        replace(i, reference_only=True) if isinstance(i, ActionUnit) else i
                        for i in r
                    )
                    for r in inner
                ]
            return inner
        return _parse_atom(self.tokens[self.pos - 1])


def _combination(reading: _Reading) -> AUCombination:
    aus = sorted({item for item in reading if isinstance(item, ActionUnit)}, key=_au_key)
    unknown = tuple(dict.fromkeys(item for item in reading if isinstance(item, str)))
    return AUCombination(tuple(aus), (), unknown, uncertain=None in reading)


def _cell_text(text: object) -> str | None:
    """The cell as text, or ``None`` for an empty cell. Numbers stored as numbers become ints."""
    if text is None:
        return None
    if isinstance(text, bool):
        return str(text)
    if isinstance(text, int):
        return str(text)
    if isinstance(text, float):
        if math.isnan(text):
            return None
        return str(int(text)) if text.is_integer() else repr(text)
    if hasattr(text, "item") and not isinstance(text, str):  # numpy scalars
        return _cell_text(text.item())
    cell = str(text).strip()
    return None if cell.lower() in _EMPTY_CELLS else cell


def parse_aus(text: object) -> AUCombination:
    """Parse one AU annotation cell.

    Args:
        text: the cell as read from a sheet: a string, an int or float (single-AU cells are
            stored as numbers), ``None`` or NaN.

    Returns:
        The structured combination; unknown tokens are kept in ``unknown_tokens``.

    Example:
        >>> parse_aus("(R6 or R12)+R15").canonical()
        'R6+R15 or R12+R15'
        >>> parse_aus(4.0).codes
        (4,)
    """
    cell = _cell_text(text)
    if cell is None:
        return AUCombination()
    parser = _Parser(cell)
    readings = list(dict.fromkeys(parser.parse()))
    malformed = tuple(dict.fromkeys(parser.problems))
    combos = list(dict.fromkeys(_combination(r) for r in readings))
    if len(combos) == 1:
        return replace(combos[0], malformed=malformed)
    shared = set(combos[0].aus).intersection(*(set(c.aus) for c in combos[1:]))
    unknown = tuple(dict.fromkeys(t for c in combos for t in c.unknown_tokens))
    return AUCombination(
        aus=tuple(sorted(shared, key=_au_key)),
        alternatives=tuple(combos),
        unknown_tokens=unknown,
        uncertain=any(c.uncertain for c in combos),
        malformed=malformed,
    )
