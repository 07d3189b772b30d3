"""Annotation values used as file names, kept inside their output folder.

A sheet or manifest cell (dataset, subject, clip) becomes a folder or file name in the
preprocessing cache and the apex-flow images. A cell such as ``../../x``, ``/tmp/x`` or
``s1/..`` must not move a write outside the output root, so every such value passes through
:func:`safe_path_component` and every final path through :func:`path_inside`.
"""

from __future__ import annotations

import re
from pathlib import Path

#: path separators, a Windows drive colon and control characters: never part of one component.
_UNSAFE = re.compile(r"[/\\:\x00-\x1f]")


class UnsafePathError(ValueError):
    """A value cannot be a file name, or a path leaves its output folder."""


def safe_path_component(value: object, what: str) -> str:
    """``value`` as one file or folder name: separators become ``_``, ``.``/``..`` too.

    The mapping keeps ordinary names unchanged (``"sub01"``, ``"EP02_01f"``) and turns
    ``"../../x"`` into ``".._.._x"`` and ``"/tmp/x"`` into ``"_tmp_x"``.

    Args:
        value: the cell value.
        what: what the value is, for the error message (``"dataset"``, ``"subject of s1/c1"``).

    Raises:
        UnsafePathError: the value is empty or blank.
    """
    text = str(value).strip()
    if not text:
        raise UnsafePathError(f"{what} is empty; it cannot name a file or folder")
    name = _UNSAFE.sub("_", text)
    return "_" * len(name) if set(name) == {"."} else name


def path_inside(root: str | Path, path: str | Path) -> Path:
    """``path``, checked to resolve inside ``root`` (links included).

    Raises:
        UnsafePathError: ``path`` resolves outside ``root`` (the message names both).
    """
    resolved = Path(path).resolve()
    base = Path(root).resolve()
    if not resolved.is_relative_to(base):
        raise UnsafePathError(f"{path} resolves to {resolved}, outside the output folder {base}")
    return Path(path)


__all__ = ["UnsafePathError", "path_inside", "safe_path_component"]
