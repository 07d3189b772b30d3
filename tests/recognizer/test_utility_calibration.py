"""Utility calibration (recognizer.remedies.utility): the inner folds split subjects, a trial's
parameters become pool settings, the search resumes from its written trials, a fold trains
without synthetic clips when no trial beats the inner no-synthetic baseline, every trial's
subjects are checked against the fold's test subjects, and ``mer train ...
remedy.calibration.method=utility`` runs end to end."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mesynth.calibration.adversarial import quiet_profile
from mesynth.calibration.profile import CalibrationProfile
from recognizer.cli import main as mer_main
from recognizer.data.representations import ApexFlow
from recognizer.datasets import load
from recognizer.models import create_model
from recognizer.protocols.leakage import LeakageError, check_fold, find_leaks
from recognizer.remedies import FoldData, Remedy, create_remedy, synthetic, utility
from recognizer.remedies.base import FoldContext
from recognizer.remedies.calibration import CalibrationScope
from recognizer.remedies.utility import (
    HEAD_RATIOS,
    inner_folds,
    search_space,
    trial_settings,
)
from recognizer.training.trainer import TrainerConfig
from tests.flow_fixtures import MANIFEST_SUBJECTS, synth_fill_flow_run, write_flow_manifest
from tests.recognizer.helpers import (
    LABELS,
    SAMPLES,
    feature_factory,
    held_out_fold_context,
    kfold_run,
)

CLASSES = ["negative", "positive", "surprise"]
SUBJECTS = MANIFEST_SUBJECTS[:4]


@pytest.fixture(scope="module")
def composite(tmp_path_factory) -> Path:
    root = write_flow_manifest(tmp_path_factory.mktemp("composite"))
    table = pd.read_csv(root / "manifest.csv", dtype=str, keep_default_na=False)
    table[table["subject"].isin(SUBJECTS)].to_csv(root / "manifest4.csv", index=False)
    return root


@pytest.fixture(scope="module")
def rows(composite: Path) -> list:
    return list(load("manifest", composite / "manifest4.csv").samples)


class FakeScorer:
    """An inner scorer that trains nothing: its score depends only on how many synthetic
    samples the inner training holds (``prefer``: more is better, or worse)."""

    def __init__(self, prefer_synthetic: bool) -> None:
        self.prefer = prefer_synthetic
        self.calls: list[int] = []

    def __call__(self, train, train_labels, test, test_labels, *, epochs, seed, **_) -> dict:
        synthetic_count = sum(getattr(s, "source", "real") != "real" for s in train)
        self.calls.append(synthetic_count)
        good = (synthetic_count > 0) == self.prefer
        predicted = list(test_labels) if good else [(y + 1) % 3 for y in test_labels]
        return {"uf1": float(good), "uar": float(good), "predicted": predicted}


def _context(rows: list, tmp_path: Path, tested: str, scorer: object) -> FoldContext:
    fold_dir = tmp_path / "run" / "fold_00"
    return held_out_fold_context(rows, SUBJECTS, tested, CLASSES, fold_dir, inner_score=scorer)


def _source(tmp_path: Path, **calibration: object):
    remedy = create_remedy(
        "synth_fill",
        synthesis={
            "scheme": "megc3",
            "size": 32,
            "device": "cpu",
            "identities": {"source": "data", "face_crops": True},
            "templates": {"sources": ["mined", "expert"]},
        },
        cache_dir=str(tmp_path / "cache"),
        pool_margin=1.0,
        calibration={
            "method": "utility",
            "groups": "fold",
            "trials": 1,
            "n_splits": 2,
            "startup_trials": 1,
            "inner_epochs": 1,
            "render_sizes": [32],
            **calibration,
        },
    )
    return remedy.data.for_representation(ApexFlow(size=28, render_size=32))


# --------------------------------------------------------------------------- pieces


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"inner_epochs": 0}, "remedy.calibration.inner_epochs"),
        ({"time_budget_s": -1}, "remedy.calibration.time_budget_s"),
        ({"render_sizes": []}, "remedy.calibration.render_sizes"),
        ({"render_sizes": [8]}, "remedy.calibration.render_sizes"),
    ],
)
def test_bad_utility_settings_name_the_key(settings: dict, key: str) -> None:
    with pytest.raises(ValueError, match=key):
        create_remedy("synth_fill", calibration={"method": "utility", **settings})


def test_synthetic_pretraining_refuses_utility_calibration() -> None:
    with pytest.raises(ValueError, match="utility"):
        create_remedy("synth_pretrain", calibration={"method": "utility"})


def test_inner_folds_hold_every_subject_out_once_and_never_on_both_sides(rows: list) -> None:
    subjects = [r.subject for r in rows]
    labels = [CLASSES.index(r.emotion) for r in rows]
    folds = inner_folds(subjects, labels, 3, seed=0)
    assert len(folds) == 3
    held = [s for _, h in folds for s in h]
    assert sorted(held) == sorted(SUBJECTS)  # each subject held out exactly once
    for train, test in folds:
        assert not set(train) & set(test)
        assert set(train) | set(test) == set(SUBJECTS)
    assert inner_folds(list(reversed(subjects)), labels[::-1], 3, seed=0) == folds
    assert len(inner_folds(subjects, labels, 9, seed=0)) == len(SUBJECTS)  # capped
    with pytest.raises(ValueError, match="needs >= 2 subjects"):
        inner_folds(["a/1", "a/1"], [0, 1], 2, seed=0)


def test_trial_parameters_become_pool_settings() -> None:
    base = quiet_profile()
    params = {
        "apex_peak_iod": 0.05, "head_translation_iod": 0.02, "residual_rms_iod": 0.01,
        "noise_sigma": 3.0, "blink_rate_per_s": 0.4, "mined_share": 0.8, "fill_ratio": 0.5,
        "render_size": 64,
    }  # fmt: skip
    settings = trial_settings(base, params, ("expert", "mined"), default_size=128)
    profile = settings.profile
    assert profile.apex_peak_iod.median == pytest.approx(0.05)
    assert profile.head_translation_iod.median == pytest.approx(0.02)
    rotation = HEAD_RATIOS["head_rotation_deg"]
    assert profile.head_rotation_deg.median == pytest.approx(0.02 * rotation)
    assert profile.head_scale.median == pytest.approx(0.02 * HEAD_RATIOS["head_scale"])
    assert profile.residual_rms_iod.median == pytest.approx(0.01)
    assert profile.noise_sigma.median == pytest.approx(3.0)
    assert profile.blink_rate_per_s == pytest.approx(0.4)
    assert settings.template_weights == pytest.approx((0.2, 0.8))  # in sources order
    assert (settings.strategy, settings.render_size) == (0.5, 64)
    assert base.noise_sigma.median == 0  # the base is not changed
    # absent dimensions keep the base and the recipe's defaults
    plain = trial_settings(base, {"apex_peak_iod": 0.1}, ("expert",), default_size=128)
    assert (plain.template_weights, plain.strategy, plain.render_size) == (None, 1.0, 128)
    # the space drops switched-off effects and the template share of a single source
    space = search_space([32, 64], ("expert",), {"noise": False, "blinks": True})
    assert "noise_sigma" not in space and "mined_share" not in space
    assert {"apex_peak_iod", "blink_rate_per_s", "fill_ratio", "render_size"} <= set(space)
    assert list(space["render_size"].choices) == [32, 64]


def test_a_search_step_that_used_a_test_subject_is_a_leak() -> None:
    train = [type("S", (), {"subject": "casme2/sub02", "clip": "a"})()]
    test = [type("S", (), {"subject": "casme2/sub01", "clip": "b"})()]
    clean = {"fold_00 utility trial 0": ["casme2/sub02", "samm/006"]}
    assert find_leaks(train, test, searched=clean) == []
    planted = {**clean, "fold_00 utility trial 1": ["samm/006", "casme2/sub1"]}  # any spelling
    with pytest.raises(LeakageError, match=r"\[search\] fold_00 utility trial 1 used test"):
        check_fold(0, train, test, searched=planted)


@dataclass(frozen=True)
class SearchesOnTheTestSubject(Remedy):
    """A remedy whose search inside the fold (wrongly) used the fold's test subject; it also
    scores its inner split with the run's scorer."""

    scores: list = field(default_factory=list)

    def fold_data(self, context: FoldContext) -> FoldData:
        train, labels = list(context.train), list(context.train_labels)
        half = len(train) // 2
        self.scores.append(
            context.inner_score(train[:half], labels[:half], train[half:], labels[half:],
                                epochs=1, seed=0)
        )  # fmt: skip
        tested = sorted(context.fold.test_subjects)
        return FoldData(train, labels, searched_subjects={"search trial 0": tested})


