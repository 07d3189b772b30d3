import json
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    precision_recall_fscore_support,
    recall_score,
)

from recognizer.cli import DataConfigError, build_data
from recognizer.cli import main as mer_main
from recognizer.experiments.runner import evaluate_run, run_protocol
from recognizer.models import create_model
from recognizer.protocols import create_protocol
from recognizer.remedies.losses import FocalLoss
from recognizer.training.trainer import CheckpointMismatchError, Trainer, TrainerConfig
from tests.recognizer.helpers import FakeSample, TensorClips, feature_factory, moving_blobs

TINY_R3D = {"widths": (4, 8, 8, 16)}


def _config(**kw) -> TrainerConfig:
    base = {"batch_size": 8, "progress": False, "device": "cpu", "lr": 0.05}
    return TrainerConfig(**{**base, **kw})


def test_tiny_r3d_learns_moving_blob_direction(tmp_path) -> None:
    x, y = moving_blobs(96, seed=0)
    xt, yt = moving_blobs(64, seed=1)
    torch.manual_seed(0)
    model = create_model("r3d18", 2, widths=(8, 8, 16, 16))
    trainer = Trainer(model, FocalLoss(), _config(epochs=6, step_size=4), out_dir=tmp_path)
    trainer.fit(TensorClips(x, y))
    pred = trainer.predict(TensorClips(xt, yt))
    assert (pred.predicted == np.asarray(yt)).mean() > 0.9
    assert np.array_equal(pred.indices, np.arange(64))


def _train(out_dir, epochs: int, x, y, val) -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model("r3d18", 2, dropout=0.5, **TINY_R3D)
    cfg = _config(
        epochs=epochs, deterministic=True, step_size=2, batch_size=6, selection="best_val"
    )
    trainer = Trainer(model, FocalLoss(gamma=1.0), cfg, out_dir=out_dir)
    trainer.fit(TensorClips(x, y), val, sampler="class_uniform", labels=y)
    return trainer


def test_resume_reproduces_uninterrupted_weights_exactly(tmp_path) -> None:
    x, y = moving_blobs(20, seed=2, frames=4, size=16)
    xv, yv = moving_blobs(6, seed=3, frames=4, size=16)
    val = TensorClips(xv, yv)
    full = _train(tmp_path / "full", 4, x, y, val)
    _train(tmp_path / "split", 2, x, y, val)
    torch.manual_seed(123)  # a resumed process starts from another RNG state
    resumed = _train(tmp_path / "split", 4, x, y, val)
    assert resumed.state.history == full.state.history
    for name in ("last.pt", "best.pt"):
        a = torch.load(tmp_path / "full" / name, weights_only=True)["model"]
        b = torch.load(tmp_path / "split" / name, weights_only=True)["model"]
        assert all(torch.equal(a[k], b[k]) for k in a), name
    ckpt = torch.load(tmp_path / "full" / "last.pt", weights_only=True)
    assert ckpt["state"]["epoch"] == 4 and ckpt["scheduler"]["last_epoch"] == 4
    curves = (tmp_path / "full" / "curves.csv").read_text()
    assert (tmp_path / "split" / "curves.csv").read_text() == curves
    assert len(curves.splitlines()) == 1 + 4


class _KilledError(Exception):
    """Stands for a process killed between two checkpoints."""


