"""Training recipes: schedulers, optimisers, weight selection, per-epoch augmentation."""

import json
import math

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate

from mesynth.cli.app import config_dir
from recognizer.data.torch_dataset import ClipDataset, MixedDataset
from recognizer.experiments.runner import evaluate_run, run_protocol
from recognizer.models import create_model
from recognizer.protocols import create_protocol
from recognizer.remedies.losses import FocalLoss
from recognizer.training.trainer import Trainer, TrainerConfig
from tests.recognizer.helpers import FakeSample, TensorClips, feature_factory, moving_blobs

TINY_R3D = {"widths": (4, 8, 8, 16)}


def _config(**kw) -> TrainerConfig:
    base = {"batch_size": 4, "progress": False, "device": "cpu", "lr": 0.05}
    return TrainerConfig(**{**base, **kw})


@pytest.mark.parametrize(
    ("scheduler", "expected"),
    [
        ("none", [0.05] * 4),
        ("step", [0.05, 0.05, 0.005, 0.005]),
        ("cosine", [0.05 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]),
    ],
)
def test_scheduler_is_the_recipe_choice(scheduler: str, expected: list[float]) -> None:
    x, y = moving_blobs(8, seed=0, frames=4, size=16)
    cfg = _config(epochs=4, scheduler=scheduler, step_size=2, optimizer="adam")
    trainer = Trainer(create_model("r3d18", 2, **TINY_R3D), FocalLoss(), cfg)
    assert type(trainer.optimizer) is torch.optim.Adam
    state = trainer.fit(TensorClips(x, y))
    assert [r["lr"] for r in state.history] == pytest.approx(expected)


def test_bad_recipe_settings_are_named() -> None:
    with pytest.raises(ValueError, match="scheduler must be one of"):
        TrainerConfig(scheduler="exponential")
    with pytest.raises(ValueError, match="selection must be one of"):
        TrainerConfig(selection="best")
    with pytest.raises(ValueError, match="patience=3 .* needs selection='best_val'"):
        TrainerConfig(patience=3)
    x, y = moving_blobs(8, seed=0, frames=4, size=16)
    best = _config(epochs=1, selection="best_val")
    with pytest.raises(ValueError, match="needs a validation set"):
        Trainer(create_model("ststnet", 2), FocalLoss(), best).fit(TensorClips(x, y))


def test_selection_decides_which_weights_the_model_ends_with(tmp_path) -> None:
    x, y = moving_blobs(12, seed=4, frames=4, size=16)
    val = TensorClips(*moving_blobs(8, seed=5, frames=4, size=16))
    final = {}
    for selection in ("last", "best_val"):
        torch.manual_seed(0)
        model = create_model("r3d18", 2, **TINY_R3D)
        trainer = Trainer(model, FocalLoss(), _config(epochs=4, selection=selection),
                          out_dir=tmp_path / selection)  # fmt: skip
        state = trainer.fit(TensorClips(x, y), val)
        assert len([r for r in state.history if "val_uf1" in r]) == 4  # monitored either way
        final[selection] = {k: v.clone() for k, v in trainer.model.state_dict().items()}
        last = torch.load(tmp_path / selection / "last.pt", weights_only=True)["model"]
        final[selection + "/last.pt"] = last
    assert not (tmp_path / "last" / "best.pt").exists()
    assert all(torch.equal(final["last"][k], v) for k, v in final["last/last.pt"].items())
    best = torch.load(tmp_path / "best_val" / "best.pt", weights_only=True)
    assert best["epoch"] < 3  # the best epoch is not the last one, so the choice matters
    assert all(torch.equal(final["best_val"][k], v) for k, v in best["model"].items())
    assert not all(
        torch.equal(final["best_val"][k], v) for k, v in final["best_val/last.pt"].items()
    )


class FlipRecorder:
    """A representation that reports its flip draw (KeyFrameClip's rule: ``random() < 0.5``)."""

    def __init__(self) -> None:
        self.flips: list[tuple[str, bool]] = []

    def __call__(self, sample, source, *, train=False, generator=None) -> torch.Tensor:
        flipped = bool(train and generator is not None and generator.random() < 0.5)
        self.flips.append((sample.clip, flipped))
        return torch.full((3, 28, 28), float(flipped))


