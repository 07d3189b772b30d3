"""`make demo`'s pieces: progress while generating, the balanced set, what the demo can and
cannot show (chance, folds), the synthetic clips trained on and the comparison hook."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from recognizer.studies.demo import (
    chance_levels,
    clip_progress,
    comparison_section,
    describe_balanced_set,
    generate_balanced_set,
    limits_section,
    used_synthetic_section,
)


def test_clip_progress_prints_a_few_lines_with_the_time_left(capsys) -> None:
    on_clip = clip_progress(10, "generate", lines=4)
    for _ in range(10):
        on_clip(None)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" clips")[0] for line in lines] == [
        "generate: 3/10", "generate: 6/10", "generate: 9/10", "generate: 10/10",
    ]  # fmt: skip
    assert all("s left" in line for line in lines) and lines[-1].endswith("about 0 s left")


def test_the_balanced_set_is_shown_with_counts_histogram_and_key_frames(tmp_path, capsys) -> None:
    store = generate_balanced_set(tmp_path / "out" / "balanced_store", per_class=2)
    out = capsys.readouterr().out
    assert "generate: 14/14 clips" in out and "14 written" in out
    lines = describe_balanced_set(store, tmp_path / "out" / "balanced_set", tmp_path / "out")
    text = "\n".join(lines)
    assert "14 clips from" in text
    for emotion in ("anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise"):
        assert f"| {emotion} | 2 |" in text
    assert "(balanced_set/class_histogram.png)" in text and "(balanced_set/key_frames.png)" in text
    for name in ("class_histogram.png", "key_frames.png"):
        assert (tmp_path / "out" / "balanced_set" / name).stat().st_size > 5000
    # a rerun finds the clips there and renders none
    generate_balanced_set(store, per_class=2)
    assert "0 written, 14 already there" in capsys.readouterr().out


def test_chance_levels_of_a_label_distribution() -> None:
    chance = chance_levels([1, 1, 2])
    assert chance["uniform"]["UAR"] == chance["majority"]["UAR"] == pytest.approx(1 / 3)
    assert chance["uniform"]["ACC"] == pytest.approx(1 / 3)
    assert chance["majority"]["ACC"] == pytest.approx(0.5)
    # majority: F1 of the largest class 2 * 0.5 / 1.5, the others 0
    assert chance["majority"]["UF1"] == pytest.approx(2 / 3 / 3)
    # random guess: class k has precision p_k and recall 1/3
    expected = np.mean([2 * p / 3 / (p + 1 / 3) for p in (0.25, 0.25, 0.5)])
    assert chance["uniform"]["UF1"] == pytest.approx(expected)


def test_the_report_states_chance_and_the_folds_as_checked() -> None:
    text = "\n".join(limits_section({"a": 3, "b": 1}, "2 person-independent folds."))
    assert "UAR 1/K = 1/2 = 0.500" in text
    assert "| always the largest class | 0.429 | 0.500 | 0.750 |" in text
    assert "2 person-independent folds." in text


def test_the_synthetic_clips_trained_on_are_read_from_the_fold_folders(tmp_path) -> None:
    run = tmp_path / "run"
    for index, (person, added) in enumerate((("hopper", 2), ("astronaut", 3))):
        fold = run / f"fold_{index:02d}"
        fold.mkdir(parents=True)
        report = {"synthetic_persons": {person: added * 7}, "synthetic_excluded_clips": 5,
                  "synthetic_pool": 40, "synthetic_store": str(tmp_path / "missing")}  # fmt: skip
        counts = {"real": [4] * 7, "train": [4 + added] * 7, "remedy": report}
        (fold / "class_counts.json").write_text(json.dumps(counts))
    text = "\n".join(used_synthetic_section(run, tmp_path / "figs", tmp_path))
    assert "| 00 | 2 | 2 | 2 | 2 | 2 | 2 | 2 | 14 | hopper 14 | 5 of 40 |" in text
    assert "| 01 | 3 | 3 | 3 | 3 | 3 | 3 | 3 | 21 | astronaut 21 | 5 of 40 |" in text
    assert used_synthetic_section(tmp_path / "nothing", tmp_path, tmp_path) == []


def test_the_comparison_section_reads_the_runs_with_a_paired_interval(tmp_path) -> None:
    from recognizer.evaluation.compare import Arm, compare_arms

    truth = [0, 1, 2, 0, 1, 2, 0, 1] * 2
    subjects = [f"target/p{i // 4}" for i in range(len(truth))]
    guesses = {"none": [0] * 16, "synth_fill": truth[:12] + [0] * 4}
    for remedy, predicted in guesses.items():
        folder = tmp_path / "runs" / remedy / "seed0"
        folder.mkdir(parents=True)
        table = pd.DataFrame({"index": range(16), "subject": subjects, "true": truth,
                              "predicted": predicted})  # fmt: skip
        table.to_csv(folder / "predictions.csv", index=False)
        settings = {"remedy": {"name": remedy}, "trainer": {"seed": 0}}
        (folder / "results.json").write_text(json.dumps({"settings": settings}))
    text = "\n".join(comparison_section(tmp_path / "runs"))
    expected = compare_arms(
        [Arm(r, {0: pd.read_csv(tmp_path / "runs" / r / "seed0" / "predictions.csv")})
         for r in ("none", "synth_fill")], "none",
    ).differences.set_index("metric")  # fmt: skip
    assert f"| synth_fill | UF1 | {expected.loc['UF1', 'diff']:+.3f} |" in text
    assert "1 seed: the interval covers subjects only" in text
    assert "(at or below chance)" in text  # `none` always answers class 0
    assert comparison_section(tmp_path / "nothing")[2].startswith("No paired comparison")