def test_curves_of_a_fit_killed_between_checkpoints_resume_exactly(tmp_path, monkeypatch) -> None:
    x, y = moving_blobs(20, seed=2, frames=4, size=16)
    val = TensorClips(*moving_blobs(6, seed=3, frames=4, size=16))

    def fit(out_dir) -> None:
        torch.manual_seed(0)
        model = create_model("r3d18", 2, dropout=0.5, **TINY_R3D)
        cfg = _config(epochs=4, deterministic=True, step_size=2, batch_size=6, checkpoint_every=2)
        Trainer(model, FocalLoss(gamma=1.0), cfg, out_dir=out_dir).fit(TensorClips(x, y), val)

    fit(tmp_path / "full")
    log_epoch = Trainer._log_epoch

    def killed_after_third_epoch(self, record, seconds):
        if record["epoch"] == 2:
            raise _KilledError
        log_epoch(self, record, seconds)

    monkeypatch.setattr(Trainer, "_log_epoch", killed_after_third_epoch)
    with pytest.raises(_KilledError):
        fit(tmp_path / "killed")
    # the third epoch's row was written, but last.pt holds two epochs: it is trained again
    assert len(pd.read_csv(tmp_path / "killed" / "curves.csv")) == 3
    assert torch.load(tmp_path / "killed" / "last.pt", weights_only=True)["state"]["epoch"] == 2
    monkeypatch.setattr(Trainer, "_log_epoch", log_epoch)
    torch.manual_seed(99)
    fit(tmp_path / "killed")
    full = (tmp_path / "full" / "curves.csv").read_bytes()
    assert (tmp_path / "killed" / "curves.csv").read_bytes() == full


def _frozen_fit(out_dir, **config) -> tuple[Trainer, TensorClips, TensorClips]:
    """Two epochs at lr 0 without normalisation layers: the model never changes, so every
    epoch's training and validation metrics are those of its predictions."""
    train = TensorClips(*moving_blobs(12, seed=4, frames=4, size=16))
    val = TensorClips(*moving_blobs(8, seed=5, frames=4, size=16))
    torch.manual_seed(0)
    frozen = create_model("r3d18", 2, norm_layer=torch.nn.Identity, **TINY_R3D)
    cfg = _config(epochs=2, lr=0.0, batch_size=5, **config)
    trainer = Trainer(frozen, torch.nn.CrossEntropyLoss(), cfg, out_dir=out_dir)
    trainer.fit(train, val)
    return trainer, train, val


def test_curves_hold_each_epochs_loss_and_train_and_val_metrics(tmp_path, capsys) -> None:
    trainer, train, val = _frozen_fit(tmp_path, log_every=1)
    curves = pd.read_csv(tmp_path / "curves.csv")
    assert list(curves.columns) == [
        "epoch", "lr", "loss", "train_acc", "train_uf1", "val_loss", "val_acc", "val_uf1",
        "val_uar",
    ]  # fmt: skip
    assert curves["epoch"].tolist() == [1, 2] and (curves["lr"] == 0.0).all()
    cross_entropy = torch.nn.functional.cross_entropy
    for name, data, prefix in (("train", train, "train_"), ("val", val, "val_")):
        pred = trainer.predict(data)
        true = np.asarray(data.labels)
        loss = float(cross_entropy(torch.from_numpy(pred.logits), torch.from_numpy(true)))
        loss_column = "loss" if name == "train" else "val_loss"
        assert curves[loss_column].to_numpy() == pytest.approx([loss, loss], rel=1e-5), name
        acc = accuracy_score(true, pred.predicted)
        assert curves[f"{prefix}acc"].tolist() == [acc, acc], name
        assert curves[f"{prefix}uf1"].to_numpy() == pytest.approx(
            [f1_score(true, pred.predicted, average="macro")] * 2
        ), name
    assert curves["val_uar"].to_numpy() == pytest.approx(
        [recall_score(val.labels, trainer.predict(val).predicted, average="macro")] * 2
    )
    lines = [line for line in capsys.readouterr().out.splitlines() if "s/epoch" in line]
    assert [line.split(":")[0].strip() for line in lines] == ["epoch 1/2", "epoch 2/2"]
    assert "val_uf1" in lines[0] and "left in this fit" in lines[0]


def test_curves_without_validation_have_no_val_columns(tmp_path) -> None:
    x, y = moving_blobs(8, seed=0, frames=4, size=16)
    trainer = Trainer(create_model("r3d18", 2, **TINY_R3D), FocalLoss(), _config(epochs=2),
                      out_dir=tmp_path)  # fmt: skip
    trainer.fit(TensorClips(x, y))
    assert list(pd.read_csv(tmp_path / "curves.csv").columns) == [
        "epoch", "lr", "loss", "train_acc", "train_uf1",
    ]  # fmt: skip


