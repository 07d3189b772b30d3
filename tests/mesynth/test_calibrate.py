"""calibrate() on fake real clips: a real face moved with known head motion and noise."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import move, quantise, similarity_about, write_clip

from mesynth.calibration.calibrate import CalibrationError, calibrate, detector_landmarker
from mesynth.calibration.profile import CalibrationProfile
from mesynth.face.canonical import inter_ocular_distance


def _fake_real_clips(folder, face, n, translation_px, noise, seed, frames=2):
    image, landmarks = face
    rng = np.random.default_rng(seed)
    records, sizes = [], []
    for i in range(n):
        angle = rng.uniform(0, 2 * np.pi)
        size = translation_px * rng.uniform(0.5, 1.5)
        sizes.append(size)
        steps = np.linspace(0, 1, frames)
        clip = [
            quantise(
                move(
                    image,
                    similarity_about(
                        landmarks, *(s * size * np.array([np.cos(angle), np.sin(angle)])), 0.0, 1.0
                    ),
                ),
                noise,
                rng,
            )
            for s in steps
        ]
        records.append(write_clip(folder, f"c{i}", clip, subject=f"fake/s{i % 4}", aus="12"))
    return records, np.array(sizes)


def test_calibration_recovers_head_motion_and_noise(aligned_face, tmp_path):
    records, sizes = _fake_real_clips(tmp_path, aligned_face, 8, 1.5, 3.0, seed=0)
    profile = calibrate(records, landmarker=detector_landmarker("dlib"))
    iod = float(inter_ocular_distance(aligned_face[1]))
    assert profile.source["n_measured"] == 8
    assert profile.source["real_subjects"] == [f"fake/s{i}" for i in range(4)]
    assert profile.head_translation_iod.median == pytest.approx(np.median(sizes) / iod, rel=0.15)
    assert profile.head_rotation_deg.median < 0.3
    assert profile.noise_sigma.median == pytest.approx(3.0, rel=0.3)
    assert profile.motion_kind == "expert"  # 8 clips: too few to fit a basis
    assert profile.framing.iod_fraction == pytest.approx(iod / 96, rel=0.05)
    saved = CalibrationProfile.load(profile.save(tmp_path / "profile.yaml"))
    assert saved.noise_sigma == profile.noise_sigma


def test_clips_over_many_frames_give_blinks_and_clip_motion(aligned_face, tmp_path):
    records, sizes = _fake_real_clips(tmp_path, aligned_face, 3, 2.0, 1.0, seed=1, frames=6)
    profile = calibrate(records, landmarker=detector_landmarker("dlib"), max_frames=6)
    iod = float(inter_ocular_distance(aligned_face[1]))
    assert profile.clip_head_translation_iod.n == 3
    assert profile.clip_head_translation_iod.median == pytest.approx(
        np.median(sizes) / iod, rel=0.35
    )
    assert profile.blink_rate_per_s == 0.0  # eyes never close


def test_unmeasurable_clips_are_skipped_with_reasons(aligned_face, tmp_path):
    records, _ = _fake_real_clips(tmp_path, aligned_face, 2, 1.0, 1.0, seed=2)
    blank = write_clip(tmp_path, "corrupt", [aligned_face[0]] * 2)
    blank.array_path.write_bytes(b"not an array")
    missing = write_clip(tmp_path, "short", [aligned_face[0]] * 2, apex=5, offset=5)
    profile = calibrate([*records, blank, missing], landmarker=detector_landmarker("dlib"))
    assert profile.source["n_measured"] == 2
    skipped = profile.source["skipped"]
    assert any("short" in s and "apex frame 5" in s for s in skipped)
    assert any("corrupt" in s and "cannot read" in s for s in skipped)
    with pytest.raises(CalibrationError, match="no clip could be measured"):
        calibrate([blank], landmarker=detector_landmarker("dlib"))