def test_run_protocol_refuses_a_fold_whose_search_used_a_test_subject(tmp_path: Path) -> None:
    remedy = SearchesOnTheTestSubject("planted")
    with pytest.raises(LeakageError) as err:
        kfold_run(remedy, tmp_path, epochs=3)
    assert {v.kind for v in err.value.violations} == {"search"}
    assert not list(tmp_path.rglob("*.pt"))
    # the run's scorer trained the run's model on the inner split
    (score,) = remedy.scores
    assert 0 <= score["uf1"] <= 1 and 0 <= score["uar"] <= 1
    assert len(score["predicted"]) == len(SAMPLES) // 2 - len(SAMPLES) // 4


# --------------------------------------------------------------------------- the search


def test_search_picks_a_trial_that_beats_the_baseline_and_resumes_from_written_trials(
    rows: list, tmp_path: Path
) -> None:
    tested = SUBJECTS[0]
    scorer = FakeScorer(prefer_synthetic=True)
    source = _source(tmp_path)
    data = source.fold_data(_context(rows, tmp_path, tested, scorer))
    n_inner = 2
    assert scorer.calls[:n_inner] == [0, 0]  # the baseline: real only
    assert len(scorer.calls) == 2 * n_inner and all(c > 0 for c in scorer.calls[n_inner:])
    record = data.report["calibration"]
    assert record["method"] == "utility" and record["use_synthetic"] and record["made"]
    assert record["baseline"]["objective"] == 0.0 and record["trials"][0]["objective"] == 1.0
    assert record["chosen"]["render_size"] == 32
    assert data.report["synthetic_train"] > 0
    folder = tmp_path / "run" / "calibration" / "fold_00"
    assert CalibrationProfile.load(record["profile"]).source["real_subjects"] == SUBJECTS[1:]
    assert (folder / "history.png").stat().st_size > 0
    assert len(pd.read_csv(folder / "history.csv")) == 1
    assert json.loads((folder / "utility.json").read_text())["best_trial"] == 0
    # every trial's subjects are recorded and exclude the test subject
    assert set(data.searched_subjects) == {"fold_00 utility baseline", "fold_00 utility trial 0"}
    for used in data.searched_subjects.values():
        assert tested not in used and set(used) <= set(SUBJECTS[1:])
    check_fold(0, data.train, [r for r in rows if r.subject == tested],
               test_subjects=[tested], searched=data.searched_subjects)  # fmt: skip

    # a larger budget reuses the baseline and trial 0 and runs only trial 1
    trial_0 = folder / "search" / "trials" / "trial_0000.json"
    stamp = trial_0.stat().st_mtime_ns
    scorer.calls.clear()
    again = _source(tmp_path, trials=2).fold_data(_context(rows, tmp_path, tested, scorer))
    assert len(scorer.calls) == n_inner and trial_0.stat().st_mtime_ns == stamp
    assert [t["trial"] for t in again.report["calibration"]["trials"]] == [0, 1]
    # the same budget again: nothing runs
    scorer.calls.clear()
    _source(tmp_path, trials=2).fold_data(_context(rows, tmp_path, tested, scorer))
    assert scorer.calls == []
    # another setting restarts the search (and names what differed)
    changed = _source(tmp_path, inner_epochs=2).fold_data(_context(rows, tmp_path, tested, scorer))
    assert len(scorer.calls) == 2 * n_inner
    assert "settings changed: calibration.inner_epochs" in changed.notes[0]


