"""Synthetic pretraining under batched folds: one pretraining per subject group
(``remedy.pretrain_groups``), leak-free by the calibration groups' rule, then every fold
fine-tuned together from its group's weights.

The synthetic pool is given in memory (:class:`MemoryPool`): one ``28×28`` apex-flow image per
clip, each clip animating the face of one real subject (its provenance says so), so a group's
set must leave out exactly the clips of the group's subjects. Batched-vs-sequential equality
uses the stacked model with STSTNet's own per-stream operations and the tolerance of
``tests/recognizer/test_batched.py`` (1e-6 on weights).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import recognizer.experiments.runner as experiment
from recognizer.data.representations import ApexFlow
from recognizer.data.samples import Sample
from recognizer.data.torch_dataset import ClipDataset
from recognizer.experiments.runner import run_protocol
from recognizer.models import create_model
from recognizer.protocols import create_protocol
from recognizer.protocols.leakage import LeakageError, find_leaks, provenance
from recognizer.remedies import FoldContext, Remedy
from recognizer.remedies.calibration import subject_groups
from recognizer.remedies.synthetic import SynthesisError, SyntheticData, SyntheticSet
from recognizer.training.batched import StackedSTSTNet
from recognizer.training.trainer import TrainerConfig, read_checkpoint
from tests.recognizer.test_batched import per_stream_forward
from tests.recognizer.test_fast_path import ImageSource

NAMES = ["negative", "positive", "surprise"]
SUBJECTS = [f"real/s{i}" for i in range(6)]
GROUPS = 3


def _real() -> tuple[list[Sample], list[int]]:
    samples, labels = [], []
    for i in range(24):
        label = i % 3
        subject = SUBJECTS[i % len(SUBJECTS)]
        samples.append(Sample("real", subject, f"c{i}", (), (), 0, 0, 0, 30.0, NAMES[label]))
        labels.append(label)
    return samples, labels


def _synthetic() -> tuple[list[Sample], list[int]]:
    """Per subject and class, two clips animating that subject's face (expert templates)."""
    samples, labels = [], []
    for subject in SUBJECTS:
        for label in range(3):
            for copy in range(2):
                face = subject.split("/")[1]
                extra = provenance(identity_subject=subject, identity_person=subject)
                samples.append(
                    Sample("mesynth", f"mesynth/{face}", f"syn{label}{copy}", (), (), 0, 0, 0,
                           30.0, NAMES[label], source="synthetic", identity=face, extra=extra)
                )  # fmt: skip
                labels.append(label)
    return samples, labels


def _images() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    images = {}
    for sample in _real()[0] + _synthetic()[0]:
        image = rng.integers(0, 200, (28, 28, 3)).astype(np.uint8)
        label = NAMES.index(sample.emotion)
        image[4 + 6 * label : 12 + 6 * label, :, label] = 255  # a class signal
        images[sample.uid] = image
    return images


IMAGES = _images()


@dataclass(frozen=True)
class MemoryPool(SyntheticData):
    """The synthetic remedy with its pool given in memory instead of rendered."""

    def load_pool(self, context: FoldContext) -> tuple[SyntheticSet, str]:
        samples, labels = _synthetic()
        return SyntheticSet(Path("memory"), "memory", samples, labels, made=False), "given"


def _remedy(groups: int | str = GROUPS, mode: str = "pretrain") -> Remedy:
    name = f"synth_{mode}"
    return Remedy(name, data=MemoryPool(mode=mode, n_per_class=6, pretrain_epochs=2,
                                        pretrain_groups=groups, pretrain_seed=3))  # fmt: skip


def _factory(subset, subset_labels, train):
    return ClipDataset(subset, subset_labels, ApexFlow(), train=train, source=ImageSource(IMAGES))


def _run(tmp_path, name: str, remedy: Remedy, **kw):
    samples, labels = _real()
    config = {"batch_size": 8, "progress": False, "device": "cpu", "lr": 0.01, "epochs": 2,
              "optimizer": "adam", "data_path": "memory", "threads": 1, **kw}  # fmt: skip
    return run_protocol(
        samples, labels, protocol="loso", dataset_factory=_factory,
        model_factory=lambda k: create_model("ststnet", k), remedy=remedy,
        trainer_config=TrainerConfig(**config), out_dir=tmp_path / name, num_classes=3,
        class_names=NAMES,
    )  # fmt: skip


