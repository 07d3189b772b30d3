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
)
from mesynth.calibration.profile import CalibrationProfile
from mesynth.evaluation.realism_report import realism_report
from mesynth.generation.recipe import GenerationRecipe
from mesynth.generation.store_reader import store_records
from tests.adversarial_fixtures import before_and_after, hidden_store, search_recipe

SIZE = 48
TRIALS = 32


def _recipe(**changes: object) -> GenerationRecipe:
    return search_recipe(SIZE, {"mode": "onset_apex"}, **changes)


@pytest.fixture(scope="module")
def search(tmp_path_factory):
    root = tmp_path_factory.mktemp("adversarial")
    real = hidden_store(root / "real", SIZE, 8, mode="onset_apex")
    result = adversarial_calibration(
        real, _recipe(), trials=TRIALS, out_dir=root / "search", seed=0, clips=56
    )
    return {"root": root, "real": real, "result": result}


def test_search_brings_the_domain_classifier_to_near_chance(search):
    clean, calibrated = before_and_after(search, _recipe)
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
