"""DDP training with two real processes (``torchrun --nproc_per_node=2``, gloo on CPU).

* A tiny ``mer train`` under torchrun with batch 4 per rank equals the single-process run with
  batch 8 (the same global batch): the same predictions and pooled metrics, every weight within
  1e-4 relative (float32 sums in another order; the gap grows with the steps). The model has
  no batch statistics (``norm_layer=Identity``) and no dropout: with BatchNorm each rank
  normalises by its own 4 samples instead of all 8, which changes the training itself
  (``docs/scale.md``), so no equality is claimed for it.
* With BatchNorm, the ranks still end every epoch with the same model (rank 0's running
  statistics), so they validate alike; only rank 0 writes checkpoints; the class-uniform
  sampler gives each rank its half of one shared draw, no draw taken twice or skipped.
* SIGKILL of rank 1 mid-training: torchrun stops the run; the same command again resumes both
  ranks from rank 0's ``last.pt`` and ends with the results of the uninterrupted run.
* A synthetic remedy renders its pool in two shards; both ranks train on the merged store.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest
import torch

from mesynth.generation.store import read_manifest_rows
from recognizer.cli import main as mer_main
from tests.distributed import finish, run, start, torchrun, worker_pids
from tests.recognizer.test_experiment_cli import blob_store

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:fold .* training data lacks classes"),
]

EPOCHS = 8  # enough that a kill after the first checkpoint lands mid-fold


def _train_args(store: Path, out: Path, batch_size: int, *extra: str) -> list[str]:
    return [
        "-m", "recognizer.cli", "train",
        f"data.loader.root={store}",
        "representation.num_frames=4",
        "representation.size=16",
        "+model.widths=[4,4,4,4]",
        "+model.norm_layer={_target_:torch.nn.Identity,_partial_:true}",
        "protocol=kfold",
        "protocol.n_splits=2",
        "protocol.val_fraction=0",
        "remedy=class_uniform",
        "trainer=debug",
        f"trainer.epochs={EPOCHS}",
        f"trainer.batch_size={batch_size}",
        "trainer.lr=0.05",
        "trainer.progress=false",
        "trainer.threads=1",
        "trainer.checkpoint_every=1",
        f"paths.root_dir={out.parent}",
        f"out_dir={out}",
        *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The blob store, one 2-process run (batch 4 per rank) and one single-process run
    (batch 8), shared by the tests below."""
    root = tmp_path_factory.mktemp("ddp")
    store = blob_store(root / "store")
    run(torchrun(_train_args(store, root / "ddp", 4)))
    assert mer_main(_train_args(store, root / "single", 8)[2:]) == 0
    return {"store": store, "ddp": root / "ddp", "single": root / "single"}


def _pooled(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())["pooled"]


def test_two_ranks_equal_one_process_with_the_same_global_batch(runs) -> None:
    ddp, single = runs["ddp"], runs["single"]
    assert (ddp / "predictions.csv").read_text() == (single / "predictions.csv").read_text()
    assert _pooled(ddp) == _pooled(single)
    for fold in ("fold_00", "fold_01"):
        a = torch.load(ddp / fold / "last.pt", weights_only=True)
        b = torch.load(single / fold / "last.pt", weights_only=True)
        assert a["state"]["epoch"] == b["state"]["epoch"] == EPOCHS
        # summation order differs (two half-batch means averaged vs one mean): float32 rounding,
        # compounded over 8 epochs (1e-5, 1.4e-5 on AVX-512 CPUs; a wrong batch split moves
        # weights ~1e-2)
        for key, value in b["model"].items():
            torch.testing.assert_close(a["model"][key], value, rtol=1e-4, atol=1e-4)
        # the logged epoch loss and training metrics cover both ranks' samples
        losses = [[h["loss"] for h in c["state"]["history"]] for c in (a, b)]
        assert losses[0] == pytest.approx(losses[1], rel=1e-4)  # rounding: 3e-5 on AVX-512 CPUs
        for key in ("train_acc", "train_uf1"):
            assert [h[key] for h in a["state"]["history"]] == [
                h[key] for h in b["state"]["history"]
            ]
        # one process wrote the fold: no temporary or per-rank leftovers
        assert sorted(p.name for p in (ddp / fold).iterdir()) == [
            "class_counts.json", "curves.csv", "last.pt", "predictions.csv",
        ]  # fmt: skip
        assert (ddp / fold / "curves.csv").read_text().splitlines()[0] == (
            single / fold / "curves.csv"
        ).read_text().splitlines()[0]


