"""The imbalance study: DFME proportions, and a tiny end-to-end run with its docs page."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recognizer.studies.imbalance import (
    DFME_COUNTS,
    StudyConfig,
    proportional_counts,
    run_study,
    write_study_page,
)


def test_proportional_counts_follow_dfme_table_1() -> None:
    counts = proportional_counts(140)
    assert sum(counts.values()) == 140 and list(counts) == list(DFME_COUNTS)
    shares = np.array(list(DFME_COUNTS.values())) / sum(DFME_COUNTS.values())
    assert np.abs(np.array(list(counts.values())) - shares * 140).max() < 1.0
    assert max(counts, key=counts.get) == "disgust" and min(counts, key=counts.get) == "contempt"
    assert min(proportional_counts(7).values()) == 1
    with pytest.raises(ValueError, match="at least the 7 classes"):
        proportional_counts(5)


def test_tiny_study_runs_remedies_on_the_same_folds_and_writes_its_page(tmp_path) -> None:
    cfg = StudyConfig(
        out_dir=tmp_path / "study", total_clips=28, target_copies=2, size=32, num_frames=4,
        input_size=16, remedies=("none", "synth_fill"), seeds=(0,), n_splits=2, epochs=1,
        widths=(4, 4, 4, 4), batch_size=8,
    )  # fmt: skip
    collected = run_study(cfg, log=False)
    assert list(collected.summary["remedy"]) == ["none", "synth_fill"]
    folds = [(tmp_path / "study" / "runs" / r / "seed0" / "folds.json").read_text()
             for r in cfg.remedies]  # fmt: skip
    assert folds[0] == folds[1]
    # person-independent: each fold tests every copy of one portrait and trains on the other's
    for fold in json.loads(folds[0]):
        tested = {s.split("/")[1].split("~")[0] for s in fold["test_subjects"]}
        trained = {s.split("/")[1].split("~")[0] for s in fold["train_subjects"]}
        assert len(tested) == len(trained) == 1 and tested != trained
        assert len(fold["test_subjects"]) == cfg.target_copies
    checked = (tmp_path / "study" / "folds_checked.txt").read_text()
    assert checked.startswith("2 person-independent folds, checked on the folds run")
    counts = json.loads(
        (tmp_path / "study" / "runs" / "synth_fill" / "seed0" / "fold_00" / "class_counts.json")
        .read_text()
    )["remedy"]  # fmt: skip
    first = json.loads(folds[0])[0]
    tested = {s.split("/")[1].split("~")[0] for s in first["test_subjects"]}
    assert counts["held_out_persons"] == sorted(tested)
    assert counts["synthetic_persons"] and not set(counts["synthetic_persons"]) & tested
    for remedy in cfg.remedies:  # every fold kept its training curves
        run = tmp_path / "study" / "runs" / remedy / "seed0"
        assert len(list(run.glob("fold_*/curves.csv"))) == cfg.n_splits
    report = collected.report.read_text()
    assert "| class | support | none P | none R | none F1 | synth_fill P |" in report
    assert "(curves_r3d18-tiny_kfold_synth_fill.png)" in report
    page = write_study_page(collected, cfg, tmp_path / "docs" / "study.md", 60.0)
    text = page.read_text()
    assert "synthetic stand-in" in text and "| synth_fill |" in text
    assert "k-fold over persons" in text and checked.strip() in text
    assert "±" not in text  # one seed: no spread to show
    assert "### Per class" in text and "img/study/curves_r3d18-tiny_kfold_none.png" in text
    images = tmp_path / "docs" / "img" / "study"
    for name in ("metrics.png", "per_class_f1_r3d18-tiny_kfold.png",
                 "curves_r3d18-tiny_kfold_none.png"):  # fmt: skip
        assert (images / name).stat().st_size > 1000
