"""The cv2 sampler (:mod:`mesynth.render.cpu_remap`) against the grid_sample path: the same
coordinate convention, border handling, lattice interpolation and rounding."""

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mesynth.face.canonical import canonical_landmarks
from mesynth.render import cpu_remap
from mesynth.render.cpu_remap import default_sampler
from mesynth.render.warp import (
    FaceWarper,
    WarpRequest,
    from_normalised,
    interpolation_blocks,
    lattice_points,
    pixel_grid,
    to_normalised,
    to_uint8,
    upsample_flow,
)

SIZE = 64


def _texture(size: int = SIZE, seed: int = 0) -> np.ndarray:
    """Random texture with sharp and smooth parts, (S, S, 3) uint8."""
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 255, (size, size, 3)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(noise, (0, 0), 1.0) * 3.0 - 250, 0, 255).astype(np.uint8)


def _warper(sampler: str, **kw) -> FaceWarper:
    warper = FaceWarper("cpu", sampler=sampler, **kw)
    warper.add_identity("face", _texture(), canonical_landmarks(SIZE))
    return warper


def _requests(rng: np.random.Generator) -> list[WarpRequest]:
    field = rng.normal(0, 0.5, (SIZE, SIZE, 2))
    affines = np.tile(np.eye(3)[:2], (3, 1, 1)) + rng.normal(0, 0.01, (3, 2, 3))
    return [
        WarpRequest.from_displacements("face", rng.normal(0, 1.5, (4, 68, 2))),
        WarpRequest("face", rng.normal(0, 1, (2, 68, 2)), rng.random((3, 2)), affines),
        WarpRequest(
            "face", rng.normal(0, 1, (1, 68, 2)), rng.random((3, 1)), None, field,
            np.array([0.0, 0.5, 1.0]), np.array([0.0, 0.6, 1.0]),
        ),
    ]  # fmt: skip


@pytest.mark.parametrize("factor", [1, 4])
def test_remap_reads_what_grid_sample_reads(factor) -> None:
    # a shift by a multiple of 1/32 source pixel (remap's position step: no rounding), and
    # positions far outside the source: padding_mode="border" is BORDER_REPLICATE
    rng = np.random.default_rng(0)
    size = (12, 16)
    source = rng.uniform(0, 255, (factor * size[0], factor * size[1], 3)).astype(np.float32)
    points = pixel_grid(size, torch.float32, "cpu") + torch.tensor([0.375, -0.25])
    points[0, :4] = torch.tensor([[-30.0, 5.0], [40.0, -7.0], [3.0, 99.0], [-0.1, 11.9]])
    expected = F.grid_sample(
        torch.from_numpy(source).permute(2, 0, 1)[None],
        to_normalised(points, size)[None],
        mode="bilinear",
        padding_mode="border",
        align_corners=False,
    )[0].permute(1, 2, 0)
    maps = (points * factor - 0.5).numpy()
    out = cpu_remap.remap_clips(source, [maps[None]], np.empty((1, 1, *size, 3), np.float32))
    np.testing.assert_allclose(out[0, 0], expected.numpy(), atol=1e-3)
    # rounding as it renders gives to_uint8's values
    rounded = cpu_remap.remap_clips(source, [maps[None]], np.empty((1, 1, *size, 3), np.uint8))
    assert np.array_equal(rounded, to_uint8(out))
    with pytest.raises(ValueError, match="need 1 maps"):
        cpu_remap.remap_clips(source, [maps[None]], np.empty((1, 2, *size, 3), np.uint8))


def test_remap_positions_are_exact_to_a_64th_of_a_source_pixel() -> None:
    # OpenCV 4 rounds positions to 1/32 source pixel (INTER_TAB_SIZE), OpenCV 5 does not: on a
    # ramp of 32 grey levels per pixel either is within half a grey level of the exact value
    source = np.tile(np.arange(8, dtype=np.float32) * 32, (4, 1))[..., None].repeat(3, -1)
    maps = np.zeros((1, 1, 5, 2), np.float32)
    maps[..., 0] = [1.0, 1.01, 1.02, 1.03125, 4.99]
    maps[..., 1] = 1.0
    out = cpu_remap.remap_clips(source, [maps], np.empty((1, 1, 1, 5, 3), np.float32))[0]
    np.testing.assert_allclose(out[0, 0, :, 0], 32 * maps[0, 0, :, 0], atol=0.5 + 1e-4)


