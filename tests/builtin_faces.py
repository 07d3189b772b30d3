"""The built-in portraits through the real identity path, and warpers over them, for the
renderer tests that need real faces (dlib landmarks)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import pytest

from mesynth.face.identities import Identity, load_identities
from mesynth.render.warp import FaceWarper


def builtin_faces(size: int) -> list[Identity]:
    """The built-in portraits aligned to ``size`` px crops with dlib landmarks (loaded once per
    size; the test is skipped without dlib)."""
    pytest.importorskip("dlib")
    return _load(size)


@cache
def _load(size: int) -> list[Identity]:
    return list(load_identities("builtin", size=size, backend="dlib").identities)


def warper_for(faces: Sequence[Identity], **settings) -> FaceWarper:
    """A CPU :class:`FaceWarper` (``settings``: its keyword arguments) with ``faces``
    registered under their names."""
    warper = FaceWarper("cpu", **settings)
    for face in faces:
        warper.add_identity(face.name, face.image, face.landmarks)
    return warper
