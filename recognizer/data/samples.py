"""One record for every clip, real or synthetic.

Real and synthetic clips meet as the same :class:`Sample`, so every later step (preprocessing,
key-frame sampling, protocols, training, reports) treats them alike.

Convention:
    ``onset``, ``apex`` and ``offset`` are *frame numbers as the release writes them* (the
    trailing integer of the frame file name, e.g. ``img46.jpg`` is 46), not positions in
    ``frames``. ``frame_numbers[i]`` is the number of ``frames[i]``; both are sorted ascending.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SOURCES = ("real", "synthetic")


@dataclass(frozen=True)
class Sample:
    """A micro-expression clip.

    Attributes:
        dataset: loader name, e.g. ``"casme2"``, ``"samm"``, ``"mesynth"``.
        subject: dataset-qualified subject, ``"<dataset>/<subject as released>"`` (e.g.
            ``"casme2/sub01"``, ``"samm/006"``), so subjects of two datasets never collide.
        clip: clip id as released (``"EP02_01f"``, ``"006_1_2"``).
        frames: frame files sorted by frame number; empty when the clip is an array.
        frame_numbers: the frame number of each file in ``frames``.
        onset, apex, offset: frame numbers (see Convention); ``apex`` may be ``None`` when the
            release has none (SMIC: loaders then use the middle frame and say so).
        fps: frames per second of the recording.
        emotion: the emotion label exactly as the release spells it.
        aus: the AU string exactly as released (``""`` when none).
        source: ``"real"`` or ``"synthetic"``.
        identity: face identity for synthetic clips (the real subject for real clips).
        array_path: a ``.npy`` clip ``(T, H, W, C)`` uint8, or a single image, instead of frames.
        extra: loader-specific fields kept for reports (sheet row, part, objective class...).
    """

    dataset: str
    subject: str
    clip: str
    frames: tuple[Path, ...]
    frame_numbers: tuple[int, ...]
    onset: int
    apex: int | None
    offset: int
    fps: float
    emotion: str
    aus: str = ""
    source: str = "real"
    identity: str | None = None
    array_path: Path | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(
                f"Sample {self.uid}: source must be one of {SOURCES}, got {self.source!r}"
            )
        if len(self.frames) != len(self.frame_numbers):
            raise ValueError(
                f"Sample {self.uid}: {len(self.frames)} frames but "
                f"{len(self.frame_numbers)} frame numbers"
            )

    @property
    def uid(self) -> str:
        """Unique id ``"<subject>/<clip>"`` (subject is already dataset-qualified)."""
        return f"{self.subject}/{self.clip}"

    @property
    def apex_or_middle(self) -> int:
        """The apex frame number, or the middle of onset..offset when there is no apex."""
        return self.apex if self.apex is not None else (self.onset + self.offset) // 2

    def frames_between(self, first: int, last: int) -> list[Path]:
        """Frame files whose numbers lie in ``[first, last]``."""
        return [f for f, n in zip(self.frames, self.frame_numbers) if first <= n <= last]


def qualify_subject(dataset: str, subject: str) -> str:
    """``qualify_subject("samm", "006") == "samm/006"``; text ids keep their spelling."""
    return f"{dataset}/{str(subject).strip()}"


def subjects_of(samples: Sequence[Sample]) -> list[str]:
    """The subject of every sample, in order."""
    return [s.subject for s in samples]
