"""A calibration profile measured on a fold's test subject is refused: by the leakage check
itself, and by the synthetic remedies before they render anything. The profile comes from a
fake composite (apex-flow images + face crops) loaded with the manifest loader."""

from __future__ import annotations

import pytest

from mesynth.calibration.flow_images import calibrate_from_flows, read_flow_records
from mesynth.face.landmarks import create_detector
from recognizer.datasets import load
from recognizer.protocols import Fold
from recognizer.protocols.leakage import LeakageError, check_profile, profile_leaks
from recognizer.remedies import create_remedy
from recognizer.remedies.base import FoldContext
from tests.flow_fixtures import make_composite
from tests.profile_fixtures import EXAMPLE_PROFILE, make_profile


@pytest.fixture(scope="module")
def composite(tmp_path_factory):
    root = tmp_path_factory.mktemp("composite")
    made = make_composite(root, make_profile(0.08, (0.0, 0.0, 0.0), (0.03, 0.3), 2.0, 0.0))
    rows = load("manifest", made.manifest, dataset="composite").samples
    return made, rows


@pytest.fixture(scope="module")
def fold_profile(composite, tmp_path_factory):
    """Calibrated with the first subject held out, as for that subject's LOSO fold."""
    _, rows = composite
    subjects = sorted({r.subject for r in rows})
    flows = read_flow_records(rows)
    profile = calibrate_from_flows(flows, exclude=[subjects[0]], detector=create_detector("dlib"))
    path = profile.save(tmp_path_factory.mktemp("profile") / "profile.yaml")
    return subjects, path


def test_manifest_rows_give_qualified_subjects_and_faces(composite):
    made, rows = composite
    assert len(rows) == len(made.rows) and {r.subject for r in rows} == set(made.subjects)
    assert all(r.extra["face"].endswith(".png") for r in rows)


def test_profile_of_training_subjects_passes_its_fold_and_fails_others(fold_profile):
    subjects, path = fold_profile
    check_profile(0, path, [subjects[0]])  # the held-out subject: clean
    assert profile_leaks(path, [subjects[0]]) == []
    with pytest.raises(LeakageError, match=rf"\[profile\] .*profile.yaml.*{subjects[1]}"):
        check_profile(1, path, [subjects[1]])
    # other spellings of the same subject still match (case, zero padding)
    assert subjects[1] == "fake/s01"
    for spelling in ("FAKE/S01", "fake/s1"):
        assert profile_leaks(path, [spelling]) != [], spelling


def test_profile_without_subjects_is_not_refused(tmp_path):
    path = EXAMPLE_PROFILE.save(tmp_path / "hand.yaml")
    assert profile_leaks(path, ["casme2/sub01"]) == []


def test_synthetic_remedy_refuses_a_leaking_profile_before_rendering(fold_profile, tmp_path):
    subjects, path = fold_profile
    remedy = create_remedy(
        "synth_fill",
        synthesis={"effects": str(path), "size": 32, "device": "cpu"},
        cache_dir=str(tmp_path / "cache"),
    )
    fold = Fold(1, frozenset(subjects[2:]), frozenset(), frozenset([subjects[1]]))
    context = FoldContext(fold, [], [], ["negative", "positive", "surprise"], tmp_path / "f")
    with pytest.raises(LeakageError, match=rf"(?s)fold 1: .*recipe.effects.path .*{subjects[1]}"):
        remedy.data.fold_data(context)
    assert not (tmp_path / "cache").exists()
