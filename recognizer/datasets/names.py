"""Matching a listed name to a release's names across spellings, never by guessing.

Lists and releases spell the same subject or clip differently: ``s01_ne_01`` vs ``s1_ne_01``
(SMIC), ``6`` vs ``006`` (SAMM), ``sub01`` vs ``01`` (CASME II). :func:`match_name` tries rules
from strict to loose (the exact name, then a case- and zero-padding-insensitive key, then any
looser keys the caller adds) and takes a rule's answer only when exactly one name matches. When
several names match at some rule it stops there and returns them all: CASME II sub17 holds the
two clips ``EP05_03`` and ``EP05_03f``, and a looser rule must not merge them.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass

from mesynth.face.frame_files import trailing_number

#: a named matching rule: two names match under it when their keys are equal.
NameRule = tuple[str, Callable[[str], Hashable]]


def padding_key(name: str) -> tuple[str | int, ...]:
    """Case- and zero-padding-insensitive key: digit runs become integers.

    ``padding_key("S01_ne_01") == padding_key("s1_NE_1") == ("s", 1, "_ne_", 1)``, while
    ``"EP05_03"`` and ``"EP05_03f"`` keep different keys.
    """
    tokens = re.findall(r"\d+|\D+", name.strip().lower())
    return tuple(int(t) if t.isdigit() else t for t in tokens)


def without_trailing_f(name: str) -> tuple[str | int, ...]:
    """:func:`padding_key` of the name without a trailing ``f`` (CASME II ``EP02_01f``)."""
    return padding_key(name.strip().lower().removesuffix("f"))


def subject_number(name: str) -> int | str:
    """The trailing number of a subject name (``"sub01"`` -> 1), else the name itself."""
    number = trailing_number(name.strip())
    return name.strip().lower() if number is None else number


EXACT: NameRule = ("exact", str.strip)
PADDING: NameRule = ("ignoring case and zero padding", padding_key)
TRAILING_F: NameRule = ("ignoring a trailing 'f'", without_trailing_f)
SUBJECT_NUMBER: NameRule = ("by subject number", subject_number)


@dataclass(frozen=True)
class NameMatch:
    """The outcome of :func:`match_name`.

    Attributes:
        name: the one release name matched, ``None`` when none or several match.
        rule: the rule that decided (matched or found several); ``""`` when nothing matched.
        candidates: the names that matched equally under ``rule`` when there are several.
    """

    name: str | None
    rule: str = ""
    candidates: tuple[str, ...] = ()


def match_name(wanted: str, names: Iterable[str], looser: Sequence[NameRule] = ()) -> NameMatch:
    """Match ``wanted`` to one of ``names``: exact, then padding-insensitive, then ``looser``.

    Each rule is tried only when the stricter ones matched nothing; a rule matching several
    names ends the search with those names as ``candidates``.
    """
    pool = sorted(set(names))
    for rule, key in (EXACT, PADDING, *looser):
        target = key(wanted)
        hits = tuple(n for n in pool if key(n) == target)
        if len(hits) == 1:
            return NameMatch(hits[0], rule)
        if hits:
            return NameMatch(None, rule, hits)
    return NameMatch(None)


def closest_names(wanted: str, names: Iterable[str], n: int = 3) -> list[str]:
    """Up to ``n`` names most similar to ``wanted`` once padding and case are ignored."""
    spelled = {_plain(name): name for name in names}
    close = difflib.get_close_matches(_plain(wanted), list(spelled), n=n, cutoff=0.5)
    return [spelled[c] for c in close]


def _plain(name: str) -> str:
    return "".join(map(str, padding_key(name)))
