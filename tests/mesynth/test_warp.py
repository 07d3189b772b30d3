import cv2
import numpy as np
import pytest
import torch
from scipy.interpolate import RBFInterpolator

from mesynth.face.canonical import canonical_landmarks
from mesynth.render.effects import EffectParams, blink_closure, blink_displacements, head_affines
from mesynth.render.warp import FaceWarper, WarpRequest, pixel_centres, to_uint8, tps_influence

SIZE = 64


def _texture(size: int = SIZE, seed: int = 0) -> np.ndarray:
    """Smooth random texture (trackable by phase correlation), (S, S, 3) uint8."""
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 255, (size, size, 3)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(noise, (0, 0), 1.5) * 2.5 - 190, 0, 255).astype(np.uint8)


def _warper(device, **kw) -> FaceWarper:
    warper = FaceWarper(device, **kw)
    warper.add_identity("face", _texture(), canonical_landmarks(SIZE))
    return warper


def test_influence_matches_scipy_thin_plate_spline() -> None:
    rng = np.random.default_rng(1)
    centres = canonical_landmarks(SIZE)
    values = rng.normal(size=(68, 2))
    ours = tps_influence(centres, SIZE, regularization=0.0) @ values
    reference = RBFInterpolator(centres, values, kernel="thin_plate_spline", degree=1)(
        pixel_centres((SIZE, SIZE))
    )
    np.testing.assert_allclose(ours, reference, atol=1e-6)


def test_influence_reproduces_affine_maps_exactly() -> None:
    centres = canonical_landmarks(SIZE)
    matrix = np.array([[1.1, 0.2, -3.0], [-0.1, 0.9, 2.0]])
    values = centres @ matrix[:, :2].T + matrix[:, 2]
    out = tps_influence(centres, (SIZE, SIZE)) @ values
    expected = pixel_centres((SIZE, SIZE)) @ matrix[:, :2].T + matrix[:, 2]
    np.testing.assert_allclose(out, expected, atol=1e-4)


def test_zero_displacement_reproduces_the_unfiltered_face_exactly(device) -> None:
    warper = _warper(device, prefilter_sigma=0.0, upsample=1)
    frames = warper.render([WarpRequest.from_displacements("face", np.zeros((3, 68, 2)))])[0]
    assert frames.shape == (3, SIZE, SIZE, 3)
    assert np.array_equal(to_uint8(frames), np.repeat(_texture()[None], 3, 0))


def test_zero_displacement_gives_the_prefiltered_face(device) -> None:
    # the default source is low-passed (Gaussian sigma 0.5 px) and upsampled 4x with Lanczos;
    # sampled at the pixel centres it is the low-passed face (independent reference: OpenCV)
    frames = _warper(device).render([WarpRequest.from_displacements("face", np.zeros((2, 68, 2)))])
    expected = cv2.GaussianBlur(_texture().astype(np.float32), (0, 0), 0.5)
    error = np.abs(frames[0].cpu().numpy() - expected)[:, 3:-3, 3:-3]  # borders: resize padding
    assert error.mean() < 0.5 and error.max() < 4.0


@pytest.mark.parametrize("shift", [(2.0, -1.5), (-1.25, 2.5)])
def test_mouth_motion_moves_content_where_the_landmarks_go(device, shift) -> None:
    # an AU-like motion: every mouth landmark (48-67) moves by `shift`; the texture inside the
    # mouth must follow. Tracked by exhaustive sub-pixel search (0.25 px steps) of the shift
    # that best explains the rendered window.
    size = 128
    points = canonical_landmarks(size)
    texture = _texture(size)
    warper = FaceWarper(device)
    warper.add_identity("face", texture, points)
    disp = np.zeros((1, 68, 2))
    disp[0, 48:68] = shift
    frame = warper.render([WarpRequest.from_displacements("face", disp)])[0][0].cpu().numpy()
    (x0, y0), (x1, y1) = points[48:68].min(0), points[48:68].max(0)
    window = np.s_[int(y0) + 4 : int(y1) - 3, int(x0) + 8 : int(x1) - 7]
    candidates = np.arange(-4, 4.01, 0.25)
    best, best_err = None, np.inf
    for dx in candidates:
        for dy in candidates:
            moved = cv2.warpAffine(
                texture.astype(np.float32), np.float32([[1, 0, dx], [0, 1, dy]]), (size, size)
            )
            err = np.abs(moved[window] - frame[window]).mean()
            if err < best_err:
                best, best_err = (dx, dy), err
    np.testing.assert_allclose(best, shift, atol=0.25)


def test_inverse_refinement_shrinks_the_backward_map_residual() -> None:
    points = canonical_landmarks(SIZE)
    disp = np.zeros((1, 68, 2))
    disp[0, 36:48] = (0.0, 2.0)  # both eyes down 2 px (at 64 px): far larger than an ME
    forward = RBFInterpolator(points, disp[0], kernel="thin_plate_spline", degree=1)
    residuals = []
    for iterations in (0, 2):
        # an (almost) unmasked field: the TPS residual is what this test is about
        warper = _warper("cpu", inverse_iterations=iterations, mask_falloff_iod=1e3)
        grid = warper.grids(WarpRequest.from_displacements("face", disp))
        source = ((grid[0].double().numpy() + 1) / 2 * SIZE).reshape(-1, 2)
        # an exact backward map satisfies source + u(source) = output pixel
        landed = source + forward(source)
        residuals.append(np.abs(landed - pixel_centres((SIZE, SIZE))).max())
    assert residuals[0] > 0.05
    assert residuals[1] < residuals[0] / 4


