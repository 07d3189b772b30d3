"""Loads report what they cannot use: repeated rows, and (``verify=True``) unreadable media."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mesynth.generation.store_reader import read_store
from recognizer.cli import main as mer_main
from recognizer.datasets import load
from recognizer.datasets.checks import media_problem
from recognizer.datasets.engine import load_release
from tests.recognizer.fake_releases import fake_store, write_frames
from tests.recognizer.helpers import TOY


def _toy(root: Path, *rows: str) -> Path:
    (root / "toy.csv").write_text("\n".join(["Person,Take,Start,Peak,End,Feeling", *rows]) + "\n")
    for take in ("t1", "t2"):
        write_frames(root / "P07" / take, range(1, 5), name="f_{n}")
    return root


def test_a_repeated_sheet_row_is_kept_once_and_reported(tmp_path: Path) -> None:
    root = _toy(tmp_path, "7,t1,1,2,3,fear", "7,t2,1,2,3,joy", "7,t1,1,2,3,fear")
    result = load_release(TOY, root)
    assert [s.clip for s in result.samples] == ["t1", "t2"]
    assert result.report.kept == 2
    (skip,) = result.report.skipped
    assert (skip.row, skip.reason) == (4, "duplicate of row 2")


def test_verify_drops_clips_with_empty_or_non_image_frames(tmp_path: Path) -> None:
    root = _toy(tmp_path, "7,t1,1,2,3,fear", "7,t2,1,2,4,joy")
    empty = root / "P07" / "t1" / "f_2.jpg"
    empty.write_bytes(b"")
    (root / "P07" / "t2" / "f_4.jpg").write_bytes(b"not an image at all")
    assert len(load_release(TOY, root).samples) == 2
    result = load_release(TOY, root, verify=True)
    assert result.samples == [] and result.report.kept == 0
    reasons = {s.row: s.reason for s in result.report.skipped}
    assert reasons[2] == f"empty file (0 bytes): {empty}"
    assert reasons[3].startswith("not a readable .jpg image") and "t2/f_4.jpg" in reasons[3]


def test_verify_through_load_and_mer_prepare(tmp_path: Path, capsys) -> None:
    np.save(tmp_path / "good.npy", np.zeros((3, 8, 8, 3), np.uint8))
    (tmp_path / "bad.png").write_bytes(b"<html>not a frame</html>")
    (tmp_path / "manifest.csv").write_text(
        "subject,clip,label,path\ns1,c1,positive,good.npy\ns2,c2,negative,bad.png\n"
    )
    assert len(load("manifest", tmp_path).samples) == 2
    result = load("manifest", tmp_path, verify=True)
    assert [s.clip for s in result.samples] == ["c1"]
    args = [f"data.loader.root={tmp_path}", f"paths.root_dir={tmp_path}", "progress=false"]
    code = mer_main(["prepare", "data=manifest", "verify=true", "preprocess.backend=none", *args])
    out = capsys.readouterr().out
    assert code == 0
    assert f"row 3 manifest/s2/c2: not a readable .png image: {tmp_path / 'bad.png'}" in out
    assert "preprocessed 1 clips" in out


def test_media_problem_names_empty_and_truncated_arrays(tmp_path: Path) -> None:
    empty, short = tmp_path / "empty.npy", tmp_path / "short.npy"
    empty.write_bytes(b"")
    np.save(short, np.zeros((4, 8, 8, 3), np.uint8))
    short.write_bytes(short.read_bytes()[:200])
    assert media_problem(empty) == f"empty file (0 bytes): {empty}"
    assert media_problem(short).startswith("not a readable .npy array")
    assert str(short) in media_problem(short)
    assert media_problem(tmp_path / "missing.npy") == f"file not found: {tmp_path / 'missing.npy'}"


def test_a_repeated_store_row_is_reported(tmp_path: Path) -> None:
    clips = [np.zeros((3, 8, 8, 3), np.uint8)] * 2
    store = fake_store(
        tmp_path, clips, labels=["fear", "joy"], apexes=[1, 1], formats=["npy", "npy"]
    )
    manifest = store / "manifest.csv"
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join([*lines, lines[1]]) + "\n")
    contents = read_store(store)
    assert [r.clip for r in contents.records] == ["000000", "000001"]
    (problem,) = contents.problems
    assert str(problem) == "manifest line 4 astronaut/000000: duplicate of manifest line 2"
