"""Realism drawn from a calibration profile: sampling, rendering hooks, determinism, errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from mesynth.calibration.profile import ProfileError
from mesynth.calibration.profile_effects import (
    GRAY_NOISE_FACTOR,
    ProfileEffects,
    calibrated_motion,
    resolve_effects,
)
from mesynth.face.canonical import canonical_landmarks, inter_ocular_distance
from mesynth.generation.balance import PlannedClip, equal
from mesynth.generation.pipeline import (
    clip_displacements,
    generate,
    generate_from_profile,
    sample_clip_parameters,
)
from mesynth.motion.au_basis import MotionModel
from mesynth.motion.timing import TimingSampler
from mesynth.render.effects import EffectParams, EffectsConfig, flicker_gains, head_affines
from mesynth.render.warp import FaceWarper, WarpRequest
from mesynth.templates.bank import TemplateBank
from tests.profile_fixtures import EXAMPLE_PROFILE as PROFILE
from tests.profile_fixtures import textured_face

SIZE = 32


def _parts():
    return {
        "identities": [textured_face("anna", 1, SIZE), textured_face("ben", 2, SIZE)],
        "bank": TemplateBank.expert("dfme7"),
        "motion": MotionModel.expert(),
        "timing_sampler": TimingSampler(fps=60),
        "plan": equal(3, ["happiness", "surprise"], seed=5),
        "num_frames": 4,
        "device": "cpu",
        "progress": False,
    }


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix in (".npy", ".json")
    }


def test_profile_renders_do_not_depend_on_batch_size(tmp_path):
    path = PROFILE.save(tmp_path / "profile.yaml")
    generate(out_dir=tmp_path / "a", effects=path, batch_size=1, **_parts())
    generate(out_dir=tmp_path / "b", effects=PROFILE, batch_size=6, **_parts())
    first, second = _files(tmp_path / "a"), _files(tmp_path / "b")
    clips = [k for k in first if k.endswith(".npy")]
    assert len(clips) == 6
    for key in clips:
        assert first[key] == second[key], key
    clean = tmp_path / "clean"
    generate(out_dir=clean, effects="none", **_parts())
    assert any(first[k] != _files(clean)[k] for k in clips)


def test_generate_from_profile_is_generate_with_the_profile_and_its_calibrated_motion(tmp_path):
    parts = _parts()
    explicit = parts | {"motion": calibrated_motion(parts["motion"], PROFILE, parts["bank"])}
    generate(out_dir=tmp_path / "explicit", effects=PROFILE, mode="onset_apex", **explicit)
    summary = generate_from_profile(
        parts["identities"], PROFILE, parts["plan"], tmp_path / "short", mode="onset_apex",
        device="cpu", progress=False,
    )  # fmt: skip
    assert summary.apex_iod == pytest.approx(explicit["motion"].apex_iod)
    clips, again = _files(tmp_path / "explicit"), _files(tmp_path / "short")
    assert sorted(clips) == sorted(again) and len([k for k in clips if k.endswith(".npy")]) == 6
    assert all(clips[k] == again[k] for k in clips if k.endswith(".npy"))


def test_missing_or_malformed_profiles_are_named(tmp_path):
    with pytest.raises(ProfileError, match="nowhere.yaml: calibration profile not found"):
        generate(out_dir=tmp_path / "x", effects=tmp_path / "nowhere.yaml", **_parts())
    bad = tmp_path / "bad.yaml"
    text = PROFILE.save(bad).read_text().replace("noise_sigma:", "noise_sigmaa:")
    bad.write_text(text)
    with pytest.raises(ProfileError, match="bad.yaml: missing key 'noise_sigma'"):
        generate(out_dir=tmp_path / "y", effects=str(bad), **_parts())
    with pytest.raises(ProfileError, match="no calibration profile given"):
        ProfileEffects.load(None)
    with pytest.raises(TypeError, match="effects must be"):
        resolve_effects(3)
    assert resolve_effects("full").jpeg and not resolve_effects("none").noise


def test_sampled_values_follow_the_profile():
    realism = ProfileEffects(PROFILE)
    iod = 30.0
    draws = [realism.sample(0.3, 0.1, iod, np.random.default_rng([7, i])) for i in range(4000)]
    translation = [np.hypot(*p.head_apex[:2]) for p in draws]
    assert np.median(translation) == pytest.approx(0.05 * iod, rel=0.05)
    assert np.percentile(translation, 75) == pytest.approx(0.0625 * iod, rel=0.06)
    assert np.median([abs(p.head_apex[2]) for p in draws]) == pytest.approx(
        np.deg2rad(0.5), rel=0.05
    )
    assert np.median([p.skin_rms_px for p in draws]) == pytest.approx(0.02 * iod, rel=0.05)
    assert np.median([p.noise_sigma * GRAY_NOISE_FACTOR for p in draws]) == pytest.approx(
        2.0, rel=0.05
    )
    assert np.mean([p.drift_per_s > 0 for p in draws]) == pytest.approx(0.5, abs=0.03)
    blinks = np.mean([p.blink_start_s is not None for p in draws])
    assert blinks == pytest.approx(1 - np.exp(-2.0 * 0.3), abs=0.03)
    assert all(p.head_pinned_at_apex and p.jpeg_quality == 0 for p in draws)
    off = ProfileEffects(PROFILE, skin_motion=False, noise=False)
    one = off.sample(0.3, 0.1, iod, np.random.default_rng(1))
    other = realism.sample(0.3, 0.1, iod, np.random.default_rng(1))
    assert one.skin_rms_px == 0 and one.noise_sigma == 0
    assert one.head_apex == other.head_apex  # switching an effect off keeps the others


def test_gray_noise_factor_matches_opencv_grey_conversion():
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 10.0, (400, 400, 3)).astype(np.float32) + 128
    gray = cv2.cvtColor(noise, cv2.COLOR_RGB2GRAY)
    assert gray.std() == pytest.approx(10.0 * GRAY_NOISE_FACTOR, rel=0.01)


def test_head_motion_reaches_the_apex_value_and_starts_at_zero():
    params = EffectParams(
        head_amplitudes=(0.7, -0.4, 0.01, 0.0),
        head_frequencies=((1.0, 2.0),) * 4,
        head_phases=((0.3, 1.1),) * 4,
        head_apex=(1.2, -0.5, 0.004, 0.002),
        head_pinned_at_apex=True,
    )
    times = np.array([0.0, 0.05, 0.1, 0.2])
    envelope = np.array([0.0, 0.6, 1.0, 0.4])
    affines = head_affines(params, times, envelope, apex_s=0.1)
    np.testing.assert_allclose(affines[0], [[1, 0, 0], [0, 1, 0]], atol=1e-12)
    # at the apex: the backward map of the forward apex motion, first order (-t, -r, -s)
    rot, scale = -0.004, -0.002
    expected = [
        [np.cos(rot) * (1 + scale), -np.sin(rot) * (1 + scale), -1.2],
        [np.sin(rot) * (1 + scale), np.cos(rot) * (1 + scale), 0.5],
    ]
    np.testing.assert_allclose(affines[2], expected, atol=1e-12)
    assert not np.allclose(affines[1], affines[2])  # the sinusoids move between them
    with pytest.raises(ValueError, match="envelope"):
        head_affines(params, times)


def test_a_constant_field_shifts_the_render_by_its_offset():
    ramp = np.tile(np.arange(SIZE, dtype=np.float64) * 6, (SIZE, 1))
    image = np.repeat(ramp[:, :, None], 3, axis=2).astype(np.uint8)
    # unfiltered source (exact ramp values); skin motion acts on the face only (issue 18)
    warper = FaceWarper(
        "cpu", dtype=torch.float64, inverse_iterations=0, prefilter_sigma=0.0, upsample=1
    )
    landmarks = canonical_landmarks(SIZE)
    warper.add_identity("ramp", image, landmarks)
    face = warper.face_mask("ramp") == 1
    field = np.zeros((SIZE, SIZE, 2))
    field[..., 0] = 0.5  # backward: every pixel pulls from half a pixel to the right
    request = WarpRequest(
        "ramp", np.zeros((0, 68, 2)), np.zeros((2, 0)), None, field, np.array([0.0, 1.0])
    )
    frames = warper.render([request])[0].numpy()
    np.testing.assert_allclose(frames[0][..., 0], ramp, atol=1e-9)
    np.testing.assert_allclose(frames[1][..., 0][face], ramp[face] + 3.0, atol=1e-9)
    assert np.array_equal(
        frames[1][warper.face_mask("ramp") == 0], frames[0][warper.face_mask("ramp") == 0]
    )
    with pytest.raises(ValueError, match="field_weights"):
        warper.render([WarpRequest("ramp", np.zeros((0, 68, 2)), np.zeros((2, 0)), None, field)])


def test_drift_is_linear_in_time():
    gains = flicker_gains(EffectParams(drift_per_s=-0.2), np.array([0.0, 0.5, 1.0]))
    np.testing.assert_allclose(gains, [1.0, 0.9, 0.8])


def test_converted_apex_size_gives_the_profile_median_peak():
    bank, timing = TemplateBank.expert("dfme7"), TimingSampler(fps=60)
    motion = calibrated_motion(MotionModel.expert(), PROFILE, bank)
    landmarks = canonical_landmarks(96)
    iod = float(inter_ocular_distance(landmarks))
    realism = EffectsConfig()
    peaks = []
    for i in range(600):
        label = bank.emotions[i % len(bank.emotions)]
        params = sample_clip_parameters(
            PlannedClip(i, label, 1000 + i),
            bank=bank,
            identity_names=["x"],
            timing_sampler=timing,
            realism=realism,
            mode="onset_apex",
        )
        if params.instance.aus:
            apex = clip_displacements(params, motion, landmarks)[-1]
            peaks.append(np.linalg.norm(apex, axis=1).max() / iod)
    assert np.median(peaks) == pytest.approx(0.06, rel=0.08)