def test_sigkill_of_one_rank_resumes_to_the_uninterrupted_result(runs, tmp_path) -> None:
    out = tmp_path / "killed"
    proc = start(torchrun(_train_args(runs["store"], out, 4)))
    checkpoint = out / "fold_00" / "last.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    victims = worker_pids(proc.pid, rank=1)
    assert proc.poll() is None and len(victims) == 1, "no rank 1 to kill mid-training"
    os.kill(victims[0], signal.SIGKILL)
    output = finish(proc)
    assert proc.returncode != 0 and "SIGKILL" in output, output[-3000:]  # torchrun saw it
    assert not (out / "results.json").exists()
    saved = torch.load(checkpoint, weights_only=True)["state"]["epoch"]
    assert 1 <= saved < EPOCHS and not (out / "fold_00" / "predictions.csv").exists()

    # the same command again: rank 0's checkpoint is where both ranks continue
    resumed = run(torchrun(_train_args(runs["store"], out, 4)))
    assert f"resumed from {checkpoint} at epoch {saved}" in resumed, resumed[-3000:]
    assert (out / "predictions.csv").read_text() == (runs["ddp"] / "predictions.csv").read_text()
    assert _pooled(out) == _pooled(runs["ddp"])
    for fold in ("fold_00", "fold_01"):
        a = torch.load(out / fold / "last.pt", weights_only=True)
        b = torch.load(runs["ddp"] / fold / "last.pt", weights_only=True)
        assert a["state"]["history"] == b["state"]["history"]
        for key, value in b["model"].items():
            torch.testing.assert_close(a["model"][key], value, rtol=0, atol=0)


TRAINER_SCRIPT = """
import json, sys
from pathlib import Path
import torch
from recognizer.models import create_model
from recognizer.training.trainer import Trainer, TrainerConfig, distributed_env
from tests.recognizer.helpers import TensorClips, moving_blobs

out = Path(sys.argv[1])
rank = distributed_env()[0]
saves = []
real_save = torch.save
def counting_save(obj, f, *args, **kwargs):
    if isinstance(f, (str, Path)):  # files, not the buffers pickling uses
        saves.append(Path(f).name)
    return real_save(obj, f, *args, **kwargs)
torch.save = counting_save

class Recording(TensorClips):
    def __init__(self, x, labels):
        super().__init__(x, labels)
        self.epoch, self.seen = 0, {}
    def set_epoch(self, epoch):
        self.epoch = epoch
    def __getitem__(self, i):
        self.seen.setdefault(self.epoch, []).append(int(i))
        return super().__getitem__(i)

x, _ = moving_blobs(16, seed=1, frames=4, size=16)
# imbalanced labels, so the class-uniform draws repeat minority samples
train = Recording(x, [0] * 12 + [1] * 4)
val_x, val_labels = moving_blobs(8, seed=2, frames=4, size=16)
torch.manual_seed(0)
model = create_model("r3d18", num_classes=2, widths=[4, 4, 4, 4])
config = TrainerConfig(epochs=2, batch_size=4, lr=0.05, device="cpu", progress=False,
                       checkpoint_every=1, threads=1, data_path="loader", seed=7)
trainer = Trainer(model, torch.nn.CrossEntropyLoss(), config, out_dir=out / "fit")
state = trainer.fit(train, TensorClips(val_x, val_labels), sampler="class_uniform")
torch.save = real_save
real_save({k: v.clone() for k, v in model.state_dict().items()}, out / f"model_{rank}.pt")
(out / f"rank_{rank}.json").write_text(json.dumps({
    "saves": saves, "seen": train.seen, "history": state.history,
}))
"""


