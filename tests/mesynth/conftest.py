"""Fake clips for the calibration and realism tests: a real face warped with known motion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skimage.data

from mesynth.face.canonical import STABLE_INDICES, align_to_canonical, warp_with_matrix
from mesynth.face.landmarks import create_detector, detect_landmarks
from mesynth.templates.bank import TemplateBank
from mesynth.templates.types import Template
from tests.builtin_faces import builtin_faces
from tests.fake_records import FakeRecord

SIZE = 96


@pytest.fixture(scope="module")
def faces(request: pytest.FixtureRequest):
    """The built-in portraits at the test module's ``SIZE`` (tests/builtin_faces.py)."""
    return builtin_faces(request.module.SIZE)


@pytest.fixture(scope="session")
def dlib_detector():
    """The offline dlib landmark detector, loaded once."""
    return create_detector("dlib")


@pytest.fixture(scope="session")
def aligned_face(dlib_detector) -> tuple[np.ndarray, np.ndarray]:
    """The astronaut aligned to the canonical 96 px crop: image (96, 96, 3) and landmarks."""
    image = skimage.data.astronaut()
    landmarks = detect_landmarks(image, dlib_detector)
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


def moving_clips(folder, face, n, shift_px, noise, seed, prefix) -> list[FakeRecord]:
    """``n`` onset/apex clips of ``face`` whose apex is shifted by ``shift_px`` (normal, px) with
    sensor noise ``noise``; five subjects, alternating happiness and surprise."""
    image, landmarks = face
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        tx, ty = rng.normal(0, shift_px, 2)
        apex = move(image, similarity_about(landmarks, tx, ty, 0.0, 1.0))
        frames = [quantise(image, noise, rng), quantise(apex, noise, rng)]
        out.append(
            write_clip(
                folder,
                f"{prefix}{i}",
                frames,
                subject=f"{prefix}/s{i % 5}",
                emotion=("happiness", "surprise")[i % 2],
            )
        )
    return out


def read_written_report(result, headings: tuple[str, ...], figures: set[str]) -> str:
    """The Markdown of a written report (realism or calibration comparison), after checking
    that it has every one of ``headings`` and that exactly ``figures`` were drawn, each a PNG
    with content."""
    text = result.markdown.read_text()
    for heading in headings:
        assert heading in text
    assert {p.name for p in result.figures} == figures
    assert all(p.stat().st_size > 1000 for p in result.figures)
    return text


@pytest.fixture(scope="session")
def templates() -> list[Template]:
    """The expert dfme7 templates that move at least one AU."""
    return [t for t in TemplateBank.expert("dfme7").templates if t.aus]