def _counted(real, calls: list[int]):
    """``real`` (:func:`recognizer.experiments.runner.pretrain_group`), noting each group it
    trains."""

    def counted(data, folder, **kw):
        calls.append(data.pretrain_group)
        return real(data, folder, **kw)

    return counted


def _records(result) -> dict[int, dict]:
    """``{fold: its results.json fold_data entry}``."""
    return {entry["fold"]: entry for entry in result.summary["fold_data"]}


def test_each_group_pretrains_once_and_folds_fine_tune_batched(
    tmp_path, monkeypatch, capsys
) -> None:
    calls: list[int] = []
    monkeypatch.setattr(experiment, "pretrain_group", _counted(experiment.pretrain_group, calls))
    result = _run(tmp_path, "run", _remedy(), batched_folds=True)
    groups = subject_groups(SUBJECTS, GROUPS, seed=3)
    assert sorted(calls) == [0, 1, 2]  # one pretraining per group, not one per fold
    assert len(list((tmp_path / "run/pretrain").iterdir())) == GROUPS
    out = capsys.readouterr().out
    assert "batched folds: off" not in out
    assert "batched folds: training 6 folds together (0..5)" in out
    records = _records(result)
    for fold in result.folds:
        (subject,) = fold.test_subjects
        record = records[fold.index]
        assert record["pretrain"]["group"] == groups[subject]
        assert record["pretrain"]["scope"] == f"group_{groups[subject]}"
        assert (tmp_path / "run" / record["pretrain"]["weights"]).is_file()
        members = sorted(s for s, g in groups.items() if g == groups[subject])
        assert record["synthetic_group_subjects"] == members
        # 6 subjects in 3 groups: each set leaves out 2 subjects' 12 clips, takes 6 per class
        assert record["synthetic_pretrain"] == 18 and record["synthetic_excluded_clips"] == 12
    keys = Counter(records[f.index]["pretrain"]["key"] for f in result.folds)
    assert sorted(keys.values()) == [2, 2, 2]  # the two folds of a group share its weights


def test_a_fold_starts_from_its_groups_pretrained_weights(tmp_path, monkeypatch) -> None:
    starts: dict[int, dict[str, torch.Tensor]] = {}
    real = experiment.train_folds_batched

    def recording(jobs):
        for job in jobs:
            starts[job.fold] = {k: v.clone() for k, v in job.trainer.model.state_dict().items()}
        return real(jobs)

    monkeypatch.setattr(experiment, "train_folds_batched", recording)
    result = _run(tmp_path, "run", _remedy(), batched_folds=True)
    records = _records(result)
    assert sorted(starts) == list(range(6))
    for fold, start in starts.items():
        weights = read_checkpoint(tmp_path / "run" / records[fold]["pretrain"]["weights"])
        assert all(torch.equal(start[k], weights["model"][k]) for k in start)
        for other, theirs in starts.items():  # the same start exactly when the same group
            same = records[fold]["pretrain"]["group"] == records[other]["pretrain"]["group"]
            assert torch.equal(start["fc.weight"], theirs["fc.weight"]) == same


def test_no_group_pretraining_set_touches_its_subjects(tmp_path) -> None:
    samples, labels = _real()
    remedy = _remedy()
    groups = subject_groups(SUBJECTS, GROUPS, seed=3)
    folds = create_protocol("loso").split([s.subject for s in samples], np.asarray(labels))
    by_group: dict[int, set[str]] = {}
    for fold in folds:
        train = [i for i, s in enumerate(samples) if s.subject in fold.train_subjects]
        context = FoldContext(fold, [samples[i] for i in train], [labels[i] for i in train],
                              NAMES, tmp_path, pool=samples, pool_labels=labels)  # fmt: skip
        data = remedy.fold_data(context)
        (subject,) = fold.test_subjects
        group = data.pretrain_group
        assert group == groups[subject]
        members = {s for s, g in groups.items() if g == group}
        # the checker, on the set actually used, against every subject of the group
        assert find_leaks(data.pretrain, [], test_subjects=members) == []
        uids = {s.uid for s in data.pretrain}
        assert by_group.setdefault(group, uids) == uids  # one set per group
        touched = {s.extra["identity_subject"] for s in data.pretrain}
        assert touched and touched <= set(SUBJECTS) - members  # faces of other groups only
    assert len(by_group) == GROUPS


