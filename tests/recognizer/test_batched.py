"""Batched folds (recognizer.training.batched): the folds of a protocol trained together equal the
folds trained one by one, up to float rounding.

Tolerances. The training logic (batches, per-fold losses, masking of folds without a batch,
clipping, optimizers, schedules) is checked with the stacked model running STSTNet's own
per-stream operations (:func:`per_stream_forward`): weights then agree to 1e-6 after 4 epochs
(measured: at most 2e-7), while a wrong step (a fold updated in a step it had no batch, a wrong
bias correction, a swapped learning rate) moves weights by about the learning rate, 1e-3 to
1e-2. The fast form (one 16-channel channels-last convolution for the three streams) sums in
another order; it is checked to 1e-4 on one forward pass, and over 2 epochs of training to
5e-4 (Adam divides by the square root of small second moments, which magnifies rounding).
"""

import json

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import recognizer.experiments.runner as experiment
from recognizer.data.representations import ApexFlow
from recognizer.data.torch_dataset import ClipDataset
from recognizer.experiments.runner import evaluate_run, run_protocol
from recognizer.models import create_model
from recognizer.remedies.losses import FocalLoss
from recognizer.training.batched import (
    FoldJob,
    StackedOptimizer,
    StackedSTSTNet,
    model_reason,
    train_folds_batched,
)
from recognizer.training.trainer import Trainer, TrainerConfig, read_checkpoint
from tests.recognizer.helpers import FakeSample, feature_factory
from tests.recognizer.test_fast_path import _apex_set

# batch 8: 17 items -> 2 steps (the last item is dropped), 9 -> 1 step, 25 -> 3 steps
SIZES = (17, 9, 25)


def per_stream_forward(self: StackedSTSTNet, fold: int, x: torch.Tensor) -> torch.Tensor:
    """Fold ``fold``'s training forward pass with STSTNet's own operations: one convolution,
    ReLU, batch norm and max-pool per stream, concatenated (what ``STSTNet.forward`` runs)."""
    outs, start = [], 0
    for width in self.widths:
        part = slice(start, start + width)
        start += width
        h = torch.relu(F.conv2d(x, self.conv_weight[fold][part], self.conv_bias[fold][part], 1, 1))
        h = F.batch_norm(h, self.running_mean[fold][part], self.running_var[fold][part],
                         self.norm_weight[fold][part], self.norm_bias[fold][part], True,
                         self.momentum, self.eps)  # fmt: skip
        outs.append(F.max_pool2d(h, *self.pool))
    with torch.no_grad():
        self.batches[fold] += 1
    h = F.adaptive_avg_pool2d(torch.cat(outs, 1), self.pooled_size)
    return F.linear(h.flatten(1), self.fc_weight[fold], self.fc_bias[fold])


def _config(**kw) -> TrainerConfig:
    base = {
        "batch_size": 8, "progress": False, "device": "cpu", "lr": 0.01, "epochs": 4,
        "data_path": "memory", "threads": 1,
    }  # fmt: skip
    return TrainerConfig(**{**base, **kw})


def _trainer(fold: int, config: TrainerConfig) -> Trainer:
    torch.manual_seed(100 + fold)
    weight = torch.tensor([1.0, 2.0, 0.5]) if fold == 1 else None
    return Trainer(create_model("ststnet", 3), FocalLoss(weight=weight, gamma=fold), config)


def _sampler(fold: int) -> str:
    return ("shuffle", "class_uniform", "oversample")[fold]


def _fold_by_fold(config: TrainerConfig) -> list[Trainer]:
    trainers = []
    for fold, size in enumerate(SIZES):
        trainer = _trainer(fold, config)
        trainer.fit(_apex_set(size, fold), sampler=_sampler(fold))
        trainers.append(trainer)
    return trainers


def _batched(config: TrainerConfig) -> list[Trainer]:
    jobs = []
    for fold, size in enumerate(SIZES):
        data = _apex_set(size, fold)
        jobs.append(FoldJob(fold, _trainer(fold, config), data, _sampler(fold), data.labels))
    train_folds_batched(jobs)
    return [job.trainer for job in jobs]


