"""recognizer.evaluation.compare: paired bootstrap intervals over subjects and seeds, chance
levels, and `mer compare` end to end on runs the test makes."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, recall_score

from recognizer.cli import main as mer_main
from recognizer.evaluation.compare import (
    Arm,
    CompareError,
    arms_from_runs,
    chance_levels,
    compare_arms,
    metrics_from_confusion,
    read_arm,
)
from recognizer.evaluation.metrics import confusion_matrix


def _table(true: list[int], predicted: list[int], subjects: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {"index": range(len(true)), "subject": subjects, "true": true, "predicted": predicted}
    )


def _random_arm(name: str, accuracy: float, seeds: int, n_subjects: int = 12) -> Arm:
    truth = np.random.default_rng(99).integers(0, 3, n_subjects * 8)
    subjects = [f"d/s{i // 8:02d}" for i in range(len(truth))]
    runs = {}
    for seed in range(seeds):
        rng = np.random.default_rng([seed, int(accuracy * 100)])
        guess = rng.integers(0, 3, len(truth))
        predicted = np.where(rng.random(len(truth)) < accuracy, truth, guess)
        runs[seed] = _table(truth.tolist(), predicted.tolist(), subjects)
    return Arm(name, runs)


# ------------------------------------------------------------------ metrics and chance


def test_metrics_from_confusion_match_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        t, p = rng.integers(0, 4, 40), rng.integers(0, 4, 40)
        p[rng.random(40) < 0.3] = 3  # a class often predicted, sometimes never true
        t[t == 2] = 1  # class 2 never true
        matrix = confusion_matrix(t, p, labels=range(4))
        got = metrics_from_confusion(matrix)
        present = np.unique(np.concatenate([t, p]))
        assert got["UF1"] == pytest.approx(f1_score(t, p, labels=present, average="macro"))
        assert got["UAR"] == pytest.approx(recall_score(t, p, labels=np.unique(t), average="macro"))
        assert got["ACC"] == pytest.approx(accuracy_score(t, p))


def test_chance_levels_match_a_monte_carlo_uniform_guess_on_skewed_labels() -> None:
    rng = np.random.default_rng(1)
    labels = rng.choice(3, size=60_000, p=[0.6, 0.3, 0.1])
    guess = rng.integers(0, 3, labels.size)
    chance = chance_levels(labels)
    assert chance["UAR"] == pytest.approx(1 / 3)
    assert chance["UF1"] == pytest.approx(f1_score(labels, guess, average="macro"), abs=0.005)
    assert chance["ACC"] == pytest.approx(accuracy_score(labels, guess), abs=0.005)
    assert chance["ACC (majority)"] == pytest.approx(np.mean(labels == 0))
    # a class of the scheme absent from the test labels still counts in K
    assert chance_levels([0, 0, 1], num_classes=4)["UAR"] == 0.25


# ------------------------------------------------------------------ the bootstrap


def test_interval_matches_a_hand_enumerated_bootstrap_over_three_subjects() -> None:
    """One seed, three subjects: all 27 equally likely subject resamples, enumerated by hand.
    The extreme resamples each have probability 1/27 > 2.5 %, so the 95 % percentile
    interval is [smallest, largest] difference of the enumeration."""
    subjects = ["d/a"] * 4 + ["d/b"] * 4 + ["d/c"] * 4
    true = [0, 1, 2, 0, 1, 1, 2, 0, 2, 2, 0, 1]
    base_pred = [0, 0, 2, 1, 1, 2, 2, 2, 0, 2, 1, 1]
    arm_pred = [0, 1, 2, 0, 1, 0, 2, 2, 2, 1, 0, 1]
    base = Arm("none", {0: _table(true, base_pred, subjects)})
    arm = Arm("fill", {0: _table(true, arm_pred, subjects)})
    comparison = compare_arms([base, arm], "none", n_resamples=20_000, seed=3)

    t, pa, pb, s = (np.asarray(v) for v in (true, arm_pred, base_pred, subjects))
    for metric, score in (
        ("UF1", lambda y, q: f1_score(y, q, labels=np.unique(np.r_[y, q]), average="macro")),
        ("UAR", lambda y, q: recall_score(y, q, labels=np.unique(y), average="macro")),
        ("ACC", accuracy_score),
    ):
        diffs = []
        for draw in itertools.product("abc", repeat=3):
            rows = np.concatenate([np.flatnonzero(s == f"d/{x}") for x in draw])
            diffs.append(score(t[rows], pa[rows]) - score(t[rows], pb[rows]))
        row = comparison.differences.set_index("metric").loc[metric]
        assert row["diff"] == pytest.approx(score(t, pa) - score(t, pb))
        assert row["lo"] == pytest.approx(min(diffs), abs=1e-9)
        assert row["hi"] == pytest.approx(max(diffs), abs=1e-9)
        assert "1 seed" in row["verdict"]


def test_identical_runs_give_zero_and_no_evidence() -> None:
    base = _random_arm("none", 0.5, seeds=3)
    same = Arm("copy", {k: v.copy() for k, v in base.runs.items()})
    comparison = compare_arms([base, same])
    for _, row in comparison.differences.iterrows():
        assert row["diff"] == 0 and row["lo"] == 0 and row["hi"] == 0
        assert row["verdict"].startswith("no evidence of a difference")
        assert row["pairing"] == "subjects and seeds (paired by seed)"


def test_a_clearly_better_arm_is_called_better_and_a_worse_one_worse() -> None:
    base = _random_arm("none", 0.4, seeds=3)
    good = _random_arm("good", 0.9, seeds=3)
    comparison = compare_arms([base, good], "none", n_resamples=500)
    rows = comparison.differences.set_index("metric")
    assert (rows["lo"] > 0).all() and rows["verdict"].str.startswith("better").all()
    reverse = compare_arms([good, base], "good", n_resamples=500).differences
    assert (reverse["hi"] < 0).all() and reverse["verdict"].str.startswith("worse").all()


def test_seed_noise_widens_the_interval_and_other_seed_sets_are_resampled_independently() -> None:
    base = _random_arm("none", 0.5, seeds=4)
    arm = Arm("fill", {s + 10: t for s, t in _random_arm("x", 0.55, seeds=4).runs.items()})
    comparison = compare_arms([base, arm], n_resamples=500)
    assert comparison.differences["pairing"].str.contains("independently").all()
    one = compare_arms([Arm("none", {0: base.runs[0]}), Arm("fill", {0: arm.runs[10]})],
                       n_resamples=500)  # fmt: skip
    assert one.differences["pairing"].iloc[0].startswith("subjects only")


def test_bad_input_names_the_arm() -> None:
    base = _random_arm("none", 0.5, seeds=2)
    other = _random_arm("fill", 0.5, seeds=2, n_subjects=10)
    with pytest.raises(CompareError, match="arm 'fill', seed 0 holds other test samples"):
        compare_arms([base, other])
    with pytest.raises(CompareError, match="baseline 'oversample' is not one of the arms"):
        compare_arms([base, _random_arm("fill", 0.6, seeds=2)], "oversample")
    with pytest.raises(CompareError, match="at least two arms"):
        compare_arms([base])


def test_reading_arms_from_folders(tmp_path: Path) -> None:
    def write(folder: Path, table: pd.DataFrame, seed: int, remedy: str) -> None:
        folder.mkdir(parents=True)
        table.to_csv(folder / "predictions.csv", index=False)
        settings = {"trainer": {"seed": seed}, "remedy": {"name": remedy}, "model": "m",
                    "protocol_name": "loso"}  # fmt: skip
        (folder / "results.json").write_text(json.dumps({"settings": settings}))

    base = _random_arm("none", 0.5, seeds=2)
    for seed, table in base.runs.items():
        write(tmp_path / "none" / f"seed_{seed}", table, seed, "none")
        write(tmp_path / "fill" / f"seed_{seed}", table, seed, "synth_fill")
    arm = read_arm("none", tmp_path / "none")
    assert arm.seeds == [0, 1]
    assert [a.name for a in arms_from_runs([tmp_path])] == ["synth_fill", "none"]
    with pytest.raises(CompareError, match="does not exist"):
        read_arm("gone", tmp_path / "gone")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CompareError, match=r"arm 'empty': no run \(results.json\)"):
        read_arm("empty", tmp_path / "empty")
    write(tmp_path / "none" / "again", base.runs[0], 0, "none")
    with pytest.raises(CompareError, match="seed 0 twice"):
        read_arm("none", tmp_path / "none")


# ------------------------------------------------------------------ mer compare end to end


def test_mer_compare_on_real_runs_writes_tables_that_match_the_library(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from tests.flow_fixtures import write_flow_manifest

    composite = write_flow_manifest(tmp_path / "composite")
    for remedy in ("none", "oversample"):
        argv = [
            "train", "data=manifest", f"data.loader.root={composite / 'manifest.csv'}",
            "representation=apex_flow", "model=ststnet", "trainer=ststnet",
            "protocol=loso", "protocol.val_fraction=0", f"remedy={remedy}",
            "trainer.epochs=2", "trainer.batch_size=8", "trainer.device=cpu",
            "trainer.progress=false", "trainer.seeds=[0,1]",
            f"out_dir={tmp_path / remedy}", f"paths.root_dir={tmp_path}",
        ]  # fmt: skip
        assert mer_main(argv) == 0
    out = tmp_path / "compare"
    argv = [
        "compare", f"arms={{none: {tmp_path / 'none'}, oversample: {tmp_path / 'oversample'}}}",
        "baseline=none", "n_resamples=300", f"out_dir={out}", f"paths.root_dir={tmp_path}",
    ]  # fmt: skip
    assert mer_main(argv) == 0
    assert "Paired difference to `none`" in capsys.readouterr().out
    assert (out / "compare.png").stat().st_size > 0
    written = pd.read_csv(out / "compare.csv")
    expected = compare_arms(
        [read_arm("none", tmp_path / "none"), read_arm("oversample", tmp_path / "oversample")],
        "none",
        n_resamples=300,
    ).table()
    assert written["arm"].tolist() == expected["arm"].tolist()
    np.testing.assert_allclose(written["mean"], expected["mean"])
    rows = written[written["arm"] == "oversample"]
    np.testing.assert_allclose(rows["lo"], expected[expected["arm"] == "oversample"]["lo"])
    assert (rows["seeds"] == 2).all()
    # the same section lands in `mer report`
    report = tmp_path / "report"
    argv = ["report", f"runs=[{tmp_path / 'none'},{tmp_path / 'oversample'}]",
            f"out_dir={report}", f"paths.root_dir={tmp_path}"]  # fmt: skip
    assert mer_main(argv) == 0
    assert "## Comparison with none" in (report / "report.md").read_text()
    # bad input: one line naming the problem
    assert mer_main(["compare", f"out_dir={tmp_path / 'x'}"]) == 2
    assert "mer compare needs either" in capsys.readouterr().err


def test_subjects_of_one_unit_are_resampled_together() -> None:
    base = _random_arm("none", 0.4, seeds=2, n_subjects=6)
    good = _random_arm("good", 0.9, seeds=2, n_subjects=6)
    persons = {f"d/s{i:02d}": f"person{i % 2}" for i in range(6)}
    together = compare_arms([base, good], unit_of=persons, n_resamples=400)
    apart = compare_arms([base, good], n_resamples=400)
    assert together.subjects == 2 and apart.subjects == 6
    # the point estimate does not depend on the unit, only the interval does
    np.testing.assert_allclose(together.differences["diff"], apart.differences["diff"])
    assert not np.allclose(together.differences["lo"], apart.differences["lo"])
