"""Apex flows of a synthetic pool computed by worker threads (``compute_flows``): the same
images as one at a time, cached images reused untouched, provenance kept."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from mesynth.face.identities import load_identities
from mesynth.flow import apex_flow
from mesynth.generation.balance import equal
from mesynth.generation.pipeline import generate
from mesynth.generation.store_reader import store_records
from mesynth.motion.au_basis import MotionModel
from mesynth.motion.timing import TimingSampler
from mesynth.records import apex_of, read_record_frames
from mesynth.templates.bank import TemplateBank
from recognizer.data.representations import SyntheticFrames
from recognizer.remedies.synthetic import compute_flows, flow_folder, load_synthetic

CLASSES = ["negative", "positive", "surprise"]
FRAMES = SyntheticFrames("onset_apex", 2, "onset_apex", 48, flow_size=28, flow_method="farneback")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pool") / "store"
    bank = TemplateBank.expert("megc3")
    generate(
        load_identities("builtin", size=48),
        bank,
        MotionModel.expert(),
        TimingSampler(fps=60),
        equal(2, CLASSES, seed=3),
        root,
        mode="onset_apex",
        device="cpu",
        progress=False,
    )
    return root


def _pixels(samples) -> list[np.ndarray]:
    return [cv2.imread(str(s.array_path), cv2.IMREAD_UNCHANGED) for s in samples]


def test_threads_compute_the_same_flows_as_one_at_a_time(store: Path, tmp_path: Path) -> None:
    samples = load_synthetic(store, CLASSES).samples
    one, many = tmp_path / "one", tmp_path / "many"
    one.mkdir(), many.mkdir()
    serial = compute_flows(samples, FRAMES, one, workers=1)
    threaded = compute_flows(samples, FRAMES, many, workers=3)
    assert [s.clip for s in threaded] == [s.clip for s in samples]
    for a, b in zip(_pixels(serial), _pixels(threaded), strict=True):
        np.testing.assert_array_equal(a, b)
    # and each image is the flow of that clip's own onset and true apex
    record = next(r for r in store_records(store) if r.clip == samples[0].clip)
    onset, apex = read_record_frames(record, [record.onset, apex_of(record)])
    expected = apex_flow(onset, apex, 28, "farneback")
    np.testing.assert_array_equal(_pixels(threaded)[0][:, :, ::-1], expected)
    assert threaded[0].extra["flow_frames"] == f"{record.onset};{apex_of(record)}"
    assert cv2.getNumThreads() > 0  # the OpenCV thread setting is restored


def test_cached_flows_are_reused_and_provenance_is_kept(store: Path) -> None:
    folder = flow_folder(store, FRAMES)
    first = load_synthetic(store, CLASSES, FRAMES, workers=2)
    stamps = {p: p.stat().st_mtime_ns for p in folder.glob("*.png")}
    assert len(stamps) == len(first.samples) == 6
    victim = first.samples[1].array_path
    victim.unlink()
    again = load_synthetic(store, CLASSES, FRAMES, workers=2)
    assert victim.is_file()  # the one missing image is computed again
    for path, stamp in stamps.items():
        if path != victim:
            assert path.stat().st_mtime_ns == stamp  # the others are not rewritten
    assert [s.extra for s in again.samples] == [s.extra for s in first.samples]
    assert again.labels == first.labels
    assert not list(folder.glob(".tmp-*"))