def _compare(one: Trainer, many: Trainer, tolerance: float, epochs: int) -> None:
    a, b = one.model.state_dict(), many.model.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], atol=tolerance, rtol=0, msg=key)
    assert [r["lr"] for r in many.state.history] == [r["lr"] for r in one.state.history]
    losses = [(r["loss"], s["loss"]) for r, s in zip(one.state.history, many.state.history)]
    assert len(losses) == epochs and all(abs(x - y) < 10 * tolerance for x, y in losses)
    assert many.state.epoch == epochs
    assert many.scheduler.state_dict() == one.scheduler.state_dict()
    ours, theirs = many.optimizer.state_dict(), one.optimizer.state_dict()
    assert ours["state"].keys() == theirs["state"].keys()
    for index, entry in theirs["state"].items():
        assert ours["state"][index].keys() == entry.keys()
        for name, value in entry.items():
            torch.testing.assert_close(ours["state"][index][name], value, atol=tolerance,
                                       rtol=1e-3, msg=f"{index}.{name}")  # fmt: skip
    test = _apex_set(7, 11, train=False)
    x, y = many.predict(test), one.predict(test)
    np.testing.assert_allclose(x.logits, y.logits, atol=20 * tolerance)


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_batched_folds_train_as_fold_by_fold(optimizer: str, monkeypatch) -> None:
    monkeypatch.setattr(StackedSTSTNet, "forward_fold", per_stream_forward)
    config = _config(
        optimizer=optimizer, grad_clip=0.5, scheduler="step", step_size=2, weight_decay=1e-3
    )
    for one, many in zip(_fold_by_fold(config), _batched(config)):
        _compare(one, many, 1e-6, 4)


def test_fast_batched_form_trains_as_fold_by_fold() -> None:
    config = _config(optimizer="adam", grad_clip=0.5, epochs=2)
    for one, many in zip(_fold_by_fold(config), _batched(config)):
        _compare(one, many, 5e-4, 2)


def test_batched_folds_are_deterministic() -> None:
    config = _config(optimizer="adam", epochs=2)
    first, second = _batched(config), _batched(config)
    for a, b in zip(first, second):
        sa, sb = a.model.state_dict(), b.model.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_an_inactive_fold_is_not_touched(kind: str) -> None:
    params = [torch.randn(3, 4, 2, requires_grad=True), torch.randn(3, 5, requires_grad=True)]
    for p in params:
        p.grad = torch.randn_like(p)
    optimizer = StackedOptimizer(params, _config(optimizer=kind, weight_decay=0.1))
    optimizer.step(np.array([True, False, True]), np.full(3, 0.1))
    before = [p.detach().clone() for p in params]
    moments = [{k: v.clone() for k, v in s.items()} for s in optimizer.state]
    optimizer.step(np.array([True, False, False]), np.full(3, 0.1))
    assert optimizer.steps.tolist() == [2, 0, 1]
    for p, old, state, saved in zip(params, before, optimizer.state, moments):
        assert torch.equal(p[1:], old[1:]) and not torch.equal(p[0], old[0])
        assert all(torch.equal(state[k][1:], saved[k][1:]) for k in saved)
    assert not optimizer.fold_state(1)[0] or optimizer.fold_state(1)[0].get("step", 0) == 0


def test_stacked_model_is_the_models() -> None:
    models = []
    for seed in range(2):
        torch.manual_seed(seed)
        models.append(create_model("ststnet", 3).train())
    stacked = StackedSTSTNet(models)
    x = torch.randn(5, 3, 28, 28)
    for fold, model in enumerate(models):
        torch.testing.assert_close(stacked.forward_fold(fold, x), model(x), atol=1e-4, rtol=0)
    target = create_model("ststnet", 3)
    stacked.write_to(1, target)
    ours, theirs = target.state_dict(), models[1].state_dict()
    for key in theirs:  # running statistics and batch counts updated as the models' own
        torch.testing.assert_close(ours[key], theirs[key], atol=1e-6, rtol=0, msg=key)


