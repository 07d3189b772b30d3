"""Clip store and manifest loaders, representations and the torch datasets on top of them."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from mesynth.flow import save_apex_flow
from recognizer.data.frame_source import RawFrames
from recognizer.data.preprocess import CachedFrames, PreprocessSettings, preprocess
from recognizer.data.representations import ApexFlow, KeyFrameClip
from recognizer.data.torch_dataset import ClipDataset, MixedDataset
from recognizer.datasets import AnnotationError, ReleaseNotFoundError, load
from tests.recognizer.fake_releases import fake_casme2, fake_store, write_frames


def _clip(n: int, size: int = 48) -> np.ndarray:
    """A face clip ``(n, size, size, 3)`` moving 1 px right per frame."""
    frames = []
    face = cv2.resize(_face(), (size, size), interpolation=cv2.INTER_AREA)
    for k in range(n):
        matrix = np.float32([[1, 0, k], [0, 1, 0]])
        frames.append(cv2.warpAffine(face, matrix, (size, size), borderMode=cv2.BORDER_REFLECT))
    return np.stack(frames)


def _face() -> np.ndarray:
    from skimage import data

    return data.astronaut()[20:260, 120:360]


@pytest.fixture
def store(tmp_path: Path) -> Path:
    clips = [_clip(6), _clip(4), _clip(5)]
    return fake_store(
        tmp_path / "store",
        clips,
        labels=["happiness", "disgust", "disgust"],
        apexes=[3, 6, 2],
        formats=["frames", "npy", "frames"],
        frame_numbers=[range(6), [0, 2, 6, 9], range(5)],
    )


def test_store_loads_as_synthetic_samples(store: Path) -> None:
    result = load("mesynth", store)
    assert result.report.rows_read == 3 and result.report.kept == 3
    first, second, _ = result.samples
    assert first.subject == "mesynth/astronaut" and first.source == "synthetic"
    assert first.identity == "astronaut" and first.emotion == "happiness" and first.aus == "6+12"
    assert first.frame_numbers == tuple(range(6)) and first.apex == 3
    assert second.array_path is not None and second.frames == ()
    assert RawFrames().frame_numbers(second) == (0, 2, 6, 9)
    assert RawFrames().read(second, [6]).shape == (1, 48, 48, 3)
    assert result.label_indices("dfme7") == [4, 2, 2]
    frames = load("mesynth", store, prefer="frames")
    assert [s.array_path is None for s in frames.samples] == [True, False, True]


def test_store_problems_are_reported(store: Path) -> None:
    (store / "clips" / "000002" / "img3.png").unlink()
    result = load("mesynth", store)
    assert result.report.kept == 2
    assert "lacks frames [3]" in result.report.skipped[0].reason
    assert result.report.skipped[0].row == 4
    with pytest.raises(ReleaseNotFoundError, match="no manifest.csv"):
        load("mesynth", store / "clips")
    (store / "manifest.csv").write_text("clip_id,label\n1,x\n")
    with pytest.raises(AnnotationError, match="manifest.csv.*missing"):
        load("mesynth", store)


def test_manifest_folder_array_and_image(tmp_path: Path) -> None:
    write_frames(tmp_path / "f", [3, 4, 5, 6], name="frame{n:03d}")
    np.save(tmp_path / "clip.npy", _clip(5, 16))
    flow = np.random.default_rng(0).integers(0, 256, (28, 28, 3), dtype=np.uint8)
    save_apex_flow(tmp_path / "flow.png", flow)
    (tmp_path / "bad.npy").write_bytes(b"garbage")
    rows = [
        "subject,clip,label,path,onset,apex,offset,dataset",
        "1,a,negative,f,3,5,6,casme2",
        "2,b,positive,clip.npy,,,,",
        "3,c,surprise,flow.png,,,,",
        "4,d,surprise,missing_dir,,,,",
        "5,e,surprise,f,3,9,6,",
        "6,f,surprise,bad.npy,,,,",
    ]
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")
    result = load("manifest", tmp_path / "list.csv", fps=30.0)
    a, b, c = result.samples
    assert a.subject == "casme2/1" and a.frame_numbers == (3, 4, 5, 6) and a.apex == 5
    assert b.subject == "manifest/2" and (b.onset, b.offset) == (0, 4) and b.apex is None
    assert c.array_path == tmp_path / "flow.png" and c.fps == 30.0
    reasons = {s.row: s.reason for s in result.report.skipped}
    assert "path not found" in reasons[5] and "missing_dir" in reasons[5]
    assert reasons[6] == "apex 9 outside onset..offset (3..6)"
    assert "not a readable .npy array" in reasons[7] and "bad.npy" in reasons[7]
    rep = ApexFlow(size=28, flip=False)
    x = rep(c, RawFrames())
    assert torch.allclose(x, torch.from_numpy(flow).permute(2, 0, 1).float() / 255)
    assert rep(b, RawFrames()).shape == (3, 28, 28)


def test_clip_dataset_shapes_determinism_and_cache(store: Path, tmp_path: Path) -> None:
    result = load("mesynth", store)
    labels = result.label_indices("dfme7")
    rep = KeyFrameClip(num_frames=4, size=16, sampling="adaptive")
    test_set = ClipDataset(result.samples, labels, rep)
    x, label, index = test_set[1]
    assert x.shape == (3, 4, 16, 16) and x.dtype == torch.float32 and (label, index) == (2, 1)
    assert torch.equal(test_set[0][0], test_set[0][0])
    train_set = ClipDataset(result.samples, labels, rep, train=True, seed=3)
    views = []
    for epoch in range(6):
        train_set.set_epoch(epoch)
        views.append(train_set[0][0])
    train_set.set_epoch(0)
    assert torch.equal(train_set[0][0], views[0])  # same (seed, epoch, index): same view
    assert any(not torch.equal(v, views[0]) for v in views[1:])
    # the cache gives the same clip as the frames when no alignment is asked for
    settings = PreprocessSettings(size=48, backend="none")
    preprocess(result.samples, tmp_path / "cache", settings, progress=False)
    cached = ClipDataset(
        result.samples, labels, rep, source=CachedFrames(tmp_path / "cache", settings)
    )
    assert torch.allclose(cached[2][0], test_set[2][0], atol=0.05)
    flow_set = ClipDataset(result.samples, labels, ApexFlow(size=12))
    assert flow_set[0][0].shape == (3, 12, 12)


def test_mixed_dataset_keeps_source_tags(store: Path, tmp_path: Path) -> None:
    synthetic = load("mesynth", store)
    real = load("casme2", fake_casme2(tmp_path / "casme2"))
    rep = KeyFrameClip(num_frames=2, size=8)
    mix = MixedDataset(
        {
            "real": ClipDataset(real.samples, [0] * len(real), rep),
            "synthetic": ClipDataset(synthetic.samples, [1, 2, 2], rep),
        }
    )
    assert len(mix) == len(real) + 3
    assert mix.sources == ["real"] * len(real) + ["synthetic"] * 3
    assert mix.labels == [0] * len(real) + [1, 2, 2]
    x, label, index = mix[len(real) + 1]
    assert x.shape == (3, 2, 8, 8) and (label, index) == (2, len(real) + 1)
    with pytest.raises(IndexError):
        mix[len(mix)]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="known strategies"):
        KeyFrameClip(sampling="dense")
    with pytest.raises(ValueError, match="2 samples but 1 labels"):
        ClipDataset([None, None], [0], KeyFrameClip())  # type: ignore[list-item]
