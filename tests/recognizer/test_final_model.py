"""``mer train protocol=all``: one model on every sample, no test score, and ``final.pt``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mesynth.labels.emotions import scheme_labels
from recognizer.cli import main as mer_main
from recognizer.evaluation.compare import CompareError, read_arm
from recognizer.evaluation.grid import collect
from recognizer.evaluation.report import results_table
from recognizer.inference.clip_input import PredictInputError, frame_of
from recognizer.protocols import create_protocol
from recognizer.training.final_model import FinalModelError, load_final_model
from tests.recognizer.test_experiment_cli import blob_store


def test_protocol_all_is_one_fold_training_every_subject_without_a_test_set() -> None:
    (fold,) = create_protocol("all").split(["a", "b", "a", "c"], [0, 1, 0, 1])
    assert fold.train_subjects == {"a", "b", "c"} and not fold.test_subjects
    (one,) = create_protocol("all").split(["a", "a"], [0, 1])  # one subject is enough
    assert one.train_subjects == {"a"}
    (held,) = create_protocol("all", val_fraction=0.4).split(list("abcde"), [0, 1, 0, 1, 0])
    assert len(held.val_subjects) == 2 and len(held.train_subjects) == 3


def test_mer_train_protocol_all_writes_final_pt_that_rebuilds_the_model(tmp_path, capsys) -> None:
    store = blob_store(tmp_path / "store")
    run = tmp_path / "run"
    args = [
        "train", f"data.loader.root={store}", "data.scheme=dfme7", "protocol=all",
        "representation.num_frames=4", "representation.size=16", "+model.widths=[4,4,4,4]",
        "trainer=debug", "trainer.progress=false", "trainer.lr=0.05", "trainer.epochs=2",
        f"out_dir={run}", f"paths.root_dir={tmp_path}",
    ]  # fmt: skip
    assert mer_main(args) == 0
    assert "no test score" in capsys.readouterr().out
    results = json.loads((run / "results.json").read_text())
    assert results["has_test"] is False and results["pooled"] is None
    assert results["settings"]["protocol_name"] == "all"
    table = results_table([run])  # reports read it without crashing
    assert table.loc[0, "N"] == 0 and np.isnan(table.loc[0, "UF1"])
    with pytest.raises(FileNotFoundError, match="no run with test scores"):
        collect([run], tmp_path / "collected")
    with pytest.raises(CompareError, match="protocol=all"):
        read_arm("final", run)

    final = load_final_model(run)
    assert final.classes == list(scheme_labels("dfme7")) and final.scheme == "dfme7"
    assert final.info["model"]["kwargs"] == {"widths": [4, 4, 4, 4]}
    assert final.representation.num_frames == 4 and final.representation.size == 16
    # the weights are the fold's last weights, exactly
    last = torch.load(run / "fold_00/last.pt", weights_only=True)["model"]
    for key, value in final.model.state_dict().items():
        assert torch.equal(value, last[key]), key
    x = torch.zeros(1, 3, 4, 16, 16)
    assert final.model(x).shape == (1, len(final.classes))

    # rerunning resumes (the fold is reused), and evaluate refuses a run without test folds
    assert mer_main(args) == 0
    assert mer_main(["evaluate", f"data.loader.root={store}", f"run_dir={run}",
                     f"out_dir={tmp_path / 'ev'}", f"paths.root_dir={tmp_path}",
                     "representation.num_frames=4", "representation.size=16",
                     "+model.widths=[4,4,4,4]", "trainer=debug"]) == 2  # fmt: skip
    assert "protocol=all" in capsys.readouterr().err


def test_a_run_without_final_pt_is_one_clear_error(tmp_path) -> None:
    with pytest.raises(FinalModelError, match="protocol=all"):
        load_final_model(tmp_path)


@pytest.mark.parametrize(
    ("value", "expected"), [(None, None), (3, 3), ("3", 3), ("0.1s", 5), ("100ms", 5), ("0s", 2)]
)
def test_times_are_frame_numbers_or_seconds_from_the_first_frame(value, expected) -> None:
    assert frame_of(value, fps=30.0, first=2, key="apex", path=Path("v.mp4")) == expected


@pytest.mark.parametrize("value", ["abc", "1.5", "-1", True])
def test_bad_times_are_refused_with_the_key(value) -> None:
    with pytest.raises(PredictInputError, match="apex"):
        frame_of(value, fps=30.0, first=0, key="apex", path=Path("v.mp4"))


def test_seconds_need_a_frame_rate() -> None:
    with pytest.raises(PredictInputError, match="fps="):
        frame_of("0.4s", fps=None, first=0, key="onset", path=Path("frames"))
