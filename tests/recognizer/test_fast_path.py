"""The in-memory training path, thread choice and checkpoint cadence of the trainer."""

from collections.abc import Sequence

import numpy as np
import pytest
import torch

from recognizer.data.in_memory import first_draws, tensorize
from recognizer.data.representations import ApexFlow, KeyFrameClip
from recognizer.data.samples import Sample
from recognizer.data.torch_dataset import ClipDataset, MixedDataset
from recognizer.experiments.runner import run_protocol
from recognizer.models import create_model
from recognizer.remedies.losses import FocalLoss
from recognizer.runtime import (
    ThreadChoice,
    cgroup_cpu_quota,
    intra_op_threads,
    resolve_threads,
    usable_cores,
    use_threads_for_process,
)
from recognizer.training.trainer import Trainer, TrainerConfig
from tests.recognizer.helpers import TensorClips


class ImageSource:
    """Apex-flow images held in memory: each sample is one frame."""

    def __init__(self, images: dict[str, np.ndarray]) -> None:
        self.images = images

    def frame_numbers(self, sample: Sample) -> tuple[int, ...]:
        return (0,)

    def read(self, sample: Sample, numbers: Sequence[int]) -> np.ndarray:
        return self.images[sample.uid][None]


def _apex_set(n: int, seed: int, *, subject: str = "s", train: bool = True) -> ClipDataset:
    rng = np.random.default_rng(seed)
    samples = [
        Sample("x", f"x/{subject}{i % 4}", f"c{i}", (), (), 0, 0, 0, 30.0, "e") for i in range(n)
    ]
    labels = [i % 3 for i in range(n)]
    images = {s.uid: rng.integers(0, 256, (28, 28, 3), dtype=np.uint8) for s in samples}
    return ClipDataset(
        samples, labels, ApexFlow(), train=train, seed=seed, source=ImageSource(images)
    )


def _config(**kw) -> TrainerConfig:
    base = {"batch_size": 8, "progress": False, "device": "cpu", "lr": 0.01, "optimizer": "adam"}
    return TrainerConfig(**{**base, **kw})


@pytest.mark.parametrize("mixed", [False, True])
def test_memory_batches_are_the_loader_items(mixed: bool) -> None:
    dataset = (
        MixedDataset({"real": _apex_set(9, 3), "synthetic": _apex_set(7, 4, subject="t")})
        if mixed
        else _apex_set(13, 3)
    )
    held = tensorize(dataset, 1 << 30)
    assert not isinstance(held, str)
    indices = torch.arange(len(dataset)).flip(0)
    for epoch in range(3):
        dataset.set_epoch(epoch)
        x, y = held.batch(indices, held.flips(epoch))
        items = [dataset[int(i)] for i in indices]
        assert torch.equal(x, torch.stack([item[0] for item in items]))
        assert y.tolist() == [item[1] for item in items]
    flips = torch.stack([held.flips(e) for e in range(3)])
    assert 0 < int(flips.sum()) < flips.numel()  # some items flip, differently per epoch


def test_first_draws_are_the_per_item_generators() -> None:
    expected = [np.random.default_rng([5, 2, i]).random() for i in range(300)]
    assert first_draws(5, 2, 300).tolist() == expected
    assert first_draws(5, 2, 7).tolist() == expected[:7]


def _fit(out_dir, dataset, *, data_path: str, epochs: int = 3, **kw) -> Trainer:
    torch.manual_seed(0)
    model = create_model("ststnet", 3, dropout=0.5)
    cfg = _config(epochs=epochs, data_path=data_path, deterministic=True, **kw)
    trainer = Trainer(model, FocalLoss(), cfg, out_dir=out_dir)
    trainer.fit(dataset, _apex_set(6, 9, train=False), sampler="oversample")
    return trainer


@pytest.mark.parametrize("mixed", [False, True])
def test_memory_path_trains_exactly_like_the_loader(tmp_path, mixed: bool) -> None:
    def data():  # 17 items: the last batch of one sample is dropped on both paths
        if mixed:
            return MixedDataset({"a": _apex_set(10, 3), "b": _apex_set(7, 4, subject="t")})
        return _apex_set(17, 3)

    loader = _fit(tmp_path / "loader", data(), data_path="loader")
    memory = _fit(tmp_path / "memory", data(), data_path="memory")
    assert (loader.data_path, memory.data_path) == ("loader", "memory")
    assert memory.state.history == loader.state.history
    a, b = loader.model.state_dict(), memory.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    test = _apex_set(5, 11, train=False)
    assert np.array_equal(memory.predict(test).logits, loader.predict(test).logits)


def test_data_path_choice_and_its_errors(tmp_path) -> None:
    x = torch.zeros(8, 3, 28, 28)
    tensors = TensorClips(x, [0, 1] * 4)
    with pytest.raises(ValueError, match="cannot be held: a TensorClips has no in-memory form"):
        _fit(tmp_path / "a", tensors, data_path="memory", epochs=1)
    assert _fit(tmp_path / "b", tensors, data_path="auto", epochs=1).data_path == "loader"
    small = {"memory_budget_mb": 0.01}
    assert _fit(tmp_path / "c", _apex_set(9, 1), data_path="auto", **small).data_path == "loader"
    with pytest.raises(ValueError, match="needs 0.16 MB, over the budget of 0.01 MB"):
        _fit(tmp_path / "d", _apex_set(9, 1), data_path="memory", **small)
    clips = ClipDataset([], [], KeyFrameClip(), train=True)
    assert "has no fixed views" in tensorize(clips, 1 << 30)
    with pytest.raises(ValueError, match="data_path must be one of"):
        TrainerConfig(data_path="gpu")


