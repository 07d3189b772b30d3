"""``mer experiment`` through the submitit launcher, run on this machine (``slurm_local``).

The Hydra submitit plugin takes the same path as on a cluster up to the scheduler: it pickles
each grid cell (the launcher, its config loader and the task function) into the submitit
folder, runs it as a submitit job in a fresh process (here a local process, on SLURM an sbatch
array task), unpickles the job's result, and the grid report is collected from the cells'
folders. The test checks each of those steps, and that a cell run this way gives exactly the
predictions of the same ``mer train`` run in this process.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.utils import JobStatus

from mesynth.cli.app import config_dir
from recognizer.cli import main as mer_main
from recognizer.evaluation.metrics import uf1
from tests.distributed import run
from tests.recognizer.helpers import TINY_KFOLD
from tests.recognizer.test_experiment_cli import blob_store

CELL = [
    *TINY_KFOLD,
    "trainer.progress=false",
    "trainer.lr=0.05",
    "trainer.threads=1",
]
#: the `mer` console script, so the task function is pickled by reference as on a cluster
MER = [sys.executable, "-c", "import sys; from recognizer.cli import main; sys.exit(main())"]


def _launcher(name: str) -> dict:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        overrides = [f"hydra/launcher={name}", "hydra.sweep.dir=grid"]
        cfg = compose("experiment", overrides=overrides, return_hydra_config=True)
    return dict(cfg.hydra.launcher)


def test_slurm_local_keeps_the_cluster_settings_but_the_gpus() -> None:
    slurm, local = _launcher("slurm"), _launcher("slurm_local")
    assert slurm["_target_"].endswith("SlurmLauncher")
    assert local["_target_"].endswith("submitit_launcher.LocalLauncher")
    shared = sorted((set(slurm) & set(local)) - {"_target_", "gpus_per_node"})
    assert {"timeout_min", "cpus_per_task", "mem_gb", "submitit_folder"} <= set(shared)
    assert {k: local[k] for k in shared} == {k: slurm[k] for k in shared}
    assert (slurm["gpus_per_node"], local["gpus_per_node"]) == (1, 0)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:fold .* training data lacks classes")
def test_a_grid_runs_as_submitit_jobs_and_is_collected(tmp_path) -> None:
    store = blob_store(tmp_path / "store")
    sweep = tmp_path / "sweep"
    command = [*MER, "experiment", f"data.loader.root={store}", *CELL, "remedy=none,cb",
               "seed=0", "hydra/launcher=slurm_local", f"paths.root_dir={tmp_path}",
               f"hydra.sweep.dir={sweep}"]  # fmt: skip
    run(command)
    cells = {sweep / f"r3d18/kfold/{remedy}/seed0" for remedy in ("none", "cb")}

    # one submitit job per cell: its pickled submission, its log, its pickled result
    jobs = sorted(p for p in (sweep / ".submitit").iterdir() if p.name.isdigit())
    assert len(jobs) == 2
    outputs = set()
    for job in jobs:
        assert int(job.name) != os.getpid()  # a process of its own
        assert (job / f"{job.name}_submitted.pkl").stat().st_size > 0
        assert "fold 2/2" in (job / f"{job.name}_0_log.out").read_text()
        with open(job / f"{job.name}_0_result.pkl", "rb") as handle:
            outcome, result = pickle.load(handle)
        assert outcome == "success" and result.status == JobStatus.COMPLETED
        outputs.add(Path(result.hydra_cfg.hydra.runtime.output_dir))
    assert outputs == cells
    for cell in cells:
        assert (cell / "results.json").is_file() and (cell / "fold_01/last.pt").is_file()

    # the grid report: one row per cell, its metrics recomputed from the cell's predictions
    runs = pd.read_csv(sweep / "report" / "runs.csv")
    assert {Path(r) for r in runs["run"]} == cells
    for _, row in runs.iterrows():
        pred = pd.read_csv(Path(row["run"]) / "predictions.csv")
        assert row["UF1"] == pytest.approx(uf1(pred["true"], pred["predicted"]))
    assert sorted(pd.read_csv(sweep / "report" / "summary.csv")["remedy"]) == ["cb", "none"]

    # the pickled job ran the cell's configuration: the same run here gives the same results
    here = tmp_path / "here"
    overrides = [f"data.loader.root={store}", *CELL, "remedy=none", "trainer.seed=0"]
    assert mer_main(["train", *overrides, f"paths.root_dir={tmp_path}", f"out_dir={here}"]) == 0
    cell = sweep / "r3d18/kfold/none/seed0"
    assert (here / "predictions.csv").read_text() == (cell / "predictions.csv").read_text()
    pooled = [json.loads((p / "results.json").read_text())["pooled"] for p in (here, cell)]
    assert pooled[0] == pooled[1]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:fold .* training data lacks classes")
def test_a_job_of_two_tasks_trains_as_one_ddp_run(tmp_path) -> None:
    """``tasks_per_node=2``: the job's two tasks are the two ranks of one run (batch 4 each),
    which equals one process with batch 8 (no batch statistics: ``norm_layer=Identity``)."""
    store = blob_store(tmp_path / "store")
    sweep = tmp_path / "sweep"
    cell = [f"data.loader.root={store}", *CELL, "+model.norm_layer={_target_:torch.nn.Identity,"
            "_partial_:true}", "remedy=class_uniform", "trainer.epochs=3"]  # fmt: skip
    run([*MER, "experiment", *cell, "trainer.batch_size=4", "seed=0",
         "hydra/launcher=slurm_local", "hydra.launcher.tasks_per_node=2",
         f"paths.root_dir={tmp_path}", f"hydra.sweep.dir={sweep}"])  # fmt: skip
    (job,) = (p for p in (sweep / ".submitit").iterdir() if p.name.isdigit())
    logs = [(job / f"{job.name}_{task}_log.out").read_text() for task in (0, 1)]
    assert "results: " in logs[0] and "results: " not in logs[1]  # rank 0 speaks, rank 1 not
    assert "fold 2/2" in logs[0]

    here = tmp_path / "here"
    assert mer_main(["train", *cell, "trainer.batch_size=8", f"paths.root_dir={tmp_path}",
                     f"out_dir={here}"]) == 0  # fmt: skip
    ran = sweep / "r3d18/kfold/class_uniform/seed0"
    assert (ran / "predictions.csv").read_text() == (here / "predictions.csv").read_text()
    for fold in ("fold_00", "fold_01"):
        a = torch.load(ran / fold / "last.pt", weights_only=True)["model"]
        b = torch.load(here / fold / "last.pt", weights_only=True)["model"]
        for key, value in b.items():
            torch.testing.assert_close(a[key], value, rtol=0, atol=1e-5)
