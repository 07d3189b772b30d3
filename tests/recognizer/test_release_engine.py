"""A release declared by a spec alone, and one reader (one subject name) for clip stores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mesynth.face.frame_files import FrameNumberError, parse_frame_numbers
from mesynth.generation.store import StoreError
from mesynth.generation.store_reader import store_records
from recognizer.data.frame_source import RawFrames
from recognizer.datasets import AnnotationError, load
from recognizer.datasets.engine import ReleaseSpec, load_release
from tests.recognizer.fake_releases import fake_store, write_frames
from tests.recognizer.helpers import TOY


def _toy_release(root: Path) -> Path:
    lines = [
        "Person,Take,Start,Peak,End,Feeling,Comment",
        "7,t1,3,4,6,fear,blinks",
        "7,t2,2,x,5,joy,",
        "8,t3,1,2,3,anger,",
    ]
    (root / "toy_labels.csv").write_text("\n".join(lines) + "\n")
    write_frames(root / "frames" / "P07" / "t1", range(2, 8), name="f_{n:03d}")
    write_frames(root / "frames" / "P07" / "t2", range(1, 6), name="f_{n}")
    return root


def test_a_release_declared_by_a_spec_alone(tmp_path: Path) -> None:
    result = load_release(TOY, _toy_release(tmp_path))
    report = result.report
    assert (report.rows_read, report.kept) == (3, 1)
    (sample,) = result.samples
    assert sample.subject == "toy/P07"  # sheet '7' found folder P07 by its number
    assert (sample.clip, sample.onset, sample.apex, sample.offset) == ("t1", 3, 4, 6)
    assert sample.frame_numbers == tuple(range(2, 8)) and sample.fps == 50
    assert sample.emotion == "fear" and sample.extra["comment"] == "blinks"
    skipped = {s.row: (s.clip, s.reason) for s in report.skipped}
    assert skipped[3] == ("P07/t2", "apex: not a frame number: 'x'")
    assert skipped[4][0] == "8/t3" and "frame folder not found" in skipped[4][1]


def test_a_user_column_mapping_is_a_spec_change(tmp_path: Path) -> None:
    _toy_release(tmp_path)
    renamed = (tmp_path / "toy_labels.csv").read_text().replace("Feeling", "Label")
    (tmp_path / "toy_labels.csv").write_text(renamed)
    with pytest.raises(AnnotationError, match="toy_labels.csv.*not a toy sheet.*Feeling"):
        load_release(TOY, tmp_path)
    mapped = load_release(TOY.with_columns({"emotion": "Label"}), tmp_path)
    assert [s.emotion for s in mapped.samples] == ["fear"]
    with pytest.raises(ValueError, match="unknown column keys.*'mood'"):
        TOY.with_columns({"mood": "Label"})
    with pytest.raises(ValueError, match="emotion"):
        ReleaseSpec("bad", "Bad", "sheet", ("*.csv",), "x.csv", {"subject": ("S",)}, fps=1.0)


def test_one_store_reader_names_a_synthetic_face_one_way(tmp_path: Path) -> None:
    clips = [np.full((4, 16, 16, 3), 40 * i, np.uint8) for i in range(2)]
    store = fake_store(
        tmp_path / "store",
        clips,
        labels=["fear", "disgust"],
        apexes=[1, 2],
        formats=["frames", "npy"],
        frame_numbers=[range(4), [0, 2, 5, 9]],
    )
    records = store_records(store)
    samples = load("mesynth", store).samples
    assert [r.subject for r in records] == [s.subject for s in samples] == ["mesynth/astronaut"] * 2
    assert samples[1].frames == () and RawFrames().frame_numbers(samples[1]) == (0, 2, 5, 9)
    assert records[0].frame_numbers == samples[0].frame_numbers == (0, 1, 2, 3)
    (store / "clips" / "000000" / "img2.png").unlink()
    with pytest.raises(StoreError, match=r"line 2 astronaut/000000: .*lacks frames \[2\]"):
        store_records(store)


def test_frame_number_lists_parse_or_fail_loudly() -> None:
    assert parse_frame_numbers("0;3;17") == (0, 3, 17) and parse_frame_numbers("") == ()
    with pytest.raises(FrameNumberError, match="'0;x'"):
        parse_frame_numbers("0;x")
