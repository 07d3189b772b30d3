"""Fake clips for the calibration and realism tests: a real face warped with known motion."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import skimage.data

from mesynth.face.canonical import STABLE_INDICES, align_to_canonical, warp_with_matrix
from mesynth.face.landmarks import create_detector, detect_landmarks

SIZE = 96


@dataclass(frozen=True)
class FakeRecord:
    """A clip record like recognizer's Sample (duck-typed), stored as a .npy array."""

    subject: str
    clip: str
    array_path: Path
    onset: int
    apex: int
    offset: int
    fps: float = 100.0
    aus: str = ""
    emotion: str = "happiness"
    identity: str | None = None
    frames: tuple = ()
    frame_numbers: tuple = ()
    extra: dict = field(default_factory=dict)


@pytest.fixture(scope="session")
def aligned_face() -> tuple[np.ndarray, np.ndarray]:
    """The astronaut aligned to the canonical 96 px crop: image (96, 96, 3) and landmarks."""
    image = skimage.data.astronaut()
    landmarks = detect_landmarks(image, create_detector("dlib"))
    face = align_to_canonical(image, landmarks, SIZE)
    return face.image, face.landmarks


def similarity_about(
    landmarks: np.ndarray, tx: float, ty: float, degrees: float, scale: float
) -> np.ndarray:
    """(2, 3) similarity moving content by (tx, ty) px, rotating by `degrees` and scaling by
    `scale` about the centroid of the stable landmarks."""
    centre = landmarks[STABLE_INDICES].mean(0)
    theta = np.deg2rad(degrees)
    linear = scale * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    matrix = np.zeros((2, 3))
    matrix[:, :2] = linear
    matrix[:, 2] = centre - linear @ centre + [tx, ty]
    return matrix


def move(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Content at x moves to matrix @ x (float frame)."""
    return warp_with_matrix(image.astype(np.float32), matrix, image.shape[0])


def quantise(frame: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    noisy = frame + rng.normal(0.0, sigma, frame.shape) if sigma > 0 else frame
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def write_clip(folder: Path, name: str, frames: list[np.ndarray], **fields: object) -> FakeRecord:
    path = folder / f"{name}.npy"
    np.save(path, np.stack(frames))
    numbers = ";".join(str(i) for i in range(len(frames)))
    defaults = {"onset": 0, "apex": len(frames) - 1, "offset": len(frames) - 1}
    return FakeRecord(
        subject=fields.pop("subject", f"fake/{name}"),
        clip=name,
        array_path=path,
        extra={"frame_numbers": numbers},
        **{**defaults, **fields},
    )