def test_unsupported_models_and_settings() -> None:
    assert model_reason(create_model("ststnet", 3)) is None
    assert "dropout 0.5" in model_reason(create_model("ststnet", 3, dropout=0.5))
    assert "has no batched form" in model_reason(nn.Linear(2, 3))
    assert "BatchNorm2d" in model_reason(create_model("ststnet", 3, norm_layer=nn.Identity))
    with pytest.raises(ValueError, match="batched_folds must be false, true or 'auto'"):
        TrainerConfig(batched_folds="yes")
    data = _apex_set(9, 0)
    job = FoldJob(0, _trainer(0, _config(checkpoint_every=1)), data, "shuffle", data.labels)
    with pytest.raises(ValueError, match="checkpoint_every=1"):
        train_folds_batched([job])


def _protocol(tmp_path, name: str, **kw):
    dataset = _apex_set(24, 5)

    def factory(subset, subset_labels, train):
        return ClipDataset(subset, subset_labels, ApexFlow(), train=train, source=dataset.source)

    model_kw = kw.pop("model_kw", {})
    return run_protocol(
        dataset.samples,
        dataset.labels,
        protocol="loso",
        dataset_factory=factory,
        model_factory=lambda k: create_model("ststnet", k, **model_kw),
        remedy=kw.pop("remedy", "cb"),
        trainer_config=_config(optimizer="adam", epochs=3, **kw),
        out_dir=tmp_path / name,
    )


def _weights(path) -> dict[str, torch.Tensor]:
    return read_checkpoint(path)["model"]


def test_batched_protocol_writes_what_fold_by_fold_writes(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(StackedSTSTNet, "forward_fold", per_stream_forward)
    one = _protocol(tmp_path, "one")
    many = _protocol(tmp_path, "many", batched_folds=True)
    pd.testing.assert_frame_equal(many.predictions, one.predictions)
    assert many.summary["pooled"] == one.summary["pooled"]
    for fold in range(4):
        names = sorted(p.name for p in (tmp_path / f"one/fold_{fold:02d}").iterdir())
        assert sorted(p.name for p in (tmp_path / f"many/fold_{fold:02d}").iterdir()) == names
        a, b = (_weights(tmp_path / f"{n}/fold_{fold:02d}/last.pt") for n in ("one", "many"))
        assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6, rtol=0) for k in a)
        last = read_checkpoint(tmp_path / f"many/fold_{fold:02d}/last.pt")
        assert last["state"]["epoch"] == 3 and len(last["state"]["history"]) == 3
        curves = [
            pd.read_csv(tmp_path / f"{n}/fold_{fold:02d}/curves.csv") for n in ("one", "many")
        ]
        assert list(curves[1]["epoch"]) == [1, 2, 3]
        assert curves[1]["loss"].sub(curves[0]["loss"]).abs().max() < 1e-5
    out = capsys.readouterr().out
    lines = [x for x in out.splitlines() if x.startswith("fold ")]
    assert len(lines) == 8 and lines[-1].startswith("fold 4/4") and "(n=24)" in lines[-1]
    assert "batched folds: training 4 folds together (0..3)" in out
    dataset = _apex_set(24, 5)
    evaluated = evaluate_run(
        dataset.samples,
        dataset.labels,
        run_dir=tmp_path / "many",
        dataset_factory=lambda s, y, train: ClipDataset(s, y, ApexFlow(), source=dataset.source),
        model_factory=lambda k: create_model("ststnet", k),
        trainer_config=_config(),
        out_dir=tmp_path / "evaluated",
    )
    pd.testing.assert_frame_equal(evaluated.predictions, many.predictions)


