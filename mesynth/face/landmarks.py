"""68-point facial landmarks: detector backends, landmark files and a content-hash cache.

Backends:
    ``face_alignment``: the accurate default (FAN); its weights download at first use and are
    cached under ``$TORCH_HOME/hub/checkpoints``.
    ``dlib``: offline; the ``dlib-bin`` wheel plus ``shape_predictor_68_face_landmarks.dat``
    from the ``face_recognition_models`` wheel; HOG face detector.
    ``auto``: ``face_alignment`` when its weights are already cached, else ``dlib``.
    Files: ``.pts`` (iBUG, 1-based), ``.npy`` (68, 2) and ``.json`` (a list of 68 ``[x, y]`` or
    ``{"landmarks": [...]}``), 0-based pixel indices.

Every detector accepts a face box. Tight face crops (the ``Cropped`` trees of real releases)
defeat most face detectors, so when detection finds nothing the whole image is used as the face
box (``whole_image_fallback``).

Convention:
    Detectors and files give 0-based pixel *indices* (the centre of the top-left pixel is
    ``(0, 0)``; ``.pts`` files: ``(1, 1)``). They are converted on load to the library's
    continuous convention (:mod:`mesynth.face.canonical`): the centre of the top-left pixel is
    ``(0.5, 0.5)``. Boxes are ``(left, top, right, bottom)`` in pixel indices.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from mesynth.environment import dlib_model_path, torch_hub_checkpoints
from mesynth.face.canonical import LEFT_EYE_INDICES, N_LANDMARKS, RIGHT_EYE_INDICES

Box = tuple[float, float, float, float]

#: offset from 0-based pixel indices (detectors, .npy, .json) to the library's convention.
INDEX_TO_CONTINUOUS = 0.5
FACE_ALIGNMENT_WEIGHT_PREFIX = "2DFAN4"


class LandmarkError(RuntimeError):
    """Landmarks could not be obtained for an image; the message names the image."""


class NoFaceError(LandmarkError):
    """No face was found."""


class MultipleFacesError(LandmarkError):
    """Several faces were found where one was expected."""


class ImplausibleLandmarksError(LandmarkError):
    """Landmarks were found but fail the geometric sanity checks."""


class LandmarkDetector(Protocol):
    """A landmark backend: all faces of an RGB image, or the face inside a given box."""

    name: str

    def detect(self, image: np.ndarray, box: Box | None = None) -> list[np.ndarray]:
        """Landmarks of every face.

        Args:
            image: ``(H, W, 3)`` uint8 RGB (or ``(H, W)`` grayscale).
            box: a face box; when given, landmarks are fitted inside it without detection.

        Returns:
            A list of ``(68, 2)`` float64 arrays in the library's continuous convention.
        """
        ...


def _as_rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise TypeError(f"images must be uint8, got {image.dtype}")
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 3:
        return np.ascontiguousarray(image)
    if image.ndim == 3 and image.shape[2] == 4:
        return np.ascontiguousarray(image[:, :, :3])
    raise ValueError(f"image must be (H, W), (H, W, 3) or (H, W, 4); got {image.shape}")


class DlibDetector:
    """dlib HOG face detector + the 68-point shape predictor (fully offline)."""

    name = "dlib"

    def __init__(self, model_path: str | Path | None = None, max_upsample: int = 1) -> None:
        try:
            import dlib
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise LandmarkError(
                "the dlib backend needs the 'dlib' extra: pip install 'mesynth[dlib]'"
            ) from err
        path = Path(model_path) if model_path else dlib_model_path()
        if path is None or not Path(path).is_file():
            raise LandmarkError(
                f"dlib 68-point model not found ({path}); install face_recognition_models "
                "(pip install 'mesynth[dlib]') or pass model_path="
            )
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(path))
        self.max_upsample = max_upsample

    def detect(self, image: np.ndarray, box: Box | None = None) -> list[np.ndarray]:
        rgb = _as_rgb(image)
        if box is None:
            # upsampling finds small faces but adds false positives on large ones: only
            # upsample when the image at its own scale shows no face
            rects = []
            for upsample in range(self.max_upsample + 1):
                rects = list(self._detector(rgb, upsample))
                if rects:
                    break
        else:
            left, top, right, bottom = (round(v) for v in box)
            rects = [self._dlib.rectangle(left, top, right, bottom)]
        out = []
        for rect in rects:
            shape = self._predictor(rgb, rect)
            points = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
            out.append(points + INDEX_TO_CONTINUOUS)
        return out


class FaceAlignmentDetector:
    """face-alignment's FAN (2D) with its own face detector (``sfd`` by default).

    The first use downloads weights into ``$TORCH_HOME/hub/checkpoints`` unless they are there.
    """

    name = "face_alignment"

    def __init__(self, device: str = "cpu", face_detector: str = "sfd") -> None:
        try:
            import face_alignment
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise LandmarkError(
                "the face_alignment backend needs face-alignment: "
                "pip install --no-deps face-alignment (see docs/install.md)"
            ) from err
        try:
            self._fa = face_alignment.FaceAlignment(
                face_alignment.LandmarksType.TWO_D, device=device, face_detector=face_detector
            )
        except Exception as err:  # downloads fail in many ways (no network, proxy, disk)
            raise LandmarkError(
                f"face-alignment could not load its weights ({err}); copy them into "
                f"{torch_hub_checkpoints()} or use backend='dlib'"
            ) from err

    def detect(self, image: np.ndarray, box: Box | None = None) -> list[np.ndarray]:
        rgb = _as_rgb(image)
        boxes = None if box is None else [np.array(box, dtype=np.float32)]
        found = self._fa.get_landmarks_from_image(rgb, detected_faces=boxes)
        return [np.asarray(p, dtype=np.float64)[:, :2] + INDEX_TO_CONTINUOUS for p in found or []]


def face_alignment_weights_cached() -> bool:
    """Whether face-alignment's landmark weights are already in the torch hub cache."""
    folder = torch_hub_checkpoints()
    return folder.is_dir() and any(folder.glob(f"{FACE_ALIGNMENT_WEIGHT_PREFIX}*"))


