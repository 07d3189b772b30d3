"""Adversarial calibration: on a "real-like" domain rendered with settings the search does not
see, the search drives the domain classifier from near-certain to near chance; the search is
resumable and refuses other settings by name."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from mesynth.calibration.adversarial import (
    AdversarialSearchError,
    adversarial_calibration,
    profile_from_parameters,
    quiet_profile,
    record_features,
)
from mesynth.calibration.profile import CalibrationProfile
from mesynth.calibration.profile_effects import calibrated_motion
from mesynth.evaluation.domain_test import domain_classifier_test
from mesynth.evaluation.realism_report import realism_report
from mesynth.face.identities import IdentityAugmentation, load_identities
from mesynth.generation.balance import equal
from mesynth.generation.pipeline import generate
from mesynth.generation.recipe import GenerationRecipe, ProfileSource, run_recipe
from mesynth.generation.store_reader import store_records
from mesynth.motion.au_basis import MotionModel
from mesynth.motion.timing import TimingSampler
from mesynth.templates.bank import TemplateBank
from tests.profile_fixtures import make_profile

SIZE = 48
TRIALS = 32
#: the hidden real-like domain: larger motion, head and skin motion, noise and drift
HIDDEN = make_profile(0.08, (0.04, 1.5, 0.015), (0.05, 0.3), 8.0, 0.2)


def _recipe(**changes: object) -> GenerationRecipe:
    settings = {
        "size": SIZE,
        "device": "cpu",
        "timing": {"fps": 60},
        "identities": {"copies": 3},
        "frames": {"mode": "onset_apex"},
    }
    return GenerationRecipe(**(settings | changes))


@pytest.fixture(scope="module")
def search(tmp_path_factory):
    root = tmp_path_factory.mktemp("adversarial")
    faces = load_identities(
        "builtin", size=SIZE, seed=0, augmentation=IdentityAugmentation(copies=3)
    )
    bank = TemplateBank.expert("dfme7")
    generate(
        faces,
        bank,
        calibrated_motion(MotionModel.expert(), HIDDEN, bank),
        TimingSampler(fps=60),
        equal(8, list(bank.emotions), seed=101),
        root / "real",
        mode="onset_apex",
        effects=HIDDEN,
        device="cpu",
        progress=False,
    )
    real = store_records(root / "real")
    result = adversarial_calibration(
        real, _recipe(), trials=TRIALS, out_dir=root / "search", seed=0, clips=56
    )
    return {"root": root, "real": real, "result": result}


def _accuracy(real, root, name, recipe):
    """Domain accuracy of real vs a fresh store made with ``recipe`` (seeds the search never
    rendered)."""
    run_recipe(recipe, equal(16, list(TemplateBank.expert("dfme7").emotions), seed=7), root / name)
    synthetic = store_records(root / name)
    (r, rg), (s, sg) = record_features(real), record_features(synthetic)
    return domain_classifier_test(r, s, rg, sg, n_permutations=0, c=1.0).accuracy


def test_search_brings_the_domain_classifier_to_near_chance(search):
    root, real, result = search["root"], search["real"], search["result"]
    clean = _accuracy(real, root, "clean", _recipe())
    calibrated = _accuracy(
        real,
        root,
        "calibrated",
        _recipe(effects=ProfileSource(str(result.profile_path)), motion={"apex_iod": "profile"}),
    )
    print(f"domain accuracy: clean {clean:.3f}, calibrated {calibrated:.3f}")
    assert clean >= 0.95
    assert calibrated <= 0.65


def test_search_writes_profile_history_and_the_subjects_it_saw(search):
    result, real = search["result"], search["real"]
    profile = CalibrationProfile.load(result.profile_path)
    assert profile.source["real_subjects"] == sorted({r.subject for r in real})
    assert profile.source["trials"] == TRIALS
    history = pd.read_csv(result.history_path)
    assert list(history["trial"]) == list(range(TRIALS))
    best = history["objective"].idxmin()
    assert result.best_trial == best
    assert profile.apex_peak_iod.median == pytest.approx(history["apex_peak_iod"][best])
    assert history["best_accuracy"].iloc[-1] == pytest.approx(result.best_accuracy)
    assert result.figure_path.is_file()


def test_rerun_continues_and_other_settings_are_refused(search, tmp_path):
    result = search["result"]
    again = adversarial_calibration(
        search["real"], _recipe(), trials=TRIALS, out_dir=result.profile_path.parent, clips=56
    )
    assert again.resumed == TRIALS and again.best_trial == result.best_trial
    with pytest.raises(AdversarialSearchError, match="differ: .*search"):
        adversarial_calibration(
            search["real"],
            _recipe(),
            trials=TRIALS,
            out_dir=result.profile_path.parent,
            clips=56,
            seed=1,
        )


def test_interrupted_search_proposes_the_same_trials(search, tmp_path):
    real = search["real"][:16]
    whole = adversarial_calibration(real, _recipe(), trials=3, out_dir=tmp_path / "a", clips=14)
    adversarial_calibration(real, _recipe(), trials=1, out_dir=tmp_path / "b", clips=14)
    resumed = adversarial_calibration(real, _recipe(), trials=3, out_dir=tmp_path / "b", clips=14)
    assert resumed.resumed == 1
    pd.testing.assert_frame_equal(
        whole.history.drop(columns="seconds"), resumed.history.drop(columns="seconds")
    )
    trial = json.loads((tmp_path / "b" / "trials" / "trial_0002.json").read_text())
    assert trial["params"] == {
        k: v for k, v in whole.history.iloc[2].items() if k in trial["params"]
    }


def test_profile_from_parameters_keeps_base_quartile_ratios():
    base = quiet_profile()
    profile = profile_from_parameters(base, {"noise_sigma": 2.0})
    assert (profile.noise_sigma.q25, profile.noise_sigma.q75) == pytest.approx((1.6, 2.5))
    again = profile_from_parameters(profile, {"noise_sigma": 4.0})
    assert (again.noise_sigma.q25, again.noise_sigma.q75) == pytest.approx((3.2, 5.0))
    assert again.residual_rms_iod.median == 0
    with pytest.raises(AdversarialSearchError, match="framing"):
        profile_from_parameters(base, {"framing": 1.0})
    with pytest.raises(AdversarialSearchError, match="> 0"):
        profile_from_parameters(base, {"noise_sigma": 0.0})


def test_realism_report_includes_the_search_history(search):
    root, real, result = search["root"], search["real"], search["result"]
    report = realism_report(
        real[:16],
        store_records(root / "real")[16:32],
        root / "report",
        n_permutations=0,
        history=result.history_path,
    )
    text = report.markdown.read_text()
    assert "## Adversarial calibration" in text and "search_history.png" in text
    assert (root / "report" / "search_history.png").is_file()
