"""Per-clip measurements for calibration: rigid head motion, non-rigid apex motion, residual
flow, sensor noise, brightness, eye aspect ratio, face framing.

Every function works on arrays (frames, flows, landmarks), so each can be checked on frames
warped with a known transform.

Convention:
    Landmarks ``(68, 2)`` and points are continuous ``(x, y)`` pixels, pixel centres at ``+0.5``
    (:mod:`mesynth.face.canonical`). Flows ``(H, W, 2)`` are ``(u, v)`` in pixels at pixel centres,
    mapping the first frame to the second: ``first[y, x] ~ second[y + v, x + u]``
    (:mod:`mesynth.flow`). Sizes in IOD units are pixels divided by the onset face's
    inter-ocular distance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from mesynth.face.canonical import (
    LEFT_EYE_INDICES,
    N_LANDMARKS,
    RIGHT_EYE_INDICES,
    STABLE_INDICES,
    estimate_similarity,
    inter_ocular_distance,
)
from mesynth.motion.au_basis import MotionModel

#: robust standard deviation from the median absolute deviation of a normal sample.
MAD_TO_STD = 1.482602218505602
#: a point belongs to an AU's region when it moves at least this fraction of the AU's peak.
AU_POINT_FRACTION = 0.2
EYE_INDICES = np.concatenate([RIGHT_EYE_INDICES, LEFT_EYE_INDICES])
#: face outline used for the face mask: jaw 0-16 and brows 17-26.
OUTLINE_INDICES = np.arange(27)


@dataclass(frozen=True)
class RigidMotion:
    """A similarity between two frames' faces.

    Attributes:
        translation_iod: ``(dx, dy)`` displacement of the stable-point centroid, IOD units.
        rotation_deg: in-plane rotation, degrees (positive: clockwise on screen, y down).
        scale: relative scale (1 = no change).
    """

    translation_iod: tuple[float, float]
    rotation_deg: float
    scale: float

    @property
    def translation_size_iod(self) -> float:
        return float(np.hypot(*self.translation_iod))


def robust_std(values: np.ndarray) -> float:
    """``1.4826 * median(|x - median(x)|)``: the std of normal data, robust."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        return 0.0
    return float(MAD_TO_STD * np.median(np.abs(values - np.median(values))))


def _sample_field(field: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Bilinear values of an ``(H, W, C)`` field at continuous ``(N, 2)`` points -> ``(N, C)``."""
    field = np.asarray(field, dtype=np.float64)
    points = np.asarray(points, dtype=np.float64)
    coords = [points[:, 1] - 0.5, points[:, 0] - 0.5]
    return np.stack(
        [
            ndimage.map_coordinates(field[:, :, c], coords, order=1, mode="nearest")
            for c in range(field.shape[2])
        ],
        axis=1,
    )


def track_points(points: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Where ``(N, 2)`` points of the first frame move in the second: ``p + flow(p)``."""
    return np.asarray(points, dtype=np.float64) + _sample_field(flow, points)


def rigid_motion(
    source: np.ndarray, target: np.ndarray, indices: np.ndarray | None = STABLE_INDICES
) -> tuple[RigidMotion, np.ndarray]:
    """The similarity from ``source`` to ``target`` landmarks ``(68, 2)``, fitted on ``indices``.

    Returns:
        The decomposed motion and the ``(2, 3)`` matrix (source pixels -> target pixels).
    """
    matrix = estimate_similarity(source, target, indices)
    linear = matrix[:, :2]
    scale = float(np.sqrt(abs(np.linalg.det(linear))))
    rotation = float(np.degrees(np.arctan2(linear[1, 0], linear[0, 0])))
    points = np.asarray(source, dtype=np.float64)
    centre = points[indices].mean(0) if indices is not None else points.mean(0)
    moved = linear @ centre + matrix[:, 2]
    iod = float(inter_ocular_distance(points))
    translation = (moved - centre) / iod
    return RigidMotion((float(translation[0]), float(translation[1])), rotation, scale), matrix


def non_rigid_displacement(
    onset: np.ndarray, apex: np.ndarray, indices: np.ndarray | None = STABLE_INDICES
) -> np.ndarray:
    """Apex minus onset landmarks after undoing their similarity, ``(68, 2)`` IOD units.

    The similarity is fitted on ``indices`` (the stable points by default), so expression
    motion elsewhere is neither absorbed nor invented by the alignment.
    """
    matrix = estimate_similarity(apex, onset, indices)
    back = np.asarray(apex, dtype=np.float64) @ matrix[:, :2].T + matrix[:, 2]
    return (back - onset) / float(inter_ocular_distance(onset))


def au_points(codes: Sequence[int], motion: MotionModel) -> np.ndarray:
    """Indices of the landmarks that the AUs ``codes`` move (>= 20 % of each AU's peak).

    AUs the model does not know contribute no points.
    """
    selected = np.zeros(N_LANDMARKS, dtype=bool)
    for code in codes:
        if code not in motion.known_codes:
            continue
        size = np.linalg.norm(motion.basis(code), axis=1)
        selected |= size >= AU_POINT_FRACTION * size.max()
    return np.flatnonzero(selected)


def face_mask(landmarks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``(H, W)`` bool: inside the convex hull of the jaw and brows."""
    mask = np.zeros(shape, dtype=np.uint8)
    hull = cv2.convexHull(np.asarray(landmarks)[OUTLINE_INDICES].astype(np.float32) - 0.5)
    cv2.fillConvexPoly(mask, np.round(hull).astype(np.int32), 1)
    return mask.astype(bool)


def _disks_mask(points: np.ndarray, radius: float, shape: tuple[int, int]) -> np.ndarray:
    """``(H, W)`` bool: pixels whose centre lies within ``radius`` px of any of ``points``."""
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]] + 0.5
    mask = np.zeros(shape, dtype=bool)
    for x, y in np.asarray(points, dtype=np.float64).reshape(-1, 2):
        mask |= (xs - x) ** 2 + (ys - y) ** 2 <= radius**2
    return mask


def static_mask(
    landmarks: np.ndarray,
    codes: Sequence[int] | None,
    shape: tuple[int, int],
    motion: MotionModel,
    radius_iod: float = 0.3,
) -> np.ndarray:
    """Face pixels that no annotated AU explains, ``(H, W)`` bool.

    The face hull minus disks of ``radius_iod`` around the eyes (blinks) and around every point
    the annotated AUs move. ``codes=None`` (no AU annotation) removes every AU region the motion
    model knows, so unlabelled expression motion is never counted as residual.
    """
    codes = motion.known_codes if codes is None else codes
    points = np.union1d(au_points(codes, motion), EYE_INDICES)
    radius = radius_iod * float(inter_ocular_distance(landmarks))
    explained = _disks_mask(np.asarray(landmarks)[points], radius, shape)
    return face_mask(landmarks, shape) & ~explained


def similarity_flow(matrix: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The flow ``(H, W, 2)`` of a ``(2, 3)`` similarity: ``M x - x`` at every pixel centre."""
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]] + 0.5
    points = np.stack([xs, ys], axis=-1)
    return points @ matrix[:, :2].T + matrix[:, 2] - points