def test_ranks_agree_write_once_and_split_class_uniform_draws(tmp_path) -> None:
    script = tmp_path / "fit_two_ranks.py"
    script.write_text(TRAINER_SCRIPT)
    run(torchrun([str(script), str(tmp_path)]))
    ranks = [json.loads((tmp_path / f"rank_{r}.json").read_text()) for r in (0, 1)]
    # checkpoints: rank 0 wrote last.pt after each of the 2 epochs, rank 1 nothing
    assert ranks[0]["saves"] == [".last.pt.tmp", ".last.pt.tmp"]
    assert ranks[1]["saves"] == []
    assert sorted(p.name for p in (tmp_path / "fit").iterdir()) == ["curves.csv", "last.pt"]
    # the same model on both ranks (BatchNorm running statistics included), so the same
    # validation scores and the same globally averaged loss
    models = [torch.load(tmp_path / f"model_{r}.pt", weights_only=True) for r in (0, 1)]
    assert any("running_mean" in k for k in models[0])
    for key, value in models[0].items():
        torch.testing.assert_close(models[1][key], value, rtol=0, atol=0)
    assert ranks[0]["history"] == ranks[1]["history"]
    # the class-uniform sampler: one shared draw per epoch, rank r takes positions r, r+2, ...
    from recognizer.remedies.samplers import ClassUniformSampler

    labels = [0] * 12 + [1] * 4
    for epoch in (0, 1):
        reference = ClassUniformSampler(labels, seed=7)
        reference.set_epoch(epoch)
        draw = reference.global_indices()
        seen = [ranks[r]["seen"][str(epoch)] for r in (0, 1)]
        assert len(seen[0]) == len(seen[1]) == 8
        assert seen[0] == draw[0::2] and seen[1] == draw[1::2]
        merged = [i for pair in zip(*seen, strict=True) for i in pair]
        assert merged == draw  # every draw once, over both ranks
        assert len(set(draw)) < len(draw)  # with replacement: the check above is not trivial


SYNTH_SCRIPT = """
import dataclasses, json, sys
from pathlib import Path
import torch
from mesynth.face.identities import load_identities
from mesynth.generation.balance import BalancePlan
from mesynth.generation.pipeline import generate
from mesynth.motion.au_basis import MotionModel
from mesynth.motion.timing import TimingSampler
from mesynth.templates.bank import TemplateBank
from recognizer.datasets import load
from recognizer.protocols import Fold
from recognizer.remedies import FoldContext, create_remedy
from recognizer.training.trainer import init_distributed

NAMES = ["anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise"]
out, world = Path(sys.argv[1]), len(sys.argv) > 2
rank = init_distributed(torch.device("cpu"))[0] if world else 0
real = out / f"real_{rank}"  # each process its own unsharded copy of a small 'real' set
faces = load_identities("builtin", size=16, cache_dir=out / f"lm_{rank}")
generate(faces, TemplateBank.expert("dfme7"), MotionModel.expert(0.05), TimingSampler(),
         BalancePlan({"happiness": 4, "surprise": 2}, seed=7), real, num_frames=4,
         device="cpu", progress=False, rank=0, world_size=1)
samples = [dataclasses.replace(s, dataset="t", subject=f"t/{s.identity}")
           for s in load("mesynth", real).samples]
labels = [NAMES.index(s.emotion) for s in samples]
subjects = sorted({s.subject for s in samples})
fold = Fold(0, frozenset(subjects[:-1]), frozenset(), frozenset(subjects[-1:]))
keep = [i for i, s in enumerate(samples) if s.subject in fold.train_subjects]
context = FoldContext(fold, [samples[i] for i in keep], [labels[i] for i in keep], NAMES,
                      out / "fold", 0)
synthesis = {"scheme": "dfme7", "templates": {"sources": ["expert"]}, "size": 16,
             "identities": {"cache_dir": str(out / f"lm_{rank}")},
             "frames": {"num_frames": 4}, "device": "cpu"}
remedy = create_remedy("synth_only", synthesis=synthesis, cache_dir=str(out / "cache"),
                       n_per_class=3)
data = remedy.fold_data(context)
(out / f"train_{rank}.json").write_text(json.dumps(
    {"clips": [s.clip for s in data.train], "labels": list(data.train_labels)}))
"""


