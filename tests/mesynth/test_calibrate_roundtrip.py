"""Round trip: a "real-like" domain rendered with known settings is calibrated, and the
calibrated generator is closer to it than the clean one."""

from __future__ import annotations

import json

import pytest

from mesynth.calibration.calibrate import calibrate
from mesynth.calibration.profile_effects import apex_size_ratio, calibrated_motion
from mesynth.evaluation.realism_report import realism_report
from mesynth.face.identities import load_identities
from mesynth.generation.balance import equal
from mesynth.generation.pipeline import generate
from mesynth.generation.store_reader import store_records
from mesynth.motion.au_basis import MotionModel
from mesynth.motion.timing import TimingSampler
from mesynth.templates.bank import TemplateBank
from tests.profile_fixtures import make_profile

CLASSES = ["happiness", "surprise", "disgust", "sadness"]


#: the real-like domain: every setting differs from the clean generator's (apex_iod 0.03,
#: no head or skin motion, no noise, no drift)
TRUTH = make_profile(0.08, (0.04, 1.5, 0.015), (0.03, 0.3), 4.0, 0.2, n=32)

#: relative tolerance of each recovered median (32 clips, dlib landmarks tracked by flow). The
#: rigid terms carry the landmark-tracking noise floor (about 0.5 deg and 0.005 in scale on a
#: 96 px crop), which adds to small true values; noise is measured from three consecutive frames.
TOLERANCE = {
    "apex_peak_iod": 0.2,
    "head_translation_iod": 0.3,
    "head_rotation_deg": 0.35,
    "head_scale": 0.5,
    "residual_rms_iod": 0.25,
    "residual_correlation_iod": 0.25,
    "noise_sigma": 0.3,
    "brightness_drift_per_s": 0.3,
}


@pytest.fixture(scope="module")
def domains(tmp_path_factory):
    root = tmp_path_factory.mktemp("roundtrip")
    faces = load_identities("builtin", size=96, seed=0)
    parts = {
        "identities": faces,
        "bank": TemplateBank.expert("dfme7"),
        "timing_sampler": TimingSampler(fps=60),
        "mode": "full",
        "device": "cpu",
        "progress": False,
    }

    def render(name, effects, seed, motion=None):
        motion = MotionModel.expert() if motion is None else motion
        plan = equal(8, CLASSES, seed=seed)
        generate(plan=plan, out_dir=root / name, effects=effects, motion=motion, **parts)
        return store_records(root / name)

    real = render("real", TRUTH, 1, calibrated_motion(MotionModel.expert(), TRUTH, parts["bank"]))
    profile = calibrate(real, backend="dlib", max_frames=2)
    path = profile.save(root / "profile.yaml")
    motion = calibrated_motion(MotionModel.expert(), profile, parts["bank"])
    return {
        "root": root,
        "real": real,
        "profile": profile,
        "calibrated": render("calibrated", path, 2, motion),
        "clean": render("clean", "none", 3),
    }


@pytest.mark.parametrize("name", sorted(TOLERANCE))
def test_calibration_recovers_every_setting(domains, name):
    assert domains["profile"].source["n_measured"] == 32
    measured = getattr(domains["profile"], name).median
    assert measured == pytest.approx(getattr(TRUTH, name).median, rel=TOLERANCE[name])


def test_calibrated_set_is_much_harder_to_tell_from_real_than_the_clean_one(domains):
    root = domains["root"]
    calibrated = realism_report(
        domains["real"], domains["calibrated"], root / "report_calibrated", n_permutations=0
    )
    clean = realism_report(
        domains["real"], domains["clean"], root / "report_clean", n_permutations=0
    )
    assert clean.domain_accuracy > 0.7
    assert calibrated.domain_accuracy < 0.6
    assert clean.domain_accuracy - calibrated.domain_accuracy > 0.25


def test_the_calibrated_store_uses_the_converted_apex_size(domains):
    meta = json.loads((domains["root"] / "calibrated" / "meta.json").read_text())
    bank, motion = TemplateBank.expert("dfme7"), MotionModel.expert()
    measured = domains["profile"].apex_peak_iod.median
    expected = measured / apex_size_ratio(bank, motion)
    assert meta["config"]["motion"]["apex_iod"] == pytest.approx(expected, rel=1e-9)
    assert meta["config"]["realism"]["kind"] == "profile"
