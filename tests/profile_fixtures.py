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


#: a profile whose every effect is on, with clip-level head motion and blinks
EXAMPLE_PROFILE = CalibrationProfile(
    apex_peak_iod=spread(0.06),
    head_translation_iod=spread(0.05),
    head_rotation_deg=spread(0.5),
    head_scale=spread(0.004),
    residual_rms_iod=spread(0.02),
    residual_correlation_iod=spread(0.25),
    noise_sigma=spread(2.0),
    brightness_drift_per_s=spread(0.1),
    framing=CANONICAL_FRAMING,
    clip_head_translation_iod=spread(0.08),
    clip_head_rotation_deg=spread(0.8),
    blink_rate_per_s=2.0,
)


def textured_face(name: str, seed: int, size: int) -> Identity:
    """An identity with a smooth random texture and the canonical landmarks, ``size`` px."""
    rng = np.random.default_rng(seed)
    texture = cv2.GaussianBlur(rng.uniform(0, 255, (size, size, 3)).astype(np.float32), (0, 0), 1)
    image = np.clip(texture * 2 - 128, 0, 255).astype(np.uint8)
    return Identity(name, image, canonical_landmarks(size), f"test:{name}")
