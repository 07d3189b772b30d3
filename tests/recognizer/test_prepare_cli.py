"""`mer prepare` end to end on a tiny clip store: report, cache, apex-flow images."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from recognizer.datasets import load
from tests.recognizer.fake_releases import fake_store

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "recognizer.cli", "prepare", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        check=False,
    )


def test_prepare_reports_caches_and_writes_apex_flow(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    clips = [rng.integers(0, 256, (4, 24, 24, 3), dtype=np.uint8) for _ in range(3)]
    store = fake_store(
        tmp_path / "store",
        clips,
        labels=["happiness", "disgust", "fear"],
        apexes=[2, 1, 3],
        formats=["frames", "npy", "npy"],
    )
    flow_dir = tmp_path / "flow"
    args = [
        "data=mesynth",
        f"data.loader.root={store}",
        f"paths.root_dir={tmp_path}",
        "preprocess.backend=none",
        "preprocess.size=16",
        "progress=false",
        "representation=apex_flow",
        "representation.size=12",
        "write_apex_flow=true",
        f"apex_flow_dir={flow_dir}",
    ]
    first = _run(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "mesynth: 3 rows read, 3 kept, 0 skipped" in first.stdout
    assert "preprocessed 3 clips (0 reused from the cache), 0 failed" in first.stdout
    flows = load("manifest", flow_dir)
    assert len(flows.samples) == 3 and flows.samples[1].emotion == "disgust"
    assert flows.samples[0].subject == "mesynth/astronaut"
    assert len(list((tmp_path / ".cache").rglob("*.npy"))) == 3
    second = _run(*args, cwd=tmp_path)
    assert "preprocessed 3 clips (3 reused from the cache)" in second.stdout


def test_prepare_wrong_root_is_one_clear_message(tmp_path: Path) -> None:
    out = _run("data=samm", f"data.loader.root={tmp_path}/nowhere", cwd=tmp_path)
    assert out.returncode != 0
    assert f"SAMM root not found: {tmp_path}/nowhere" in out.stderr
