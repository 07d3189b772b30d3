"""A clip record duck-typed like recognizer's Sample, for tests of code that reads records
(:mod:`mesynth.records`): a ``.npy`` clip (``array_path``) or frame files (``frames`` with
their ``frame_numbers``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class FakeRecord:
    """The fields of a clip record that mesynth reads."""

    subject: str
    clip: str
    array_path: Path | None = None
    onset: int = 0
    apex: int = 0
    offset: int = 0
    fps: float = 100.0
    aus: str = ""
    emotion: str = "happiness"
    identity: str | None = None
    frames: tuple = ()
    frame_numbers: tuple = ()
    extra: dict = field(default_factory=dict)
