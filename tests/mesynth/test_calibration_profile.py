"""Calibration profile files: round trip, sampling, and errors that name the file and key."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from mesynth.calibration.profile import (
    SPREADS,
    CalibrationProfile,
    Framing,
    ProfileError,
    Spread,
)


def _profile(**changes: object) -> CalibrationProfile:
    spread = Spread(0.02, 0.01, 0.04, 30)
    values = dict(
        apex_peak_iod=spread,
        head_translation_iod=Spread(0.01, 0.005, 0.02, 30),
        head_rotation_deg=Spread(0.3, 0.1, 0.5, 30),
        head_scale=Spread(0.002, 0.001, 0.004, 30),
        residual_rms_iod=Spread(0.004, 0.003, 0.006, 30),
        residual_correlation_iod=Spread(0.1, 0.08, 0.15, 30),
        noise_sigma=Spread(1.5, 1.0, 2.0, 30),
        brightness_drift_per_s=Spread(0.01, 0.0, 0.02, 30),
        framing=Framing((0.35, 0.4), (0.65, 0.4), (0.5, 0.75), 0.3),
        per_au_peak_iod={12: spread},
    )
    values.update(changes)
    return CalibrationProfile(**values)


def test_round_trip_keeps_every_value(tmp_path):
    basis = {12: np.random.default_rng(0).normal(0, 0.01, (68, 2))}
    profile = _profile(motion_kind="fitted", motion_basis=basis, blink_rate_per_s=0.25)
    loaded = CalibrationProfile.load(profile.save(tmp_path / "p.yaml"))
    assert loaded.apex_peak_iod == profile.apex_peak_iod
    assert loaded.framing == profile.framing
    assert loaded.per_au_peak_iod == {12: profile.apex_peak_iod}
    assert loaded.blink_rate_per_s == 0.25
    np.testing.assert_allclose(loaded.motion_basis[12], basis[12], atol=1e-6)


def test_spread_of_and_sample_match_median_and_quartiles():
    spread = Spread.of([1.0, 2.0, 3.0, 4.0, 5.0, float("nan")])
    assert (spread.median, spread.q25, spread.q75, spread.n) == (3.0, 2.0, 4.0, 5)
    draws = spread.sample(np.random.default_rng(0), 40000)
    q25, median, q75 = np.percentile(draws, [25, 50, 75])
    # a log-normal keeps the median and the quartile ratio q75 / q25 = 2
    assert median == pytest.approx(3.0, rel=0.03)
    assert q75 / q25 == pytest.approx(2.0, rel=0.03)
    assert not Spread.of([]).sample(np.random.default_rng(0), 3).any()


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda d: d.pop("noise_sigma"), "noise_sigma"),
        (lambda d: d["apex_peak_iod"].update(median=-1.0), "apex_peak_iod.median"),
        (lambda d: d["head_scale"].pop("q75"), "head_scale.q75"),
        (lambda d: d.update(version=99), "version"),
        (lambda d: d["motion"].update(kind="magic"), "motion.kind"),
        (lambda d: d["framing"].update(iod_fraction=2.0), "framing.iod_fraction"),
        (lambda d: d["per_au_peak_iod"].update({"x": d["apex_peak_iod"]}), "per_au_peak_iod.x"),
    ],
)
def test_bad_files_name_the_file_and_key(tmp_path, edit, key):
    data = _profile().to_dict()
    edit(data)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ProfileError, match=rf"bad\.yaml: .*'{key}"):
        CalibrationProfile.load(path)


def test_fitted_profile_needs_a_68_point_basis(tmp_path):
    data = _profile().to_dict()
    data["motion"] = {"kind": "fitted", "basis": {12: [[0.0, 0.0]] * 10}}
    path = tmp_path / "short.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ProfileError, match=r"short\.yaml: key 'motion\.basis\.12'"):
        CalibrationProfile.load(path)


def test_a_quiet_profile_has_every_effect_off(tmp_path):
    framing = Framing((0.35, 0.4), (0.65, 0.4), (0.5, 0.75), 0.3)
    loaded = CalibrationProfile.load(CalibrationProfile.quiet(framing).save(tmp_path / "q.yaml"))
    assert len(SPREADS) == len(set(SPREADS)) == 10
    for name in SPREADS:
        assert getattr(loaded, name) == Spread(0.0, 0.0, 0.0, 0), name
    assert loaded.framing == framing and loaded.blink_rate_per_s == 0.0
