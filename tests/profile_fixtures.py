"""Shared test data for calibration-profile tests: spreads, an example profile, textured faces."""

from __future__ import annotations

import cv2
import numpy as np

from mesynth.calibration.profile import CalibrationProfile, Framing, Spread
from mesynth.face.canonical import canonical_landmarks
from mesynth.face.identities import Identity

#: eye centres and mouth centre (fractions of the crop) and IOD fraction of the canonical crop
CANONICAL_FRAMING = Framing((0.35, 0.4), (0.65, 0.4), (0.5, 0.75), 0.33)


def spread(median: float, n: int = 10) -> Spread:
    """A log-normal-ish spread around ``median`` (p5 0.8×, p95 1.25×) measured on ``n`` clips."""
    return Spread(median, 0.8 * median, 1.25 * median, n)


def make_profile(
    apex: float,
    head: tuple[float, float, float],
    skin: tuple[float, float],
    noise: float,
    drift: float,
    *,
    n: int = 10,
    blink_rate: float = 0.0,
    clip_head: tuple[float, float] | None = None,
) -> CalibrationProfile:
    """A profile from medians: apex size (IOD); head translation (IOD), rotation (degrees) and
    scale; skin motion RMS and correlation length (IOD); noise (grey levels); drift (per s);
    optional clip-level head translation and rotation."""
    extra = {}
    if clip_head is not None:
        extra = {
            "clip_head_translation_iod": spread(clip_head[0], n),
            "clip_head_rotation_deg": spread(clip_head[1], n),
        }
    return CalibrationProfile(
        apex_peak_iod=spread(apex, n),
        head_translation_iod=spread(head[0], n),
        head_rotation_deg=spread(head[1], n),
        head_scale=spread(head[2], n),
        residual_rms_iod=spread(skin[0], n),
        residual_correlation_iod=spread(skin[1], n),
        noise_sigma=spread(noise, n),
        brightness_drift_per_s=spread(drift, n),
        framing=CANONICAL_FRAMING,
        blink_rate_per_s=blink_rate,
        **extra,
    )


#: a profile whose every effect is on, with clip-level head motion and blinks
EXAMPLE_PROFILE = make_profile(
    0.06, (0.05, 0.5, 0.004), (0.02, 0.25), 2.0, 0.1, blink_rate=2.0, clip_head=(0.08, 0.8)
)


def textured_face(name: str, seed: int, size: int) -> Identity:
    """An identity with a smooth random texture and the canonical landmarks, ``size`` px."""
    rng = np.random.default_rng(seed)
    texture = cv2.GaussianBlur(rng.uniform(0, 255, (size, size, 3)).astype(np.float32), (0, 0), 1)
    image = np.clip(texture * 2 - 128, 0, 255).astype(np.uint8)
    return Identity(name, image, canonical_landmarks(size), f"test:{name}")
