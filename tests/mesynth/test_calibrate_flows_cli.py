"""`mesynth calibrate-flows` end to end on a fake composite manifest (apex-flow images + face
crops): measures, searches from the flow images, records the subjects it saw; bad input is
one line naming the subject or file."""

from __future__ import annotations

import json

import numpy as np

from mesynth.calibration.profile import CalibrationProfile
from mesynth.cli.main import main
from mesynth.face.canonical import STABLE_INDICES
from tests.flow_fixtures import make_composite
from tests.profile_fixtures import make_profile


def test_calibrate_flows_measures_searches_and_leaves_out_the_test_subject(tmp_path, capsys):
    made = make_composite(
        tmp_path / "composite", make_profile(0.08, (0.0, 0.0, 0.0), (0.03, 0.3), 2.0, 0.0)
    )
    out_dir = tmp_path / "out"
    args = [
        "calibrate-flows",
        f"paths.root_dir={tmp_path}",
        f"data.loader.root={made.manifest}",
        f"exclude=[{made.subjects[0]}]",
        f"out_dir={out_dir}",
        "recipe.size=48",
        "recipe.device=cpu",
        "recipe.timing.fps=60",
        "clips=14",
        "progress=false",
    ]
    assert main([*args, "trials=2"]) == 0
    out = capsys.readouterr().out
    kept = sum(row.subject != made.subjects[0] for row in made.rows)
    assert f"measured {kept} flow images of 7 subjects, 7 face crops" in out
    measured = CalibrationProfile.load(out_dir / "measured.yaml")
    searched = CalibrationProfile.load(out_dir / "profile.yaml")
    for profile in (measured, searched):
        assert profile.source["real_subjects"] == sorted(made.subjects[1:])
    assert searched.source["real_input"] == "apex_flow_images"
    assert measured.framing.landmarks is not None
    # generate renders with it: its effects, its apex size and its framing
    store = tmp_path / "store"
    generate = [
        "generate",
        f"paths.root_dir={tmp_path}",
        "recipe/effects=profile",
        f"recipe.effects.path={out_dir / 'profile.yaml'}",
        "recipe.motion.apex_iod=profile",
        "recipe.identities.framing=profile",
        "recipe.identities.landmark_backend=dlib",
        "recipe.size=48",
        "recipe.frames.mode=onset_apex",
        "recipe.device=cpu",
        "mesynth.plan.n_per_class=1",
        f"out_dir={store}",
        "progress=false",
    ]
    assert main(generate) == 0
    meta = json.loads((store / "meta.json").read_text())
    target = searched.framing.target()[STABLE_INDICES] * 48
    for name, points in meta["identity_landmarks"].items():
        error = np.linalg.norm(np.asarray(points)[STABLE_INDICES] - target, axis=1)
        assert error.max() < 0.1 * 48, name  # the portraits sit on the searched framing
    # a subject that is not in the manifest is a one-line user error naming it
    assert main([*args, "trials=0", "subjects=[fake/s42]"]) != 0
    err = capsys.readouterr().err
    assert "fake/s42" in err and "Traceback" not in err
