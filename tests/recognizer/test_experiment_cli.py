"""`mer experiment` (Hydra multirun grid) and its collection into one report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from mesynth.cli.app import config_dir
from recognizer.cli import main as mer_main
from recognizer.evaluation.grid import collect, summary_table
from recognizer.evaluation.metrics import uar, uf1

STORE_HEADER = (
    "clip_id,identity,label,emotion,aus,template_source,onset,apex,offset,fps,n_frames,mode,"
    "frame_numbers,seed,frames_dir,npy_path"
)


def blob_store(root: Path, identities: int = 4, per_identity: int = 6, size: int = 16) -> Path:
    """A clip store whose clips are a bright blob moving right (happiness) or left (surprise)."""
    rng = np.random.default_rng(0)
    (root / "clips").mkdir(parents=True)
    lines = [STORE_HEADER]
    yy, xx = np.mgrid[0:size, 0:size]
    index = 0
    for ident in range(identities):
        for c in range(per_identity):
            label = ("happiness", "surprise")[c % 2]
            step = 1.5 if label == "happiness" else -1.5
            x0, y0 = size / 2 - step * 3, rng.uniform(size * 0.3, size * 0.7)
            clip = np.stack(
                [np.exp(-((xx - x0 - step * t) ** 2 + (yy - y0) ** 2) / 6.0) for t in range(8)]
            )
            clip = (np.repeat(clip[..., None], 3, axis=-1) * 255).astype(np.uint8)
            np.save(root / "clips" / f"{index:06d}.npy", clip)
            lines.append(
                f"{index:06d},face{ident},{label},{label},12,expert:test,0,4,7,200,8,full,"
                f"{';'.join(map(str, range(8)))},{index},,clips/{index:06d}.npy"
            )
            index += 1
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    return root


def _compose(overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        return compose("experiment", overrides=overrides, return_hydra_config=True)


def test_experiment_config_is_a_multirun_grid_with_local_and_slurm_launchers() -> None:
    cfg = _compose([])
    assert cfg.hydra.mode.name == "MULTIRUN"
    assert cfg.hydra.launcher._target_.endswith("JoblibLauncher")
    assert cfg.hydra.launcher.n_jobs == 1
    assert set(cfg.hydra.sweeper.params) == {"remedy", "seed"}
    assert cfg.trainer.seed == cfg.seed
    slurm = _compose(["hydra/launcher=slurm", "hydra.launcher.partition=gpu"])
    assert slurm.hydra.launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert slurm.hydra.launcher.partition == "gpu"
    assert slurm.hydra.launcher.gpus_per_node == 1


def test_mer_experiment_runs_the_grid_and_collects_it(tmp_path, capsys) -> None:
    store = blob_store(tmp_path / "store")
    sweep = tmp_path / "sweep"
    code = mer_main(
        [
            "experiment",
            f"data.loader.root={store}",
            "representation.num_frames=4",
            "representation.size=16",
            "+model.widths=[4,4,4,4]",
            "protocol.n_splits=2",
            "protocol.val_fraction=0",
            "trainer=debug",
            "trainer.progress=false",
            "trainer.lr=0.05",
            "remedy=none,cb",
            "seed=0,1",
            f"paths.root_dir={tmp_path}",
            f"hydra.sweep.dir={sweep}",
        ]
    )
    assert code == 0
    results = sorted(sweep.rglob("results.json"))
    cells = {p.parent.relative_to(sweep).as_posix() for p in results}
    assert cells == {f"r3d18/kfold/{r}/seed{s}" for r in ("none", "cb") for s in (0, 1)}
    report = sweep / "report"
    assert "experiment report" in capsys.readouterr().out
    runs = pd.read_csv(report / "runs.csv")
    assert len(runs) == 4 and set(runs["seed"]) == {0, 1}
    for _, run in runs.iterrows():  # pooled metrics recomputed from the predictions
        pred = pd.read_csv(Path(run["run"]) / "predictions.csv")
        assert run["UF1"] == pytest.approx(uf1(pred["true"], pred["predicted"]))
        assert run["UAR"] == pytest.approx(uar(pred["true"], pred["predicted"]))
    summary = pd.read_csv(report / "summary.csv")
    assert sorted(summary["remedy"]) == ["cb", "none"] and (summary["seeds"] == 2).all()
    for _, row in summary.iterrows():
        values = runs.loc[runs["remedy"] == row["remedy"], "UF1"].to_numpy()
        assert row["UF1"] == pytest.approx(values.mean())
        assert row["UF1 std"] == pytest.approx(values.std())
    folds = pd.read_csv(report / "folds.csv")
    assert len(folds) == 4 * 2
    text = (report / "report.md").read_text()
    assert "metrics.png" in text and "class_distribution.png" in text
    for png in ("metrics.png", "class_distribution.png", "confusion_r3d18_kfold_cb.png"):
        assert (report / png).stat().st_size > 1000
    counts = json.loads(next(sweep.rglob("fold_00/class_counts.json")).read_text())
    assert counts["real"] == counts["train"] and sum(counts["real"]) == 12

    # `mer experiment-report` writes the same summary from the sweep folder
    again = tmp_path / "again"
    assert mer_main(["experiment-report", f"runs=[{sweep}]", f"out_dir={again}",
                     f"paths.root_dir={tmp_path}"]) == 0  # fmt: skip
    assert pd.read_csv(again / "summary.csv").equals(summary)


def test_summary_is_mean_and_population_std_over_seeds(tmp_path) -> None:
    runs = pd.DataFrame(
        {
            "model": ["m"] * 3, "protocol": ["kfold"] * 3, "remedy": ["cb"] * 3,
            "seed": [0, 1, 2], "N": [10] * 3,
            "UF1": [0.2, 0.4, 0.9], "UAR": [0.5, 0.5, 0.5], "ACC": [0.1, 0.2, 0.3],
            "UF1 fold mean": [0.1, 0.1, 0.4], "UAR fold mean": [0.0, 1.0, 0.5],
            "ACC fold mean": [0.3, 0.3, 0.3],
        }
    )  # fmt: skip
    row = summary_table(runs).iloc[0]
    assert row["seeds"] == 3
    assert row["UF1"] == pytest.approx(0.5)
    assert row["UF1 std"] == pytest.approx(np.sqrt(((0.3**2) + (0.1**2) + (0.4**2)) / 3))
    assert row["UAR std"] == 0.0
    assert row["UAR fold mean"] == pytest.approx(0.5)
    with pytest.raises(FileNotFoundError, match="not found"):
        collect([tmp_path / "missing"], tmp_path / "out")
