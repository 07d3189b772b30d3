"""`mesynth calibrate` and `mesynth realism` end to end on manifests of fake clips."""

from __future__ import annotations

import numpy as np
from conftest import move, quantise, similarity_about

from mesynth.calibration.profile import CalibrationProfile
from mesynth.cli.main import main


def _manifest(folder, face, n, shift_px, noise, seed, source):
    image, landmarks = face
    rng = np.random.default_rng(seed)
    folder.mkdir()
    lines = ["subject,clip,label,path,onset,apex,offset,fps,aus,source"]
    for i in range(n):
        apex = move(image, similarity_about(landmarks, *rng.normal(0, shift_px, 2), 0.0, 1.0))
        np.save(folder / f"c{i}.npy", np.stack([quantise(f, noise, rng) for f in (image, apex)]))
        label = ("happiness", "surprise")[i % 2]
        lines.append(f"s{i % 4},c{i},{label},c{i}.npy,0,1,1,100,12,{source}")
    (folder / "manifest.csv").write_text("\n".join(lines) + "\n")
    return folder / "manifest.csv"


def _realism(tmp_path, real, synthetic, out_dir, *extra: str) -> list[str]:
    """``mesynth realism`` of two manifests, writing ``out_dir``."""
    return [
        "realism",
        f"paths.root_dir={tmp_path}",
        "data=manifest",
        f"data.loader.root={real}",
        "synthetic.name=manifest",
        f"synthetic.root={synthetic}",
        f"out_dir={out_dir}",
        "scheme=null",
        *extra,
    ]


def test_calibrate_and_realism_commands(aligned_face, tmp_path, capsys):
    real = _manifest(tmp_path / "real", aligned_face, 12, 1.0, 3.0, 0, "real")
    synthetic = _manifest(tmp_path / "syn", aligned_face, 12, 0.0, 0.0, 1, "synthetic")
    common = [f"paths.root_dir={tmp_path}", "data=manifest", f"data.loader.root={real}"]
    profile_path = tmp_path / "profile.yaml"
    assert main(["calibrate", *common, f"out={profile_path}", "progress=false"]) == 0
    profile = CalibrationProfile.load(profile_path)
    assert profile.source["n_measured"] == 12
    assert profile.noise_sigma.median > 2.0
    report_dir = tmp_path / "report"
    assert main(_realism(tmp_path, real, synthetic, report_dir, "n_permutations=5")) == 0
    out = capsys.readouterr().out
    assert "domain classifier: balanced accuracy" in out
    text = (report_dir / "report.md").read_text()
    assert "12 real and 12 synthetic clips" in text
    assert (report_dir / "class_means.png").is_file()


def test_generate_with_a_profile_from_the_command_line(aligned_face, tmp_path, capsys):
    real = _manifest(tmp_path / "real", aligned_face, 6, 1.0, 3.0, 0, "real")
    profile_path = tmp_path / "profile.yaml"
    common = [f"paths.root_dir={tmp_path}", "progress=false"]
    args = ["calibrate", *common, "data=manifest", f"data.loader.root={real}"]
    assert main([*args, f"out={profile_path}"]) == 0
    store = tmp_path / "store"
    generate = [
        "generate",
        *common,
        "recipe.size=48",
        "recipe.frames.mode=onset_apex",
        "recipe.device=cpu",
        "recipe.motion.apex_iod=profile",
        "mesynth.plan.n_per_class=1",
        f"out_dir={store}",
        "recipe/effects=profile",
    ]
    assert main([*generate, f"recipe.effects.path={profile_path}"]) == 0
    assert "motion: apex_iod" in capsys.readouterr().out
    meta = (store / "meta.json").read_text()
    assert '"kind": "profile"' in meta and str(profile_path) in meta
    assert len((store / "manifest.csv").read_text().splitlines()) == 1 + 7
    for path, message in (
        (None, "no calibration profile given"),
        (tmp_path / "no.yaml", "no.yaml"),
    ):
        override = [] if path is None else [f"recipe.effects.path={path}"]
        # a user error: one line naming the problem, exit status 2, nothing written
        assert main([*generate, f"out_dir={tmp_path / 'other'}", *override]) == 2
        err = capsys.readouterr().err.replace(f"{tmp_path}/", "")
        assert err.startswith("mesynth: error: ") and message in err and "Traceback" not in err
        assert not (tmp_path / "other").exists()


def test_realism_command_compares_before_and_after_calibration(aligned_face, tmp_path, capsys):
    real = _manifest(tmp_path / "real", aligned_face, 10, 1.0, 3.0, 0, "real")
    clean = _manifest(tmp_path / "clean", aligned_face, 10, 0.0, 0.0, 1, "synthetic")
    tuned = _manifest(tmp_path / "tuned", aligned_face, 10, 1.0, 3.0, 2, "synthetic")
    report_dir = tmp_path / "report"
    search = tmp_path / "search"  # a search's out_dir: the report reads its history.csv
    search.mkdir()
    rows = ["trial,accuracy,objective,best_accuracy", "0,0.9,0.4,0.9", "1,0.55,0.05,0.55"]
    (search / "history.csv").write_text("\n".join(rows) + "\n")
    extra = [f"calibrated={tuned}", f"history={search}", "n_permutations=0"]
    assert main(_realism(tmp_path, real, clean, report_dir, *extra)) == 0
    out = capsys.readouterr().out
    assert "real vs uncalibrated: balanced accuracy" in out
    assert "real vs calibrated: balanced accuracy" in out
    text = (report_dir / "report.md").read_text()
    assert "10 real, 10 uncalibrated, 10 calibrated clips" in text
    assert (report_dir / "strain_histograms.png").is_file()
    assert (report_dir / "search_history.png").is_file() and "best trial 1" in text


def test_calibrate_adversarial_command_searches_clips(aligned_face, tmp_path, capsys):
    real = _manifest(tmp_path / "real", aligned_face, 8, 1.0, 3.0, 0, "real")
    out = tmp_path / "search"
    args = [
        "calibrate-adversarial",
        f"paths.root_dir={tmp_path}",
        "data=manifest",
        f"data.loader.root={real}",
        "recipe.size=48",
        "recipe.scheme=dfme7",
        "trials=2",
        "clips=7",
        "input=clip",
        "num_frames=2",
        "progress=false",
        f"out_dir={out}",
    ]
    assert main(args) == 0
    assert "2 trials" in capsys.readouterr().out
    profile = CalibrationProfile.load(out / "profile.yaml")
    assert profile.source["representation"] == "clip"


def test_realism_command_compares_frame_differences(aligned_face, tmp_path):
    real = _manifest(tmp_path / "real", aligned_face, 6, 1.0, 3.0, 0, "real")
    clean = _manifest(tmp_path / "clean", aligned_face, 6, 0.0, 0.0, 1, "synthetic")
    report_dir = tmp_path / "report"
    assert main(_realism(tmp_path, real, clean, report_dir, "input=clip", "n_permutations=0")) == 0
    text = (report_dir / "report.md").read_text()
    assert "Representation: `clip`" in text and "| d1 |" in text
