"""Finding the folders and files of a release under the spellings releases use.

Frame files inside a clip folder are found by :func:`mesynth.face.frame_files.discover_frames`
(numbers parsed from names, never formatted); this module finds the folders around them.
"""

from __future__ import annotations

import re
from pathlib import Path

from mesynth.face.frame_files import trailing_number


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
