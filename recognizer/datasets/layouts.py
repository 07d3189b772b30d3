"""Where the frames of an annotation row are: the frame-folder layouts a release spec names.

A :class:`Row` is one sheet row mapped to the canonical fields. A layout is opened on a release's
frame tree once per load (:meth:`open`, which may index the tree) and then places each row:
:class:`Located` gives the subject as released (the folder spelling when a subject folder was
found) and the clip's frame folder, or a problem that becomes the row's skip reason.

Layouts:
    :class:`SubjectClipFolders`: ``<tree>/<subject>/<clip>[/<inside>]`` found with the spellings
        releases use (CASME II, SAMM, SMIC-E, CAS(ME)^3).
    :class:`ClipFoldersAnywhere`: a clip folder found by its name anywhere below the tree (MMEW).
    :class:`FolderPattern`: a ``str.format`` path over the row's fields and cells (DFME).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from mesynth.face.image_io import IMAGE_SUFFIXES
from recognizer.datasets.errors import AnnotationError
from recognizer.datasets.frames import find_child


@dataclass(frozen=True)
class Row:
    """One annotation row.

    Attributes:
        number: 1-based spreadsheet row (what Excel shows).
        cells: every cell by its column name as the sheet spells it.
        values: canonical field (``subject``, ``clip``, ``onset``...) -> cell text; ``""`` when
            the sheet has no column for the field.
        extra: fields kept in ``Sample.extra`` (objective class, part, video...).
    """

    number: int
    cells: Mapping[str, str]
    values: Mapping[str, str]
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def subject(self) -> str:
        return self.values["subject"]

    @property
    def clip(self) -> str:
        return self.values["clip"]


@dataclass(frozen=True)
class Located:
    """Where a row's frames are.

    Attributes:
        subject: the subject as released (folder spelling when its folder was found).
        folder: the clip's frame folder; ``None`` when not found (the row is then skipped).
        problem: why the row cannot be placed; non-empty means skip with this reason.
    """

    subject: str
    folder: Path | None
    problem: str = ""


@dataclass(frozen=True)
class Locator:
    """A layout opened on one frame tree: ``locate(row)`` and a line for the load report."""

    locate: Callable[[Row], Located]
    description: str


class FolderLayout(Protocol):
    def open(self, tree: Path, source: str) -> Locator:
        """Place rows under ``tree``; ``source`` (the annotation file) is named in errors."""
        ...


def _as_released(subject: str) -> tuple[str, ...]:
    return (subject,)


def _clip_of(row: Row) -> tuple[str, ...]:
    return (row.clip,)


@dataclass(frozen=True)
class SubjectClipFolders:
    """``<tree>/<subject>/<clip>[/<inside>]``, each level found by :func:`find_child`.

    Attributes:
        subject_names: spellings of a subject folder to try in order, from the sheet's subject
            (CASME II: ``"sub01"`` then ``"01"``); the first is the subject when none is found.
        clip_names: spellings of the clip folder to try in order, from the row.
        inside: a sub-folder of the clip folder holding the frames when present (``"color"``).
        subject_by_number: a subject folder may be found by its trailing number (``6`` finds
            ``006``).
        subject_from_folder: the subject is the folder's spelling (else the sheet's).
    """

    subject_names: Callable[[str], Sequence[str]] = _as_released
    clip_names: Callable[[Row], Sequence[str]] = _clip_of
    inside: str | None = None
    subject_by_number: bool = True
    subject_from_folder: bool = True

    def open(self, tree: Path, source: str) -> Locator:
        inside = f"/{self.inside}" if self.inside else ""
        return Locator(lambda row: self._locate(tree, row), f"{tree}/<subject>/<clip>{inside}")

    def _locate(self, tree: Path, row: Row) -> Located:
        names = list(self.subject_names(row.subject))
        subject_dir = _first(tree, names, match_number=self.subject_by_number)
        subject = subject_dir.name if subject_dir and self.subject_from_folder else names[0]
        if subject_dir is None:
            return Located(subject, None)
        folder = _first(subject_dir, self.clip_names(row), match_number=False)
        if folder is not None and self.inside:
            folder = find_child(folder, self.inside, match_number=False) or folder
        return Located(subject, folder)


def _first(parent: Path, names: Sequence[str], *, match_number: bool) -> Path | None:
    for name in names:
        found = find_child(parent, name, match_number=match_number)
        if found is not None:
            return found
    return None


@dataclass(frozen=True)
class ClipFoldersAnywhere:
    """A clip folder found by its name (ignoring case) anywhere below the tree.

    A folder counts when it holds image files; a name found twice is a problem for its rows.
    """

    def open(self, tree: Path, source: str) -> Locator:
        index: dict[str, list[Path]] = {}
        for folder in sorted(p for p in tree.rglob("*") if p.is_dir()):
            if any(f.suffix.lower() in IMAGE_SUFFIXES for f in folder.iterdir() if f.is_file()):
                index.setdefault(folder.name.lower(), []).append(folder)

        def locate(row: Row) -> Located:
            candidates = index.get(row.clip.lower(), [])
            if len(candidates) > 1:
                return Located(row.subject, None, f"clip folder name is not unique: {candidates}")
            return Located(row.subject, candidates[0] if candidates else tree / row.clip)

        return Locator(locate, f"{len(index)} clip folders found under {tree}")


@dataclass(frozen=True)
class FolderPattern:
    """``<tree>/<pattern>``, the pattern filled by ``str.format`` from the row.

    The pattern may use the canonical fields (``subject``, ``clip``, ``part``, ``emotion``...) and
    every column of the sheet by its name: ``"{part}/{subject}/{clip}"``.
    """

    pattern: str

    def open(self, tree: Path, source: str) -> Locator:
        def locate(row: Row) -> Located:
            try:
                relative = self.pattern.format_map({**row.cells, **row.values})
            except (KeyError, ValueError, IndexError) as err:
                raise AnnotationError(
                    f"frames pattern {self.pattern!r} cannot be filled from row {row.number} of "
                    f"{source} ({err!r}); use subject, clip, part, emotion or a column name"
                ) from err
            return Located(row.subject, tree / relative)

        return Locator(locate, f"{tree}/{self.pattern}")
