import csv
import errno
import json

import cv2
import numpy as np
import pytest

from mesynth.generation import store as store_module
from mesynth.generation.store import (
    MANIFEST_COLUMNS,
    ClipStore,
    StoreConfigError,
    StoreError,
    StoreFullError,
    merge_shards,
    read_manifest_rows,
    select_frames,
    shard_from_env,
)

CONFIG = {"plan": {"a": 2}, "seed": 1}


def _clip(seed: int, frames: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (frames, 8, 8, 3), dtype=np.uint8)


def _row(index: int, frames: int = 3) -> dict:
    return {
        "clip_id": f"{index:06d}",
        "identity": "astronaut",
        "label": "happiness",
        "emotion": "happiness",
        "aus": "6+12",
        "template_source": "expert:test",
        "onset": 0,
        "apex": 4,
        "offset": 9,
        "fps": 200.0,
        "n_frames": 10,
        "frame_numbers": [0, 4, 9][:frames],
        "seed": 123 + index,
    }


def test_select_frames_modes() -> None:
    assert select_frames("full", 5, 2).tolist() == [0, 1, 2, 3, 4]
    assert select_frames("onset_apex", 50, 17).tolist() == [0, 17]
    assert select_frames("keyframes", 31, 10, 4).tolist() == [0, 10, 20, 30]
    # short clips keep every frame rather than repeating frames
    assert select_frames("keyframes", 5, 2, 16).tolist() == [0, 1, 2, 3, 4]


def test_adaptive_keyframes_include_apex_and_split_by_segment_length() -> None:
    frames = select_frames("keyframes", 101, 25, 9, "adaptive")
    # 8 non-apex frames over 25 rise and 75 fall frames: 2 before the apex, 6 after; rise
    # positions 0, 12.5 from the onset, fall positions 0, 12.5, ..., 62.5 back from the offset,
    # rounded half up
    assert frames.tolist() == [0, 13, 25, 37, 50, 62, 75, 87, 100]
    for n_frames, apex in [(17, 1), (17, 15), (40, 0), (40, 39), (18, 9)]:
        out = select_frames("keyframes", n_frames, apex, 16, "adaptive")
        assert len(out) == 16 and apex in out and len(set(out.tolist())) == 16
        assert out.min() >= 0 and out.max() <= n_frames - 1 and (np.diff(out) > 0).all()


@pytest.mark.parametrize("sampling", ["uniform", "adaptive"])
@pytest.mark.parametrize("num_frames", [8, 16])
def test_stored_keyframes_are_what_the_recognizer_picks_from_the_full_rate_clip(
    sampling, num_frames
) -> None:
    """Every clip length up to 100 frames and every apex: the generator stores the frames the
    recognizer's rule picks from the full-rate clip, and the recognizer, sampling the stored
    clip, picks them again (with the same repeats when the clip is shorter than T)."""
    from mesynth.keyframes import sample_key_frames

    for n_frames in range(2, 101):
        for apex in range(n_frames):
            stored = select_frames("keyframes", n_frames, apex, num_frames, sampling)
            full = sample_key_frames(sampling, range(n_frames), 0, apex, n_frames - 1, num_frames)
            assert set(stored.tolist()) == set(full.frame_numbers), (n_frames, apex)
            assert (np.diff(stored) > 0).all() and (sampling == "uniform" or apex in stored)
            again = sample_key_frames(sampling, stored.tolist(), 0, apex, n_frames - 1, num_frames)
            if len(set(full.frame_numbers)) == num_frames:
                assert again.frame_numbers == full.frame_numbers, (n_frames, apex)


def test_select_frames_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown store mode"):
        select_frames("every", 5, 2)
    with pytest.raises(ValueError, match="apex"):
        select_frames("full", 5, 7)
    with pytest.raises(ValueError, match="sampling"):
        select_frames("keyframes", 50, 7, 16, "random")


def test_layout_and_manifest_follow_the_contract(tmp_path) -> None:
    store = ClipStore(tmp_path, CONFIG, formats=("frames", "npy"), image_format="png")
    clip = _clip(0)
    store.write(_row(0), clip, {"any": "parameter"})
    text = (tmp_path / "manifest.csv").read_text()
    assert text.splitlines()[0] == ",".join(MANIFEST_COLUMNS)
    (row,) = read_manifest_rows(tmp_path / "manifest.csv")
    assert row["frame_numbers"] == "0;4;9" and row["mode"] == "keyframes"
    assert row["frames_dir"] == "clips/000000" and row["npy_path"] == "clips/000000.npy"
    assert np.array_equal(np.load(tmp_path / row["npy_path"]), clip)
    names = sorted(p.name for p in (tmp_path / "clips/000000").iterdir())
    assert names == ["img0.png", "img4.png", "img9.png"]
    png = cv2.imread(str(tmp_path / "clips/000000/img4.png"))[:, :, ::-1]
    assert np.array_equal(png, clip[1])
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["format"] == ["frames", "npy"] and meta["mode"] == "keyframes"
    assert meta["config"]["plan"] == {"a": 2} and len(meta["config_hash"]) == 16
    assert json.loads((tmp_path / "params/000000.json").read_text()) == {"any": "parameter"}


