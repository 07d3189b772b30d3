"""Key-frame sampling: which frames of a clip a recognizer sees, and why.

One rule for real and synthetic clips: the recognizer samples real clips with it, and the
generator stores exactly the frames it would pick from the full-rate synthetic clip
(:func:`mesynth.generation.store.select_frames`), so both are sampled alike.

Every strategy picks ``T`` frames among the frames *present* between onset and offset (releases
drop frames) and returns a :class:`KeyFrames` record naming each frame's role. With a
``numpy.random.Generator`` the picks are jittered (training); without one they are
deterministic (testing).

Strategies:
    ``uniform``: positions ``round(k (n - 1) / (T - 1))``, k = 0..T-1, over the n frames present,
        so onset and offset are always included (T = 1: the middle frame).
    ``adaptive``: the apex is always included; the other T - 1 frames are split between the rise
        (onset to apex) and the fall (apex to offset) in proportion to their durations in frame
        numbers, ``n_rise = round((T - 1) * (apex - onset) / (offset - onset))``, with at least one
        frame in each non-empty part. The rise frames are evenly spaced from the onset (included)
        towards the apex (excluded), the fall frames from the offset (included) back towards the
        apex (excluded).
    ``onset_apex``: T frames evenly spaced from the onset to the apex, both included (T = 2: the
        onset/apex pair used by apex-based methods).

Jitter moves each non-anchor position by up to half the spacing between positions (uniform),
within its part; the anchors (onset and offset for ``uniform``, the apex for ``adaptive``, onset
and apex for ``onset_apex``) stay. Rounding is half-up. When fewer than T frames are present,
frames repeat.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

STRATEGIES = ("uniform", "adaptive", "onset_apex")


@dataclass(frozen=True)
class KeyFrames:
    """The picked frames.

    Attributes:
        frame_numbers: ``(T,)`` frame numbers (release numbering), ascending.
        roles: ``(T,)`` why each was picked: ``onset``, ``offset``, ``apex``, ``rise``, ``fall``,
            ``uniform``.
        strategy: the strategy name.
        jittered: whether a generator moved the positions.
    """

    frame_numbers: tuple[int, ...]
    roles: tuple[str, ...]
    strategy: str
    jittered: bool


def _round(x: np.ndarray) -> np.ndarray:
    return np.floor(np.asarray(x, dtype=np.float64) + 0.5).astype(np.int64)


def _spread(
    start: int, stop_exclusive: float, count: int, generator: np.random.Generator | None
) -> np.ndarray:
    """``count`` positions from ``start`` (included) towards ``stop_exclusive`` (excluded)."""
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    step = (stop_exclusive - start) / count
    pos = start + step * np.arange(count, dtype=np.float64)
    if generator is not None and count > 1:
        pos[1:] += generator.uniform(-0.5, 0.5, count - 1) * step
    return np.clip(_round(pos), start, max(start, int(np.ceil(stop_exclusive)) - 1))


def _between(last: int, count: int, generator: np.random.Generator | None) -> np.ndarray:
    """``count >= 2`` positions evenly spaced over ``0..last``, both ends kept; the interior
    ones jittered by up to half a spacing with a generator."""
    step = last / (count - 1)
    exact = step * np.arange(count, dtype=np.float64)
    if generator is not None:
        exact[1:-1] += generator.uniform(-0.5, 0.5, count - 2) * step
    return np.sort(np.clip(_round(exact), 0, last))


def uniform(
    frames: np.ndarray, a: int, num_frames: int, generator: np.random.Generator | None
) -> KeyFrames:
    """Evenly spaced frames onset..offset (see the module docstring)."""
    n = len(frames)
    pos = np.array([(n - 1) // 2]) if num_frames == 1 else _between(n - 1, num_frames, generator)
    roles = ["uniform"] * len(pos)
    if num_frames > 1:
        roles[0], roles[-1] = "onset", "offset"
    return KeyFrames(tuple(frames[pos].tolist()), tuple(roles), "uniform", generator is not None)


def adaptive(
    frames: np.ndarray, a: int, num_frames: int, generator: np.random.Generator | None
) -> KeyFrames:
    """The apex plus frames spread over the rise and the fall (see the module docstring)."""
    n = len(frames)
    rest = num_frames - 1
    rise_len, fall_len = frames[a] - frames[0], frames[-1] - frames[a]
    if rise_len + fall_len == 0:  # a single frame present: it is the apex, repeated
        n_rise = n_fall = 0
    else:
        n_rise = int(_round(rest * rise_len / (rise_len + fall_len)))
        if rise_len > 0 and fall_len > 0 and rest >= 2:
            n_rise = min(max(n_rise, 1), rest - 1)
        n_fall = rest - n_rise
    rise = _spread(0, a, n_rise, generator)
    fall = (n - 1) - _spread(0, n - 1 - a, n_fall, generator)
    pairs = sorted(
        [(int(p), "rise") for p in rise]
        + [(a, "apex")] * (num_frames - n_rise - n_fall)
        + [(int(p), "fall") for p in fall]
    )
    pos = [p for p, _ in pairs]
    roles = [r for _, r in pairs]
    for i, p in enumerate(pos):
        if roles[i] == "rise" and p == 0:
            roles[i] = "onset"
        elif roles[i] == "fall" and p == n - 1:
            roles[i] = "offset"
    return KeyFrames(tuple(frames[pos].tolist()), tuple(roles), "adaptive", generator is not None)


def onset_apex(
    frames: np.ndarray, a: int, num_frames: int, generator: np.random.Generator | None
) -> KeyFrames:
    """Frames evenly spaced from the onset to the apex, both included."""
    if num_frames == 1:
        pos = np.array([a])
        roles = ["apex"]
    else:
        pos = _between(a, num_frames, generator)
        roles = ["onset"] + ["rise"] * (num_frames - 2) + ["apex"]
    return KeyFrames(tuple(frames[pos].tolist()), tuple(roles), "onset_apex", generator is not None)


SAMPLERS: dict[str, Callable[..., KeyFrames]] = {
    "uniform": uniform,
    "adaptive": adaptive,
    "onset_apex": onset_apex,
}


def get_sampler(name: str) -> Callable[..., KeyFrames]:
    """A strategy by name (``uniform``, ``adaptive``, ``onset_apex``): a function of the frames
    present ``(n,)`` (ascending), the index of the apex among them, ``T`` and the generator."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampling {name!r}; known strategies: {', '.join(SAMPLERS)}")
    return SAMPLERS[name]


def sample_key_frames(
    strategy: str,
    available: Sequence[int],
    onset: int,
    apex: int,
    offset: int,
    num_frames: int,
    generator: np.random.Generator | None = None,
) -> KeyFrames:
    """Pick ``num_frames`` key frames with ``strategy``; see the module docstring.

    Raises:
        ValueError: unknown strategy, ``num_frames < 1``, or no frame between onset and offset.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    pick = get_sampler(strategy)
    frames = _present(available, onset, offset)
    return pick(frames, int(np.argmin(np.abs(frames - apex))), num_frames, generator)


def _present(available: Sequence[int], onset: int, offset: int) -> np.ndarray:
    frames = np.array(sorted(n for n in available if onset <= n <= offset), dtype=np.int64)
    if frames.size == 0:
        raise ValueError(f"no frame present between onset {onset} and offset {offset}")
    return frames
