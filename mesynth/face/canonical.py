"""The canonical 68-point face: one geometry for synthetic and real clips.

Every identity that ``mesynth`` renders and every real clip that ``recognizer`` preprocesses is
aligned to the same template with a similarity transform, so both land in the same crop.

Convention:
    Landmarks are arrays of shape ``(..., N=68, 2)`` holding ``(x, y)`` in pixels, x to the right,
    y down, 0-based iBUG/300-W order (jaw 0-16, brows 17-26, nose 27-35, eyes 36-47,
    mouth 48-67). Pixel ``(row i, column j)`` has its centre at ``x = j + 0.5, y = i + 0.5``; the
    crop spans ``[0, W] x [0, H]``. FACS "right"/"left" are the *subject's* sides: subject-right
    is image-left. Affine matrices are ``(2, 3)`` and map ``[x, y, 1]`` column vectors from the
    source frame to the destination frame, as in :func:`cv2.warpAffine`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import cv2
import numpy as np
from skimage.transform import SimilarityTransform

N_LANDMARKS = 68

#: index ``i`` of a mirrored face holds what index ``MIRROR_PERMUTATION[i]`` held before flipping.
MIRROR_PERMUTATION: np.ndarray = np.array(
    list(range(16, -1, -1))  # jaw
    + list(range(26, 16, -1))  # brows
    + [27, 28, 29, 30, 35, 34, 33, 32, 31]  # nose bridge, nostrils
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]  # eyes
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]  # outer lips
    + [64, 63, 62, 61, 60, 67, 66, 65],  # inner lips
    dtype=np.int64,
)

#: points on the face midline (they map to themselves under mirroring).
MIDLINE_INDICES: np.ndarray = np.flatnonzero(MIRROR_PERMUTATION == np.arange(N_LANDMARKS))
#: subject-right = image-left half (jaw 0-7, brow 17-21, eye 36-41, mouth corner 48/60, ...).
SUBJECT_RIGHT_INDICES: np.ndarray = np.array(
    [0, 1, 2, 3, 4, 5, 6, 7, 17, 18, 19, 20, 21, 31, 32, 36, 37, 38, 39, 40, 41]
    + [48, 49, 50, 58, 59, 60, 61, 67],
    dtype=np.int64,
)
#: subject-left = image-right half, the mirror image of :data:`SUBJECT_RIGHT_INDICES`.
SUBJECT_LEFT_INDICES: np.ndarray = np.sort(MIRROR_PERMUTATION[SUBJECT_RIGHT_INDICES])

#: points that micro-expressions barely move: eye corners and the nose bridge. Alignment uses
#: only these, so the alignment itself does not absorb (or invent) expression motion.
STABLE_INDICES: np.ndarray = np.array([27, 28, 29, 30, 36, 39, 42, 45], dtype=np.int64)

RIGHT_EYE_INDICES = np.arange(36, 42)  # subject-right eye (image left)
LEFT_EYE_INDICES = np.arange(42, 48)

#: template placement in a unit crop: scale of the unit-box mean face and the y of its top.
DEFAULT_FACE_SCALE = 0.85
DEFAULT_TOP = 0.16


@lru_cache(maxsize=1)
def _mean_face_unit() -> np.ndarray:
    """The shipped mean face, symmetrised about its vertical axis, shape ``(68, 2)``."""
    text = resources.files("mesynth.face").joinpath("data", "canonical_face68.csv").read_text()
    rows = [line.split(",") for line in text.splitlines() if line and line[0].isdigit()]
    points = np.array([[float(x), float(y)] for _, x, y in rows], dtype=np.float64)
    if points.shape != (N_LANDMARKS, 2):
        raise ValueError(f"canonical_face68.csv holds {points.shape[0]} points, expected 68")
    centre_x = points[:, 0].mean()
    mirrored = points[MIRROR_PERMUTATION].copy()
    mirrored[:, 0] = 2.0 * centre_x - mirrored[:, 0]
    return (points + mirrored) / 2.0


def canonical_landmarks(
    size: int | tuple[int, int] = 224,
    *,
    face_scale: float = DEFAULT_FACE_SCALE,
    top: float = DEFAULT_TOP,
) -> np.ndarray:
    """Canonical landmarks placed in a crop.

    Args:
        size: crop size in pixels, ``S`` or ``(H, W)``.
        face_scale: width of the mean face relative to the crop (0.85: jaw spans ~76 % of W).
        top: y of the highest brow point relative to H.

    Returns:
        ``(68, 2)`` float64 pixel coordinates, symmetric about ``x = W / 2``.
    """
    height, width = (size, size) if isinstance(size, int) else size
    if height <= 0 or width <= 0:
        raise ValueError(f"size must be positive, got {size!r}")
    unit = _mean_face_unit()
    centre_x = unit[:, 0].mean()
    out = np.empty_like(unit)
    out[:, 0] = (0.5 + (unit[:, 0] - centre_x) * face_scale) * width
    out[:, 1] = (top + (unit[:, 1] - unit[:, 1].min()) * face_scale) * height
    return out


def eye_centres(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Subject-right and subject-left eye centres, each ``(..., 2)``, from ``(..., 68, 2)``."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    right = landmarks[..., RIGHT_EYE_INDICES, :].mean(-2)
    return right, landmarks[..., LEFT_EYE_INDICES, :].mean(-2)


def inter_ocular_distance(landmarks: np.ndarray) -> np.ndarray:
    """Distance between the two eye centres (means of 36-41 and 42-47), shape ``(...)``.

    This is the IOD unit in which every displacement of the library is expressed.
    """
    right, left = eye_centres(landmarks)
    return np.linalg.norm(left - right, axis=-1)


def estimate_similarity(
    src: np.ndarray, dst: np.ndarray, indices: np.ndarray | None = None
) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping ``src`` to ``dst``.

    Umeyama's closed form without reflection, via :class:`skimage.transform.SimilarityTransform`.

    Args:
        src: ``(N, 2)`` source points.
        dst: ``(N, 2)`` destination points.
        indices: optional subset of rows to fit on (e.g. :data:`STABLE_INDICES`).

    Returns:
        ``(2, 3)`` matrix ``M`` with ``dst ≈ M @ [x, y, 1]``.

    Raises:
        ValueError: if the shapes differ or are not ``(N, 2)``, fewer than two pairs are
            given, or the source points are degenerate (all identical).
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2:
        raise ValueError(f"src and dst must both be (N, 2); got {src.shape} and {dst.shape}")
    if indices is not None:
        src, dst = src[indices], dst[indices]
    if src.shape[0] < 2:
        raise ValueError("a similarity needs at least two point pairs")
    fit = SimilarityTransform.from_estimate(src, dst)
    if not fit:
        raise ValueError(f"no similarity is defined: source points identical or degenerate ({fit})")
    return fit.params[:2].copy()


def apply_affine(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Map ``(..., 2)`` points with a ``(2, 3)`` affine matrix."""
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def mirror_landmarks(landmarks: np.ndarray, width: float) -> np.ndarray:
    """Landmarks of the horizontally flipped image: permute indices and negate x about the centre.

    Args:
        landmarks: ``(..., 68, 2)`` pixel coordinates.
        width: image width W in pixels (the flip maps x to ``W - x``).
    """
    flipped = np.asarray(landmarks, dtype=np.float64)[..., MIRROR_PERMUTATION, :].copy()
    flipped[..., 0] = width - flipped[..., 0]
    return flipped