def _flips_per_epoch(tmp_path, epochs: int, mixed: bool, seed: int = 3) -> dict[int, dict]:
    samples = [FakeSample("x", f"x/s{i}", f"{i}") for i in range(8)]
    recorder = FlipRecorder()
    dataset = ClipDataset(samples, [i % 2 for i in range(8)], recorder, train=True, seed=seed)
    train_set = MixedDataset({"real": dataset}) if mixed else dataset
    torch.manual_seed(0)
    trainer = Trainer(create_model("ststnet", 2), FocalLoss(), _config(epochs=epochs, seed=seed),
                      out_dir=tmp_path)  # fmt: skip
    trainer.fit(train_set)
    first = epochs - len(recorder.flips) // 8  # a resumed run starts later
    chunks = [recorder.flips[i : i + 8] for i in range(0, len(recorder.flips), 8)]
    return {first + e: dict(chunk) for e, chunk in enumerate(chunks)}


@pytest.mark.parametrize("mixed", [False, True])
def test_flips_vary_between_epochs_and_replay_per_seed_and_epoch(tmp_path, mixed: bool) -> None:
    full = _flips_per_epoch(tmp_path / "full", 4, mixed)
    for epoch, flips in full.items():  # item i of epoch e draws from default_rng([seed, e, i])
        expected = {f"{i}": np.random.default_rng([3, epoch, i]).random() < 0.5 for i in range(8)}
        assert flips == expected
    assert any(full[e] != full[0] for e in range(1, 4))
    _flips_per_epoch(tmp_path / "split", 2, mixed)
    resumed = _flips_per_epoch(tmp_path / "split", 4, mixed)
    assert resumed == {2: full[2], 3: full[3]}
    assert _flips_per_epoch(tmp_path / "other", 1, mixed, seed=4)[0] != full[0]


def test_loso_defaults_train_fixed_epochs_on_every_training_subject(tmp_path) -> None:
    assert create_protocol("loso").val_fraction == 0.0
    assert create_protocol("megc2019").val_fraction == 0.0
    samples = [FakeSample("casme2", f"casme2/s{s}", f"c{c}", feature=(float(c % 2), 0.0, 1.0))
               for s in range(4) for c in range(4)]  # fmt: skip
    labels = [c % 2 for _ in range(4) for c in range(4)]
    cfg = _config(epochs=2, lr=0.1)
    run = run_protocol(samples, labels, protocol="loso", dataset_factory=feature_factory,
                       model_factory=lambda k: create_model("ststnet", k), remedy="oversample",
                       trainer_config=cfg, out_dir=tmp_path)  # fmt: skip
    assert all(not f.val_subjects and len(f.train_subjects) == 3 for f in run.folds)
    settings = json.loads((tmp_path / "results.json").read_text())["settings"]
    assert settings["selection"] == "last" and settings["remedy"]["sampler"] == "oversample"
    assert not list(tmp_path.rglob("best.pt"))
    evaluated = evaluate_run(samples, labels, run_dir=tmp_path, dataset_factory=feature_factory,
                             model_factory=lambda k: create_model("ststnet", k),
                             trainer_config=cfg, out_dir=tmp_path / "evaluated")  # fmt: skip
    assert evaluated.predictions["predicted"].tolist() == run.predictions["predicted"].tolist()


def _compose(overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        return compose(config_name="train", overrides=overrides)


def test_config_recipes() -> None:
    default = instantiate(_compose([]).trainer)
    assert (default.optimizer, default.scheduler, default.selection) == ("sgd", "step", "last")
    assert _compose([]).protocol.val_fraction == 0.0
    ststnet = instantiate(_compose(["model=ststnet", "trainer=ststnet"]).trainer)
    # the authors' released script: Adam, lr 5e-5, batch 256, 800 epochs, constant rate
    assert (ststnet.optimizer, ststnet.lr, ststnet.scheduler) == ("adam", 5e-5, "none")
    assert (ststnet.batch_size, ststnet.epochs) == (256, 800)
    assert ststnet.selection == "last"
    fast = instantiate(_compose(["trainer=fast"]).trainer)
    assert fast.selection == "best_val" and fast.patience == 5
