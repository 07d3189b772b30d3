"""Seeds as an axis (``TrainerConfig.seeds``, :func:`run_protocol_seeds`): one complete run
folder per seed, equal to the single-seed runs; under batched folds the seeds train together.

Tolerance of the batched comparisons: as in ``test_batched.py`` for the fast stacked form (5e-4
on the weights after a few Adam epochs); the test predictions must agree exactly.
"""

import json

import pandas as pd
import pytest
import torch

import recognizer.experiments.runner as experiment
import recognizer.training.batched as batched
from recognizer.cli import main as mer_main
from recognizer.data.representations import ApexFlow
from recognizer.data.torch_dataset import ClipDataset
from recognizer.experiments.runner import RunConfigError, run_protocol, run_protocol_seeds
from recognizer.models import create_model
from recognizer.training.trainer import Trainer, TrainerConfig, read_checkpoint
from tests.recognizer.helpers import TINY_KFOLD
from tests.recognizer.test_experiment_cli import blob_store
from tests.recognizer.test_fast_path import _apex_set

DATA = _apex_set(24, 5)  # 4 subjects: 4 LOSO folds
FLOW = ApexFlow()  # one representation for every seed, as `mer train` builds it


def _factory(seed: int):
    def factory(subset, subset_labels, train):
        return ClipDataset(subset, subset_labels, FLOW, train=train, seed=seed,
                           source=DATA.source)  # fmt: skip

    return factory


def _config(**kw) -> TrainerConfig:
    base = {"batch_size": 8, "progress": False, "device": "cpu", "lr": 0.01, "epochs": 2,
            "optimizer": "adam", "data_path": "memory", "threads": 1}  # fmt: skip
    return TrainerConfig(**{**base, **kw})


RUN = {"protocol": "loso", "model_factory": lambda k: create_model("ststnet", k), "remedy": "cb"}


def _single(out, seed: int, **kw):
    return run_protocol(DATA.samples, DATA.labels, dataset_factory=_factory(seed), **RUN,
                        trainer_config=_config(seed=seed, **kw), out_dir=out)  # fmt: skip


def _seeds(out, seeds, **kw):
    config = _config(seeds=seeds, **kw)
    return run_protocol_seeds(DATA.samples, DATA.labels, dataset_factory_for_seed=_factory,
                              **RUN, trainer_config=config, out_dir=out)  # fmt: skip


@pytest.mark.parametrize(
    ("seeds", "message"),
    [
        ([], "non-empty"),
        ([0, 0], "distinct"),
        ([0, "1"], "integers"),
        ([0, 1.5], "integers"),
        ([True], "integers"),
        (3, "list of distinct integers"),
        ("0,1", "list of distinct integers"),
    ],
)
def test_seeds_must_be_distinct_integers(seeds, message: str) -> None:
    with pytest.raises(ValueError, match=f"seeds.*{message}"):
        TrainerConfig(seeds=seeds)


def test_seeds_are_a_list_of_ints() -> None:
    assert TrainerConfig(seeds=(3, 1)).seeds == [3, 1]
    assert TrainerConfig().seeds is None
    with pytest.raises(ValueError, match="run_protocol_seeds"):
        _single("unused", 0, seeds=[0, 1])


def _files(root) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_one_run_folder_per_seed_equal_to_single_runs(tmp_path, capsys, monkeypatch) -> None:
    result = _seeds(tmp_path / "seeds", [3, 1])
    out = tmp_path / "seeds"
    assert json.loads((out / "seeds.json").read_text()) == {
        "seeds": [3, 1], "runs": ["seed_3", "seed_1"],
    }  # fmt: skip
    assert result.runs == ["seed_3", "seed_1"]
    single = _single(tmp_path / "single", 1)
    assert _files(out / "seed_1") == _files(tmp_path / "single")
    expected = {"run.json", "folds.json", "predictions.csv", "results.json", "fold_03/last.pt",
                "fold_03/predictions.csv", "fold_03/curves.csv"}  # fmt: skip
    assert expected <= set(_files(out / "seed_3"))
    for name in ("run.json", "predictions.csv", "folds.json"):
        assert (out / "seed_1" / name).read_text() == (tmp_path / "single" / name).read_text()
    pd.testing.assert_frame_equal(result.results[1].predictions, single.predictions)
    for seed in (3, 1):
        settings = json.loads((out / f"seed_{seed}/results.json").read_text())["settings"]
        assert settings["trainer"]["seed"] == seed and settings["trainer"]["seeds"] is None
    assert not result.results[3].predictions.equals(result.results[1].predictions)
    table = result.pooled()
    assert table["seed"].tolist() == [3, 1] and (table["n"] == 24).all()
    assert table["uf1"][1] == single.summary["pooled"]["uf1"]
    mean, sd = result.spread()["uf1"]
    assert mean == pytest.approx(table["uf1"].mean()) and sd == pytest.approx(table["uf1"].std())
    assert "| mean ± sd (2 seeds) |" in result.markdown()
    printed = capsys.readouterr().out
    assert "seed 3: fold 4/4" in printed and "seed 1: fold 1/4" in printed
    # a finished multi-seed folder reruns as a no-op, and is no single-seed folder
    (out / "seeds.json").unlink()
    fits: list[int] = []
    real_fit = Trainer.fit
    monkeypatch.setattr(
        Trainer, "fit", lambda self, *a, **k: fits.append(1) or real_fit(self, *a, **k)
    )
    again = _seeds(out, [3, 1])
    assert fits == [] and (out / "seeds.json").is_file()
    pd.testing.assert_frame_equal(again.results[3].predictions, result.results[3].predictions)
    with pytest.raises(RunConfigError, match="single-seed run"):
        _seeds(tmp_path / "single", [0, 1])