@dataclass(frozen=True)
class AlignedFace:
    """A face warped into the canonical crop.

    Attributes:
        image: ``(H, W, C)`` or ``(H, W)`` uint8 crop.
        landmarks: ``(68, 2)`` landmarks in crop pixels.
        matrix: ``(2, 3)`` similarity from source-image pixels to crop pixels.
    """

    image: np.ndarray
    landmarks: np.ndarray
    matrix: np.ndarray


def similarity_to_canonical(
    landmarks: np.ndarray,
    size: int | tuple[int, int] = 224,
    indices: np.ndarray | None = STABLE_INDICES,
) -> np.ndarray:
    """The ``(2, 3)`` similarity that puts ``landmarks`` (``(68, 2)``) onto the canonical face."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.shape != (N_LANDMARKS, 2):
        raise ValueError(f"landmarks must have shape (68, 2), got {landmarks.shape}")
    return estimate_similarity(landmarks, canonical_landmarks(size), indices)


def warp_with_matrix(
    image: np.ndarray, matrix: np.ndarray, size: int | tuple[int, int] = 224
) -> np.ndarray:
    """Warp an ``(H, W[, C])`` image with a pixel-centre-convention ``(2, 3)`` matrix.

    OpenCV puts pixel centres at integer coordinates; our convention puts them at ``+0.5``.
    The matrix is shifted accordingly so that landmarks and pixels stay registered.
    """
    height, width = (size, size) if isinstance(size, int) else size
    shift = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
    unshift = np.array([[1.0, 0.0, -0.5], [0.0, 1.0, -0.5], [0.0, 0.0, 1.0]])
    cv_matrix = (unshift @ np.vstack([matrix, [0.0, 0.0, 1.0]]) @ shift)[:2]
    return cv2.warpAffine(
        image,
        cv_matrix,
        (width, height),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )


def align_to_canonical(
    image: np.ndarray,
    landmarks: np.ndarray,
    size: int | tuple[int, int] = 224,
    indices: np.ndarray | None = STABLE_INDICES,
) -> AlignedFace:
    """Similarity-align a face to the canonical template and crop it.

    Args:
        image: ``(H, W)`` or ``(H, W, C)`` uint8 image.
        landmarks: ``(68, 2)`` landmarks of ``image`` in pixels.
        size: output crop size ``S`` or ``(H, W)``.
        indices: landmarks the similarity is fitted on; ``None`` uses all 68.

    Returns:
        The crop, its landmarks and the source-to-crop matrix.
    """
    matrix = similarity_to_canonical(landmarks, size, indices)
    crop = warp_with_matrix(image, matrix, size)
    return AlignedFace(crop, apply_affine(landmarks, matrix), matrix)
