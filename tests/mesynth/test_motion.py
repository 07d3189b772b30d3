import numpy as np
import pytest

from mesynth.face.canonical import (
    MIDLINE_INDICES,
    MIRROR_PERMUTATION,
    SUBJECT_LEFT_INDICES,
    SUBJECT_RIGHT_INDICES,
    canonical_landmarks,
)
from mesynth.motion.au_basis import MotionModel, MotionModelError, mirror_displacement, side_mask
from mesynth.templates.bank import TemplateAU

REQUIRED = (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 18, 20, 23, 24, 25, 26, 28, 38, 39, 43, 45)


@pytest.fixture(scope="module")
def model() -> MotionModel:
    return MotionModel.expert()


def move(model: MotionModel, code: int, side: str | None = None) -> np.ndarray:
    return model.displacement([TemplateAU(code, side, 1.0)])


def test_covers_required_aus(model: MotionModel) -> None:
    assert set(REQUIRED) <= set(model.known_codes)


def test_au12_raises_and_widens_mouth_corners(model: MotionModel) -> None:
    d = move(model, 12)
    right, left = d[48], d[54]  # subject-right corner is image-left
    assert right[0] < 0 and left[0] > 0  # outward
    assert right[1] < 0 and left[1] < 0  # up (y down)
    face = canonical_landmarks(224)
    width = lambda pts: pts[54, 0] - pts[48, 0]  # noqa: E731
    assert width(face + 50 * d) > width(face)
    assert abs(abs(right[0]) - abs(right[1])) < 1e-9  # about 45 degrees


def test_brow_aus(model: MotionModel) -> None:
    au4, au1, au2 = move(model, 4), move(model, 1), move(model, 2)
    assert au4[21, 1] > 0 and au4[22, 1] > 0  # inner brows down
    assert au4[21, 0] > 0 and au4[22, 0] < 0  # drawn toward the midline
    assert au1[21, 1] < 0 and au1[22, 1] < 0  # inner brows up
    assert np.linalg.norm(au1[21]) > np.linalg.norm(au1[17])  # inner more than outer
    assert au2[18, 1] < 0 and au2[25, 1] < 0
    assert np.linalg.norm(au2[18]) > np.linalg.norm(au2[21])  # outer more than inner


@pytest.mark.parametrize(
    ("code", "points", "axis", "sign"),
    [
        (5, [37, 38, 43, 44], 1, -1),  # upper lids up
        (6, [40, 41, 46, 47], 1, -1),  # lower lids up
        (7, [40, 41, 46, 47], 1, -1),
        (10, [51, 62], 1, -1),  # upper lip up
        (15, [48, 54], 1, 1),  # lip corners down
        (17, [57, 66, 8], 1, -1),  # chin and lower lip up
        (26, [8, 57], 1, 1),  # jaw drops
        (25, [66], 1, 1),  # lower lip parts down
        (43, [37, 38, 43, 44], 1, 1),  # upper lids down
        (45, [37, 38, 43, 44], 1, 1),
        (24, [51], 1, 1),  # upper lip pressed down
        (24, [57], 1, -1),  # lower lip pressed up
        (9, [31, 35], 1, -1),  # nostril wings up
    ],
)
def test_vertical_directions(model: MotionModel, code, points, axis, sign) -> None:
    d = move(model, code)
    assert (np.sign(d[points, axis]) == sign).all()


@pytest.mark.parametrize(
    ("code", "inward"),
    [(14, True), (18, True), (23, True), (39, True), (20, False), (38, False)],
)
def test_horizontal_directions(model: MotionModel, code, inward) -> None:
    d = move(model, code)
    point = 31 if code in (38, 39) else 48
    assert (d[point, 0] > 0) == inward  # subject-right side: +x is toward the midline


@pytest.mark.parametrize("code", REQUIRED)
def test_expert_basis_is_symmetric_and_calibrated(model: MotionModel, code: int) -> None:
    basis = model.basis(code)
    np.testing.assert_allclose(mirror_displacement(basis), basis, atol=1e-12)
    assert np.linalg.norm(basis, axis=1).max() == pytest.approx(0.03)


@pytest.mark.parametrize("code", [4, 12, 26])
def test_one_sided_variants_move_only_their_side(model: MotionModel, code: int) -> None:
    right, left, both = move(model, code, "R"), move(model, code, "L"), move(model, code)
    assert np.abs(right[SUBJECT_LEFT_INDICES]).max() == 0
    assert np.abs(left[SUBJECT_RIGHT_INDICES]).max() == 0
    assert np.abs(right[SUBJECT_RIGHT_INDICES]).max() > 0
    np.testing.assert_allclose(right + left, both, atol=1e-12)
    np.testing.assert_allclose(mirror_displacement(right), left, atol=1e-12)


