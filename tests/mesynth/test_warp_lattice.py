"""The field lattice (issue 27): the backward map computed on a coarse lattice and interpolated
to every pixel, against the map computed at every pixel, on the built-in portraits loaded
through the real identity path (dlib landmarks, 224 px crops: the benchmark's size)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.spatial import cKDTree

from mesynth.face.canonical import canonical_landmarks, inter_ocular_distance
from mesynth.motion.au_basis import MotionModel
from mesynth.render.face_mask import face_support
from mesynth.render.warp import (
    DEFAULT_FIELD_SPACING_IOD,
    FaceWarper,
    WarpRequest,
    interpolation_blocks,
    interpolation_matrix,
    lattice_points,
    lattice_shape,
    to_uint8,
    upsample_flow,
)
from tests.builtin_faces import warper_for

SIZE = 224


def _errors(faces, templates, apex_iod: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per (face, template): the lattice map's distance from the per-pixel map at every pixel
    (px, ``(H, W)``), and every pixel's distance to the nearest landmark (px)."""
    lattice, dense = warper_for(faces), warper_for(faces, field_spacing_iod=0.0)
    motion = MotionModel.expert(apex_iod=apex_iod)
    centres = np.stack(np.meshgrid(np.arange(SIZE) + 0.5, np.arange(SIZE) + 0.5), -1)
    out = []
    for face in faces:
        to_landmark = cKDTree(face.landmarks).query(centres.reshape(-1, 2))[0]
        for template in templates:
            apex = motion.displacement(template.aus) * inter_ocular_distance(face.landmarks)
            request = WarpRequest.from_displacements(face.name, apex[None])
            difference = (lattice.grids(request) - dense.grids(request))[0] * SIZE / 2
            out.append((difference.norm(dim=-1).numpy(), to_landmark.reshape(SIZE, SIZE)))
    return out


def test_lattice_map_matches_the_per_pixel_map_at_micro_expression_size(faces, templates):
    # every expert template at 0.03 IOD (about 2 px here), both portraits. Measured at the
    # default 0.05 IOD (3.8 px) spacing: mean 0.005 px (worst template 0.009), 99th
    # percentile 0.13 px, 0.20 px at most beyond two lattice spacings of every landmark, and
    # 2.6 px at most overall: Grace Hopper's closed lips put landmarks 61 and 67 on the same
    # spot, the TPS field jumps between them within a pixel, and there the per-pixel map is
    # itself 2.5 px from the exact inverse
    errors = _errors(faces, templates, 0.03)
    spacing = DEFAULT_FIELD_SPACING_IOD * inter_ocular_distance(faces[0].landmarks)
    assert np.mean([e.mean() for e, _ in errors]) < 0.01
    assert max(e.mean() for e, _ in errors) < 0.02
    assert max(np.percentile(e, 99) for e, _ in errors) < 0.25
    assert max(e[d > 2 * spacing].max() for e, d in errors) < 0.3
    assert max(e.max() for e, _ in errors) < 3.0


def test_lattice_map_stays_close_at_large_motion(faces, templates):
    # 0.2 IOD: folds appear near the lips and eyes, where neither map is the exact inverse;
    # the lattice map's mean distance (measured 0.04 px, worst template 0.08) stays small
    errors = _errors(faces, templates, 0.2)
    assert np.mean([e.mean() for e, _ in errors]) < 0.1
    assert max(e.mean() for e, _ in errors) < 0.2


def test_a_spacing_of_one_pixel_or_less_is_the_per_pixel_map() -> None:
    assert lattice_shape((224, 160), 1.0) == (224, 160)
    assert lattice_shape((224, 160), 0.0) == (224, 160)
    assert lattice_shape((224, 160), 3.8) == (60, 43)
    np.testing.assert_array_equal(interpolation_matrix(7, 7), np.eye(7))
    with pytest.raises(ValueError, match="field_spacing_iod"):
        FaceWarper("cpu", field_spacing_iod=-0.1)


