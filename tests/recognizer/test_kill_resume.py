"""``kill -9`` in the middle of a protocol run: the rerun finishes with the results of a run
that was never interrupted, and no torn result file is ever read.

The run is a real subprocess killed with SIGKILL while it trains (after its first fold's
results are on disk), so whatever a kill leaves behind (a fold without predictions, temporary
files) is exercised.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys
import numpy as np
from recognizer.experiments.runner import run_protocol
from recognizer.models import create_model
from recognizer.protocols import create_protocol
from recognizer.training.trainer import TrainerConfig
from tests.recognizer.helpers import FakeSample, feature_factory

rng = np.random.default_rng(3)
samples, labels = [], []
for s in range(6):
    for c in range(8):
        label = c % 3
        feature = tuple(float(v) for v in np.eye(3)[label] * 2 + rng.normal(0, 0.5, 3))
        samples.append(FakeSample("casme2", f"casme2/s{s}", f"clip{c}", feature=feature))
        labels.append(label)
config = TrainerConfig(epochs=int(sys.argv[2]), batch_size=8, lr=0.05, device="cpu",
                       progress=False, checkpoint_every=1, threads=1)
run_protocol(samples, labels, protocol=create_protocol("loso"), dataset_factory=feature_factory,
             model_factory=lambda k: create_model("ststnet", k), remedy="none",
             trainer_config=config, out_dir=sys.argv[1])
"""


def _start(out: Path, epochs: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(out), str(epochs)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def _results(out: Path) -> tuple[str, dict]:
    summary = json.loads((out / "results.json").read_text())
    return (out / "predictions.csv").read_text(), summary["pooled"]


@pytest.mark.slow
def test_sigkill_mid_run_then_rerun_equals_an_uninterrupted_run(tmp_path) -> None:
    epochs = 40
    killed = _start(tmp_path / "killed", epochs)
    deadline = time.monotonic() + 600
    first_fold = tmp_path / "killed" / "fold_00" / "predictions.csv"
    while not first_fold.exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert killed.poll() is None, "the run ended before it could be killed"
    time.sleep(0.3)  # well inside a later fold's training
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed" / "results.json").exists()

    whole = _start(tmp_path / "whole", epochs)
    assert whole.wait(timeout=600) == 0, whole.stderr.read().decode()
    rerun = _start(tmp_path / "killed", epochs)
    assert rerun.wait(timeout=600) == 0, rerun.stderr.read().decode()
    assert _results(tmp_path / "killed") == _results(tmp_path / "whole")
    assert not list((tmp_path / "killed").rglob("*.tmp"))
    curves = sorted((tmp_path / "whole").glob("fold_*/curves.csv"))
    assert len(curves) == 6  # LOSO over 6 subjects
    for path in curves:  # the killed fold's curves were rewritten from its last checkpoint
        killed_curves = tmp_path / "killed" / path.relative_to(tmp_path / "whole")
        assert killed_curves.read_bytes() == path.read_bytes(), path.parent.name
