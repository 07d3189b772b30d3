"""Preprocessing on frames made from a real face, with the dlib backend."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mesynth.face.canonical import STABLE_INDICES, canonical_landmarks, inter_ocular_distance
from mesynth.face.image_io import read_rgb
from mesynth.face.landmarks import create_detector, detect_landmarks
from recognizer.data.preprocess import (
    CachedFrames,
    PreprocessSettings,
    cache_paths,
    preprocess,
)
from recognizer.datasets import load
from tests.recognizer.fake_releases import Row, astronaut_frames, fake_casme2

SIZE = 128


@pytest.fixture
def release(tmp_path: Path) -> Path:
    """A manifest over three astronaut clips; clip c3's onset frame is corrupt."""
    for clip in ("c1", "c2", "c3"):
        astronaut_frames(tmp_path / clip, [10, 11, 12, 13])
    (tmp_path / "c3" / "img10.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    rows = ["subject,clip,label,path,onset,apex,offset"]
    rows += [f"s{i},{clip},happiness,{clip},10,12,13" for i, clip in enumerate(("c1", "c2", "c3"))]
    (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")
    return tmp_path


def test_alignment_cache_and_failures(release: Path, tmp_path: Path) -> None:
    samples = load("manifest", release).samples
    cache = tmp_path / "cache"
    settings = PreprocessSettings(size=SIZE, backend="dlib")
    result = preprocess(samples, cache, settings, progress=False)
    assert set(result.cached) == {"manifest/s0/c1", "manifest/s1/c2"}
    message = result.failed["manifest/s2/c3"]
    assert "c3/img10.jpg" in message and "corrupt" in message and "row 4" in message

    # aligned landmarks: detected again on the cached onset crop, they sit on the template
    source = CachedFrames(cache, settings)
    sample = samples[0]
    assert source.frame_numbers(sample) == (10, 11, 12, 13)
    crops = source.read(sample, [10, 13])
    assert crops.shape == (2, SIZE, SIZE, 3) and crops.dtype == np.uint8
    template = canonical_landmarks(SIZE)
    iod = float(inter_ocular_distance(template))
    found = detect_landmarks(crops[0], create_detector("dlib"))
    error = np.linalg.norm(found[STABLE_INDICES] - template[STABLE_INDICES], axis=1).mean()
    assert error < 0.1 * iod
    meta = json.loads(cache_paths(cache, sample, settings)[1].read_text())
    matrix = np.array(meta["matrix"])
    aligned = np.array(meta["landmarks"]) @ matrix[:, :2].T + matrix[:, 2]
    fit = np.linalg.norm(aligned[STABLE_INDICES] - template[STABLE_INDICES], axis=1).mean()
    assert fit < 0.05 * iod

    # one transform for the whole clip: the face moved 3 x 1.5 px right/down in the source and
    # was scaled by 1.03, so it is off the template in the last crop by about that much
    last = detect_landmarks(crops[1], create_detector("dlib"))
    drift = (last[STABLE_INDICES] - found[STABLE_INDICES]).mean(0)
    scale = float(np.linalg.norm(matrix[:, 0]))
    assert drift == pytest.approx([4.5 * scale] * 2, abs=2.0)

    # rerun: everything finished is reused, the broken clip is retried
    stamps = {uid: p.stat().st_mtime_ns for uid, p in result.cached.items()}
    again = preprocess(samples, cache, settings, progress=False)
    assert again.reused == 2 and set(again.failed) == {"manifest/s2/c3"}
    assert {uid: p.stat().st_mtime_ns for uid, p in again.cached.items()} == stamps
    astronaut_frames(release / "c3", [10])  # repair the corrupt frame
    fixed = preprocess(samples, cache, settings, progress=False)
    assert fixed.reused == 2 and len(fixed.cached) == 3 and not fixed.failed


def test_landmark_file_and_box_replace_detection(release: Path, tmp_path: Path) -> None:
    sample = load("manifest", release).samples[0]
    points = detect_landmarks(read_rgb(sample.frames[0]), create_detector("dlib"))
    np.save(tmp_path / "onset.npy", points - 0.5)  # files hold 0-based pixel indices
    settings = PreprocessSettings(size=SIZE, backend="dlib")
    by_file = preprocess(
        [sample],
        tmp_path / "a",
        settings,
        landmark_files={sample.uid: tmp_path / "onset.npy"},
        progress=False,
    )
    by_detection = preprocess([sample], tmp_path / "b", settings, progress=False)
    a = np.load(by_file.cached[sample.uid])
    b = np.load(by_detection.cached[sample.uid])
    assert np.array_equal(a, b)  # the file holds exactly what detection finds
    boxed = PreprocessSettings(size=SIZE, backend="dlib", face_box=(0, 0, 199, 199))
    assert boxed.key != settings.key  # settings are part of the cache key
    assert preprocess([sample], tmp_path / "a", boxed, progress=False).reused == 0


def test_parallel_workers_without_alignment(release: Path, tmp_path: Path) -> None:
    samples = load("manifest", release).samples[:2]
    settings = PreprocessSettings(size=32, backend="none")
    result = preprocess(samples, tmp_path / "c", settings, n_jobs=2, progress=False)
    assert len(result.cached) == 2 and not result.failed
    assert np.load(result.cached[samples[1].uid]).shape == (4, 32, 32, 3)


def test_uncached_sample_names_the_fix(release: Path, tmp_path: Path) -> None:
    sample = load("manifest", release).samples[0]
    with pytest.raises(FileNotFoundError, match="mer prepare"):
        CachedFrames(tmp_path / "empty").frame_numbers(sample)


def test_casme2_cropped_tree_preprocesses(tmp_path: Path) -> None:
    rows = [Row("01", "EP02_01f", 46, 47, 48, 12, "happiness")]
    fake_casme2(tmp_path, rows, trees=("cropped",), orphans=())
    folder = tmp_path / "Cropped" / "sub01" / "EP02_01f"
    astronaut_frames(folder, [46, 47, 48], size=120, name="reg_img{n}")  # tight face crops
    samples = load("casme2", tmp_path).samples
    assert len(samples) == 1 and len(samples[0].frames) == 3  # junk files ignored
    settings = PreprocessSettings(size=64, backend="dlib")
    done = preprocess(samples, tmp_path / "cache", settings, progress=False)
    assert not done.failed
    assert np.load(done.cached["casme2/sub01/EP02_01f"]).shape == (3, 64, 64, 3)