class InterruptAfter(FocalLoss):
    """A loss that raises after ``calls`` steps, as a killed process would stop."""

    def __init__(self, calls: int) -> None:
        super().__init__()
        self.calls = calls

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self.calls -= 1
        if self.calls < 0:
            raise KeyboardInterrupt
        return super().forward(logits, target)


def _run(out_dir, criterion: FocalLoss, every: int) -> tuple[Trainer, list[str]]:
    saved: list[str] = []
    torch.manual_seed(0)
    cfg = _config(epochs=5, deterministic=True, checkpoint_every=every, data_path="memory")
    trainer = Trainer(create_model("ststnet", 3, dropout=0.5), criterion, cfg, out_dir=out_dir)
    save = trainer._save
    trainer._save = lambda obj, name: (
        saved.append(f"{name}@{trainer.state.epoch}"),
        save(obj, name),
    )
    trainer.fit(_apex_set(16, 2))
    return trainer, saved


@pytest.mark.parametrize(
    ("every", "saves", "resumed_steps"),
    [(0, ["last.pt@5"], 10), (2, ["last.pt@2", "last.pt@4", "last.pt@5"], 6)],
)
def test_interrupted_fit_resumes_exactly_from_the_last_checkpoint_written(
    tmp_path, every: int, saves: list[str], resumed_steps: int
) -> None:
    full, written = _run(tmp_path / "full", FocalLoss(), every)  # 2 steps per epoch
    assert written == saves
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "split", InterruptAfter(7), every)  # dies in epoch 3 (0-based)
    left = InterruptAfter(100)
    resumed, _ = _run(tmp_path / "split", left, every)
    assert 100 - left.calls == resumed_steps  # from epoch 2 (every=2) or from the start
    assert resumed.state.history == full.state.history
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_cgroup_quota_and_usable_cores(tmp_path) -> None:
    assert cgroup_cpu_quota(tmp_path) is None
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_quota(tmp_path) is None
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cgroup_cpu_quota(tmp_path) == 1.5
    assert usable_cores(tmp_path) == min(2, usable_cores(tmp_path / "none"))
    v1 = tmp_path / "v1" / "cpu"
    v1.mkdir(parents=True)
    (v1 / "cpu.cfs_quota_us").write_text("100000")
    (v1 / "cpu.cfs_period_us").write_text("100000")
    assert cgroup_cpu_quota(tmp_path / "v1") == 1.0 and usable_cores(tmp_path / "v1") == 1


def test_thread_setting() -> None:
    assert resolve_threads(3).threads == 3
    assert 1 <= resolve_threads("auto").threads <= usable_cores()
    for bad in (0, "4", 2.5, True):
        with pytest.raises(ValueError, match="threads must be 'auto' or a positive integer"):
            resolve_threads(bad)
    with pytest.raises(ValueError, match="threads must be"):
        TrainerConfig(threads="all")
    before = torch.get_num_threads()
    with intra_op_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    try:
        assert use_threads_for_process(1) == ThreadChoice(1, "set")
        assert torch.get_num_threads() == 1
        auto = use_threads_for_process("auto")
        assert auto == resolve_threads("auto") and torch.get_num_threads() == auto.threads
    finally:
        torch.set_num_threads(before)


def test_protocol_prints_one_line_per_fold_without_a_bar(tmp_path, capsys) -> None:
    dataset = _apex_set(24, 5)
    samples, labels = dataset.samples, dataset.labels

    def factory(subset, subset_labels, train):
        return ClipDataset(subset, subset_labels, ApexFlow(), train=train, source=dataset.source)

    run = {
        "protocol": "loso",
        "dataset_factory": factory,
        "model_factory": lambda k: create_model("ststnet", k),
        "remedy": "none",
        "trainer_config": _config(epochs=2),
        "out_dir": tmp_path,
    }
    result = run_protocol(samples, labels, **run)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("fold ")]
    assert [line.split(" (")[0] for line in lines] == [
        "fold 1/4",
        "fold 2/4",
        "fold 3/4",
        "fold 4/4",
    ]
    assert lines[0].startswith("fold 1/4 (test x/s0, 6 samples): acc ")
    assert "pooled so far uf1" in lines[-1] and "(n=24)" in lines[-1]
    assert f"uf1 {result.summary['pooled']['uf1']:.3f}" in lines[-1]
    assert all("s left in this run" in line for line in lines[:3])
    assert "left in this run" not in lines[-1]  # the last fold has nothing left to estimate
    assert sorted(p.name for p in (tmp_path / "fold_00").iterdir()) == [
        "class_counts.json", "curves.csv", "last.pt", "predictions.csv",
    ]  # fmt: skip
    run_protocol(samples, labels, **run)
    assert "4 of 4 folds done earlier" in capsys.readouterr().out