def field_statistics(
    field: np.ndarray, mask: np.ndarray, max_lag: int | None = None
) -> tuple[float, float]:
    """RMS and half-correlation length of a vector field over a mask.

    The autocorrelation is computed with the mask taken into account (normalised by the number
    of overlapping masked pixel pairs at each lag), radially averaged over both components.

    Args:
        field: ``(H, W, C)`` values (e.g. a residual flow in pixels).
        mask: ``(H, W)`` bool, the pixels to use.
        max_lag: largest lag examined (default a third of the smaller side).

    Returns:
        ``(rms, half_length)``: the root mean square of the mean-removed field over the mask,
        and the lag (pixels) where the autocorrelation first falls to 0.5 (``max_lag`` when it
        never does; 0 for an empty mask or a constant field).
    """
    field = np.asarray(field, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    if mask.sum() < 4:
        return 0.0, 0.0
    height, width = mask.shape
    max_lag = max_lag or max(2, min(height, width) // 3)
    values = field[mask]
    centred = np.where(mask[..., None], field - values.mean(0), 0.0)
    rms = float(np.sqrt((centred[mask] ** 2).sum(1).mean()))
    if rms == 0:
        return 0.0, 0.0
    size = (2 * height, 2 * width)
    weights = np.abs(np.fft.ifft2(np.abs(np.fft.fft2(mask.astype(float), size)) ** 2))
    product = sum(
        np.real(np.fft.ifft2(np.abs(np.fft.fft2(centred[:, :, c], size)) ** 2))
        for c in range(field.shape[2])
    )
    enough = weights > 0.25 * mask.sum()
    correlation = np.where(enough, product / np.maximum(weights, 1e-9), 0.0)
    correlation = correlation / correlation[0, 0]
    lag_y = np.fft.fftfreq(size[0], 1.0 / size[0])
    lag_x = np.fft.fftfreq(size[1], 1.0 / size[1])
    radius = np.hypot(*np.meshgrid(lag_y, lag_x, indexing="ij"))
    profile = []
    for r in range(max_lag + 1):
        ring = enough & (np.abs(radius - r) < 0.5)
        profile.append(correlation[ring].mean() if ring.any() else np.nan)
    profile = np.asarray(profile)
    below = np.flatnonzero(profile < 0.5)
    if below.size == 0:
        return rms, float(max_lag)
    r = int(below[0])
    before, after = profile[r - 1], profile[r]
    return rms, float(r - 1 + (before - 0.5) / (before - after))


def _warp_back(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """The second frame pulled onto the first: ``out(x) = image(x + flow(x))``, bilinear.

    Args:
        image: ``(H, W)`` float or uint8 frame.
        flow: ``(H, W, 2)`` flow from the first frame to ``image``.
    """
    height, width = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    map_x = xs + flow[:, :, 0].astype(np.float32)
    map_y = ys + flow[:, :, 1].astype(np.float32)
    return cv2.remap(
        np.asarray(image, dtype=np.float32),
        map_x,
        map_y,
        interpolation=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )


def noise_from_pair(
    first: np.ndarray, second: np.ndarray, flow: np.ndarray, mask: np.ndarray
) -> float:
    """Sensor noise (grey levels) from two frames and the flow between them.

    The second frame is warped back onto the first; bilinear interpolation at fractional offset
    ``(f_x, f_y)`` shrinks the warped noise variance by ``g = ((1-f_x)^2 + f_x^2)((1-f_y)^2 +
    f_y^2)``, so each difference is divided by ``sqrt(1 + g)`` before the robust std over the
    mask.

    Args:
        first, second: ``(H, W)`` grayscale frames.
        flow: ``(H, W, 2)`` flow from ``first`` to ``second``.
        mask: ``(H, W)`` bool, static pixels to use.
    """
    warped = _warp_back(second, flow)
    frac = flow - np.floor(flow)
    gain = ((1 - frac[..., 0]) ** 2 + frac[..., 0] ** 2) * (
        (1 - frac[..., 1]) ** 2 + frac[..., 1] ** 2
    )
    difference = (warped - np.asarray(first, dtype=np.float32)) / np.sqrt(1.0 + gain)
    return robust_std(_high_pass(difference)[mask]) if mask.any() else 0.0


def noise_from_triplet(frames: np.ndarray, mask: np.ndarray) -> float:
    """Sensor noise (grey levels) from three consecutive ``(3, H, W)`` frames of a still face.

    The temporal second difference ``f1 - (f0 + f2) / 2`` cancels anything that moves linearly
    over the two frame steps and has noise variance ``1.5 sigma^2``.
    """
    frames = np.asarray(frames, dtype=np.float64)
    residual = frames[1] - (frames[0] + frames[2]) / 2
    return robust_std(residual[mask]) / np.sqrt(1.5) if mask.any() else 0.0


def _high_pass(image: np.ndarray) -> np.ndarray:
    """Remove slow (brightness) changes: subtract a 7x7 box mean."""
    image = np.asarray(image, dtype=np.float32)
    return image - cv2.blur(image, (7, 7), borderType=cv2.BORDER_REFLECT)


def eye_aspect_ratio(landmarks: np.ndarray) -> np.ndarray:
    """Eye aspect ratio of ``(..., 68, 2)`` landmarks, mean of both eyes, shape ``(...)``.

    ``(|p2 - p6| + |p3 - p5|) / (2 |p1 - p4|)`` per eye (Soukupova and Cech 2016): about 0.3
    open, near 0 closed.
    """
    points = np.asarray(landmarks, dtype=np.float64)
    ratios = []
    for start in (36, 42):
        p = [points[..., start + i, :] for i in range(6)]
        vertical = np.linalg.norm(p[1] - p[5], axis=-1) + np.linalg.norm(p[2] - p[4], axis=-1)
        ratios.append(vertical / (2 * np.linalg.norm(p[0] - p[3], axis=-1)))
    return (ratios[0] + ratios[1]) / 2


def count_blinks(ear: np.ndarray, drop: float = 0.7) -> int:
    """Number of dips of an eye-aspect-ratio series ``(T,)`` below ``drop`` x its median."""
    ear = np.asarray(ear, dtype=np.float64)
    if ear.size < 3:
        return 0
    closed = ear < drop * np.median(ear)
    return int(closed[0]) + int(np.count_nonzero(closed[1:] & ~closed[:-1]))


def brightness_drift(frames: np.ndarray, times_s: np.ndarray, mask: np.ndarray) -> float:
    """Absolute relative brightness change per second over a mask.

    Args:
        frames: ``(T >= 2, H, W)`` grayscale frames.
        times_s: ``(T,)`` frame times in seconds.
        mask: ``(H, W)`` bool.

    Returns:
        ``|slope| / mean`` of the least-squares line through the masked mean grey levels.
    """
    times_s = np.asarray(times_s, dtype=np.float64)
    means = np.array([np.asarray(f, dtype=np.float64)[mask].mean() for f in frames])
    if len(means) < 2 or np.ptp(times_s) <= 0 or means.mean() <= 0:
        return 0.0
    slope = np.polyfit(times_s, means, 1)[0]
    return float(abs(slope) / means.mean())


def face_framing(landmarks: np.ndarray, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """Eye centres, mouth centre (fractions of ``(W, H)``) and IOD / W of one face."""
    points = np.asarray(landmarks, dtype=np.float64)
    scale = np.array([shape[1], shape[0]], dtype=np.float64)
    return {
        "right_eye": points[RIGHT_EYE_INDICES].mean(0) / scale,
        "left_eye": points[LEFT_EYE_INDICES].mean(0) / scale,
        "mouth": points[48:68].mean(0) / scale,
        "iod_fraction": np.array(float(inter_ocular_distance(points)) / shape[1]),
    }
