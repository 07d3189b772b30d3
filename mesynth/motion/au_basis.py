"""AU motion model: how far and which way each of the 68 landmarks moves for each AU.

Convention:
    Displacements are ``(68, 2)`` arrays of ``(dx, dy)`` in IOD units (multiples of the
    distance between the eye centres), x to the image right, y down, on the canonical face
    (:mod:`mesynth.face.canonical`). To move a face's landmarks, multiply by that face's IOD in
    pixels (:meth:`MotionModel.to_pixels`). "L"/"R" are the subject's sides: subject-right is
    image-left (:data:`mesynth.face.canonical.SUBJECT_RIGHT_INDICES`).

Each AU ``k`` has a basis ``B_k`` (its displacement at full intensity). A one-sided AU uses
the bilateral basis times a side mask: 1 on that side's points, 0.5 on the midline, 0 on the
other side, so ``L`` + ``R`` equals the bilateral AU. AUs compose by summation:
``displacement = sum_k intensity_k * mask(side_k) * B_k``.

The expert basis (:meth:`MotionModel.expert`) is authored in ``mesynth/motion/data/au_motion.yaml``
from the FACS descriptions on the subject-right half and mirrored to the left half with
:data:`mesynth.face.canonical.MIRROR_PERMUTATION`; each AU is scaled so that its largest point
moves ``apex_iod`` IOD at intensity 1 (a typical single-AU ME apex; default 0.03, as real ME
apexes move their largest landmark 0.01-0.05 IOD). :meth:`MotionModel.fit` learns a basis
from (AU vector, landmark offset) pairs by ridge least squares.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from importlib import resources

import numpy as np
import yaml

from mesynth.face.canonical import (
    MIDLINE_INDICES,
    MIRROR_PERMUTATION,
    N_LANDMARKS,
    SUBJECT_LEFT_INDICES,
    SUBJECT_RIGHT_INDICES,
    inter_ocular_distance,
)
from mesynth.templates.types import TemplateAU

DEFAULT_APEX_IOD = 0.03


class MotionModelError(ValueError):
    """A bad basis, AU or fitting input; the message names the argument or AU."""


def side_mask(side: str | None) -> np.ndarray:
    """Per-landmark weights ``(68,)`` of a one-sided AU: 1 on ``side``, 0.5 on the midline.

    ``None`` (bilateral) gives all ones.
    """
    if side is None:
        return np.ones(N_LANDMARKS)
    if side not in ("L", "R"):
        raise MotionModelError(f"side must be 'L', 'R' or None, got {side!r}")
    mask = np.zeros(N_LANDMARKS)
    mask[SUBJECT_RIGHT_INDICES if side == "R" else SUBJECT_LEFT_INDICES] = 1.0
    mask[MIDLINE_INDICES] = 0.5
    return mask


def mirror_displacement(displacement: np.ndarray) -> np.ndarray:
    """The displacement of the mirrored face, ``(..., 68, 2)``: permute points, negate dx."""
    mirrored = np.asarray(displacement, dtype=np.float64)[..., MIRROR_PERMUTATION, :].copy()
    mirrored[..., 0] *= -1.0
    return mirrored


@lru_cache(maxsize=1)
def _expert_table() -> dict:
    resource = resources.files("mesynth.motion").joinpath("data", "au_motion.yaml")
    return yaml.safe_load(resource.read_text())


def expert_au_names() -> dict[int, str]:
    """FACS names of the AUs of the expert basis (``{12: "lip corner puller", ...}``)."""
    return {int(code): entry["name"] for code, entry in _expert_table()["aus"].items()}


@lru_cache(maxsize=1)
def _authored_directions() -> dict[int, np.ndarray]:
    """The shipped expert directions, symmetrised and scaled to a largest point of 1."""
    path = "mesynth/motion/data/au_motion.yaml"
    data = _expert_table()
    right_or_mid = set(SUBJECT_RIGHT_INDICES.tolist()) | set(MIDLINE_INDICES.tolist())
    out = {}
    for code, entry in data["aus"].items():
        half = np.zeros((N_LANDMARKS, 2))
        for index, vector in entry["points"].items():
            if index not in right_or_mid:
                raise MotionModelError(f"{path}: AU{code} lists point {index}, not right/midline")
            if index in MIDLINE_INDICES and vector[0] != 0:
                raise MotionModelError(f"{path}: AU{code} midline point {index} has dx != 0")
            half[index] = vector
        left = mirror_displacement(half)
        left[np.isin(np.arange(N_LANDMARKS), MIDLINE_INDICES)] = 0.0
        full = half + left
        out[int(code)] = full / np.linalg.norm(full, axis=1).max()
    return out


class MotionModel:
    """Per-AU landmark displacement bases.

    Args:
        basis: ``{code: (68, 2) displacement at full intensity, IOD units}``.
        apex_iod: the size (largest point, IOD) of a single-AU ME at intensity 1 this basis
            was calibrated to; ``None`` for an uncalibrated (fitted) basis.
    """

    def __init__(self, basis: Mapping[int, np.ndarray], apex_iod: float | None = None) -> None:
        if not basis:
            raise MotionModelError("a motion model needs at least one AU basis")
        self._basis: dict[int, np.ndarray] = {}
        for code, vectors in basis.items():
            array = np.asarray(vectors, dtype=np.float64)
            if array.shape != (N_LANDMARKS, 2) or not np.isfinite(array).all():
                raise MotionModelError(
                    f"basis of AU{code} must be a finite (68, 2) array, got shape {array.shape}"
                )
            self._basis[int(code)] = array
        self.apex_iod = None if apex_iod is None else float(apex_iod)

    @classmethod
    def expert(cls, apex_iod: float = DEFAULT_APEX_IOD) -> MotionModel:
        """The expert basis from the FACS descriptions, largest point of each AU = ``apex_iod``."""
        if not apex_iod > 0:
            raise MotionModelError(f"apex_iod must be positive, got {apex_iod}")
        return cls(
            {code: apex_iod * unit for code, unit in _authored_directions().items()}, apex_iod
        )

    @classmethod
    def fit(
        cls,
        au_vectors: np.ndarray,
        landmark_offsets: np.ndarray,
        codes: Sequence[int],
        ridge: float = 1e-3,
        prior: MotionModel | None = None,
        symmetric: bool = False,
    ) -> MotionModel:
        """Learn bases by ridge least squares from real (AU vector, landmark offset) pairs.

        Solves ``min_B ||Y - A B||^2 + ridge * ||B - B0||^2`` where ``A`` holds the AU
        intensities, ``Y`` the offsets and ``B0`` the ``prior``'s bases (zeros without one).

        Args:
            au_vectors: ``(M, K)`` AU intensities of M examples (e.g. 1 where coded).
            landmark_offsets: ``(M, 68, 2)`` apex-minus-onset landmarks in IOD units, aligned
                to the canonical face.
            codes: the K AU codes of the columns of ``au_vectors``.
            ridge: regularisation strength (>= 0).
            prior: shrink toward this model's bases; its AUs outside ``codes`` are kept.
            symmetric: average each learned basis with its mirror image.

        Returns:
            An uncalibrated model (``apex_iod`` is None; see :meth:`calibrated`).
        """
        A = np.asarray(au_vectors, dtype=np.float64)
        Y = np.asarray(landmark_offsets, dtype=np.float64)
        codes = [int(c) for c in codes]
        if A.ndim != 2 or A.shape[1] != len(codes):
            raise MotionModelError(f"au_vectors must be (M, K={len(codes)}), got {A.shape}")
        if Y.shape != (A.shape[0], N_LANDMARKS, 2):
            raise MotionModelError(
                f"landmark_offsets must be (M={A.shape[0]}, 68, 2), got {Y.shape}"
            )
        if len(set(codes)) != len(codes):
            raise MotionModelError(f"codes must be unique, got {codes}")
        if not (np.isfinite(A).all() and np.isfinite(Y).all()):
            raise MotionModelError("au_vectors and landmark_offsets must be finite")
        if ridge < 0:
            raise MotionModelError(f"ridge must be >= 0, got {ridge}")
        prior_rows = np.zeros((len(codes), 2 * N_LANDMARKS))
        if prior is not None:
            for row, code in enumerate(codes):
                if code in prior._basis:
                    prior_rows[row] = prior._basis[code].reshape(-1)
        gram = A.T @ A + ridge * np.eye(len(codes))
        try:
            solution = np.linalg.solve(gram, A.T @ Y.reshape(len(A), -1) + ridge * prior_rows)
        except np.linalg.LinAlgError as error:
            raise MotionModelError(
                "the AU design is singular (an AU never occurs or two always co-occur); "
                "use ridge > 0"
            ) from error
        basis = dict(prior._basis) if prior is not None else {}
        for row, code in enumerate(codes):
            learned = solution[row].reshape(N_LANDMARKS, 2)
            basis[code] = (learned + mirror_displacement(learned)) / 2 if symmetric else learned
        return cls(basis, None)

    def calibrated(self, apex_iod: float = DEFAULT_APEX_IOD) -> MotionModel:
        """A copy with every AU rescaled so its largest point moves ``apex_iod`` IOD."""
        if not apex_iod > 0:
            raise MotionModelError(f"apex_iod must be positive, got {apex_iod}")
        scaled = {}
        for code, basis in self._basis.items():
            peak = np.linalg.norm(basis, axis=1).max()
            if peak == 0:
                raise MotionModelError(f"AU{code} has an all-zero basis; it cannot be calibrated")
            scaled[code] = basis * (apex_iod / peak)
        return MotionModel(scaled, apex_iod)

    @property
    def known_codes(self) -> tuple[int, ...]:
        return tuple(sorted(self._basis))

    def basis(self, code: int) -> np.ndarray:
        """The bilateral ``(68, 2)`` basis of AU ``code`` (a copy)."""
        if code not in self._basis:
            raise MotionModelError(
                f"no motion basis for AU{code}; known AUs: {', '.join(map(str, self.known_codes))}"
            )
        return self._basis[code].copy()

    def au_basis(self, aus: Sequence[TemplateAU]) -> np.ndarray:
        """``(K, 68, 2)`` float64 bases of ``aus`` in order, side masks applied, intensity not."""
        if not aus:
            return np.zeros((0, N_LANDMARKS, 2))
        return np.stack([self.basis(au.code) * side_mask(au.side)[:, None] for au in aus])

    def displacement(self, aus: Sequence[TemplateAU]) -> np.ndarray:
        """``(68, 2)`` displacement in IOD units: ``sum_k intensity_k * masked basis_k``."""
        weights = np.array([au.intensity for au in aus], dtype=np.float64)
        return np.einsum("k,knd->nd", weights, self.au_basis(aus))

    @staticmethod
    def to_pixels(displacement: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """Convert an IOD-unit displacement ``(..., 68, 2)`` to pixels of a face whose
        landmarks are ``(68, 2)`` (multiplies by its inter-ocular distance)."""
        return np.asarray(displacement, dtype=np.float64) * float(inter_ocular_distance(landmarks))

    def __repr__(self) -> str:
        return f"MotionModel(aus={self.known_codes}, apex_iod={self.apex_iod})"
