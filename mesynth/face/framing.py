"""Framing: where a face sits in its crop, measured on a target's crops and applied to faces.

Real apex-flow sets (the MEGC2019 composite) are computed on each release's own tight face
crops, not on mesynth's canonical crop (:func:`mesynth.face.canonical.canonical_landmarks`).
Synthetic faces rendered in the canonical crop put their motion in other pixels (surprise at the
very top rows, border and neck moving) and a domain classifier tells them apart by position
alone. Three framings choose how an identity image becomes the ``S x S`` crop it is animated in:

* ``canonical``: similarity-aligned to the canonical face (the historical behaviour);
* ``own``: the image itself, resized to ``S x S`` (no rotation, no re-centring): for faces that
  are already tight crops of the target release, whose framing is the target's by construction;
* ``profile``: similarity-aligned so the face's landmarks sit where the target's mean landmarks
  are (:func:`measure_crop_framing`, stored in a calibration profile's ``framing``), with
  optional offsets and scale (:func:`adjust_target`, searched by the adversarial calibration).

Convention:
    Landmarks are ``(68, 2)`` continuous pixels ``(x, y)``, pixel centres at ``+0.5``
    (:mod:`mesynth.face.canonical`). *Normalised* landmarks divide x by the crop width W and y
    by the height H, so ``(0, 0)`` is the crop's top-left corner and ``(1, 1)`` its bottom-right
    corner whatever the crop's size. Matrices are ``(2, 3)`` from source-image pixels to crop
    pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mesynth.face.canonical import (
    LEFT_EYE_INDICES,
    N_LANDMARKS,
    RIGHT_EYE_INDICES,
    STABLE_INDICES,
    canonical_landmarks,
    estimate_similarity,
)
from mesynth.face.landmarks import LandmarkDetector, LandmarkError, detect_landmarks

FRAMINGS = ("canonical", "own", "profile")
MOUTH_INDICES = np.arange(48, 68)


class FramingError(ValueError):
    """A framing cannot be measured or applied; the message names the image or argument."""


@dataclass(frozen=True)
class CropFraming:
    """Landmark positions measured on a set of crops.

    Attributes:
        mean: ``(68, 2)`` mean normalised landmarks (fractions of W and H).
        per_crop: ``(N, 68, 2)`` normalised landmarks of each crop that was measured.
        sources: ``(N,)`` names of the measured crops.
        skipped: ``(name, reason)`` of crops without usable landmarks.
    """

    mean: np.ndarray
    per_crop: np.ndarray
    sources: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...] = ()

    def landmarks(self, size: int | tuple[int, int]) -> np.ndarray:
        """The mean landmarks in pixels of an ``S x S`` (or ``(H, W)``) crop, ``(68, 2)``."""
        return denormalise(self.mean, size)


def _hw(size: int | tuple[int, int]) -> tuple[int, int]:
    height, width = (size, size) if isinstance(size, int) else size
    if height <= 0 or width <= 0:
        raise FramingError(f"crop size must be positive, got {size!r}")
    return int(height), int(width)


def normalise(landmarks: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Pixel landmarks ``(..., 68, 2)`` of an ``(H, W, ...)`` image as fractions of ``(W, H)``."""
    return np.asarray(landmarks, dtype=np.float64) / np.array([shape[1], shape[0]], np.float64)