BACKENDS = ("auto", "face_alignment", "dlib")


def create_detector(backend: str = "auto", **kwargs: object) -> LandmarkDetector:
    """Build a landmark detector by name (``auto``, ``face_alignment`` or ``dlib``)."""
    if backend == "auto":
        backend = "face_alignment" if face_alignment_weights_cached() else "dlib"
    if backend == "dlib":
        return DlibDetector(**kwargs)  # type: ignore[arg-type]
    if backend == "face_alignment":
        return FaceAlignmentDetector(**kwargs)  # type: ignore[arg-type]
    raise ValueError(f"unknown landmark backend {backend!r}; known backends: {', '.join(BACKENDS)}")


def check_plausible(landmarks: np.ndarray, image_shape: Sequence[int], source: str) -> np.ndarray:
    """Raise :class:`ImplausibleLandmarksError` unless ``landmarks`` look like an upright face.

    Checks: shape ``(68, 2)``, finite, at most 25 % of the face size outside the image, an
    inter-ocular distance of at least 8 px, subject-right eye on the image left, eyes above the
    mouth and the mouth above the chin.
    """
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (N_LANDMARKS, 2) or not np.isfinite(points).all():
        raise ImplausibleLandmarksError(f"{source}: landmarks must be 68 finite (x, y) points")
    height, width = image_shape[:2]
    size = np.ptp(points, axis=0).max()
    margin = 0.25 * size
    if (
        (points < -margin).any()
        or (points[:, 0] > width + margin).any()
        or (points[:, 1] > height + margin).any()
    ):
        raise ImplausibleLandmarksError(f"{source}: landmarks fall far outside the image")
    right_eye = points[RIGHT_EYE_INDICES].mean(0)
    left_eye = points[LEFT_EYE_INDICES].mean(0)
    iod = np.linalg.norm(left_eye - right_eye)
    if iod < 8.0:
        raise ImplausibleLandmarksError(f"{source}: face too small (inter-ocular {iod:.1f} px)")
    if right_eye[0] >= left_eye[0]:
        raise ImplausibleLandmarksError(f"{source}: eyes in the wrong order (mirrored face?)")
    eyes_y = (right_eye[1] + left_eye[1]) / 2
    if not eyes_y < points[48:68, 1].mean() < points[8, 1]:
        raise ImplausibleLandmarksError(f"{source}: eyes, mouth and chin are not top to bottom")
    return points


#: intensity std (grey levels, 0-255) below which an image is treated as blank: the whole-image
#: fallback is refused there, as a shape model still returns a plausible-looking face on it.
BLANK_IMAGE_STD = 2.0