def test_a_synthetic_remedy_renders_one_store_over_the_ranks(tmp_path) -> None:
    """Under DDP the pool is rendered in two shards; both ranks then train on the whole merged
    store, the same clips as a single process renders."""
    script = tmp_path / "synth_two_ranks.py"
    script.write_text(SYNTH_SCRIPT)
    run(torchrun([str(script), str(tmp_path / "ddp"), "ddp"]))
    run([sys.executable, str(script), str(tmp_path / "one")])
    ranks = [json.loads((tmp_path / "ddp" / f"train_{r}.json").read_text()) for r in (0, 1)]
    single = json.loads((tmp_path / "one" / "train_0.json").read_text())
    # 3 clips per class, less any the pool could not give once clips showing the held-out
    # person are left out (the pool's size allows for that on average, not per class)
    assert len(set(single["labels"])) == 7 and 7 * 2 <= len(single["clips"]) <= 7 * 3
    assert ranks[0] == ranks[1] == single
    (store,) = (tmp_path / "ddp" / "cache").glob("*/manifest.rank1.csv")
    (one,) = (tmp_path / "one" / "cache").glob("*/manifest.csv")
    total = len(read_manifest_rows(one))
    assert len(read_manifest_rows(store)) == total // 2  # rank 1 rendered clips 1, 3, ...
    assert (store.parent / "manifest.csv").read_bytes() == one.read_bytes()


REFUSAL_SCRIPT = """
import json, sys
from pathlib import Path
from recognizer.experiments.runner import RunConfigError, run_protocol
from recognizer.models import create_model
from recognizer.protocols import create_protocol
from recognizer.training.trainer import TrainerConfig, distributed_env
from tests.recognizer.helpers import FakeSample, feature_factory

out = Path(sys.argv[1])
rank = distributed_env()[0]
samples = [FakeSample("d", f"d/s{i % 4}", f"c{i}", feature=(float(i % 2), 0.0, 1.0))
           for i in range(16)]
labels = [i % 2 for i in range(16)]

def attempt(folder, seed):
    config = TrainerConfig(epochs=1, batch_size=4, lr=0.05, device="cpu", progress=False,
                           threads=1, seed=seed)
    try:
        run_protocol(samples, labels, protocol=create_protocol("kfold", n_splits=2),
                     dataset_factory=feature_factory,
                     model_factory=lambda k: create_model("ststnet", k), remedy="none",
                     trainer_config=config, out_dir=folder)
    except RunConfigError as err:
        return str(err)
    return None

messages = [attempt(out / f"rank{rank}", 0), attempt(out / "shared", 0),
            attempt(out / "shared", 1)]
(out / f"messages_{rank}.json").write_text(json.dumps(messages))
"""


def test_ranks_refuse_together(tmp_path) -> None:
    """Ranks given different folders stop, all of them, saying to pin ``out_dir``; a folder
    holding another configuration is refused on every rank, not only on rank 0 (which alone
    reads it), so no rank is left waiting for the others."""
    script = tmp_path / "refuse.py"
    script.write_text(REFUSAL_SCRIPT)
    run(torchrun([str(script), str(tmp_path)]))
    messages = [json.loads((tmp_path / f"messages_{r}.json").read_text()) for r in (0, 1)]
    assert messages[0] == messages[1]
    different, same, other = messages[0]
    assert "write to different folders" in different and "out_dir=" in different
    assert same is None  # one folder: the run trains and finishes
    assert "another configuration" in other and "trainer.seed" in other
    assert not (tmp_path / "rank0").exists() and not (tmp_path / "rank1").exists()
