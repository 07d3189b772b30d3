"""Minimal stand-ins for the knowledge layer (TemplateBank, MotionModel, TimingSampler).

They follow CONTRACTS.md section A exactly, with simple hand-checkable numbers, so the
pipeline tests do not depend on the expert tables and their values can be computed by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FakeAU:
    code: int
    side: str | None = None
    intensity: float = 1.0


@dataclass(frozen=True)
class FakeInstance:
    emotion: str
    aus: tuple[FakeAU, ...]
    source: str


@dataclass(frozen=True)
class FakeTemplate:
    emotion: str
    aus: tuple[FakeAU, ...]
    source: str
    weight: float = 1.0


class FakeBank:
    """Emotion -> fixed AU set; intensities drawn uniformly in [0.5, 1]."""

    scheme = "fake3"
    PATTERNS = {"happiness": (6, 12), "surprise": (1, 2), "sadness": (4,)}

    def __init__(self) -> None:
        self.templates = tuple(
            FakeTemplate(e, tuple(FakeAU(c) for c in codes), "fake:table")
            for e, codes in self.PATTERNS.items()
        )

    @property
    def emotions(self) -> tuple[str, ...]:
        return tuple(self.PATTERNS)

    def sample(self, emotion: str, generator: np.random.Generator) -> FakeInstance:
        codes = self.PATTERNS[emotion]
        values = generator.uniform(0.5, 1.0, len(codes))
        return FakeInstance(
            emotion, tuple(FakeAU(c, None, float(v)) for c, v in zip(codes, values)), "fake:table"
        )


class FakeMotion:
    """AU ``c`` moves landmark ``(3 * c) % 68`` by ``(0.02, -0.01 * c)`` IOD (a simple basis)."""

    apex_iod = 0.03
    known_codes = (1, 2, 4, 6, 12)

    def au_basis(self, aus) -> np.ndarray:
        out = np.zeros((len(aus), 68, 2))
        for k, au in enumerate(aus):
            out[k, (3 * au.code) % 68] = (0.02, -0.01 * au.code)
        return out


@dataclass(frozen=True)
class FakeTiming:
    fps: float
    n_frames: int
    apex: int
    au_delays: tuple[float, ...]
    onset: int = 0
    shape: str = "triangle"

    @property
    def offset(self) -> int:
        return self.n_frames - 1

    def intensity(self, frames: np.ndarray) -> np.ndarray:
        frames = np.asarray(frames, dtype=np.float64)[:, None]
        rise = frames / self.apex
        fall = (self.offset - frames) / (self.offset - self.apex)
        curve = np.where(frames <= self.apex, rise, fall)
        return np.clip(np.repeat(curve, len(self.au_delays), axis=1), 0.0, 1.0)


class FakeTimingSampler:
    def __init__(self, fps: float = 100.0) -> None:
        self.fps = fps

    def sample(self, n_aus: int, generator: np.random.Generator) -> FakeTiming:
        n_frames = int(generator.integers(20, 41))
        apex = int(generator.integers(5, n_frames - 5))
        return FakeTiming(self.fps, n_frames, apex, (0.0,) * n_aus)
