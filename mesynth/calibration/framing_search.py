"""Framing as a searchable part of a calibration profile.

The adversarial search (:mod:`mesynth.calibration.adversarial`) may also move where the face
sits in the crop: ``framing_offset_x`` and ``framing_offset_y`` shift the profile's framing
(fractions of the crop width and height, uniform ranges that may be negative) and
``framing_scale`` scales it about the face's centroid (log-uniform). A trial's faces are then
re-cropped so their landmarks sit on the moved framing (:func:`reframe_identities`), and the
best trial's framing is what ``recipe.identities.framing=profile`` renders with.

Convention:
    Framings are normalised (fractions of the crop's ``(W, H)``, :mod:`mesynth.face.framing`);
    faces are ``(S, S, 3)`` uint8 crops with ``(68, 2)`` landmarks in crop pixels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import optuna

from mesynth.calibration.profile import CalibrationProfile, Framing
from mesynth.face.canonical import apply_affine, warp_with_matrix
from mesynth.face.framing import adjust_target, framing_matrix
from mesynth.face.identities import Identity

#: searchable framing parameters and suggested ranges (offsets: fractions of the crop; scale).
FRAMING_SPACE: dict[str, tuple[float, float]] = {
    "framing_offset_x": (-0.06, 0.06),
    "framing_offset_y": (-0.1, 0.1),
    "framing_scale": (0.8, 1.25),
}
FRAMING_PARAMETERS = tuple(FRAMING_SPACE)


def framing_distribution(
    name: str, low: float, high: float
) -> optuna.distributions.FloatDistribution:
    """The optuna distribution of a framing parameter: uniform offsets, log-uniform scale.

    Raises:
        ValueError: ``low >= high``, or a scale range not above zero (names the parameter).
    """
    if not low < high:
        raise ValueError(f"space[{name!r}] must have low < high, got {low, high}")
    if name == "framing_scale" and not low > 0:
        raise ValueError(f"space[{name!r}] must be > 0, got {low, high}")
    return optuna.distributions.FloatDistribution(
        float(low), float(high), log=name == "framing_scale"
    )


def framing_changes(parameters: Mapping[str, float]) -> dict[str, float]:
    """The framing parameters among ``parameters``."""
    return {k: float(v) for k, v in parameters.items() if k in FRAMING_PARAMETERS}


def moved_framing(framing: Framing, parameters: Mapping[str, float]) -> Framing:
    """``framing`` shifted by ``framing_offset_x/y`` and scaled by ``framing_scale`` about its
    centroid (missing parameters: no change). A framing holding only eye and mouth centres
    stays that way; one with landmarks keeps them, moved."""
    offset = (parameters.get("framing_offset_x", 0.0), parameters.get("framing_offset_y", 0.0))
    scale = parameters.get("framing_scale", 1.0)
    target = adjust_target(framing.target(), offset=offset, scale=scale)
    if framing.landmarks is not None:
        return Framing.of_landmarks(target)
    right, left, mouth = target
    return Framing(
        right_eye=(float(right[0]), float(right[1])),
        left_eye=(float(left[0]), float(left[1])),
        mouth=(float(mouth[0]), float(mouth[1])),
        iod_fraction=float(np.linalg.norm(left - right)),
    )


def with_framing(
    profile: CalibrationProfile, parameters: Mapping[str, float]
) -> CalibrationProfile:
    """``profile`` with its framing moved by the framing ``parameters``."""
    import dataclasses

    return dataclasses.replace(profile, framing=moved_framing(profile.framing, parameters))


def reframe_identities(faces: Sequence[Identity], target: np.ndarray) -> list[Identity]:
    """Re-crop each face so its landmarks sit on ``target`` (normalised ``(68, 2)`` or eye and
    mouth centres ``(3, 2)``), same crop size; pixels from outside the old crop repeat its
    border (cv2 ``BORDER_REPLICATE``)."""
    out = []
    for face in faces:
        size = face.image.shape[0]
        matrix = framing_matrix(face.landmarks, face.image.shape, size, "profile", target=target)
        image = warp_with_matrix(face.image, matrix, size)
        points = apply_affine(face.landmarks, matrix)
        out.append(Identity(face.name, image, points, face.source, face.person))
    return out