def test_reopening_resumes_and_ignores_torn_rows_and_temporaries(tmp_path) -> None:
    store = ClipStore(tmp_path, CONFIG, formats=("frames",))
    store.write(_row(0), _clip(0))
    # a kill in the middle of clip 1: half-written temp folder and a torn manifest row
    (tmp_path / "clips/.tmp-000001").mkdir()
    (tmp_path / "clips/.tmp-000001/img0.jpg").write_bytes(b"partial")
    with open(tmp_path / "manifest.csv", "a") as handle:
        handle.write("000001,astronaut,happ")
    again = ClipStore(tmp_path, CONFIG, formats=("frames",))
    assert again.finished == {"000000"}
    assert not (tmp_path / "clips/.tmp-000001").exists()
    again.write(_row(1), _clip(1))
    rows = read_manifest_rows(tmp_path / "manifest.csv")
    assert [r["clip_id"] for r in rows] == ["000000", "000001"]


def test_other_configuration_is_refused_with_what_to_do(tmp_path) -> None:
    ClipStore(tmp_path, CONFIG)
    with pytest.raises(StoreConfigError) as info:
        ClipStore(tmp_path, {**CONFIG, "seed": 2})
    message = str(info.value)
    assert str(tmp_path) in message and "seed" in message and "new output folder" in message
    with pytest.raises(StoreConfigError, match="store"):
        ClipStore(tmp_path, CONFIG, formats=("frames",))


def test_full_disk_fails_cleanly_and_a_rerun_resumes(tmp_path, monkeypatch) -> None:
    store = ClipStore(tmp_path, CONFIG, formats=("frames", "npy"))
    store.write(_row(0), _clip(0))
    real_write = store_module._write_file

    def full_disk(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(store_module, "_write_file", full_disk)
    with pytest.raises(StoreFullError) as info:
        store.write(_row(1), _clip(1))
    assert "clips/000001" in str(info.value) and "rerun" in str(info.value)
    # the finished clip is intact and nothing of the failed one (not even a temp file) is left
    assert sorted(p.name for p in (tmp_path / "clips").iterdir()) == ["000000", "000000.npy"]
    assert np.array_equal(np.load(tmp_path / "clips/000000.npy"), _clip(0))
    monkeypatch.setattr(store_module, "_write_file", real_write)
    again = ClipStore(tmp_path, CONFIG, formats=("frames", "npy"))
    assert again.finished == {"000000"}
    again.write(_row(1), _clip(1))
    assert len(read_manifest_rows(tmp_path / "manifest.csv")) == 2


def test_other_write_errors_name_the_path(tmp_path, monkeypatch) -> None:
    store = ClipStore(tmp_path, CONFIG)

    def denied(path, data):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(store_module, "_write_file", denied)
    with pytest.raises(StoreError, match=r"000000\.npy"):
        store.write(_row(0), _clip(0))


def test_bad_frames_are_rejected(tmp_path) -> None:
    store = ClipStore(tmp_path, CONFIG)
    with pytest.raises(ValueError, match="clip 000000"):
        store.write(_row(0), _clip(0).astype(np.float32))
    with pytest.raises(ValueError, match="T = 2"):
        store.write(_row(0, frames=2), _clip(0, frames=3))


def test_shards_write_their_own_manifests_and_merge(tmp_path) -> None:
    for rank in (1, 0):
        shard = ClipStore(tmp_path, CONFIG, rank=rank, world_size=2)
        for index in range(5):
            if shard.owns(index):
                shard.write(_row(index), _clip(index))
    merged = merge_shards(tmp_path)
    rows = list(csv.DictReader(merged.open()))
    assert [r["clip_id"] for r in rows] == [f"{i:06d}" for i in range(5)]
    assert not list(tmp_path.glob("manifest.rank*.csv"))


def test_a_shard_opening_the_store_leaves_the_other_shards_temporaries(tmp_path) -> None:
    ClipStore(tmp_path, CONFIG, formats=("frames", "npy"), rank=0, world_size=2)
    # clip 0 (shard 0) in flight while shard 1 starts; clip 1 (shard 1) left by a killed run
    in_flight = [tmp_path / "clips/.tmp-000000", tmp_path / "clips/.tmp-000000.npy.41"]
    stale = [tmp_path / "clips/.tmp-000001", tmp_path / "params/.tmp-000001.json.42"]
    for path in (in_flight[0], stale[0]):
        path.mkdir()
        (path / "img0.jpg").write_bytes(b"partial")
    for path in (in_flight[1], stale[1]):
        path.write_bytes(b"partial")
    ClipStore(tmp_path, CONFIG, formats=("frames", "npy"), rank=1, world_size=2)
    assert [p.exists() for p in in_flight] == [True, True]
    assert [p.exists() for p in stale] == [False, False]
    # unsharded, every temporary is a leftover
    ClipStore(tmp_path, CONFIG, formats=("frames", "npy"))
    assert [p.exists() for p in in_flight] == [False, False]


def test_shard_environment(monkeypatch) -> None:
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert shard_from_env() == (2, 4)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(StoreError, match="RANK < WORLD_SIZE"):
        shard_from_env()


def test_records_carry_the_person_of_their_face(tmp_path) -> None:
    from mesynth.generation.store_reader import read_store

    recorded = ClipStore(tmp_path / "new", CONFIG, info={"identity_persons": {"face": "alice"}})
    for index, identity in enumerate(("face", "astronaut")):
        recorded.write(_row(index) | {"identity": identity}, _clip(index))
    persons = [r.extra["person"] for r in read_store(tmp_path / "new").records]
    assert persons == ["alice", "astronaut"]  # recorded; a face it does not list is itself
    # a store written before persons were recorded: derived from the identity name
    old = ClipStore(tmp_path / "old", CONFIG)
    for index, identity in enumerate(("hopper~aug1", "hopper")):
        old.write(_row(index) | {"identity": identity}, _clip(index))
    assert [r.extra["person"] for r in read_store(tmp_path / "old").records] == ["hopper"] * 2
