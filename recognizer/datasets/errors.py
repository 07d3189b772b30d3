"""Typed errors of the dataset loaders; every message names the file, folder or row at fault."""

from __future__ import annotations


class DatasetError(Exception):
    """Base class: a release could not be read as expected."""


class ReleaseNotFoundError(DatasetError, FileNotFoundError):
    """The dataset root, an annotation file or a frame tree is missing."""


class AnnotationError(DatasetError, ValueError):
    """An annotation sheet or CSV is missing a sheet or columns, or is not the expected file."""


class FrameReadError(DatasetError, OSError):
    """A frame file or array cannot be decoded (corrupt, truncated or not an image)."""