def test_no_trial_beating_the_baseline_trains_without_synthetic_clips(
    rows: list, tmp_path: Path
) -> None:
    context = _context(rows, tmp_path, SUBJECTS[1], FakeScorer(prefer_synthetic=False))
    # the time budget is spent after the first trial: no second one starts
    data = _source(tmp_path, trials=3, time_budget_s=1e-6).fold_data(context)
    assert len(data.report["calibration"]["trials"]) == 1
    assert data.train == list(context.train)  # real samples only
    record = data.report["calibration"]
    assert not record["use_synthetic"] and record["profile"] is None and record["chosen"] is None
    assert record["trials"][0]["objective"] < record["baseline"]["objective"]
    assert data.report["synthetic_train"] == 0
    assert any("no synthetic clips" in note for note in data.notes)


def test_a_scope_holding_the_test_subject_is_refused(
    rows: list, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tested = SUBJECTS[2]
    wrong = CalibrationScope("group_0", 0, tuple(SUBJECTS))  # a grouping bug
    monkeypatch.setattr(synthetic, "fold_scope", lambda *_: wrong)
    context = _context(rows, tmp_path, tested, FakeScorer(prefer_synthetic=True))
    with pytest.raises(LeakageError, match=rf"(?s)\[profile\] .*{tested}"):
        _source(tmp_path).fold_data(context)


def test_utility_needs_the_runs_scorer(rows: list, tmp_path: Path) -> None:
    context = _context(rows, tmp_path, SUBJECTS[0], None)
    with pytest.raises(ValueError, match="run_protocol"):
        _source(tmp_path).fold_data(context)


def test_data_face_crops_render_in_their_own_framing_by_default() -> None:
    crops = {"identities": {"source": "data", "face_crops": True}}
    assert create_remedy("synth_fill", synthesis=crops).data.recipe().identities.framing == "own"
    portraits = create_remedy("synth_fill", synthesis={}).data.recipe().identities
    assert portraits.framing == "canonical"
    chosen = {"identities": {"source": "data", "face_crops": True, "framing": "canonical"}}
    assert create_remedy("synth_fill", synthesis=chosen).data.recipe().identities.framing == (
        "canonical"
    )


# --------------------------------------------------------------------------- end to end


def _utility_argv(composite: Path, tmp_path: Path, out: Path) -> list[str]:
    return [
        *synth_fill_flow_run(composite / "manifest4.csv", 32, tmp_path / "cache"),
        "remedy.calibration.method=utility", "remedy.calibration.groups=2",
        "remedy.calibration.trials=1", "remedy.calibration.startup_trials=1",
        "remedy.calibration.n_splits=2", "remedy.calibration.inner_epochs=1",
        "remedy.calibration.render_sizes=[32]",
        f"out_dir={out}", f"paths.root_dir={tmp_path}",
    ]  # fmt: skip


def test_loso_with_utility_calibration_end_to_end(composite: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert mer_main(_utility_argv(composite, tmp_path, out)) == 0
    results = json.loads((out / "results.json").read_text())
    folds = {f["index"]: f for f in json.loads((out / "folds.json").read_text())}
    scopes = set()
    for entry in results["fold_data"]:
        (tested,) = folds[entry["fold"]]["test_subjects"]
        record = entry["calibration"]
        scopes.add(record["scope"])
        assert record["method"] == "utility" and tested not in record["real_subjects"]
        assert len(record["trials"]) == 1
        assert {"uf1", "uar", "objective"} <= set(record["baseline"])
        assert (entry["synthetic_train"] > 0) == record["use_synthetic"]
    assert scopes == {"group_0", "group_1"}
    for scope in scopes:
        assert (out / "calibration" / scope / "history.png").is_file()
        trial = json.loads(
            (out / "calibration" / scope / "search" / "trials" / "trial_0000.json").read_text()
        )
        assert np.isfinite(trial["objective"]) and trial["subjects"]


def test_the_seeds_of_a_run_share_one_search_per_scope(composite: Path, tmp_path: Path) -> None:
    """``trainer.seeds=[0,1]``: each scope is searched once (by the first fold that needs it)
    under the seeds folder and reused by every other fold of every seed, and seed 1's run
    equals a single-seed run with ``trainer.seed=1`` that searched on its own."""
    out = tmp_path / "seeds"
    assert mer_main([*_utility_argv(composite, tmp_path, out), "trainer.seeds=[0,1]"]) == 0
    assert not (out / "seed_0" / "calibration").exists()
    made: dict[str, int] = {}
    for seed in (0, 1):
        results = json.loads((out / f"seed_{seed}" / "results.json").read_text())
        for entry in results["fold_data"]:
            scope = entry["calibration"]["scope"]
            made[scope] = made.get(scope, 0) + int(entry["calibration"]["made"])
            assert Path(entry["calibration"]["profile"] or out).is_relative_to(out)
    assert made == {"group_0": 1, "group_1": 1}
    alone = tmp_path / "alone"
    assert mer_main([*_utility_argv(composite, tmp_path, alone), "trainer.seed=1"]) == 0
    shared = pd.read_csv(out / "seed_1" / "predictions.csv")
    single = pd.read_csv(alone / "predictions.csv")
    pd.testing.assert_frame_equal(shared, single)


# --------------------------------------------------------------------------- synthetic weight


def test_sample_weights_scale_each_samples_loss() -> None:
    import torch

    from recognizer.remedies.losses import FocalLoss, weighted_focal_loss

    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    target = torch.tensor([0, 0, 1])
    each = torch.nn.functional.cross_entropy(logits, target, reduction="none")
    w = torch.tensor([1.0, 0.5, 0.0])
    assert weighted_focal_loss(logits, target, sample_weight=w) == pytest.approx(
        float((each * w).mean())
    )
    assert FocalLoss()(logits, target, torch.ones(3)) == pytest.approx(float(each.mean()))


@dataclass(frozen=True)
class WeighsHalfTheSamples(Remedy):
    """Real data with the loss weight of every other training sample halved."""

    def fold_data(self, context: FoldContext) -> FoldData:
        n = len(context.train)
        return FoldData(list(context.train), list(context.train_labels),
                        train_weights=[1.0 if i % 2 else 0.5 for i in range(n)])  # fmt: skip


def _weighted_run(tmp_path: Path, batched: object):
    return kfold_run(WeighsHalfTheSamples("weighted"), tmp_path, epochs=2, batched_folds=batched)


def test_weighted_folds_train_fold_by_fold(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(ValueError, match="batched_folds=true but per-sample loss weights"):
        _weighted_run(tmp_path / "refused", True)
    result = _weighted_run(tmp_path / "auto", "auto")
    assert "batched folds: off from fold 0 on (per-sample loss weights)" in capsys.readouterr().out
    assert len(result.predictions) == 24


def test_zero_weights_leave_the_model_unchanged() -> None:
    import torch

    from recognizer.remedies.losses import FocalLoss
    from recognizer.training.trainer import Trainer

    torch.manual_seed(0)
    model = create_model("ststnet", 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    config = TrainerConfig(epochs=1, batch_size=8, lr=0.05, device="cpu", progress=False,
                           weight_decay=0.0)  # fmt: skip
    trainer = Trainer(model, FocalLoss(), config)
    trainer.fit(feature_factory(SAMPLES, LABELS, True), sample_weights=[0.0] * len(SAMPLES))
    after = model.state_dict()
    params = dict(model.named_parameters())
    assert all(torch.equal(before[k], after[k]) for k in params)
    with pytest.raises(ValueError, match="sample_weights has 3 values for 24"):
        trainer.fit(feature_factory(SAMPLES, LABELS, True), sample_weights=[1.0] * 3)


def test_synth_fill_weighs_its_synthetic_clips_and_the_search_can_choose_the_weight(
    rows: list, tmp_path: Path
) -> None:
    remedy = create_remedy(
        "synth_fill", synthetic_weight=0.25, cache_dir=str(tmp_path / "cache"),
        synthesis={"scheme": "megc3", "size": 32, "device": "cpu"},
    )  # fmt: skip
    source = remedy.data.for_representation(ApexFlow(size=28, render_size=32))
    context = _context(rows, tmp_path, SUBJECTS[0], None)
    data = source.fold_data(context)
    n_real = len(context.train)
    assert len(data.train) > n_real and data.train_weights is not None
    assert data.train_weights == [1.0] * n_real + [0.25] * (len(data.train) - n_real)
    assert data.report["synthetic_weight"] == 0.25
    with pytest.raises(ValueError, match="synthetic_weight must be a number > 0"):
        create_remedy("synth_fill", synthetic_weight=0)
    # the default weight changes nothing: no weights, the same settings as before
    plain = create_remedy("synth_fill").data
    assert "synthetic_weight" not in plain.settings()
    # the search dimension
    space = search_space([32], ("expert",), {}, weight=True)
    assert space["synthetic_weight"].log
    chosen = trial_settings(quiet_profile(), {"synthetic_weight": 0.3}, ("expert",), 32)
    placed = utility.trial_source(_source(tmp_path), chosen, tmp_path / "p.yaml")
    assert placed.synthetic_weight == pytest.approx(0.3)