def detect_landmarks(
    image: np.ndarray,
    detector: LandmarkDetector,
    box: Box | None = None,
    *,
    whole_image_fallback: bool = True,
    allow_multiple: bool = False,
    source: str = "<image>",
) -> np.ndarray:
    """Landmarks of the one face in ``image``.

    Args:
        image: ``(H, W, 3)`` uint8 RGB or ``(H, W)`` grayscale.
        detector: a backend from :func:`create_detector`.
        box: optional face box ``(left, top, right, bottom)``; skips detection.
        whole_image_fallback: when detection finds no face, treat the whole image as the face
            (not on a (near-)constant image: intensity std below :data:`BLANK_IMAGE_STD`).
        allow_multiple: with several faces take the largest instead of raising.
        source: name used in error messages (a file path).

    Returns:
        ``(68, 2)`` float64 landmarks (continuous convention).

    Raises:
        NoFaceError, MultipleFacesError, ImplausibleLandmarksError.
    """
    faces = detector.detect(image, box)
    if not faces and box is None and whole_image_fallback:
        pixels = np.asarray(image)
        spread = float(pixels.std()) if pixels.size else 0.0
        if spread < BLANK_IMAGE_STD:
            raise NoFaceError(
                f"{source}: no face found by the {detector.name} backend, and the image is "
                f"(nearly) constant (intensity std {spread:.2f} < {BLANK_IMAGE_STD}), so the "
                "whole-image fallback is not used"
            )
        height, width = pixels.shape[:2]
        faces = detector.detect(image, (0, 0, width - 1, height - 1))
    if not faces:
        raise NoFaceError(f"{source}: no face found by the {detector.name} backend")
    if len(faces) > 1:
        if not allow_multiple:
            raise MultipleFacesError(
                f"{source}: {len(faces)} faces found; crop the image to one face or pass a box"
            )
        faces = sorted(faces, key=lambda p: -np.ptp(p, axis=0).prod())
    return check_plausible(faces[0], np.asarray(image).shape, source)


def load_landmark_file(path: str | Path) -> np.ndarray:
    """Read ``.pts`` (1-based), ``.npy`` or ``.json`` landmarks; returns ``(68, 2)`` continuous.

    Raises:
        LandmarkError: missing file, unknown suffix or malformed content (the message names the
            file and what is wrong).
    """
    path = Path(path)
    if not path.is_file():
        raise LandmarkError(f"{path}: landmark file not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".pts":
            points = _read_pts(path) - 1.0 + INDEX_TO_CONTINUOUS
        elif suffix == ".npy":
            points = np.load(path, allow_pickle=False).astype(np.float64) + INDEX_TO_CONTINUOUS
        elif suffix == ".json":
            data = json.loads(path.read_text())
            if isinstance(data, dict):
                data = data.get("landmarks")
            points = np.asarray(data, dtype=np.float64) + INDEX_TO_CONTINUOUS
        else:
            raise LandmarkError(f"{path}: unknown landmark file type (use .pts, .npy or .json)")
    except LandmarkError:
        raise
    except Exception as err:
        raise LandmarkError(f"{path}: malformed landmark file ({err})") from err
    if points.shape != (N_LANDMARKS, 2) or not np.isfinite(points).all():
        raise LandmarkError(f"{path}: expected 68 finite (x, y) points, got shape {points.shape}")
    return points


def _read_pts(path: Path) -> np.ndarray:
    lines = [line.strip() for line in path.read_text().splitlines()]
    try:
        start, end = lines.index("{") + 1, lines.index("}")
    except ValueError as err:
        raise LandmarkError(f"{path}: .pts file without '{{' ... '}}' block") from err
    rows = []
    for number, line in enumerate(lines[start:end], start=start + 1):
        parts = line.split()
        if len(parts) != 2:
            raise LandmarkError(f"{path}, line {number}: expected 'x y', got {line!r}")
        rows.append([float(parts[0]), float(parts[1])])
    return np.array(rows, dtype=np.float64)


def save_pts(path: str | Path, landmarks: np.ndarray) -> None:
    """Write continuous-convention landmarks as an iBUG ``.pts`` file (1-based)."""
    points = np.asarray(landmarks, dtype=np.float64) - INDEX_TO_CONTINUOUS + 1.0
    body = "\n".join(f"{x:.4f} {y:.4f}" for x, y in points)
    Path(path).write_text(f"version: 1\nn_points: {len(points)}\n{{\n{body}\n}}\n")


class LandmarkCache:
    """Landmarks cached on disk per image content, backend and box.

    Files are ``<root>/<sha1>.npy``; the key hashes the image bytes and shape, the backend name
    and the box, so renamed or copied images hit the cache and edited ones miss it.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @staticmethod
    def key(image: np.ndarray, backend: str, box: Box | None = None) -> str:
        digest = hashlib.sha1()
        array = np.ascontiguousarray(image)
        digest.update(str(array.shape).encode())
        digest.update(array.tobytes())
        digest.update(f"{backend}|{box}".encode())
        return digest.hexdigest()

    def get_or_detect(
        self,
        image: np.ndarray,
        detector: LandmarkDetector,
        box: Box | None = None,
        **kwargs: object,
    ) -> np.ndarray:
        """Cached :func:`detect_landmarks`; writes atomically (temp name, then rename)."""
        path = self.root / f"{self.key(image, detector.name, box)}.npy"
        if path.is_file():
            return np.load(path)
        points = detect_landmarks(image, detector, box, **kwargs)  # type: ignore[arg-type]
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, points)
        tmp.replace(path)
        return points