def test_an_interrupted_multi_seed_run_resumes(tmp_path, monkeypatch) -> None:
    full = _seeds(tmp_path / "full", [0, 1], epochs=1)
    fits: list[str] = []
    real_fit = Trainer.fit

    def dies_in_seed_1_fold_2(self, *args, **kwargs):
        fits.append(self.out_dir.relative_to(tmp_path / "split").as_posix())
        if len(fits) == 7:
            raise KeyboardInterrupt
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "fit", dies_in_seed_1_fold_2)
    with pytest.raises(KeyboardInterrupt):
        _seeds(tmp_path / "split", [0, 1], epochs=1)
    assert fits[-1] == "seed_1/fold_02"  # seed 0 first, then seed 1 fold by fold
    assert not (tmp_path / "split/seeds.json").exists()
    fits.clear()
    resumed = _seeds(tmp_path / "split", [0, 1], epochs=1)
    assert fits == ["seed_1/fold_02", "seed_1/fold_03"]
    for seed in (0, 1):
        pd.testing.assert_frame_equal(resumed.results[seed].predictions,
                                      full.results[seed].predictions)  # fmt: skip


def _close_weights(a, b, atol: float) -> None:
    wa, wb = read_checkpoint(a)["model"], read_checkpoint(b)["model"]
    for key in wa:
        torch.testing.assert_close(wb[key].float(), wa[key].float(), atol=atol, rtol=0, msg=key)


def test_batched_seeds_train_as_separate_runs(tmp_path, monkeypatch) -> None:
    streams: list[list[tuple[int, int]]] = []
    shared: list[bool] = []
    sampler_seeds: list[int] = []
    real_train, real_sampler = experiment.train_folds_batched, batched.create_sampler

    def recording(jobs):
        streams.append([(job.fold, job.trainer.config.seed) for job in jobs])
        by_fold: dict[int, list] = {}
        for job in jobs:
            by_fold.setdefault(job.fold, []).append(job)
        for group in by_fold.values():  # one held copy per fold, each seed's own flip seeds
            assert len({job.held.inputs.data_ptr() for job in group}) == 1
            shared.append(len(group) == 2)
            assert [job.held.parts[0].seed for job in group] == [0, 1]
        return real_train(jobs)

    def sampler(*args, seed: int = 0, **kwargs):
        sampler_seeds.append(seed)
        return real_sampler(*args, seed=seed, **kwargs)

    monkeypatch.setattr(experiment, "train_folds_batched", recording)
    monkeypatch.setattr(batched, "create_sampler", sampler)
    together = _seeds(tmp_path / "together", [0, 1], batched_folds=True, epochs=3)
    assert streams == [[(f, s) for f in range(4) for s in (0, 1)]] and all(shared)
    assert sampler_seeds == [0, 1] * 4
    monkeypatch.setattr(experiment, "train_folds_batched", real_train)
    for seed in (0, 1):
        alone = _single(tmp_path / f"alone_{seed}", seed, batched_folds=True, epochs=3)
        pd.testing.assert_frame_equal(together.results[seed].predictions, alone.predictions)
        for fold in range(4):
            name = f"fold_{fold:02d}/last.pt"
            _close_weights(tmp_path / f"alone_{seed}" / name,
                           tmp_path / f"together/seed_{seed}" / name, 5e-4)  # fmt: skip


def test_the_seeds_draw_other_sampler_orders() -> None:
    labels = [i % 3 for i in range(30)]
    for name in ("shuffle", "class_uniform", "oversample"):
        orders = []
        for seed in (0, 1):
            order = batched.create_sampler(name, 30, labels, seed=seed)
            order.set_epoch(2)
            orders.append(list(order))
        assert orders[0] != orders[1], name


@pytest.mark.filterwarnings("ignore:fold .* training data lacks classes")
def test_mer_train_with_seeds_writes_the_seed_folders(tmp_path, capsys) -> None:
    store = blob_store(tmp_path / "store", identities=4, per_identity=4)
    out = tmp_path / "run"
    code = mer_main([
        "train", f"data.loader.root={store}", *TINY_KFOLD, "trainer.progress=false",
        "trainer.seeds=[0,1]", f"paths.root_dir={tmp_path}", f"out_dir={out}",
    ])  # fmt: skip
    assert code == 0
    assert json.loads((out / "seeds.json").read_text())["runs"] == ["seed_0", "seed_1"]
    for seed in (0, 1):
        results = json.loads((out / f"seed_{seed}/results.json").read_text())
        assert results["settings"]["trainer"]["seed"] == seed
    assert "| mean ± sd (2 seeds) |" in capsys.readouterr().out


def test_seeds_that_cannot_batch_run_one_after_another(tmp_path, monkeypatch) -> None:
    fits: list[str] = []
    real_fit = Trainer.fit

    def counting(self, *args, **kwargs):
        fits.append(self.out_dir.parent.name)
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "fit", counting)
    _seeds(tmp_path / "auto", [0, 1], epochs=1, batched_folds="auto", checkpoint_every=1)
    assert fits == ["seed_0"] * 4 + ["seed_1"] * 4
