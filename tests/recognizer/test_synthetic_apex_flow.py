"""Synthetic remedies on an apex-flow composite: `mer train` end to end on a fake MEGC2019-like
manifest (dataset-qualified subjects, apex-flow PNGs, a face crop per subject, AUs on the
CASME II / SAMM rows), one pool rendered for every fold, flows onset -> true apex."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from mesynth.flow import apex_flow
from mesynth.generation.store import load_clip
from recognizer.cli import main as mer_main
from recognizer.remedies import synthetic, synthetic_pool
from tests.flow_fixtures import MANIFEST_SUBJECTS, synth_fill_flow_run, write_flow_manifest

SUBJECTS = MANIFEST_SUBJECTS


@pytest.fixture(scope="module")
def composite(tmp_path_factory) -> Path:
    """manifest.csv with apex-flow PNGs and one face crop per subject."""
    return write_flow_manifest(tmp_path_factory.mktemp("composite"))


def test_mer_train_synth_fill_on_apex_flow_renders_one_pool_and_excludes_each_test_subject(
    composite: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    renders = []
    run_recipe = synthetic_pool.run_recipe
    monkeypatch.setattr(
        synthetic_pool, "run_recipe", lambda *a, **k: renders.append(a[2]) or run_recipe(*a, **k)
    )
    out, cache = tmp_path / "run", tmp_path / "cache"
    argv = [
        *synth_fill_flow_run(composite / "manifest.csv", 64, cache),
        f"out_dir={out}",
        f"paths.root_dir={tmp_path}",
    ]
    assert mer_main(argv) == 0

    # rendered once for the six folds: one store, one generate call
    stores = [p.parent for p in cache.glob("*/provenance.json")]
    assert len(stores) == 1 and renders == [stores[0]]
    store = stores[0]

    results = json.loads((out / "results.json").read_text())
    folds = {f["index"]: f for f in json.loads((out / "folds.json").read_text())}
    assert len(results["fold_data"]) == len(SUBJECTS)
    for entry in results["fold_data"]:
        (test_subject,) = folds[entry["fold"]]["test_subjects"]
        # the test subject's face and templates are left out (not merely detected)
        assert entry["excluded_subjects"] == [test_subject]
        assert entry["synthetic_excluded_clips"] > 0 and entry["synthetic_train"] > 0
        assert set(entry["templates"]) == {"negative", "positive", "surprise"}
        counts = json.loads((out / f"fold_{entry['fold']:02d}" / "class_counts.json").read_text())
        assert sum(counts["train"]) - sum(counts["real"]) == entry["synthetic_train"]
        assert not entry["synthetic_shortfall"]
        assert counts["train"] == [max(counts["real"])] * 3

    # every clip records its face's subject and its template's subjects
    provenance = json.loads((store / "provenance.json").read_text())
    assert sorted(provenance["identity_subjects"].values()) == sorted(SUBJECTS)
    assert set(provenance["template_subjects"]) == set(SUBJECTS[:4])  # SMIC has no AUs
    loaded = synthetic.load_synthetic(store, ["negative", "positive", "surprise"])
    assert {s.extra["identity_subject"] for s in loaded.samples} <= set(SUBJECTS)
    mined = [s for s in loaded.samples if s.extra["template_subjects"]]
    assert mined and all(len(s.extra["template_subjects"].split(";")) == 1 for s in mined)

    # the cached flows are the flows of the stored onset and TRUE apex frames, and not zero
    manifest = pd.read_csv(store / "manifest.csv", dtype=str, keep_default_na=False)
    (flows,) = [p for p in store.iterdir() if p.name.startswith("apex_flow_")]
    for _, row in manifest.head(4).iterrows():
        frames = load_clip(store, row.to_dict())
        assert row["frame_numbers"] == f"0;{row['apex']}" and int(row["apex"]) > 0
        assert frames.shape == (2, 64, 64, 3)
        cached = cv2.imread(str(flows / f"{row['clip_id']}.png"))[:, :, ::-1]
        assert np.array_equal(cached, apex_flow(frames[0], frames[1], 28))
        assert cached.max() > 0