def test_side_mask_values() -> None:
    mask = side_mask("R")
    assert mask[48] == 1 and mask[54] == 0 and (mask[MIDLINE_INDICES] == 0.5).all()
    assert (side_mask(None) == 1).all()
    with pytest.raises(MotionModelError, match="side"):
        side_mask("X")


def test_composition_is_a_weighted_sum(model: MotionModel) -> None:
    aus = [TemplateAU(6, None, 0.5), TemplateAU(12, "L", 0.8)]
    expected = 0.5 * model.basis(6) + 0.8 * model.basis(12) * side_mask("L")[:, None]
    np.testing.assert_allclose(model.displacement(aus), expected)
    assert model.au_basis(aus).shape == (2, 68, 2)
    np.testing.assert_allclose(model.au_basis(aus)[1], model.basis(12) * side_mask("L")[:, None])


def test_apex_iod_scales_the_expert_basis() -> None:
    small, large = MotionModel.expert(0.01), MotionModel.expert(0.05)
    np.testing.assert_allclose(5 * small.basis(12), large.basis(12))
    assert large.apex_iod == 0.05
    peak = np.linalg.norm(small.displacement([TemplateAU(4)]), axis=1).max()
    assert peak == pytest.approx(0.01)
    with pytest.raises(MotionModelError, match="apex_iod"):
        MotionModel.expert(0.0)


def test_to_pixels_uses_the_face_iod(model: MotionModel) -> None:
    face = canonical_landmarks(224)
    iod = np.linalg.norm(face[42:48].mean(0) - face[36:42].mean(0))
    np.testing.assert_allclose(model.to_pixels(model.basis(1), face), model.basis(1) * iod)


def test_fit_recovers_a_known_basis_from_noisy_pairs() -> None:
    rng = np.random.default_rng(0)
    codes = [1, 4, 12, 99]
    truth = rng.normal(scale=0.02, size=(4, 68, 2))
    A = rng.uniform(0, 1, size=(300, 4)) * (rng.random((300, 4)) < 0.5)
    Y = np.einsum("mk,knd->mnd", A, truth) + rng.normal(scale=0.002, size=(300, 68, 2))
    fitted = MotionModel.fit(A, Y, codes, ridge=0.0)
    reference = np.linalg.lstsq(A, Y.reshape(300, -1), rcond=None)[0].reshape(4, 68, 2)
    for k, code in enumerate(codes):
        np.testing.assert_allclose(fitted.basis(code), reference[k], atol=1e-10)
        assert np.abs(fitted.basis(code) - truth[k]).max() < 0.003
    assert fitted.apex_iod is None
    calibrated = fitted.calibrated(0.02)
    assert np.linalg.norm(calibrated.basis(99), axis=1).max() == pytest.approx(0.02)


def test_fit_with_prior_and_symmetry(model: MotionModel) -> None:
    rng = np.random.default_rng(1)
    A = rng.uniform(0, 1, size=(50, 1))
    Y = A[:, :, None] * model.basis(12)[None] + rng.normal(scale=1e-3, size=(50, 68, 2))
    fitted = MotionModel.fit(A.reshape(50, 1), Y, [12], ridge=1e3, prior=model, symmetric=True)
    assert set(fitted.known_codes) == set(model.known_codes)  # prior AUs kept
    np.testing.assert_allclose(mirror_displacement(fitted.basis(12)), fitted.basis(12))
    assert np.abs(fitted.basis(12) - model.basis(12)).max() < 1e-3  # shrunk to the prior


def test_fit_bad_input() -> None:
    with pytest.raises(MotionModelError, match=r"au_vectors must be \(M, K=2\)"):
        MotionModel.fit(np.zeros((5, 3)), np.zeros((5, 68, 2)), [1, 2])
    with pytest.raises(MotionModelError, match=r"landmark_offsets must be \(M=5, 68, 2\)"):
        MotionModel.fit(np.zeros((5, 2)), np.zeros((5, 67, 2)), [1, 2])
    with pytest.raises(MotionModelError, match="singular"):
        MotionModel.fit(np.zeros((5, 2)), np.zeros((5, 68, 2)), [1, 2], ridge=0.0)


def test_unknown_au_lists_known_codes(model: MotionModel) -> None:
    with pytest.raises(MotionModelError, match="known AUs: 1, 2, 4"):
        model.displacement([TemplateAU(99)])


def test_mirror_permutation_is_used_consistently() -> None:
    d = np.zeros((68, 2))
    d[48] = [-1.0, -1.0]
    assert tuple(mirror_displacement(d)[MIRROR_PERMUTATION[48]]) == (1.0, -1.0)