def test_lattice_spans_the_pixel_centres_and_interpolates_linearly() -> None:
    nodes = lattice_points((100, 80), (12, 9)).reshape(12, 9, 2)
    np.testing.assert_allclose(nodes[0, 0], [0.5, 0.5])
    np.testing.assert_allclose(nodes[-1, -1], [79.5, 99.5])
    matrix = interpolation_matrix(100, 12)
    np.testing.assert_allclose(matrix.sum(1), 1.0)
    assert ((matrix > 0).sum(1) <= 2).all()
    # a linear function of position is reproduced exactly (independent reference: np.interp)
    values = np.random.default_rng(0).normal(size=12)
    node_y = nodes[:, 0, 1]
    np.testing.assert_allclose(
        matrix @ values, np.interp(np.arange(100) + 0.5, node_y, values), atol=1e-12
    )


@pytest.mark.parametrize("n_blocks", [1, 4, 7])
def test_upsampling_matches_torch_bilinear_interpolation(n_blocks) -> None:
    # independent reference: F.interpolate(bilinear, align_corners=True) on the same lattice;
    # the bands skip only exact zeros, so any number of them gives the same values
    flow = torch.randn(3, 12, 9, 2, dtype=torch.float64)
    rows = interpolation_blocks(100, 12, n_blocks, dtype=torch.float64)
    cols = interpolation_blocks(80, 9, n_blocks, components=2, dtype=torch.float64)
    ours = upsample_flow(flow, rows, cols)
    reference = F.interpolate(
        flow.permute(0, 3, 1, 2), size=(100, 80), mode="bilinear", align_corners=True
    ).permute(0, 2, 3, 1)
    torch.testing.assert_close(ours, reference)
    whole = upsample_flow(
        flow,
        interpolation_blocks(100, 12, 1, dtype=torch.float64),
        interpolation_blocks(80, 9, 1, components=2, dtype=torch.float64),
    )
    # the same values up to float64 rounding (the blocks' products may sum in another order)
    torch.testing.assert_close(ours, whole, rtol=0, atol=1e-12)
    out = torch.empty(3, 100, 80, 2, dtype=torch.float64)
    assert upsample_flow(flow, rows, cols, out=out) is out
    assert torch.equal(out, ours)


@pytest.mark.parametrize("spacing_iod", [DEFAULT_FIELD_SPACING_IOD, 0.2])
def test_nothing_outside_the_mask_moves_even_on_a_coarse_lattice(faces, templates, spacing_iod):
    # at 0.2 IOD spacing a lattice cell is 15 px wide: interpolation from the nodes inside the
    # mask's support reaches well past it, and those pixels must still not change at all
    warper = warper_for(faces, field_spacing_iod=spacing_iod)
    motion = MotionModel.expert(apex_iod=0.2)
    for face in faces:
        outside = ~face_support(face.landmarks, (SIZE, SIZE))
        iod = inter_ocular_distance(face.landmarks)
        requests = [
            WarpRequest.from_displacements(
                face.name,
                np.stack([np.zeros((68, 2)), motion.displacement(t.aus) * iod]),
            )
            for t in templates
        ]
        for frames in warper.render(requests):
            onset, apex = to_uint8(frames).astype(int)
            assert np.abs(apex - onset)[outside].max() == 0
            assert np.abs(apex - onset)[~outside].max() > 10


def test_overwriting_quantisation_gives_the_same_bytes() -> None:
    frames = torch.rand(2, 3, 9, 7, 3) * 270 - 7
    frames[0, 0, 0, 0] = torch.tensor([0.5, 1.5, 254.5])  # halves round up
    planar = frames.permute(4, 0, 1, 2, 3).contiguous().permute(1, 2, 3, 4, 0)
    expected = to_uint8(frames.clone())
    assert np.array_equal(to_uint8(planar.clone(), overwrite=True), expected)
    assert np.array_equal(to_uint8(frames.clone(), overwrite=True), expected)
    assert list(expected[0, 0, 0, 0]) == [1, 2, 255]
    kept = frames.clone()
    to_uint8(kept)
    assert torch.equal(kept, frames)  # without overwrite the input is left alone


def test_the_lattice_is_about_the_same_for_every_crop_size() -> None:
    # the spacing is in IOD, so a canonical crop gets (within a node) the same lattice at any
    # size: the map's accuracy relative to the face does not depend on the crop size
    nodes = [
        lattice_shape(
            (size, size),
            DEFAULT_FIELD_SPACING_IOD * inter_ocular_distance(canonical_landmarks(size)),
        )[0]
        for size in (112, 160, 224, 448)
    ]
    assert max(nodes) - min(nodes) <= 1 and 55 < min(nodes) < 70
