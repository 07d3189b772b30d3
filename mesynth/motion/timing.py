"""ME time courses: onset, apex and offset frames at any frame rate, and per-AU intensity curves.

Constraints (DFME's ME definition): onset→offset <= 500 ms and onset→apex <= 250 ms. A
:class:`TimingSampler` draws a duration uniformly in ``duration_range_s``, a curve shape, the
apex as a shape-dependent fraction of the duration, and a small onset delay per AU; frame
numbers are rounded and then clamped so the constraints hold exactly at every fps.

Convention:
    Frame 0 is the onset; frame ``f`` is at time ``f / fps`` seconds. :meth:`Timing.intensity`
    accepts fractional frame positions, so any key-frame can be rendered without the
    full-rate clip.

Shapes (rise over onset→apex, decay over apex→offset; ``u``, ``v`` in [0, 1]):
    ``smooth``: raised cosine up and down, ``(1 - cos(pi u)) / 2`` and ``(1 + cos(pi v)) / 2``;
    apex at 35-55 % of the duration.
    ``fast_rise``: ``sin(pi u / 2)`` (steep start) and the raised-cosine decay; apex at
    12-35 % of the duration, so the decay is long.
    ``linear``: a triangle; apex at 30-50 % of the duration.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: apex position as a fraction of onset→offset, per shape.
APEX_FRACTIONS: dict[str, tuple[float, float]] = {
    "smooth": (0.35, 0.55),
    "fast_rise": (0.12, 0.35),
    "linear": (0.30, 0.50),
}
SHAPES = tuple(APEX_FRACTIONS)


class TimingError(ValueError):
    """Impossible timing settings or values; the message names the argument."""


def _rise(shape: str, u: np.ndarray) -> np.ndarray:
    if shape == "smooth":
        return (1.0 - np.cos(np.pi * u)) / 2.0
    if shape == "fast_rise":
        return np.sin(np.pi * u / 2.0)
    return u


def _decay(shape: str, v: np.ndarray) -> np.ndarray:
    if shape == "linear":
        return 1.0 - v
    return (1.0 + np.cos(np.pi * v)) / 2.0


def _check_shape(shape: str) -> None:
    if shape not in APEX_FRACTIONS:
        raise TimingError(f"unknown curve shape {shape!r}; known shapes: {', '.join(SHAPES)}")


@dataclass(frozen=True)
class Timing:
    """The time course of one ME.

    Attributes:
        fps: frame rate of the full-rate clip.
        n_frames: frames onset..offset inclusive.
        onset: always 0.
        apex: frame index of the apex.
        offset: ``n_frames - 1``.
        shape: curve name (:data:`SHAPES`).
        au_delays: per-AU onset delay in seconds (length K), each in ``[0, apex / fps)``.
    """

    fps: float
    n_frames: int
    onset: int
    apex: int
    offset: int
    shape: str
    au_delays: tuple[float, ...]

    def __post_init__(self) -> None:
        _check_shape(self.shape)
        if not self.fps > 0:
            raise TimingError(f"fps must be positive, got {self.fps}")
        if self.onset != 0 or self.offset != self.n_frames - 1:
            raise TimingError(
                f"need onset == 0 and offset == n_frames - 1, got onset {self.onset}, "
                f"offset {self.offset}, n_frames {self.n_frames}"
            )
        if not 0 < self.apex < self.offset:
            raise TimingError(f"need 0 < apex < offset, got apex {self.apex}, offset {self.offset}")
        apex_s = self.apex / self.fps
        if any(not 0.0 <= d < apex_s for d in self.au_delays):
            raise TimingError(f"AU delays must lie in [0, {apex_s:.4f}) s, got {self.au_delays}")

    @property
    def duration_s(self) -> float:
        """Onset→offset in seconds."""
        return self.offset / self.fps

    @property
    def apex_s(self) -> float:
        """Onset→apex in seconds."""
        return self.apex / self.fps

    def intensity(self, frames: np.ndarray | Sequence[float]) -> np.ndarray:
        """Relative AU intensity at (fractional) frame positions.

        Args:
            frames: ``(T,)`` frame positions, 0 = onset.

        Returns:
            ``(T, K)`` float64 in [0, 1]: 0 at or before each AU's (delayed) onset and at or
            after the offset, 1 at the apex.
        """
        t = np.asarray(frames, dtype=np.float64).reshape(-1, 1) / self.fps
        delays = np.asarray(self.au_delays, dtype=np.float64).reshape(1, -1)
        apex_s, offset_s = self.apex_s, self.duration_s
        u = np.clip((t - delays) / (apex_s - delays), 0.0, 1.0)
        v = np.clip((t - apex_s) / (offset_s - apex_s), 0.0, 1.0)
        return np.where(t <= apex_s, _rise(self.shape, u), _decay(self.shape, v))


class TimingSampler:
    """Draws :class:`Timing` records under the ME constraints.

    Args:
        fps: frame rate (default 200, like CASME II and SAMM).
        max_duration_s: onset→offset limit (DFME: 0.5 s).
        max_onset_to_apex_s: onset→apex limit (DFME: 0.25 s).
        duration_range_s: onset→offset drawn uniformly in this range (clamped to the limit).
        shapes: curve shapes to draw from.
        shape_weights: their probabilities (default uniform).
        au_jitter_s: AU onsets spread uniformly over this many seconds (the first AU starts
            at the onset); capped at half the onset→apex time.
    """

    def __init__(
        self,
        fps: float = 200,
        max_duration_s: float = 0.5,
        max_onset_to_apex_s: float = 0.25,
        duration_range_s: tuple[float, float] = (0.2, 0.5),
        shapes: Sequence[str] = ("smooth", "fast_rise"),
        shape_weights: Sequence[float] | None = None,
        au_jitter_s: float = 0.02,
    ) -> None:
        if not fps > 0:
            raise TimingError(f"fps must be positive, got {fps}")
        low, high = duration_range_s
        if not 0 < low <= high:
            raise TimingError(
                f"duration_range_s must satisfy 0 < low <= high, got {duration_range_s}"
            )
        if not shapes:
            raise TimingError("shapes must name at least one curve shape")
        for shape in shapes:
            _check_shape(shape)
        weights = (
            np.ones(len(shapes)) if shape_weights is None else np.asarray(shape_weights, float)
        )
        if weights.shape != (len(shapes),) or (weights < 0).any() or weights.sum() <= 0:
            raise TimingError(
                f"shape_weights must be {len(shapes)} non-negative numbers, got {shape_weights}"
            )
        if au_jitter_s < 0:
            raise TimingError(f"au_jitter_s must be >= 0, got {au_jitter_s}")
        # 1e-9 guards against 0.5 * 30 landing just below 15 in floating point
        self.max_offset = math.floor(max_duration_s * fps + 1e-9)
        self.max_apex = min(math.floor(max_onset_to_apex_s * fps + 1e-9), self.max_offset - 1)
        if self.max_offset < 2 or self.max_apex < 1:
            raise TimingError(
                f"at fps={fps} the limits allow no onset < apex < offset "
                f"(max_duration_s={max_duration_s}, max_onset_to_apex_s={max_onset_to_apex_s})"
            )
        self.fps = float(fps)
        self.duration_range_s = (float(low), float(high))
        self.shapes = tuple(shapes)
        self.shape_probabilities = weights / weights.sum()
        self.au_jitter_s = float(au_jitter_s)

    def sample(self, n_aus: int, generator: np.random.Generator) -> Timing:
        """Draw the timing of one ME with ``n_aus`` AUs."""
        if n_aus < 0:
            raise TimingError(f"n_aus must be >= 0, got {n_aus}")
        shape = self.shapes[int(generator.choice(len(self.shapes), p=self.shape_probabilities))]
        duration = generator.uniform(*self.duration_range_s)
        offset = int(np.clip(round(duration * self.fps), 2, self.max_offset))
        fraction = generator.uniform(*APEX_FRACTIONS[shape])
        apex = int(np.clip(round(fraction * offset), 1, min(offset - 1, self.max_apex)))
        delays = generator.uniform(0.0, self.au_jitter_s, size=n_aus)
        if n_aus:
            delays = np.minimum(delays - delays.min(), 0.5 * apex / self.fps)
        return Timing(self.fps, offset + 1, 0, apex, offset, shape, tuple(float(d) for d in delays))