def test_factorised_request_equals_per_frame_displacements(device) -> None:
    rng = np.random.default_rng(2)
    patterns = rng.normal(0, 1.5, (2, 68, 2))
    weights = rng.uniform(0, 1, (5, 2))
    warper = _warper(device)
    factorised = warper.render([WarpRequest("face", patterns, weights)])[0]
    per_frame = WarpRequest.from_displacements("face", np.einsum("tk,knd->tnd", weights, patterns))
    np.testing.assert_allclose(
        factorised.cpu().numpy(), warper.render([per_frame])[0].cpu().numpy(), atol=1e-2
    )


@pytest.mark.parametrize("spacing_iod", [0.05, 0.3])
def test_results_do_not_depend_on_batch_composition(device, spacing_iod) -> None:
    # clips of one face are computed together (zero-padded to common K and T), on a lattice
    # finer or coarser than the pixels, with and without head motion
    warper = _warper(device, field_spacing_iod=spacing_iod)
    warper.add_identity("other", _texture(seed=5), canonical_landmarks(SIZE) + 0.7)
    rng = np.random.default_rng(0)
    requests = [
        WarpRequest.from_displacements(name, rng.normal(0, 1.5, (t, 68, 2)))
        for name, t in (("face", 4), ("other", 2), ("face", 5))
    ]
    affines = np.tile(np.eye(3)[:2], (3, 1, 1)) + rng.normal(0, 0.01, (3, 2, 3))
    requests.append(WarpRequest("face", rng.normal(0, 1, (2, 68, 2)), rng.random((3, 2)), affines))
    together = warper.render(requests)
    for request, expected in zip(requests, together):
        alone = warper.render([request])[0]
        # the stored frames are identical; the floats agree to rounding (other batch shapes
        # may take other SIMD kernels: ~1e-4 grey levels on AVX-512 CPUs, 0 elsewhere)
        assert np.array_equal(to_uint8(alone.cpu().numpy()), to_uint8(expected.cpu().numpy()))
        torch.testing.assert_close(alone, expected, rtol=0, atol=1e-3)


@pytest.mark.gpu
def test_cuda_matches_cpu() -> None:
    rng = np.random.default_rng(3)
    request = WarpRequest.from_displacements("face", rng.normal(0, 2, (4, 68, 2)))
    cpu = _warper("cpu", sampler="torch").render([request])[0].numpy()  # grid_sample on both
    cuda = _warper("cuda").render([request])[0].cpu().numpy()
    np.testing.assert_allclose(cuda, cpu, atol=2e-2)
    assert np.abs(to_uint8(cuda).astype(int) - to_uint8(cpu)).max() <= 1


def test_head_motion_affine_is_applied_about_the_centre(device) -> None:
    shift = np.array([[[1.0, 0.0, 2.0], [0.0, 1.0, -1.0]]])
    frame = to_uint8(
        _warper(device, prefilter_sigma=0.0, upsample=1).render(
            [WarpRequest.from_displacements("face", np.zeros((1, 68, 2)), shift)]
        )[0][0]
    )
    # a backward shift of (2, -1): output(x, y) = input(x + 2, y - 1)
    assert np.array_equal(frame[1:-2, 2:-3], _texture()[0:-3, 4:-1])


def test_head_motion_is_zero_at_onset_and_small() -> None:
    params = EffectParams(
        head_amplitudes=(0.6, -0.4, 0.005, 0.003),
        head_frequencies=((1.0, 2.0),) * 4,
        head_phases=((0.3, 1.0),) * 4,
    )
    affines = head_affines(params, np.array([0.0, 0.05, 0.3]))
    np.testing.assert_allclose(affines[0], [[1, 0, 0], [0, 1, 0]], atol=1e-12)
    assert np.abs(affines[:, :, 2]).max() <= 0.6 + 1e-9
    assert head_affines(EffectParams(), np.zeros(3)) is None


def test_full_blink_closes_the_lids() -> None:
    points = canonical_landmarks(SIZE)
    params = EffectParams(blink_start_s=0.0, blink_duration_s=0.2, blink_depth=1.0)
    closure = blink_closure(params, np.array([0.0, 0.1, 0.2]))
    np.testing.assert_allclose(closure, [0.0, 1.0, 0.0], atol=1e-12)
    displacements = blink_displacements(points, closure)
    moved = points + displacements[1]
    np.testing.assert_allclose(moved[[37, 38, 43, 44]], points[[41, 40, 47, 46]], atol=1e-9)
    assert not displacements[:, [41, 40, 47, 46]].any()  # the lower lid stays put


def test_bad_displacement_shape_and_unknown_identity() -> None:
    warper = _warper("cpu")
    with pytest.raises(ValueError, match=r"\(K, 68, 2\)"):
        warper.render([WarpRequest.from_displacements("face", np.zeros((2, 5, 2)))])
    with pytest.raises(ValueError, match=r"\(T, K=2\)"):
        warper.render([WarpRequest("face", np.zeros((2, 68, 2)), np.zeros((4, 3)))])
    with pytest.raises(KeyError, match="nobody"):
        warper.render([WarpRequest.from_displacements("nobody", np.zeros((1, 68, 2)))])
    with pytest.raises(ValueError, match="uint8"):
        warper.add_identity("bad", np.zeros((8, 8, 3)), canonical_landmarks(8))
    with pytest.raises(ValueError, match="inverse_iterations"):
        FaceWarper("cpu", inverse_iterations=-1)
    with pytest.raises(ValueError, match="upsample"):
        FaceWarper("cpu", upsample=0)
    with pytest.raises(ValueError, match="mask_falloff_iod"):
        FaceWarper("cpu", mask_falloff_iod=0.0)
    with pytest.raises(ValueError, match=r"blink must be \(1,\)"):
        warper.render([WarpRequest("face", np.zeros((0, 68, 2)), np.zeros((1, 0)), blink=[0, 1])])
    assert torch.device("cpu") == warper.device
