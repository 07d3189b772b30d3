"""Calibration measurements against frames warped with known motion, noise and brightness."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import move, quantise, similarity_about, write_clip

from mesynth.calibration.calibrate import detector_landmarker, measure_clip
from mesynth.calibration.measure import (
    brightness_drift,
    count_blinks,
    eye_aspect_ratio,
    field_statistics,
    noise_from_pair,
    noise_from_triplet,
    non_rigid_displacement,
    rigid_motion,
    robust_std,
    static_mask,
)
from mesynth.face.canonical import apply_affine, canonical_landmarks, inter_ocular_distance
from mesynth.motion.au_basis import MotionModel
from mesynth.render.skin_motion import smooth_random_field


def test_rigid_motion_recovers_a_known_similarity_exactly():
    points = canonical_landmarks(96)
    matrix = similarity_about(points, 1.5, -0.7, 2.0, 1.02)
    motion, fitted = rigid_motion(points, apply_affine(points, matrix))
    iod = inter_ocular_distance(points)
    np.testing.assert_allclose(fitted, matrix, atol=1e-9)
    np.testing.assert_allclose(motion.translation_iod, np.array([1.5, -0.7]) / iod, atol=1e-9)
    assert motion.rotation_deg == pytest.approx(2.0, abs=1e-9)
    assert motion.scale == pytest.approx(1.02, abs=1e-12)


def test_non_rigid_displacement_removes_the_similarity():
    points = canonical_landmarks(96)
    iod = float(inter_ocular_distance(points))
    expression = np.zeros((68, 2))
    expression[48] = [-0.04 * iod, -0.02 * iod]  # a lip corner pulled, in px
    expression[54] = [0.04 * iod, -0.02 * iod]
    apex = apply_affine(points + expression, similarity_about(points, 2.0, 1.0, -1.5, 0.98))
    displacement = non_rigid_displacement(points, apex)
    np.testing.assert_allclose(displacement, expression / iod, atol=1e-9)


def test_smooth_field_statistics_match_the_requested_ones():
    rng = np.random.default_rng(3)
    field = smooth_random_field((96, 96), 0.4, 5.0, rng)
    rms, half = field_statistics(field, np.ones((96, 96), bool))
    assert rms == pytest.approx(0.4, rel=1e-9)
    assert half == pytest.approx(5.0, rel=0.15)
    rough = field_statistics(smooth_random_field((96, 96), 0.4, 2.0, rng), np.ones((96, 96), bool))
    assert rough[1] < half / 2


def test_field_statistics_of_white_noise_and_of_an_empty_mask():
    noise = np.random.default_rng(0).standard_normal((64, 64, 2))
    rms, half = field_statistics(noise, np.ones((64, 64), bool))
    assert rms == pytest.approx(np.sqrt(2), rel=0.05)
    assert half < 1.0  # uncorrelated: falls below 0.5 before one pixel
    assert field_statistics(noise, np.zeros((64, 64), bool)) == (0.0, 0.0)


def test_noise_estimators_recover_a_known_sigma(aligned_face):
    image, landmarks = aligned_face
    rng = np.random.default_rng(1)
    mask = static_mask(landmarks, [12], image.shape[:2], MotionModel.expert(1.0))
    gray = image.mean(-1)
    still = np.stack([quantise(gray, 3.0, rng) for _ in range(3)])
    assert noise_from_triplet(still, mask) == pytest.approx(3.0, rel=0.1)
    # a smooth scene moved half a pixel right: resampling it loses no texture
    scene = cv2.GaussianBlur(gray, (0, 0), 2.0)
    shift = np.zeros(image.shape[:2] + (2,))
    shift[..., 0] = 0.5
    moved = move(scene[..., None].repeat(3, -1), similarity_about(landmarks, 0.5, 0, 0, 1))
    pair = quantise(scene, 2.0, rng), quantise(moved[..., 0], 2.0, rng)
    assert noise_from_pair(*pair, shift, mask) == pytest.approx(2.0, rel=0.25)


def test_robust_std_ignores_outliers():
    values = np.random.default_rng(0).normal(0, 2.0, 20000)
    values[:500] = 1e6
    assert robust_std(values) == pytest.approx(2.0, rel=0.05)


def test_blinks_are_counted_as_dips():
    ear = np.full(40, 0.3)
    ear[5:8] = 0.05
    ear[25:27] = 0.1
    assert count_blinks(ear) == 2
    assert count_blinks(np.full(40, 0.3)) == 0


def test_eye_aspect_ratio_by_hand():
    points = np.zeros((68, 2))
    for start in (36, 42):  # a 4 x 1 eye: corners at x 0 and 4, lids at y -0.5 / +0.5
        points[start : start + 6] = [[0, 0], [1, -0.5], [3, -0.5], [4, 0], [3, 0.5], [1, 0.5]]
    assert eye_aspect_ratio(points) == pytest.approx((1 + 1) / (2 * 4))


def test_brightness_drift_of_a_linear_ramp():
    frames = np.stack([np.full((8, 8), 100.0 * (1 + 0.2 * t)) for t in (0.0, 0.5, 1.0)])
    drift = brightness_drift(frames, np.array([0.0, 0.5, 1.0]), np.ones((8, 8), bool))
    assert drift == pytest.approx(20.0 / 110.0)


def test_measure_clip_recovers_head_motion_and_noise(aligned_face, tmp_path):
    image, landmarks = aligned_face
    rng = np.random.default_rng(2)
    matrix = similarity_about(landmarks, 1.2, -0.6, 1.0, 1.01)
    frames = [quantise(image, 2.0, rng), quantise(move(image, matrix), 2.0, rng)]
    record = write_clip(tmp_path, "moved", frames, aus="12")
    measured = measure_clip(record, detector_landmarker("dlib"))
    iod = inter_ocular_distance(landmarks)
    np.testing.assert_allclose(
        measured.head.translation_iod, np.array([1.2, -0.6]) / iod, atol=0.01
    )
    assert measured.head.rotation_deg == pytest.approx(1.0, abs=0.25)
    assert measured.head.scale == pytest.approx(1.01, abs=0.005)
    assert measured.peak_iod < 0.02  # no expression: what is left is tracking error
    assert measured.noise_sigma == pytest.approx(2.0, rel=0.3)
    assert measured.au_intensities == {12: 1.0}
