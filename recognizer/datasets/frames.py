"""Finding frame files and release folders without formatting names from numbers.

Frame-number padding differs between releases and even between clips of one release
(``006_5562.jpg`` next to ``006_05562.jpg``; ``img46.jpg``; ``reg_img46.jpg``; ``355.jpg``), so a
frame's number is always *parsed* from the trailing integer of its file name, never formatted.
Files that are not images (``Thumbs.db``, ``.DS_Store``, notes) or have no trailing number are
ignored.
"""

from __future__ import annotations

import re
from pathlib import Path

from recognizer.datasets.errors import DatasetError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"})
_TRAILING_INT = re.compile(r"(\d+)$")


def trailing_number(name: str) -> int | None:
    """The trailing integer of a name without suffix: ``"reg_img046"`` -> 46, ``"a"`` -> None."""
    match = _TRAILING_INT.search(name)
    return int(match.group(1)) if match else None


def discover_frames(folder: str | Path) -> tuple[tuple[Path, ...], tuple[int, ...]]:
    """Image files of a clip folder and their frame numbers, sorted by number.

    Args:
        folder: a clip folder.

    Returns:
        ``(frames, numbers)``; both empty when the folder holds no numbered image.

    Raises:
        DatasetError: two files carry the same number (``img1.jpg`` and ``img01.jpg``).
    """
    found: dict[int, Path] = {}
    for path in Path(folder).iterdir():
        if not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        number = trailing_number(path.stem)
        if number is None:
            continue
        if number in found:
            raise DatasetError(
                f"{folder}: files {found[number].name} and {path.name} both hold frame {number}"
            )
        found[number] = path
    numbers = tuple(sorted(found))
    return tuple(found[n] for n in numbers), numbers


def _squash(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def find_child(parent: Path, name: str, *, match_number: bool = True) -> Path | None:
    """The sub-folder of ``parent`` called ``name``, tolerating the spellings releases use.

    Tries, in order: the exact name; the name ignoring case, ``-``, ``_``, ``.``; and (when
    ``match_number`` and ``name`` holds a trailing integer) the one sub-folder whose trailing
    integer is the same (``"1"`` or ``"01"`` finds ``sub01``; ``"6"`` finds ``006``).
    """
    if not parent.is_dir():
        return None
    exact = parent / name
    if exact.is_dir():
        return exact
    children = [p for p in parent.iterdir() if p.is_dir()]
    squashed = _squash(name)
    loose = [p for p in children if _squash(p.name) == squashed]
    if len(loose) == 1:
        return loose[0]
    number = trailing_number(name.strip())
    if match_number and number is not None:
        same = [p for p in children if trailing_number(p.name) == number]
        if len(same) == 1:
            return same[0]
    return None


def find_tree(root: Path, spellings: tuple[str, ...]) -> Path | None:
    """The first sub-folder of ``root`` whose squashed name is one of ``spellings``."""
    if not root.is_dir():
        return None
    wanted = {_squash(s) for s in spellings}
    for child in sorted(root.iterdir()):
        if child.is_dir() and _squash(child.name) in wanted:
            return child
    return None


def find_file(root: Path, patterns: tuple[str, ...], depth: int = 1) -> list[Path]:
    """Files under ``root`` (and up to ``depth`` levels below) matching any glob pattern."""
    out: list[Path] = []
    for level in range(depth + 1):
        prefix = "*/" * level
        for pattern in patterns:
            out += [p for p in sorted(root.glob(prefix + pattern)) if p.is_file()]
    return list(dict.fromkeys(out))
