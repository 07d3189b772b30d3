"""Calibration from apex-flow images and face crops (the composite case): on fake composites
rendered with known settings, the statistics equal independent numpy computations, diffuse
motion and noise show up where they should, the framing is the faces' known one, subjects are
filtered and recorded, and bad input is named."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from mesynth.calibration.adversarial import adversarial_calibration
from mesynth.calibration.flow_images import (
    REGIONS,
    FlowCalibrationError,
    calibrate_from_flows,
    canonical_crop_framing,
    flow_images,
    measure_flow_images,
    read_flow_records,
    region_masks,
    select_subjects,
)
from mesynth.calibration.framing_search import FRAMING_SPACE, moved_framing
from mesynth.calibration.profile import CalibrationProfile
from mesynth.generation.recipe import GenerationRecipe
from tests.flow_fixtures import CROP, FLOW, make_composite
from tests.profile_fixtures import make_profile

#: known settings: the same motion, then skin motion (diffuse residual), then sensor noise
CLEAN = make_profile(0.08, (0.0, 0.0, 0.0), (0.0, 0.0), 0.0, 0.0)
DIFFUSE = make_profile(0.08, (0.0, 0.0, 0.0), (0.06, 0.3), 0.0, 0.0)
NOISY = make_profile(0.08, (0.0, 0.0, 0.0), (0.0, 0.0), 8.0, 0.0)


@pytest.fixture(scope="module")
def composites(tmp_path_factory):
    root = tmp_path_factory.mktemp("composite")
    return {
        name: make_composite(root / name, profile)
        for name, profile in (("clean", CLEAN), ("diffuse", DIFFUSE), ("noisy", NOISY))
    }


@pytest.fixture(scope="module")
def profiles(composites, dlib_detector):
    return {
        name: calibrate_from_flows(read_flow_records(c.rows), detector=dlib_detector)
        for name, c in composites.items()
    }


def test_statistics_equal_independent_numpy_on_the_same_images(composites, profiles):
    composite = composites["diffuse"]
    flows = read_flow_records(composite.rows)
    # the PNGs hold uint8 u, v, strain: read them independently
    raw = np.stack([cv2.imread(r.frames[0])[:, :, ::-1] for r in composite.rows]) / 255.0
    np.testing.assert_allclose(flows.images, raw, atol=1e-6)
    stats = profiles["diffuse"].source["flow_statistics"]
    strain = np.percentile(raw[..., 2], [5, 50, 95])
    assert [stats["strain"][k] for k in ("p5", "p50", "p95")] == pytest.approx(strain, abs=1e-6)
    landmarks = np.asarray(profiles["diffuse"].framing.landmarks) * FLOW
    masks = region_masks(landmarks, FLOW)
    uv = raw[..., :2] - np.median(raw[..., :2], axis=(1, 2), keepdims=True)
    energy = np.hypot(uv[..., 0], uv[..., 1])
    for region, mask in masks.items():
        expected = energy[:, mask].mean()
        assert stats["region_energy"][region] == pytest.approx(expected, rel=1e-6)
        assert stats["region_share"][region] == pytest.approx(expected / energy.mean(), rel=1e-6)
    assert stats["energy_percentiles"]["p50"] == pytest.approx(np.median(energy), rel=1e-6)


def test_region_masks_sit_on_their_landmarks():
    from mesynth.face.canonical import canonical_landmarks

    points = canonical_landmarks(FLOW)
    masks = region_masks(points, FLOW)
    for region, indices in REGIONS.items():
        cols, rows = np.floor(points[indices]).astype(int).T
        assert masks[region][rows, cols].all(), region
    centre_row = {k: np.argwhere(m)[:, 0].mean() for k, m in masks.items()}
    assert centre_row["brows"] < centre_row["eyes"] < centre_row["nose"] < centre_row["mouth"]


def test_diffuse_motion_and_noise_show_where_they_should(profiles):
    clean, diffuse, noisy = profiles["clean"], profiles["diffuse"], profiles["noisy"]
    print(
        "residual RMS (IOD):",
        {k: round(p.residual_rms_iod.median, 4) for k, p in profiles.items()},
        "noise floor:",
        {
            k: round(p.source["flow_statistics"]["noise_floor"]["median"], 4)
            for k, p in profiles.items()
        },
    )
    assert diffuse.residual_rms_iod.median > 1.5 * clean.residual_rms_iod.median
    floor = {k: p.source["flow_statistics"]["noise_floor"]["median"] for k, p in profiles.items()}
    assert floor["noisy"] > 1.5 * floor["clean"]
    # what flow images cannot measure stays the base's (the quiet profile: zero)
    assert noisy.noise_sigma.median == 0.0 and diffuse.head_translation_iod.median == 0.0


def test_framing_measured_from_the_face_crops_is_the_known_one(composites, profiles):
    known = composites["clean"].landmarks.mean(0)  # normalised, the faces as rendered
    measured = np.asarray(profiles["clean"].framing.landmarks)
    error_px = np.linalg.norm(measured - known, axis=1) * CROP
    assert np.median(error_px) < 1.5 and error_px.max() < 4.0
    assert profiles["clean"].source["n_faces"] == 8


def test_residual_scales_with_the_apex_anchor(composites, dlib_detector):
    flows = read_flow_records(composites["diffuse"].rows)
    one = calibrate_from_flows(flows, detector=dlib_detector, apex_peak_iod=0.05)
    two = calibrate_from_flows(flows, detector=dlib_detector, apex_peak_iod=0.10)
    assert two.residual_rms_iod.median == pytest.approx(2 * one.residual_rms_iod.median)
    assert two.residual_correlation_iod == one.residual_correlation_iod
    assert two.apex_peak_iod.median == 0.10


def test_calibration_sees_only_the_chosen_subjects_and_records_them(
    composites, dlib_detector, tmp_path
):
    composite = composites["clean"]
    flows = read_flow_records(composite.rows)
    test_subject = composite.subjects[0]
    profile = calibrate_from_flows(flows, exclude=[test_subject], detector=dlib_detector)
    seen = profile.source["real_subjects"]
    assert test_subject not in seen and sorted(set(composite.subjects) - {test_subject}) == seen
    assert profile.source["n_real"] == sum(s != test_subject for s in flows.subjects)
    assert profile.source["excluded_subjects"] == [test_subject]
    saved = CalibrationProfile.load(profile.save(tmp_path / "p.yaml"))
    assert saved.source["real_subjects"] == seen
    only = select_subjects(flows, subjects=composite.subjects[:2])
    assert set(only.subjects) == set(composite.subjects[:2])
    with pytest.raises(FlowCalibrationError, match=r"subjects: \['fake/s99'\] have no flow image"):
        select_subjects(flows, subjects=["fake/s99"])
    with pytest.raises(FlowCalibrationError, match="no flow image left"):
        select_subjects(flows, exclude=composite.subjects)


def test_bad_input_names_the_file_or_row(composites, tmp_path, dlib_detector):
    good = composites["clean"].rows[0]
    narrow = tmp_path / "narrow.png"
    cv2.imwrite(str(narrow), np.zeros((FLOW, FLOW - 8, 3), np.uint8))
    rows = [good, dataclasses.replace(good, clip="bad", frames=(str(narrow),))]
    with pytest.raises(FlowCalibrationError, match=r"fake/s\d+/bad \(.*narrow.png\).*\(S, S, 3\)"):
        read_flow_records(rows)
    clip = dataclasses.replace(
        good, clip="clip", frames=(good.frames[0],) * 2, frame_numbers=(0, 1)
    )
    with pytest.raises(FlowCalibrationError, match=r"fake/s\d+/clip .*holds 2 frames"):
        read_flow_records([clip])
    missing = dataclasses.replace(good, frames=(str(tmp_path / "gone.png"),))
    with pytest.raises(FlowCalibrationError, match="gone.png"):
        read_flow_records([missing])
    with pytest.raises(FlowCalibrationError, match=r"flows\[1\]: float flow images"):
        flow_images(np.stack([np.zeros((4, 4, 3)), np.full((4, 4, 3), 2.0)]), ["a", "b"])
    with pytest.raises(FlowCalibrationError, match="1 subjects for 2 flow images"):
        flow_images(np.zeros((2, 4, 4, 3), np.uint8), ["a"])
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    no_face = dataclasses.replace(good, extra={"face": str(broken)})
    with pytest.raises(FlowCalibrationError, match="broken.png"):
        calibrate_from_flows(read_flow_records([no_face]), detector=dlib_detector)
    faceless = dataclasses.replace(good, extra={})
    with pytest.raises(FlowCalibrationError, match="`face` column"):
        calibrate_from_flows(read_flow_records([faceless]), detector=dlib_detector)
    with pytest.raises(FlowCalibrationError, match=r"\(N, S, S, 3\)"):
        measure_flow_images(np.zeros((2, FLOW, FLOW)), np.zeros((68, 2)))


def test_adversarial_search_takes_flow_images_and_framing(composites, profiles, tmp_path):
    composite = composites["diffuse"]
    flows = read_flow_records(composite.rows)
    base = profiles["diffuse"]
    space = {"residual_rms_iod": (1e-3, 0.1), **FRAMING_SPACE}
    recipe = GenerationRecipe(size=48, device="cpu", timing={"fps": 60})
    result = adversarial_calibration(
        None,
        recipe,
        trials=3,
        out_dir=tmp_path / "search",
        base=base,
        space=space,
        clips=14,
        real_flows=flows.images,
        real_subjects=flows.subjects,
    )
    profile = CalibrationProfile.load(result.profile_path)
    assert profile.source["real_subjects"] == sorted(set(composite.subjects))
    assert profile.source["real_input"] == "apex_flow_images"
    best = result.history.iloc[result.best_trial]
    expected = moved_framing(
        base.framing,
        {k: best[k] for k in ("framing_offset_x", "framing_offset_y", "framing_scale")},
    )
    np.testing.assert_allclose(profile.framing.target(), expected.target(), atol=1e-5)
    assert set(FRAMING_SPACE) <= set(result.history.columns)
    with pytest.raises(ValueError, match="set size=28"):
        adversarial_calibration(
            None, recipe, trials=1, out_dir=tmp_path / "x", size=32,
            real_flows=flows.images, real_subjects=flows.subjects,
        )  # fmt: skip
    with pytest.raises(ValueError, match="real_flows need real_subjects"):
        adversarial_calibration(
            None, recipe, trials=1, out_dir=tmp_path / "y", real_flows=flows.images
        )
    with pytest.raises(ValueError, match="either real_records or real_flows"):
        adversarial_calibration(None, recipe, trials=1, out_dir=tmp_path / "z")


def test_flows_of_canonical_crops_need_no_face_crops(composites):
    from mesynth.face.canonical import canonical_landmarks

    rows = [dataclasses.replace(r, extra={}) for r in composites["clean"].rows]
    profile = calibrate_from_flows(read_flow_records(rows), framing=canonical_crop_framing())
    np.testing.assert_allclose(
        profile.framing.target(), canonical_landmarks(CROP) / CROP, atol=1e-6
    )
    assert profile.source["n_faces"] == 1