def test_tensorboard_logs_the_values_of_curves_csv(tmp_path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _frozen_fit(tmp_path, tensorboard=True)
    curves = pd.read_csv(tmp_path / "curves.csv")
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert set(events.Tags()["scalars"]) == set(curves.columns) - {"epoch"}
    for key in ("loss", "train_acc", "val_loss", "val_uf1"):
        scalars = events.Scalars(key)
        assert [e.step for e in scalars] == [1, 2]
        assert [e.value for e in scalars] == pytest.approx(curves[key].tolist(), rel=1e-6)


def test_tensorboard_without_the_package_says_how_to_get_it(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    model = create_model("ststnet", 2)
    with pytest.raises(ImportError, match=r"pip install 'mesynth\[tensorboard\]'"):
        Trainer(model, FocalLoss(), _config(tensorboard=True))
    Trainer(model, FocalLoss(), _config(tensorboard=False))  # off by default: no import


def test_checkpoint_of_another_model_or_class_count_says_what_differs(tmp_path) -> None:
    x, y = moving_blobs(8, seed=0, frames=4, size=16)
    Trainer(create_model("r3d18", 2, **TINY_R3D), FocalLoss(), _config(epochs=1),
            out_dir=tmp_path).fit(TensorClips(x, y))  # fmt: skip
    other = Trainer(create_model("r3d18", 3, **TINY_R3D), FocalLoss(), _config(epochs=2),
                    out_dir=tmp_path)  # fmt: skip
    with pytest.raises(CheckpointMismatchError, match=r"num_classes 2 vs 3.*fc.weight"):
        other.fit(TensorClips(x, y))
    ststnet = Trainer(create_model("ststnet", 2), FocalLoss(), _config(epochs=2), out_dir=tmp_path)
    with pytest.raises(CheckpointMismatchError, match="model 'r3d18' vs 'ststnet'"):
        ststnet.fit(TensorClips(x, y))


def test_early_stopping_keeps_best_validation_weights(tmp_path) -> None:
    x, y = moving_blobs(12, seed=4, frames=4, size=16)
    frozen = create_model("r3d18", 2, norm_layer=torch.nn.Identity, **TINY_R3D)  # lr 0: fixed
    cfg = _config(epochs=30, patience=2, lr=0.0, selection="best_val")
    trainer = Trainer(frozen, FocalLoss(), cfg, out_dir=tmp_path)
    state = trainer.fit(TensorClips(x, y), TensorClips(x, y))
    assert state.stopped and state.epoch == 3 and state.best_epoch == 0
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert best["epoch"] == 0


def test_trainer_config_and_lr_defaults() -> None:
    with pytest.raises(ValueError, match="optimizer"):
        TrainerConfig(optimizer="lbfgs")
    model = create_model("d3d121", 2, growth_rate=4, num_init_features=8)
    assert Trainer(model, FocalLoss(), _config(lr=None)).lr == 0.05
    adamw = Trainer(model, FocalLoss(), _config(optimizer="adamw"))
    assert isinstance(adamw.optimizer, torch.optim.AdamW)
    with pytest.warns(UserWarning, match="CUDA"):
        Trainer(create_model("ststnet", 2), FocalLoss(), _config(amp="bf16"))


def _fake_samples(rng: np.random.Generator) -> tuple[list[FakeSample], list[int]]:
    """5 subjects over two datasets; class 2 only in subject casme2/s2 (LOSO fold 1)."""
    samples, labels = [], []
    for s in range(5):
        dataset = ("casme2", "samm")[s % 2]
        for c in range(8):
            label = 2 if s == 2 and c < 4 else c % 2
            feature = tuple(float(v) for v in np.eye(3)[label] * 2 + rng.normal(0, 0.3, 3))
            samples.append(FakeSample(dataset, f"{dataset}/s{s}", f"clip{c}", feature=feature))
            labels.append(label)
    return samples, labels


def test_run_protocol_writes_pooled_results_without_leakage(tmp_path) -> None:
    samples, labels = _fake_samples(np.random.default_rng(0))
    calls: list[tuple[set[str], bool]] = []

    def factory(subset, subset_labels, train):
        calls.append(({s.subject for s in subset}, train))
        return feature_factory(subset, subset_labels, train)

    run = {
        "protocol": create_protocol("megc2019", val_fraction=0.1),
        "dataset_factory": factory,
        "model_factory": lambda k: create_model("ststnet", k),
        "remedy": "cb",
        "trainer_config": _config(epochs=3, lr=0.1, batch_size=16),
        "out_dir": tmp_path,
    }
    with pytest.warns(UserWarning, match=r"fold 1: training data lacks classes \[2\].*2: 0"):
        result = run_protocol(samples, labels, **run)
    folds = json.loads((tmp_path / "folds.json").read_text())
    assert len(folds) == 5 and len(calls) == 15  # train, validation, test per fold
    for fold, (train, val, test) in zip(folds, zip(*[iter(calls)] * 3)):
        assert train == (set(fold["train_subjects"]), True)
        assert val == (set(fold["val_subjects"]), False)
        assert test == (set(fold["test_subjects"]), False)
        assert not train[0] & test[0] and not val[0] & test[0]
    table = pd.read_csv(tmp_path / "predictions.csv")
    assert list(table.columns) == [
        "index", "subject", "clip", "fold", "true", "predicted", "dataset", "source",
    ]  # fmt: skip
    assert table["index"].tolist() == list(range(len(samples)))
    assert table["true"].tolist() == labels
    for _, row in table.iterrows():
        assert row["subject"] in folds[row["fold"]]["test_subjects"]
    summary = json.loads((tmp_path / "results.json").read_text())
    assert set(summary["per_dataset"]) == {"casme2", "samm"}
    assert summary["pooled"]["uf1"] == pytest.approx(
        f1_score(table["true"], table["predicted"], average="macro")
    )
    assert summary["pooled"]["acc"] > 0.6
    assert np.asarray(summary["confusion_matrix"]).sum() == len(samples)
    precision, recall, f1, support = precision_recall_fscore_support(
        table["true"], table["predicted"], labels=range(3), zero_division=0
    )
    assert summary["per_class"]["f1"] == pytest.approx(f1)
    assert summary["per_class"]["precision"] == pytest.approx(precision)
    assert summary["per_class"]["recall"] == pytest.approx(recall)
    assert summary["per_class"]["support"] == support.tolist()
    for fold in range(5):  # validation split: every fold's curves have validation columns
        curves = pd.read_csv(tmp_path / f"fold_{fold:02d}" / "curves.csv")
        assert curves["epoch"].tolist() == [1, 2, 3] and curves["val_uf1"].notna().all()
    calls.clear()
    again = run_protocol(samples, labels, **run)  # every finished fold is reused
    assert not calls and again.summary["pooled"] == result.summary["pooled"]

    # evaluate: re-predicting from the saved weights gives the same predictions
    evaluated = evaluate_run(
        samples, labels, run_dir=tmp_path, dataset_factory=feature_factory,
        model_factory=lambda k: create_model("ststnet", k),
        trainer_config=run["trainer_config"], out_dir=tmp_path / "evaluated",
    )  # fmt: skip
    assert evaluated.predictions["predicted"].tolist() == table["predicted"].tolist()
    with pytest.raises(CheckpointMismatchError, match="num_classes 3 vs 4"):
        evaluate_run(
            samples, labels, run_dir=tmp_path, dataset_factory=feature_factory,
            model_factory=lambda k: create_model("ststnet", k + 1),
            trainer_config=run["trainer_config"], out_dir=tmp_path / "bad",
        )  # fmt: skip

    # report: `mer report` writes a Markdown table and one confusion matrix per run
    out = tmp_path / "report"
    assert mer_main(["report", f"runs=[{tmp_path / 'evaluated'}]", f"out_dir={out}",
                     f"paths.root_dir={tmp_path}"]) == 0  # fmt: skip
    text = (out / "report.md").read_text()
    assert "| run | model | protocol | remedy | seed | N | ACC |" in text
    assert f"{summary['pooled']['uf1']:.4f}" in text and "casme2 UF1" in text
    assert (out / "confusion_00.png").stat().st_size > 1000
    assert "| class | support | precision | recall | F1 |" in text
    assert "(curves_00.png)" not in text  # the evaluated folder holds no training curves


def test_train_without_data_groups_says_what_is_missing() -> None:
    cfg = OmegaConf.create({"model": {"name": "r3d18"}, "trainer": {"seed": 0}})
    with pytest.raises(DataConfigError, match="`data`/`representation` groups"):
        build_data(cfg)


def _small_run(tmp_path, **trainer):
    samples, labels = _fake_samples(np.random.default_rng(1))
    return (
        samples,
        labels,
        {
            "protocol": create_protocol("megc2019"),
            "dataset_factory": feature_factory,
            "model_factory": lambda k: create_model("ststnet", k),
            "remedy": "none",
            "trainer_config": _config(epochs=1, **trainer),
            "out_dir": tmp_path / "run",
        },
    )


def test_a_rerun_with_other_settings_is_refused_by_name_unless_overwritten(tmp_path) -> None:
    from recognizer.experiments.runner import RunConfigError

    samples, labels, run = _small_run(tmp_path)
    first = run_protocol(samples, labels, **run)
    with pytest.raises(RunConfigError, match=r"differs in: trainer\.lr"):
        run_protocol(samples, labels, **{**run, "trainer_config": _config(epochs=1, lr=0.01)})
    with pytest.raises(RunConfigError, match=r"remedy\.name"):
        run_protocol(samples, labels, **{**run, "remedy": "cb"})
    # settings that never change results (progress, workers, threads) resume the same run
    same = run_protocol(samples, labels, **{**run, "trainer_config": _config(epochs=1, threads=1)})
    assert same.summary["pooled"] == first.summary["pooled"]
    other = run_protocol(
        samples, labels, **{**run, "trainer_config": _config(epochs=2), "overwrite": True}
    )
    results = json.loads((run["out_dir"] / "results.json").read_text())
    assert (
        results["settings"]["trainer"]["epochs"]
        == 2
        == other.summary["settings"]["trainer"]["epochs"]
    )


def test_a_torn_fold_result_is_run_again_not_reused(tmp_path) -> None:
    samples, labels, run = _small_run(tmp_path)
    first = run_protocol(samples, labels, **run)
    fold_csv = run["out_dir"] / "fold_00" / "predictions.csv"
    text = fold_csv.read_text()
    fold_csv.write_text(text[: len(text) * 2 // 3])  # torn mid-row
    with pytest.warns(UserWarning, match=r"fold_00.*not a whole fold result"):
        again = run_protocol(samples, labels, **run)
    assert len(again.predictions) == len(samples)
    assert again.summary["pooled"] == first.summary["pooled"]
    assert not list(run["out_dir"].rglob("*.tmp"))


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated"])
def test_a_broken_checkpoint_names_its_file_and_what_to_do(tmp_path, content) -> None:
    from recognizer.training.trainer import CheckpointReadError

    path = tmp_path / "last.pt"
    path.write_bytes(content)
    trainer = Trainer(create_model("ststnet", 3), torch.nn.CrossEntropyLoss(), _config())
    with pytest.raises(CheckpointReadError, match=r"last\.pt.*delete it to restart"):
        trainer.load_checkpoint(path)
