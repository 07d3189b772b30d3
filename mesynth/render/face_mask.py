"""The face region: distance to the landmarks' convex hull and a smooth mask built on it.

AU motion comes from a thin-plate spline (TPS) through the 68 landmarks, and a TPS extrapolates:
left alone, a smile would move the collar and a frown the hat brim. The renderer multiplies every
per-AU dense field (and the skin-motion field) by :func:`face_mask`, which is 1 on the face and
falls smoothly to exactly 0 a little outside it, so only head motion moves what is not face.

Convention:
    Pixel coordinates are continuous ``(x, y)``, x right, y down, the centre of pixel
    ``(row i, column j)`` at ``(j + 0.5, i + 0.5)`` (:func:`mesynth.render.warp.pixel_centres`).
    Distances are pixels unless the name says IOD (inter-ocular distance,
    :func:`mesynth.face.canonical.inter_ocular_distance`).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import ConvexHull

from mesynth.face.canonical import inter_ocular_distance

#: the hull is first grown by this much (IOD), so the face outline itself moves fully ...
DEFAULT_MARGIN_IOD = 0.05
#: ... then the mask falls from 1 to 0 over this distance (IOD). Its steepest slope is
#: ``1.5 / falloff``: a field of ``m`` IOD just outside the hull stays fold-free while
#: ``1.5 m / falloff < 1`` (up to 0.16 IOD here). The canonical crop leaves 0.36 IOD between
#: the jaw and the side borders, so margin + falloff (0.3 IOD) keeps the borders still.
DEFAULT_FALLOFF_IOD = 0.25


def hull_distance(landmarks: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Euclidean distance from each point to the landmarks' convex hull (0 inside it).

    Args:
        landmarks: ``(N >= 3, 2)`` pixels, not all on one line.
        points: ``(P, 2)`` pixels.

    Returns:
        ``(P,)`` float64 distances, pixels.
    """
    landmarks = np.asarray(landmarks, dtype=np.float64)
    points = np.asarray(points, dtype=np.float64)
    vertices = landmarks[ConvexHull(landmarks).vertices]  # counter-clockwise in (x, y)
    starts, ends = vertices, np.roll(vertices, -1, axis=0)
    edges = ends - starts  # (V, 2)
    rel = points[:, None, :] - starts[None]  # (P, V, 2)
    # counter-clockwise hull: a point is inside when it is left of (or on) every edge
    cross = edges[None, :, 0] * rel[..., 1] - edges[None, :, 1] * rel[..., 0]
    outside = ~(cross >= 0).all(axis=1)
    rel = rel[outside]  # the distance of the others is 0: only the outside ones need it
    along = np.clip((rel * edges).sum(-1) / (edges**2).sum(-1), 0.0, 1.0)
    nearest = rel - along[..., None] * edges
    distance = np.zeros(len(points))
    distance[outside] = np.sqrt((nearest**2).sum(-1)).min(axis=1)
    return distance


def face_mask(
    landmarks: np.ndarray,
    size: tuple[int, int],
    margin_iod: float = DEFAULT_MARGIN_IOD,
    falloff_iod: float = DEFAULT_FALLOFF_IOD,
) -> np.ndarray:
    """Smooth face mask: 1 within ``margin_iod`` of the landmarks' convex hull, 0 beyond
    ``margin_iod + falloff_iod``, a smoothstep (C1) in between.

    Args:
        landmarks: ``(68, 2)`` neutral landmarks, pixels.
        size: ``(H, W)`` of the crop.
        margin_iod: growth of the hull before the falloff starts, IOD (>= 0).
        falloff_iod: width of the falloff, IOD (> 0).

    Returns:
        ``(H, W)`` float64 mask in ``[0, 1]`` at the pixel centres.
    """
    height, width = size
    ys, xs = np.meshgrid(np.arange(height) + 0.5, np.arange(width) + 0.5, indexing="ij")
    centres = np.stack([xs.ravel(), ys.ravel()], axis=1)
    return face_mask_at(landmarks, centres, margin_iod, falloff_iod).reshape(height, width)


def face_mask_at(
    landmarks: np.ndarray,
    points: np.ndarray,
    margin_iod: float = DEFAULT_MARGIN_IOD,
    falloff_iod: float = DEFAULT_FALLOFF_IOD,
) -> np.ndarray:
    """:func:`face_mask` at arbitrary ``(P, 2)`` pixel positions ``(x, y)``; ``(P,)`` float64."""
    if margin_iod < 0 or not falloff_iod > 0:
        raise ValueError(
            f"need margin_iod >= 0 and falloff_iod > 0, got {margin_iod} and {falloff_iod}"
        )
    iod = float(inter_ocular_distance(landmarks))
    u = np.clip((hull_distance(landmarks, points) / iod - margin_iod) / falloff_iod, 0.0, 1.0)
    return 1.0 - u * u * (3.0 - 2.0 * u)


def face_support(
    landmarks: np.ndarray,
    size: tuple[int, int],
    margin_iod: float = DEFAULT_MARGIN_IOD,
    falloff_iod: float = DEFAULT_FALLOFF_IOD,
) -> np.ndarray:
    """``(H, W)`` bool: the pixels where :func:`face_mask` is not 0 (the dilated face hull)."""
    return face_mask(landmarks, size, margin_iod, falloff_iod) > 0