def test_interrupted_batched_protocol_resumes(tmp_path, monkeypatch) -> None:
    full = _protocol(tmp_path, "full", batched_folds=True)
    calls: list[list[int]] = []
    real = experiment.train_folds_batched

    def dies_in_the_second_batch(jobs):
        calls.append([job.fold for job in jobs])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(jobs)

    monkeypatch.setattr(experiment, "train_folds_batched", dies_in_the_second_batch)
    small = {"batched_folds": True, "memory_budget_mb": 0.7}  # two folds per batch
    with pytest.raises(KeyboardInterrupt):
        _protocol(tmp_path, "split", **small)
    assert calls == [[0, 1], [2, 3]]
    done = sorted(p.parent.name for p in (tmp_path / "split").glob("fold_*/predictions.csv"))
    assert done == ["fold_00", "fold_01"]
    monkeypatch.setattr(experiment, "train_folds_batched", real)
    resumed = _protocol(tmp_path, "split", **small)
    pd.testing.assert_frame_equal(resumed.predictions, full.predictions)
    for fold in range(4):
        a, b = (_weights(tmp_path / f"{n}/fold_{fold:02d}/last.pt") for n in ("full", "split"))
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_fold_with_a_checkpoint_resumes_fold_by_fold(tmp_path, monkeypatch) -> None:
    full = _protocol(tmp_path, "run", batched_folds=True)
    (tmp_path / "run/fold_02/predictions.csv").unlink()
    trained: list[int] = []
    real = experiment.train_folds_batched

    def counting(jobs):
        trained.extend(job.fold for job in jobs)
        return real(jobs)

    monkeypatch.setattr(experiment, "train_folds_batched", counting)
    again = _protocol(tmp_path, "run", batched_folds=True)
    assert trained == []  # fold 2's last.pt holds its 3 epochs: predicted from it
    pd.testing.assert_frame_equal(again.predictions, full.predictions)


def test_auto_falls_back_with_the_reason_and_true_refuses(tmp_path, capsys) -> None:
    dropout = {"model_kw": {"dropout": 0.5}}
    fallback = _protocol(tmp_path, "auto", batched_folds="auto", **dropout)
    out = capsys.readouterr().out
    assert "batched folds: off from fold 0 on (fold 0: dropout 0.5" in out
    plain = _protocol(tmp_path, "plain", **dropout)
    pd.testing.assert_frame_equal(fallback.predictions, plain.predictions)
    with pytest.raises(ValueError, match="batched_folds=true but fold 0: dropout 0.5"):
        _protocol(tmp_path, "true", batched_folds=True, **dropout)
    with pytest.raises(ValueError, match="batched_folds=true but selection='best_val'"):
        _protocol(tmp_path, "best", batched_folds=True, selection="best_val")
    auto = _protocol(tmp_path, "val", batched_folds="auto", checkpoint_every=2)
    assert "batched folds: off (checkpoint_every=2" in capsys.readouterr().out
    assert json.loads((tmp_path / "val/run.json").read_text())["config"]["trainer"]["epochs"] == 3
    assert len(auto.predictions) == 24


def test_auto_falls_back_when_the_data_cannot_be_held(tmp_path, capsys) -> None:
    samples = [FakeSample("x", f"x/s{i % 4}", f"c{i}", feature=(i % 3, 0, 1)) for i in range(12)]
    labels = [i % 3 for i in range(12)]
    run = {
        "protocol": "loso", "dataset_factory": feature_factory, "remedy": "none",
        "model_factory": lambda k: create_model("ststnet", k),
    }  # fmt: skip
    result = run_protocol(samples, labels, **run, out_dir=tmp_path / "auto",
                          trainer_config=_config(epochs=1, batched_folds="auto",
                                                 data_path="auto"))  # fmt: skip
    assert "batched folds: off from fold 0 on (fold 0: the training data cannot be held in " \
        "memory: a TensorClips has no in-memory form)" in capsys.readouterr().out  # fmt: skip
    assert len(result.predictions) == 12
    with pytest.raises(ValueError, match="batched_folds=true but fold 0: the training data"):
        run_protocol(samples, labels, **run, out_dir=tmp_path / "true",
                     trainer_config=_config(epochs=1, batched_folds=True,
                                            data_path="auto"))  # fmt: skip