def test_upsample_positions_equals_upsample_flow_of_the_positions() -> None:
    rng = np.random.default_rng(1)
    size, lattice = (37, 52), (9, 14)
    origin = (lattice_points(size, lattice).reshape(*lattice, 2) * 4 - 0.5).astype(np.float32)
    gain = rng.uniform(0, 300, (*lattice, 2)).astype(np.float32)
    gain[2:4, 5:9] = 0.0  # nodes that must not move
    offsets = rng.normal(0, 0.02, (3, *lattice, 2)).astype(np.float32)
    out = cpu_remap.upsample_positions(offsets, origin, gain, np.empty((3, *size, 2), np.float32))
    positions = torch.from_numpy(origin + gain * offsets)
    rows = interpolation_blocks(size[0], lattice[0])
    cols = interpolation_blocks(size[1], lattice[1], components=2)
    expected = upsample_flow(positions, rows, cols)
    # float32 rounding of positions up to ~200 source pixels
    np.testing.assert_allclose(out, expected.numpy(), rtol=0, atol=1e-4)
    with pytest.raises(ValueError, match="need float32 offsets"):
        cpu_remap.upsample_positions(offsets, origin, gain, np.empty((2, *size, 2), np.float32))
    # made a block of frames at a time, with pixels held in place
    fixed = np.array([0, 5, 100])
    held = rng.uniform(0, 100, (3, 2)).astype(np.float32)
    maps = cpu_remap.LatticeMaps(offsets, origin, gain, size, fixed, held)
    block = maps.write(slice(1, 3), np.empty((4, *size, 2), np.float32))
    expected_block = out[1:3].reshape(2, -1, 2).copy()
    expected_block[:, fixed] = held
    assert block.shape == (2, *size, 2)
    np.testing.assert_array_equal(block.reshape(2, -1, 2), expected_block)


def test_quantise_equals_to_uint8_of_torch() -> None:
    rng = np.random.default_rng(2)
    frames = rng.uniform(-20, 280, (5, 7, 3)).astype(np.float32)
    frames[0, :4, 0] = [0.5, 1.5, 254.5, -0.5]  # ties round up, as torch's add-and-truncate
    expected = (torch.from_numpy(frames) + 0.5).clamp(0, 255).to(torch.uint8).numpy()
    assert np.array_equal(cpu_remap.quantise(frames), expected)
    assert np.array_equal(to_uint8(torch.from_numpy(frames)), expected)


def test_maps_are_the_grids_in_source_pixels() -> None:
    rng = np.random.default_rng(3)
    warper = _warper("cv2")
    for request in _requests(rng):
        points = from_normalised(warper.grids(request), (SIZE, SIZE))
        maps = torch.from_numpy(warper.maps(request))
        torch.testing.assert_close((maps + 0.5) / warper.upsample, points, rtol=0, atol=1e-4)


@pytest.mark.parametrize("spacing_iod", [0.05, 0.0])
def test_cv2_and_torch_samplers_agree_within_a_grey_level(spacing_iod) -> None:
    # the same map (above) up to float32 rounding (1e-4 source px); OpenCV 4 also rounds
    # positions to 1/32 source pixel = 1/128 px here, which moves a value by at most 1/64 of the
    # source's step between neighbouring pixels: under a grey level on this texture (steps up
    # to ~40 per source pixel after the pre-filter). So the rounded frames differ by at most a
    # level, where a value lies within float error of a rounding boundary (rare)
    rng = np.random.default_rng(4)
    requests = _requests(rng)
    fast = _warper("cv2", field_spacing_iod=spacing_iod).render(requests)
    reference = _warper("torch", field_spacing_iod=spacing_iod).render(requests)
    for a, b in zip(fast, reference):
        assert a.shape == b.shape and a.dtype == b.dtype == torch.float32
        difference = np.abs(to_uint8(a).astype(int) - to_uint8(b))
        assert difference.max() <= 1
        assert (difference > 0).mean() < 0.01


def test_rounded_groups_are_to_uint8_of_the_float_groups() -> None:
    requests = _requests(np.random.default_rng(5))
    for sampler in ("cv2", "torch"):
        warper = _warper(sampler)
        floats = warper.render_groups(requests)
        rounded = warper.render_groups(requests, rounded=[True] * len(requests))
        for (indices, f), (same, r) in zip(floats, rounded):
            assert indices == same and r.dtype == torch.uint8
            assert np.array_equal(r.numpy(), to_uint8(f))


def test_threads_follow_torch_and_are_restored() -> None:
    previous = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        with cpu_remap.cpu_threads(2):
            assert cv2.getNumThreads() == 2
        assert cv2.getNumThreads() == 1
        _warper("cv2").render([WarpRequest.from_displacements("face", np.zeros((1, 68, 2)))])
        assert cv2.getNumThreads() == 1
    finally:
        cv2.setNumThreads(previous)


def test_sampler_choice_and_settings() -> None:
    assert FaceWarper("cpu").sampler == "cv2" == default_sampler("cpu")
    assert FaceWarper("cpu", dtype=torch.float64).sampler == "torch"
    assert default_sampler("cuda") == "torch"
    assert FaceWarper("cpu", sampler="torch").settings()["sampler"] == "torch"
    assert FaceWarper("cpu").settings()["sampler"] == "cv2"
    with pytest.raises(ValueError, match="CPU float32"):
        FaceWarper("cpu", dtype=torch.float64, sampler="cv2")
    with pytest.raises(ValueError, match="sampler must be"):
        FaceWarper("cpu", sampler="opencv")
    with pytest.raises(ValueError, match="cv2 sampler"):
        FaceWarper("cpu", sampler="torch").maps(
            WarpRequest.from_displacements("face", np.zeros((1, 68, 2)))
        )
