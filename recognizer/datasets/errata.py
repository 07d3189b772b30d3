"""Known bad rows of the releases, keyed by (dataset, subject, clip), never by row position.

Actions:
    ``drop_apex``: the apex annotation contradicts onset/offset (or is missing); the row is kept
        with ``apex=None`` and consumers use the middle frame, as for SMIC. Onset and offset are
        consistent, so the clip itself is sound.
    ``skip``: the row cannot be repaired; it is skipped with the erratum's reason.
    ``known``: no action; when the row fails the generic checks, the skip reason cites the
        erratum.

``megc2019_excluded`` marks rows the official MEGC2019 list leaves out (two CASME II negatives
with bad apex annotations); :func:`recognizer.datasets.megc2019` drops them when it derives the
membership from the rules.
"""

from __future__ import annotations

from dataclasses import dataclass

from mesynth.face.frame_files import trailing_number

ACTIONS = ("drop_apex", "skip", "known")


@dataclass(frozen=True)
class Erratum:
    """One known bad row."""

    dataset: str
    subject: str
    clip: str
    problem: str
    action: str
    megc2019_excluded: bool = False


ERRATA: tuple[Erratum, ...] = (
    Erratum("casme2", "04", "EP12_01f", "apex cell is '/'", "drop_apex", megc2019_excluded=True),
    Erratum("casme2", "05", "EP09_05f", "apex equals onset", "known", megc2019_excluded=True),
    Erratum("samm", "032", "032_3_1", "apex before onset", "drop_apex"),
    Erratum("samm", "028", "028_4_1", "apex after offset", "drop_apex"),
    Erratum("casme3", "spNO.149", "d", "offset 0", "known"),
    Erratum("casme3", "spNO.216", "d", "offset 0", "known"),
    Erratum("casme3", "spNO.216", "e", "offset 0", "known"),
    Erratum("casme3", "spNO.214", "c", "offset 0", "known"),
    Erratum("casme3", "spNO.40", "e", "offset 0", "known"),
)


def _subject_key(subject: str) -> str:
    number = trailing_number(subject.strip())
    return str(number) if number is not None and subject.strip().isdigit() else subject.lower()


def _clip_key(clip: str) -> str:
    return clip.strip().lower()


_INDEX = {(e.dataset, _subject_key(e.subject), _clip_key(e.clip)): e for e in ERRATA}


def find_erratum(dataset: str, subject: str, clip: str) -> Erratum | None:
    """The erratum of a row; subjects match by number ('4' == '04'), clips ignoring case."""
    return _INDEX.get((dataset, _subject_key(subject), _clip_key(clip)))
