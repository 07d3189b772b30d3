"""Loaders for the real releases, a clip store and generic manifests: ``load(name, root, ...)``.

Each loader reads a release as its owners ship it (quirks included), checks every row against
the frames present, applies the documented errata (:mod:`recognizer.datasets.errata`) and
returns a :class:`LoadResult`: the :class:`~recognizer.data.samples.Sample` records and a
:class:`LoadReport` of rows read, kept and skipped with reasons. A release with an annotation
sheet is declared by a :class:`ReleaseSpec` and read by :func:`load_release`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from recognizer.datasets import casme2, casme3, dfme, manifest, mesynth_store, mmew, samm, smic
from recognizer.datasets.checks import verify_media
from recognizer.datasets.engine import ReleaseSpec, load_release
from recognizer.datasets.errata import ERRATA, Erratum
from recognizer.datasets.errors import (
    AnnotationError,
    DatasetError,
    FrameReadError,
    ReleaseNotFoundError,
)
from recognizer.datasets.megc2019 import EXPECTED_COUNTS, megc2019
from recognizer.datasets.report import LoadReport, LoadResult, SkippedRow

LOADERS: dict[str, Callable[..., LoadResult]] = {
    "casme2": casme2.load,
    "samm": samm.load,
    "smic": smic.load,
    "casme3": casme3.load,
    "mmew": mmew.load,
    "dfme": dfme.load,
    "mesynth": mesynth_store.load,
    "manifest": manifest.load,
}


def load(
    name: str, root: str | Path | None = None, *, verify: bool = False, **options: object
) -> LoadResult:
    """Load a dataset by name.

    Args:
        name: one of :data:`LOADERS` (casme2, samm, smic, casme3, mmew, dfme, mesynth, manifest).
        root: the release folder (for ``manifest``: the CSV or its folder).
        verify: drop and report (by path) the clips whose frame files or arrays are empty or
            unreadable (:func:`~recognizer.datasets.checks.verify_media`, header checks only).
        **options: loader options (e.g. ``frames="cropped"`` for CASME II); see each module.

    Raises:
        ValueError: unknown name (the message lists the known ones) or no root.
        ReleaseNotFoundError, AnnotationError: the release cannot be read.
    """
    if name not in LOADERS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(LOADERS)}")
    if root is None:
        raise ValueError(f"load({name!r}) needs root= (the folder of your copy of the release)")
    result = LOADERS[name](root, **options)
    return verify_media(result) if verify else result


def known_datasets() -> tuple[str, ...]:
    return tuple(LOADERS)


__all__ = [
    "ERRATA",
    "EXPECTED_COUNTS",
    "LOADERS",
    "AnnotationError",
    "DatasetError",
    "Erratum",
    "FrameReadError",
    "LoadReport",
    "LoadResult",
    "ReleaseNotFoundError",
    "ReleaseSpec",
    "SkippedRow",
    "known_datasets",
    "load",
    "load_release",
    "megc2019",
    "verify_media",
]
