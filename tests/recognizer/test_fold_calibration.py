"""Calibration inside the protocol (recognizer.remedies.calibration): subjects are split into
seeded groups, each group's profile is measured on every other subject's real apex flows, a
fold uses the profile of its test subjects' group, profiles are cached under the run's out_dir
(reused when the settings match, recomputed when not), and the leakage check still runs on the
profile a fold actually renders with."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from mesynth.calibration.profile import CalibrationProfile
from recognizer.cli import main as mer_main
from recognizer.data.representations import ApexFlow, KeyFrameClip
from recognizer.datasets import load
from recognizer.protocols import Fold
from recognizer.protocols.leakage import LeakageError
from recognizer.remedies import calibration, create_remedy, synthetic
from recognizer.remedies.base import FoldContext
from recognizer.remedies.calibration import (
    CalibrationScope,
    FoldCalibration,
    calibrate_scope,
    fold_scope,
    subject_groups,
)
from tests.flow_fixtures import MANIFEST_SUBJECTS, synth_fill_flow_run, write_flow_manifest
from tests.recognizer.helpers import held_out_fold_context

CLASSES = ["negative", "positive", "surprise"]


@pytest.fixture(scope="module")
def composite(tmp_path_factory) -> Path:
    return write_flow_manifest(tmp_path_factory.mktemp("composite"))


@pytest.fixture(scope="module")
def rows(composite: Path) -> list:
    return list(load("manifest", composite / "manifest.csv").samples)


# --------------------------------------------------------------------------- grouping


def test_subject_groups_are_deterministic_balanced_and_order_free() -> None:
    subjects = [f"casme2/sub{i:02d}" for i in range(11)]
    groups = subject_groups(subjects, 3, seed=0)
    assert subject_groups(list(reversed(subjects)) + subjects[:2], 3, seed=0) == groups
    sizes = sorted(list(groups.values()).count(g) for g in range(3))
    assert sizes == [3, 4, 4]
    # another seed deals them differently; more groups than subjects: one subject each
    assert subject_groups(subjects, 3, seed=1) != groups
    assert sorted(subject_groups(subjects[:4], 9, seed=0).values()) == [0, 1, 2, 3]


def test_fold_scope_uses_the_test_subjects_group_else_the_folds_training_subjects() -> None:
    subjects = MANIFEST_SUBJECTS
    groups = subject_groups(subjects, 3, seed=0)
    pool = [SimpleNamespace(subject=s) for s in subjects]
    settings = FoldCalibration(method="flows", groups=3)
    for index, tested in enumerate(subjects):
        train = [p for p in pool if p.subject != tested]
        fold = Fold(index, frozenset(subjects) - {tested}, frozenset(), frozenset([tested]))
        scope = fold_scope(settings, SimpleNamespace(fold=fold, pool=pool, train=train))
        group = groups[tested]
        assert scope == CalibrationScope(
            f"group_{group}", group, tuple(sorted(s for s in subjects if groups[s] != group))
        )
    # test subjects spanning two groups (k-fold): the fold's own training subjects
    split = next(s for s in subjects if groups[s] != groups[subjects[0]])
    tested = {subjects[0], split}
    train = [p for p in pool if p.subject not in tested]
    fold = Fold(7, frozenset(subjects) - tested, frozenset(), frozenset(tested))
    scope = fold_scope(settings, SimpleNamespace(fold=fold, pool=pool, train=train))
    assert scope == CalibrationScope("fold_07", None, tuple(sorted(set(subjects) - tested)))
    # groups: fold -> always per fold
    per_fold = FoldCalibration(method="flows", groups="fold")
    assert fold_scope(per_fold, SimpleNamespace(fold=fold, pool=pool, train=train)).group is None


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"method": "measure"}, "remedy.calibration.method"),
        ({"method": "flows", "groups": 1}, "remedy.calibration.groups"),
        ({"method": "flows", "groups": "per-fold"}, "remedy.calibration.groups"),
        ({"method": "flows", "groups": -2}, "remedy.calibration.groups"),
        ({"method": "flows", "framing": "tight"}, "remedy.calibration.framing"),
        ({"method": "adversarial", "trials": 0}, "remedy.calibration.trials"),
        ({"method": "adversarial", "clips": "many"}, "remedy.calibration.clips"),
        ({"method": "flows", "backend": "mediapipe"}, "remedy.calibration.backend"),
        ({"method": "flows", "apex_peak_iod": 0}, "remedy.calibration.apex_peak_iod"),
        ({"method": "flows", "group": 3}, r"remedy.calibration: unknown keys \['group'\]"),
    ],
)
def test_bad_calibration_settings_name_the_key(settings: dict, key: str) -> None:
    with pytest.raises(ValueError, match=key):
        create_remedy("synth_fill", calibration=settings)


def test_calibration_needs_an_apex_flow_representation(tmp_path: Path, rows: list) -> None:
    remedy = create_remedy("synth_fill", calibration={"method": "flows"})
    source = remedy.data.for_representation(KeyFrameClip(num_frames=4, size=32))
    fold = Fold(0, frozenset(MANIFEST_SUBJECTS[1:]), frozenset(), frozenset(MANIFEST_SUBJECTS[:1]))
    context = FoldContext(fold, rows, [0] * len(rows), CLASSES, tmp_path / "fold_00", pool=rows)
    with pytest.raises(ValueError, match="remedy.calibration.method='flows'.*apex_flow"):
        source.fold_data(context)


# --------------------------------------------------------------------------- cache


def test_profiles_are_reused_when_settings_match_and_recomputed_when_not(
    rows: list, tmp_path: Path
) -> None:
    frames = ApexFlow(size=28).synthetic_frames()
    scope = CalibrationScope("group_0", 0, tuple(MANIFEST_SUBJECTS[2:]))
    settings = FoldCalibration(method="flows", groups=3)
    first = calibrate_scope(settings, scope, rows, frames, tmp_path)
    path = tmp_path / "group_0" / "profile.yaml"
    assert first.made and first.path == path and not first.changed
    assert first.profile.source["real_subjects"] == list(scope.subjects)
    listing, stamp = sorted(tmp_path.rglob("*")), path.stat().st_mtime_ns

    again = calibrate_scope(settings, scope, rows, frames, tmp_path)
    assert not again.made and path.stat().st_mtime_ns == stamp
    assert sorted(tmp_path.rglob("*")) == listing
    assert again.profile.to_dict() == first.profile.to_dict()

    anchored = FoldCalibration(method="flows", groups=3, apex_peak_iod=0.05)
    changed = calibrate_scope(anchored, scope, rows, frames, tmp_path)
    assert changed.made and changed.changed == ("calibration.apex_peak_iod",)
    assert CalibrationProfile.load(path).source["apex_peak_anchor_iod"] == 0.05
    assert (
        json.loads((tmp_path / "group_0" / "calibration.json").read_text())["settings"][
            "calibration"
        ]["apex_peak_iod"]
        == 0.05
    )


def test_adversarial_scope_searches_on_the_scope_subjects_with_subject_free_trial_clips(
    rows: list, tmp_path: Path
) -> None:
    frames = ApexFlow(size=28).synthetic_frames()
    scope = CalibrationScope("fold_00", None, tuple(MANIFEST_SUBJECTS[1:]))
    settings = FoldCalibration(
        method="adversarial", trials=2, clips=7, n_splits=2, startup_trials=1, trial_size=32
    )
    recipe = synthetic.GenerationRecipe(
        scheme="dfme7", device="cpu", identities={"source": "data", "face_crops": True}
    )
    found = calibrate_scope(settings, scope, rows, frames, tmp_path, recipe)
    assert found.made and found.profile.source["real_subjects"] == list(scope.subjects)
    history = (tmp_path / "fold_00" / "search" / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 2  # header + the trial budget
    search = json.loads((tmp_path / "fold_00" / "search" / "search.json").read_text())
    sources = {i["source"] for i in search["described"]["generator"]["identities"]}
    assert sources and all(s.startswith("builtin:") for s in sources)  # no dataset face
    again = calibrate_scope(settings, scope, rows, frames, tmp_path, recipe)
    assert not again.made and again.profile.to_dict() == found.profile.to_dict()


def test_a_wrong_group_profile_is_refused_by_the_leakage_check(
    rows: list, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tested = MANIFEST_SUBJECTS[0]
    fold_dir = tmp_path / "run" / "fold_00"
    context = held_out_fold_context(rows, MANIFEST_SUBJECTS, tested, CLASSES, fold_dir)
    remedy = create_remedy(
        "synth_fill",
        synthesis={"size": 32, "device": "cpu"},
        cache_dir=str(tmp_path / "cache"),
        calibration={"method": "flows", "groups": 3},
    )
    source = remedy.data.for_representation(ApexFlow(size=28, render_size=32))
    groups = subject_groups(MANIFEST_SUBJECTS, 3, seed=0)
    # a grouping bug: the fold gets the profile of another group, which saw its test subject
    other = (groups[tested] + 1) % 3
    wrong = CalibrationScope(
        f"group_{other}", other, tuple(s for s in MANIFEST_SUBJECTS if groups[s] != other)
    )
    assert tested in wrong.subjects
    monkeypatch.setattr(synthetic, "fold_scope", lambda *_: wrong)
    with pytest.raises(LeakageError, match=rf"(?s)fold 0: .*group_{other}.*{tested}"):
        source.fold_data(context)
    assert not (tmp_path / "cache").exists()  # refused before rendering
    # the right group passes the same check (no rendering: check_profiles alone)
    monkeypatch.setattr(synthetic, "fold_scope", calibration.fold_scope)
    calibrated, found = source.calibrated(context)
    assert tested not in found.profile.source["real_subjects"]
    synthetic.check_profiles(calibrated.recipe(), context)


def test_switches_of_a_given_profile_source_are_kept_and_the_path_survives_copies() -> None:
    remedy = create_remedy(
        "synth_fill",
        synthesis={"effects": synthetic.ProfileSource(noise=False, blinks=False)},
        calibration={"method": "flows"},
    )
    effects = remedy.data.recipe().effects
    assert (effects.noise, effects.blinks, effects.head_motion) == (False, False, True)
    placed = replace(
        remedy.data, synthesis=replace(remedy.data.synthesis, effects=replace(effects, path="p"))
    )
    copied = replace(placed, strategy="minority")  # __post_init__ runs again
    assert copied.recipe().effects == replace(effects, path="p")


def test_the_folds_profile_drives_effects_motion_size_and_framing(
    rows: list, tmp_path: Path
) -> None:
    tested = MANIFEST_SUBJECTS[3]
    train = [r for r in rows if r.subject != tested]
    fold = Fold(3, frozenset(MANIFEST_SUBJECTS) - {tested}, frozenset(), frozenset([tested]))
    context = FoldContext(fold, train, [0] * len(train), CLASSES, tmp_path / "run" / "fold_03")
    remedy = create_remedy(
        "synth_fill",
        synthesis={
            "effects": {"head_motion": True},
            "motion": {"apex_iod": "profile"},
            "identities": {"framing": "profile"},
            "device": "cpu",
        },
        calibration={"method": "flows", "groups": "fold", "apex_peak_iod": 0.05},
    )
    source = remedy.data.for_representation(ApexFlow(size=28))
    assert source.recipe().effects.path is None  # set per fold
    calibrated, found = source.calibrated(context)
    assert found.path == tmp_path / "run" / "calibration" / "fold_03" / "profile.yaml"
    assert found.profile.source["real_subjects"] == sorted(set(MANIFEST_SUBJECTS) - {tested})
    recipe = calibrated.recipe()
    assert recipe.effects.path == str(found.path)
    assert np.allclose(recipe.framing_target(), found.profile.framing.target())
    assert found.profile.apex_peak_iod.median == pytest.approx(0.05)


# --------------------------------------------------------------------------- end to end


def _train(composite: Path, tmp_path: Path, out: Path, *extra: str) -> None:
    argv = [
        *synth_fill_flow_run(composite / "manifest.csv", 64, tmp_path / "cache"),
        "remedy.calibration.method=flows", "remedy.calibration.groups=3",
        f"out_dir={out}", f"paths.root_dir={tmp_path}", *extra,
    ]  # fmt: skip
    assert mer_main(argv) == 0


def test_loso_with_flow_calibration_per_group_end_to_end_reused_and_recomputed(
    composite: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    _train(composite, tmp_path, out)
    groups = subject_groups(MANIFEST_SUBJECTS, 3, seed=0)
    written = sorted(p.parent.name for p in (out / "calibration").glob("*/profile.yaml"))
    assert written == ["group_0", "group_1", "group_2"]

    results = json.loads((out / "results.json").read_text())
    folds = {f["index"]: f for f in json.loads((out / "folds.json").read_text())}
    assert len(results["fold_data"]) == len(MANIFEST_SUBJECTS)
    for entry in results["fold_data"]:
        (tested,) = folds[entry["fold"]]["test_subjects"]
        record = entry["calibration"]
        assert record["group"] == groups[tested] and record["scope"] == f"group_{groups[tested]}"
        profile = CalibrationProfile.load(record["profile"])
        seen = profile.source["real_subjects"]
        assert record["real_subjects"] == seen
        assert tested not in seen
        assert seen == sorted(s for s in MANIFEST_SUBJECTS if groups[s] != groups[tested])
        assert entry["synthetic_train"] > 0 and entry["excluded_subjects"] == [tested]
    # one pool per group profile, each rendered with its own profile
    stores = [json.loads(p.read_text()) for p in (tmp_path / "cache").glob("*/meta.json")]
    assert len(stores) == 3

    # rerun (another trainer seed discards the fold results): every profile is reused
    stamps = {p: p.stat().st_mtime_ns for p in (out / "calibration").rglob("*")}
    _train(composite, tmp_path, out, "trainer.seed=1", "overwrite=true")
    assert {p: p.stat().st_mtime_ns for p in (out / "calibration").rglob("*")} == stamps
    rerun = json.loads((out / "results.json").read_text())["fold_data"]
    assert [e["calibration"]["made"] for e in rerun] == [False] * len(MANIFEST_SUBJECTS)

    # a changed calibration setting (a new run configuration) recomputes every profile
    _train(composite, tmp_path, out, "remedy.calibration.apex_peak_iod=0.05", "overwrite=true")
    changed = json.loads((out / "results.json").read_text())["fold_data"]
    made = {e["calibration"]["scope"] for e in changed if e["calibration"]["made"]}
    assert made == {"group_0", "group_1", "group_2"}  # each once, then reused by its other folds
    for path in (out / "calibration").glob("*/profile.yaml"):
        assert path.stat().st_mtime_ns > stamps[path]
        assert CalibrationProfile.load(path).source["apex_peak_anchor_iod"] == 0.05


def test_loso_with_adversarial_calibration_end_to_end(composite: Path, tmp_path: Path) -> None:
    """``mer train ... remedy.calibration.method=adversarial`` as a user runs it. The remedy's
    recipe holds a path-less profile source under calibration; the scope-level test above
    passes a plain recipe and so never built that one (issue 24: the run crashed in
    ``recipe.build()``)."""
    out = tmp_path / "run"
    _train(
        composite, tmp_path, out,
        "remedy.calibration.method=adversarial", "remedy.calibration.groups=2",
        "remedy.calibration.trials=1", "remedy.calibration.startup_trials=1",
        "remedy.calibration.clips=6", "remedy.calibration.n_splits=2",
        "remedy.calibration.trial_size=32",
    )  # fmt: skip
    results = json.loads((out / "results.json").read_text())
    scopes = {e["calibration"]["scope"] for e in results["fold_data"]}
    assert scopes == {"group_0", "group_1"}
    for scope in scopes:
        history = (out / "calibration" / scope / "search" / "history.csv").read_text()
        assert len(history.splitlines()) == 1 + 1  # header + the one trial
        profile = CalibrationProfile.load(out / "calibration" / scope / "profile.yaml")
        assert profile.source["real_subjects"]
    folds = {f["index"]: f for f in json.loads((out / "folds.json").read_text())}
    for entry in results["fold_data"]:
        (tested,) = folds[entry["fold"]]["test_subjects"]
        assert tested not in entry["calibration"]["real_subjects"]
        assert entry["synthetic_train"] > 0
