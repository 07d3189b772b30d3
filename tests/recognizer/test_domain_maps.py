"""Real-vs-synthetic class-mean maps (recognizer.remedies.domain_maps): the statistics against
scipy, and ``mer train ... remedy=synth_fill`` on apex flow writing them once per run and pool,
with ``mer report`` embedding the figure and the table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr

from recognizer.cli import main as mer_main
from recognizer.remedies.domain_maps import class_statistics, flow_energies
from tests.flow_fixtures import MANIFEST_SUBJECTS, synth_fill_flow_run, write_flow_manifest


def test_energy_is_the_flow_magnitude_about_the_median_flow() -> None:
    image = np.full((1, 4, 4, 3), 128, np.uint8)
    image[0, 1, 2, :2] = (128 + 30, 128 - 40)  # one moving pixel: 50/255 from the median
    energy = flow_energies(image)
    assert energy.shape == (1, 4, 4)
    assert energy[0, 1, 2] == pytest.approx(50 / 255, rel=1e-5)
    assert np.count_nonzero(energy) == 1


def test_class_statistics_against_scipy() -> None:
    rng = np.random.default_rng(0)
    real = rng.random((6, 8, 8)).astype(np.float32)
    synthetic = np.concatenate([2.0 * real[:3], rng.random((2, 8, 8)).astype(np.float32)])
    energies = {"real": real, "synthetic": synthetic}
    labels = {"real": np.array([0, 0, 0, 1, 1, 1]), "synthetic": np.array([0, 0, 0, 1, 1])}
    rows = {r["class"]: r for r in class_statistics(energies, labels, ["a", "b", "c"])}
    assert set(rows) == {"a", "b"}  # "c" is in neither set
    assert rows["a"]["energy_ratio"] == pytest.approx(2.0, rel=1e-5)
    assert rows["a"]["map_correlation"] == pytest.approx(1.0, abs=1e-6)
    expected = pearsonr(real[3:].mean(0).ravel(), synthetic[3:].mean(0).ravel())[0]
    assert rows["b"]["map_correlation"] == pytest.approx(expected, abs=1e-6)
    ratio = synthetic[3:].mean(0).mean() / real[3:].mean(0).mean()
    assert rows["b"]["energy_ratio"] == pytest.approx(ratio, rel=1e-5)
    assert (rows["b"]["real"], rows["b"]["synthetic"]) == (3, 2)


def test_synth_fill_on_apex_flow_reports_its_class_mean_maps(tmp_path: Path) -> None:
    root = write_flow_manifest(tmp_path / "composite")
    table = pd.read_csv(root / "manifest.csv", dtype=str, keep_default_na=False)
    table = table[table["subject"].isin(MANIFEST_SUBJECTS[:4])]
    table.to_csv(root / "manifest4.csv", index=False)
    out = tmp_path / "run"
    argv = [
        *synth_fill_flow_run(root / "manifest4.csv", 32, tmp_path / "cache"),
        f"out_dir={out}", f"paths.root_dir={tmp_path}",
    ]  # fmt: skip
    assert mer_main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    (maps,) = {entry["domain_maps"] for entry in results["fold_data"]}  # one per run and pool
    assert Path(maps).is_relative_to(out.resolve() / "domain_maps")
    record = json.loads(Path(maps).read_text())
    counts = table["label"].value_counts()
    for row in record["classes"]:
        assert row["real"] == counts.get(row["class"], 0)
        if row["real"] and row["synthetic"]:
            assert row["energy_ratio"] > 0 and -1 <= row["map_correlation"] <= 1
    assert sum(r["real"] for r in record["classes"]) == len(table)
    assert (Path(maps).parent / record["figure"]).stat().st_size > 0
    report_dir = tmp_path / "report"
    assert mer_main(["report", f"runs=[{out}]", f"out_dir={report_dir}"]) == 0
    text = (report_dir / "report.md").read_text()
    assert "![real vs synthetic class means](domain_maps_00_0.png)" in text
    assert "energy synthetic / real" in text
    assert (report_dir / "domain_maps_00_0.png").is_file()
