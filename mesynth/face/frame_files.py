"""Numbered frame files: the one rule that turns a file name into a frame number.

Frame-number padding differs between releases and even between clips of one release
(``006_5562.jpg`` next to ``006_05562.jpg``; ``img46.jpg``; ``reg_img46.jpg``; ``355.jpg``), so a
frame's number is always *parsed* from the trailing integer of its file name, never formatted
into a name. Files that are not images (``Thumbs.db``, ``.DS_Store``, notes) or have no trailing
number are ignored. Real releases, clip stores and generic manifests all go through
:func:`discover_frames`.

A list of frame numbers stored as text (a clip-store manifest cell, a record's
``extra["frame_numbers"]``) is written ``"0;3;7"`` and read by :func:`parse_frame_numbers`.
"""

from __future__ import annotations

import re
from pathlib import Path

from mesynth.face.image_io import IMAGE_SUFFIXES

_TRAILING_INT = re.compile(r"(\d+)$")


class FrameNumberError(ValueError):
    """Two files of one folder hold the same frame number, or a number list is not numbers."""


def split_trailing_number(name: str) -> tuple[str, int | None]:
    """``"reg_img046"`` -> ``("reg_img", 46)``; ``"a"`` -> ``("a", None)``."""
    match = _TRAILING_INT.search(name)
    if match is None:
        return name, None
    return name[: match.start()], int(match.group(1))


def trailing_number(name: str) -> int | None:
    """The trailing integer of a name without suffix: ``"reg_img046"`` -> 46, ``"a"`` -> None."""
    return split_trailing_number(name)[1]


def discover_frames(folder: str | Path) -> tuple[tuple[Path, ...], tuple[int, ...]]:
    """Image files of a clip folder and their frame numbers, sorted by number.

    Args:
        folder: a clip folder.

    Returns:
        ``(frames, numbers)``; both empty when the folder holds no numbered image.

    Raises:
        FrameNumberError: two files carry the same number (``img1.jpg`` and ``img01.jpg``).
    """
    found: dict[int, Path] = {}
    for path in Path(folder).iterdir():
        if not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        number = trailing_number(path.stem)
        if number is None:
            continue
        if number in found:
            raise FrameNumberError(
                f"{folder}: files {found[number].name} and {path.name} both hold frame {number}"
            )
        found[number] = path
    numbers = tuple(sorted(found))
    return tuple(found[n] for n in numbers), numbers


def parse_frame_numbers(text: str) -> tuple[int, ...]:
    """``"0;3;7"`` -> ``(0, 3, 7)``; empty items are ignored, ``""`` -> ``()``.

    Raises:
        FrameNumberError: an item is not an integer (the message quotes the text).
    """
    try:
        return tuple(int(item) for item in str(text).split(";") if item.strip())
    except ValueError as err:
        raise FrameNumberError(f"not a ';'-separated list of frame numbers: {text!r}") from err
