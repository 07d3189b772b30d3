import cv2
import numpy as np
import pytest

from mesynth.face.canonical import (
    MIDLINE_INDICES,
    MIRROR_PERMUTATION,
    STABLE_INDICES,
    SUBJECT_LEFT_INDICES,
    SUBJECT_RIGHT_INDICES,
    align_to_canonical,
    apply_affine,
    canonical_landmarks,
    estimate_similarity,
    inter_ocular_distance,
    mirror_landmarks,
)


def test_mirror_permutation_is_an_involution() -> None:
    assert sorted(MIRROR_PERMUTATION) == list(range(68))
    np.testing.assert_array_equal(MIRROR_PERMUTATION[MIRROR_PERMUTATION], np.arange(68))
    assert set(MIDLINE_INDICES) == {8, 27, 28, 29, 30, 33, 51, 57, 62, 66}


def test_sides_partition_the_face() -> None:
    right, left, mid = set(SUBJECT_RIGHT_INDICES), set(SUBJECT_LEFT_INDICES), set(MIDLINE_INDICES)
    assert not (right & left) and not (right & mid) and not (left & mid)
    assert right | left | mid == set(range(68))
    # subject-right is image-left
    points = canonical_landmarks(224)
    assert (points[SUBJECT_RIGHT_INDICES, 0] < 112).all()
    assert (points[SUBJECT_LEFT_INDICES, 0] > 112).all()
    assert {0, 17, 36, 48, 60} <= right


def test_canonical_face_is_symmetric_and_inside_the_crop() -> None:
    points = canonical_landmarks(224)
    np.testing.assert_allclose(mirror_landmarks(points, 224), points, atol=1e-9)
    assert points.min() > 0 and points.max() < 224
    assert 0.25 * 224 < inter_ocular_distance(points) < 0.4 * 224
    # eyes above the nose tip, nose tip above the mouth, mouth above the chin
    assert points[36:48, 1].mean() < points[33, 1] < points[48:68, 1].mean() < points[8, 1]


def test_canonical_scales_with_size() -> None:
    np.testing.assert_allclose(canonical_landmarks(448), 2 * canonical_landmarks(224))
    rect = canonical_landmarks((100, 200))
    np.testing.assert_allclose(rect[:, 0], canonical_landmarks(200)[:, 0])
    with pytest.raises(ValueError, match="size"):
        canonical_landmarks(0)


def test_similarity_recovers_a_known_transform() -> None:
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (68, 2))
    angle, scale, shift = 0.3, 1.7, np.array([12.0, -4.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src @ rot.T + shift
    matrix = estimate_similarity(src, dst)
    np.testing.assert_allclose(matrix[:, :2], rot, atol=1e-9)
    np.testing.assert_allclose(matrix[:, 2], shift, atol=1e-9)
    # agrees with OpenCV's independent estimator on noise-free points
    cv_matrix, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.LMEDS)
    np.testing.assert_allclose(matrix, cv_matrix, atol=1e-6)


def test_similarity_never_reflects() -> None:
    """A mirrored target is fitted by a proper rotation (positive determinant), not a flip."""
    src = np.random.default_rng(1).uniform(0, 100, (10, 2))
    matrix = estimate_similarity(src, src * np.array([-1.0, 1.0]))
    assert np.linalg.det(matrix[:, :2]) > 0


def test_similarity_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        estimate_similarity(np.zeros((5, 3)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="identical"):
        estimate_similarity(np.ones((4, 2)), np.zeros((4, 2)))


def test_alignment_registers_pixels_and_landmarks() -> None:
    """A dot drawn at a landmark lands on that landmark's canonical position."""
    target = canonical_landmarks(112)
    matrix = np.array([[1.6, -0.2, 30.0], [0.2, 1.6, 10.0]])
    source_points = apply_affine(target, np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2])
    image = np.zeros((300, 300), np.uint8)
    nose = source_points[30]
    cv2.circle(image, (int(round(nose[0] - 0.5)), int(round(nose[1] - 0.5))), 2, 255, -1)
    aligned = align_to_canonical(image, source_points, 112, indices=STABLE_INDICES)
    np.testing.assert_allclose(aligned.landmarks, target, atol=1e-6)
    ys, xs = np.nonzero(aligned.image > 64)
    weights = aligned.image[ys, xs].astype(float)
    centre = np.array([(xs * weights).sum(), (ys * weights).sum()]) / weights.sum() + 0.5
    np.testing.assert_allclose(centre, target[30], atol=0.6)


def test_alignment_rejects_wrong_landmark_count() -> None:
    with pytest.raises(ValueError, match="68"):
        align_to_canonical(np.zeros((10, 10), np.uint8), np.zeros((5, 2)))