def test_a_group_set_of_another_group_is_refused(tmp_path, monkeypatch) -> None:
    remedy = _remedy()
    real = SyntheticData.group_scope

    def wrong(self, context):  # a planted leak: the set of the next group
        scope = real(self, context)
        other = (scope.group + 1) % GROUPS
        groups = subject_groups(SUBJECTS, GROUPS, seed=3)
        return replace(
            scope, group=other, subjects=tuple(sorted(s for s, g in groups.items() if g != other))
        )

    monkeypatch.setattr(SyntheticData, "group_scope", wrong)
    with pytest.raises(LeakageError, match="animates the face of test subject"):
        _run(tmp_path, "leak", remedy, batched_folds=True)


@pytest.mark.parametrize(
    "groups, mode", [(GROUPS, "pretrain"), ("fold", "pretrain"), (GROUPS, "only")]
)
def test_batched_fine_tune_equals_sequential(tmp_path, monkeypatch, capsys, groups, mode) -> None:
    monkeypatch.setattr(StackedSTSTNet, "forward_fold", per_stream_forward)
    one = _run(tmp_path, "one", _remedy(groups, mode))
    many = _run(tmp_path, "many", _remedy(groups, mode), batched_folds=True)
    out = capsys.readouterr().out
    assert "batched folds: off" not in out and "batched folds: training 6 folds" in out
    pd.testing.assert_frame_equal(many.predictions, one.predictions)
    for fold in range(6):
        a, b = (read_checkpoint(tmp_path / f"{n}/fold_{fold:02d}/last.pt")["model"]
                for n in ("one", "many"))  # fmt: skip
        for key in a:
            torch.testing.assert_close(b[key].float(), a[key].float(), atol=1e-6, rtol=0)
    pretrained = sorted(p.name for p in (tmp_path / "one/pretrain").glob("*"))
    assert pretrained == sorted(p.name for p in (tmp_path / "many/pretrain").glob("*"))
    assert (len(pretrained) > 0) == (mode == "pretrain")
    if mode == "pretrain":  # groups: one model per group; per fold: one per pretraining set
        records = _records(one)
        assert len(pretrained) == len({r["pretrain"]["key"] for r in records.values()})
        assert {r["pretrain"]["scope"] for r in records.values()} == (
            {f"group_{g}" for g in range(GROUPS)} if groups == GROUPS else {"fold"}
        )
        assert (len(pretrained) == GROUPS) if groups == GROUPS else (len(pretrained) > GROUPS)
        for key in pretrained:  # both runs fine-tune from the same pretrained weights
            a, b = (read_checkpoint(tmp_path / f"{n}/pretrain/{key}/last.pt")["model"]
                    for n in ("one", "many"))  # fmt: skip
            assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_does_not_redo_a_finished_group(tmp_path, monkeypatch) -> None:
    full = _run(tmp_path, "full", _remedy(), batched_folds=True)
    calls: list[int] = []
    real = experiment.pretrain_group

    def dies_in_the_second_group(data, folder, **kw):
        calls.append(data.pretrain_group)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(data, folder, **kw)

    monkeypatch.setattr(experiment, "pretrain_group", dies_in_the_second_group)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, "split", _remedy(), batched_folds=True)
    first = calls[0]
    calls.clear()
    monkeypatch.setattr(experiment, "pretrain_group", _counted(real, calls))
    resumed = _run(tmp_path, "split", _remedy(), batched_folds=True)
    assert first not in calls and sorted(calls + [first]) == [0, 1, 2]
    pd.testing.assert_frame_equal(resumed.predictions, full.predictions)
    for fold in range(6):
        a, b = (read_checkpoint(tmp_path / f"{n}/fold_{fold:02d}/last.pt")["model"]
                for n in ("full", "split"))  # fmt: skip
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_pretrain_groups_settings() -> None:
    assert SyntheticData(mode="pretrain", pretrain_groups="fold").pretrain_groups == 0
    assert SyntheticData(mode="pretrain", pretrain_groups="5").pretrain_groups == 5
    assert "pretrain_groups" not in SyntheticData(mode="pretrain").settings()
    assert SyntheticData(mode="only", pretrain_groups=4).settings()["pretrain_groups"] == 4
    with pytest.raises(SynthesisError, match="one group holds every subject"):
        SyntheticData(mode="pretrain", pretrain_groups=1)
    with pytest.raises(SynthesisError, match="synth_fill tops up"):
        SyntheticData(mode="fill", pretrain_groups=5)
    with pytest.raises(SynthesisError, match="pretrain_seed"):
        SyntheticData(mode="pretrain", pretrain_seed=-1)