def denormalise(landmarks: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Normalised landmarks ``(..., 68, 2)`` in pixels of an ``S x S`` or ``(H, W)`` crop."""
    height, width = _hw(size)
    return np.asarray(landmarks, dtype=np.float64) * np.array([width, height], np.float64)


def check_normalised(landmarks: object, what: str) -> np.ndarray:
    """``landmarks`` as a finite ``(68, 2)`` float64 array of plausible fractions.

    Raises:
        FramingError: wrong shape, non-finite values, or points far outside the crop
            (``what`` names the argument or file in the message).
    """
    try:
        array = np.asarray(landmarks, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise FramingError(f"{what}: landmarks are not numeric ({err})") from err
    if array.shape != (N_LANDMARKS, 2) or not np.isfinite(array).all():
        raise FramingError(f"{what}: need 68 finite [x, y] rows, got shape {array.shape}")
    if array.min() < -0.5 or array.max() > 1.5:
        raise FramingError(
            f"{what}: normalised landmarks must be fractions of the crop (about 0-1), "
            f"got values in [{array.min():.3g}, {array.max():.3g}]"
        )
    return array


def measure_crop_framing(
    crops: Sequence[np.ndarray],
    detector: LandmarkDetector,
    *,
    names: Sequence[str] | None = None,
    whole_image_fallback: bool = True,
) -> CropFraming:
    """Detect landmarks on face crops and average them in normalised coordinates.

    Crops of different sizes are comparable because each is normalised by its own ``(W, H)``.
    A crop without usable landmarks is skipped and listed.

    Args:
        crops: ``(H_i, W_i, 3)`` uint8 RGB face crops (or onset frames) of the target data.
        detector: a landmark backend (:func:`mesynth.face.landmarks.create_detector`).
        names: a name per crop for messages (default ``crop[i]``).
        whole_image_fallback: tight crops defeat face detectors; fit to the whole crop then.

    Raises:
        FramingError: ``names`` does not match ``crops``, or no crop gave landmarks (each
            crop's reason is listed).
    """
    names = [f"crop[{i}]" for i in range(len(crops))] if names is None else list(names)
    if len(names) != len(crops):
        raise FramingError(f"{len(names)} names for {len(crops)} crops")
    measured, kept, skipped = [], [], []
    for crop, name in zip(crops, names):
        try:
            points = detect_landmarks(
                crop, detector, whole_image_fallback=whole_image_fallback, source=name
            )
        except (LandmarkError, TypeError, ValueError) as err:
            skipped.append((name, str(err)))
            continue
        measured.append(normalise(points, np.asarray(crop).shape))
        kept.append(name)
    if not measured:
        reasons = "; ".join(f"{n}: {r}" for n, r in skipped[:5])
        raise FramingError(f"no crop gave landmarks ({len(skipped)} skipped: {reasons})")
    stack = np.stack(measured)
    return CropFraming(stack.mean(0), stack, tuple(kept), tuple(skipped))


def adjust_target(
    target: np.ndarray, *, offset: tuple[float, float] = (0.0, 0.0), scale: float = 1.0
) -> np.ndarray:
    """Move normalised target landmarks ``(68, 2)``: scale about their centroid, then shift.

    Args:
        target: normalised landmarks.
        offset: ``(dx, dy)`` shift in fractions of the crop width and height.
        scale: face size relative to ``target`` (> 0).

    Returns:
        ``(68, 2)`` normalised landmarks.
    """
    if not scale > 0:
        raise FramingError(f"framing scale must be > 0, got {scale}")
    target = np.asarray(target, dtype=np.float64)
    centre = target.mean(0)
    return centre + scale * (target - centre) + np.asarray(offset, dtype=np.float64)


def key_points(landmarks: np.ndarray) -> np.ndarray:
    """Right-eye, left-eye and mouth centres of ``(..., 68, 2)`` landmarks, ``(..., 3, 2)``."""
    points = np.asarray(landmarks, dtype=np.float64)
    return np.stack(
        [
            points[..., RIGHT_EYE_INDICES, :].mean(-2),
            points[..., LEFT_EYE_INDICES, :].mean(-2),
            points[..., MOUTH_INDICES, :].mean(-2),
        ],
        axis=-2,
    )


def framing_matrix(
    landmarks: np.ndarray,
    image_shape: Sequence[int],
    size: int,
    framing: str = "canonical",
    *,
    target: np.ndarray | None = None,
) -> np.ndarray:
    """The ``(2, 3)`` matrix from an identity image's pixels to its ``size x size`` crop.

    Args:
        landmarks: ``(68, 2)`` pixel landmarks of the image.
        image_shape: ``(H, W, ...)`` of the image.
        size: crop side ``S``.
        framing: ``canonical``, ``own`` or ``profile`` (module docs).
        target: for ``profile``: normalised target landmarks ``(68, 2)`` (fitted on the stable
            points, :data:`~mesynth.face.canonical.STABLE_INDICES`) or normalised key points
            ``(3, 2)`` (eye and mouth centres, as a profile measured from videos records them).

    Raises:
        FramingError: unknown framing, or ``profile`` without a usable target.
    """
    if framing not in FRAMINGS:
        raise FramingError(f"unknown framing {framing!r}; use one of {', '.join(FRAMINGS)}")
    if framing == "canonical":
        return estimate_similarity(landmarks, canonical_landmarks(size), STABLE_INDICES)
    if framing == "own":
        height, width = image_shape[0], image_shape[1]
        return np.array([[size / width, 0.0, 0.0], [0.0, size / height, 0.0]])
    if target is None:
        raise FramingError("framing 'profile' needs target landmarks (a profile's framing)")
    target = np.asarray(target, dtype=np.float64)
    if target.shape == (N_LANDMARKS, 2):
        return estimate_similarity(landmarks, denormalise(target, size), STABLE_INDICES)
    if target.shape == (3, 2):
        return estimate_similarity(key_points(landmarks), denormalise(target, size))
    raise FramingError(f"a framing target must be (68, 2) or (3, 2), got {target.shape}")
