"""Loaders on fake releases with the real layouts and quirks: counts, skips and reasons."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mesynth.face.frame_files import discover_frames
from recognizer.datasets import (
    AnnotationError,
    ReleaseNotFoundError,
    load,
)
from tests.recognizer.fake_releases import (
    CASME2_QUIRK_ROWS,
    SAMM_QUIRK_ROWS,
    fake_casme2,
    fake_casme3,
    fake_dfme,
    fake_mmew,
    fake_samm,
    fake_smic,
    fake_smic_e,
    write_frames,
    write_xlsx,
)


def _by_clip(result):
    return {s.clip: s for s in result.samples}


def _reasons(result):
    return {s.clip.split("/")[-1]: s.reason for s in result.report.skipped}


# ------------------------------------------------------------------ frames


def test_discover_frames_parses_numbers_and_ignores_junk(tmp_path: Path) -> None:
    write_frames(tmp_path, [9, 10, 100], name="reg_img{n}", junk=True)
    write_frames(tmp_path, [11], name="reg_img{n:04d}")
    (tmp_path / "sub").mkdir()
    frames, numbers = discover_frames(tmp_path)
    assert numbers == (9, 10, 11, 100)  # numeric, not lexicographic, order
    assert [f.name for f in frames] == [
        "reg_img9.jpg",
        "reg_img10.jpg",
        "reg_img0011.jpg",
        "reg_img100.jpg",
    ]


def test_discover_frames_rejects_two_files_with_one_number(tmp_path: Path) -> None:
    write_frames(tmp_path, [1], name="img{n}")
    write_frames(tmp_path, [1], name="img{n:02d}")
    with pytest.raises(Exception, match="both hold frame 1"):
        discover_frames(tmp_path)


# ------------------------------------------------------------------ CASME II


@pytest.mark.parametrize("version", ["2014", "2019"])
def test_casme2_counts_skips_and_reasons(tmp_path: Path, version: str) -> None:
    result = load("casme2", fake_casme2(tmp_path, version=version))
    report = result.report
    assert report.rows_read == len(CASME2_QUIRK_ROWS) == 8
    assert report.kept == len(result.samples) == 5
    reasons = _reasons(result)
    assert set(reasons) == {"EP08_1", "EP06_02_01", "EP09f"}
    assert "not all present" in reasons["EP08_1"] and "130" in reasons["EP08_1"]
    assert "frame folder not found" in reasons["EP06_02_01"]
    assert "apex 8 after offset" in reasons["EP09f"]
    rows = {s.clip.split("/")[-1]: s.row for s in report.skipped}
    assert rows == {"EP08_1": 6, "EP06_02_01": 7, "EP09f": 8}  # header is row 1
    assert f"sheet version {version}" in str(report)
    assert "sub09/EP02_02f" in str(report)  # folder without a row
    samples = _by_clip(result)
    assert samples["EP12_01f"].apex is None  # erratum: '/' apex
    assert samples["EP12_01f"].apex_or_middle == 20
    assert any("EP12_01f" in f and "apex" in f for f in report.fixes)
    assert samples["EP09_05f"].apex == samples["EP09_05f"].onset == 20
    assert samples["EP02_01f"].aus == "12"  # numeric AU cell
    assert samples["EP02_01f"].subject == "casme2/sub01"
    assert samples["EP01_2"].aus == "?"
    assert samples["EP03_02"].frame_numbers[:3] == (46, 48, 50)  # zero-padded files
    assert samples["EP02_01f"].fps == 200
    if version == "2019":
        assert samples["EP02_01f"].extra["objective_class"] == "1"


def test_casme2_frame_trees(tmp_path: Path) -> None:
    fake_casme2(tmp_path, trees=("raw", "selected", "cropped"))
    auto = load("casme2", tmp_path)
    assert "frame tree selected" in str(auto.report)
    cropped = load("casme2", tmp_path, frames="cropped")
    first = _by_clip(cropped)["EP02_01f"]
    assert first.frames[0].name == "reg_img46.jpg"  # junk files ignored
    assert all(f.suffix == ".jpg" for f in first.frames)
    raw = load("casme2", tmp_path, frames="raw")
    clip = _by_clip(raw)["EP02_01f"]
    assert clip.frame_numbers[0] == 1 and len(clip.frames_between(46, 86)) == 41
    # the raw tree holds every frame of EP08_1, so it is kept there
    assert "EP08_1" in _by_clip(raw)


def test_casme2_missing_apex_can_be_skipped(tmp_path: Path) -> None:
    # a '/' apex without an erratum: middle frame by default, skipped on request
    rows = [CASME2_QUIRK_ROWS[0].__class__("08", "EP05_03f", 1, "/", 9, "4", "disgust")]
    fake_casme2(tmp_path, rows, orphans=())
    kept = load("casme2", tmp_path)
    assert kept.samples[0].apex is None and "middle frame" in kept.report.fixes[0]
    skipped = load("casme2", tmp_path, missing_apex="skip")
    assert not skipped.samples and "no apex ('/')" in skipped.report.skipped[0].reason


def test_casme2_bad_input_messages(tmp_path: Path) -> None:
    with pytest.raises(ReleaseNotFoundError, match="CASME II root not found"):
        load("casme2", tmp_path / "nope")
    tmp_path.joinpath("empty").mkdir()
    with pytest.raises(ReleaseNotFoundError, match="coding sheet"):
        load("casme2", tmp_path / "empty")
    fake_casme2(tmp_path / "r", trees=())
    with pytest.raises(ReleaseNotFoundError, match="no CASME II frame tree"):
        load("casme2", tmp_path / "r")
    foreign = tmp_path / "f"
    fake_casme2(foreign)
    write_xlsx(foreign / "CASME2-coding-20140508.xlsx", {"Sheet1": [["Name", "Score"], ["a", 1]]})
    with pytest.raises(AnnotationError, match=r"CASME2-coding-20140508.xlsx.*not a CASME II"):
        load("casme2", foreign)


# ------------------------------------------------------------------ SAMM


def test_samm_preamble_errata_and_padding(tmp_path: Path) -> None:
    result = load("samm", fake_samm(tmp_path))
    report = result.report
    assert report.rows_read == len(SAMM_QUIRK_ROWS) == 6
    assert report.kept == 5
    assert _reasons(result) == {"009_1_1": "apex: not a frame number: 'x'"}
    assert report.skipped[0].row == 20  # 13 preamble rows, header on row 14, 6th data row
    samples = _by_clip(result)
    assert samples["032_3_1"].apex is None and samples["028_4_1"].apex is None
    assert sum("known erratum" in f for f in report.fixes) == 2
    assert samples["006_1_2"].frame_numbers[0] == 5562  # 006_05562.jpg
    assert samples["006_1_3"].frame_numbers[0] == 1200  # 006_1200.jpg
    assert samples["006_1_3"].aus == "12"
    assert samples["007_5_1"].subject == "samm/007"  # numeric id found its folder
    assert samples["007_5_1"].emotion == "Other"
    assert samples["032_3_1"].aus == "L12"


def test_samm_missing_sheet_names_the_sheets(tmp_path: Path) -> None:
    fake_samm(tmp_path)
    with pytest.raises(AnnotationError, match="no sheet 'MICRO'.*MICRO_ONLY, MACRO_ONLY"):
        load("samm", tmp_path, sheet="MICRO")


# ------------------------------------------------------------------ SMIC


def test_smic_original_labels_from_folders(tmp_path: Path) -> None:
    clips = [("s1", "negative"), ("s1", "negative"), ("s1", "positive"), ("s2", "surprise")]
    fake_smic(tmp_path, clips)
    (tmp_path / "SMIC_all_raw" / "HS" / "s2" / "micro" / "surprise" / "s2_sur_09").mkdir()
    result = load("smic", tmp_path)
    assert result.report.rows_read == 5 and result.report.kept == 4
    assert "no numbered image files" in result.report.skipped[0].reason
    sample = _by_clip(result)["s1_ne_02"]
    assert (sample.emotion, sample.onset, sample.offset, sample.apex) == (
        "negative",
        200,
        202,
        None,
    )
    assert sample.apex_or_middle == 201 and sample.fps == 100
    assert "middle frame" in str(result.report)
    with pytest.raises(ReleaseNotFoundError, match="VIS"):
        load("smic", tmp_path, part="VIS")


def test_smic_e_sheet(tmp_path: Path) -> None:
    result = load("smic", fake_smic_e(tmp_path))
    assert result.report.rows_read == 3 and result.report.kept == 2
    assert "not all present" in _reasons(result)["s2_sur_01"]
    assert _by_clip(result)["s1_ne_01"].subject == "smic/s01"


# ------------------------------------------------------------------ CAS(ME)^3, MMEW, DFME


def test_casme3_repeats_errata_and_dropped_frames(tmp_path: Path) -> None:
    result = load("casme3", fake_casme3(tmp_path))
    assert result.report.rows_read == 5 and result.report.kept == 3
    samples = _by_clip(result)
    assert set(samples) == {"a", "a2", "b"}
    assert samples["a2"].onset == 400 and samples["a2"].extra["video"] == "a"
    assert 357 not in samples["a"].frame_numbers  # dropped frame stays dropped
    reasons = _reasons(result)
    assert "offset 0 before onset 50" in reasons["e"] and "known erratum" in reasons["e"]
    assert "frame folder not found" in reasons["c"]
    assert samples["a"].subject == "casme3/spNO.1" and samples["a"].fps == 30


def test_mmew_finds_clip_folders_anywhere(tmp_path: Path) -> None:
    result = load("mmew", fake_mmew(tmp_path))
    assert result.report.kept == 2
    assert _by_clip(result)["S02-03-002"].frames[0].parent.parent.name == "repression"
    assert "not all present" in _reasons(result)["S02-05-001"]


@pytest.mark.parametrize("csv", [False, True])
def test_dfme_default_mapping(tmp_path: Path, csv: bool) -> None:
    result = load("dfme", fake_dfme(tmp_path, csv=csv))
    assert result.report.kept == 3
    fps = {s.clip: s.fps for s in result.samples}
    assert fps == {"0001_01": 500, "0002_03": 300, "0003_02": 200}
    assert _by_clip(result)["0001_01"].subject == "dfme/0001"


def test_dfme_custom_mapping_and_bad_mapping(tmp_path: Path) -> None:
    header = ["participant", "video", "start", "peak", "end", "label"]
    write_xlsx(tmp_path / "labels.xlsx", {"s": [header, ["p1", "v1", 2, 3, 6, "fear"]]})
    write_frames(tmp_path / "clips" / "v1", range(1, 8), name="frame_{n:05d}")
    columns = {"subject": "participant", "clip": "video", "onset": "start", "apex": "peak"}
    columns |= {"offset": "end", "emotion": "label"}
    result = load(
        "dfme",
        tmp_path,
        annotation="labels.xlsx",
        columns=columns,
        frames="clips/{clip}",
        fps={"C": 200},
    )
    assert [(s.clip, s.onset, s.apex, s.offset, s.emotion) for s in result.samples] == [
        ("v1", 2, 3, 6, "fear")
    ]
    with pytest.raises(AnnotationError, match="labels.xlsx.*participant"):
        load("dfme", tmp_path, annotation="labels.xlsx")
    with pytest.raises(AnnotationError, match="row 2.*subj"):
        load("dfme", tmp_path, annotation="labels.xlsx", columns=columns, frames="{subj}")


def test_unknown_dataset_lists_known_ones() -> None:
    with pytest.raises(ValueError, match="known datasets: casme2, samm"):
        load("casme9", "/x")


# ------------------------------------------------------------------ manifest


def _manifest(tmp_path: Path, rows: list[str]) -> Path:
    write_frames(tmp_path / "f", [1, 2, 3])
    csv = tmp_path / "list.csv"
    csv.write_text("\n".join(["subject,clip,label,path,dataset", *rows]) + "\n")
    return csv


def test_manifest_keeps_subjects_already_qualified_with_their_dataset(tmp_path: Path) -> None:
    csv = _manifest(
        tmp_path,
        ["casme2/sub01,EP02_01f,happiness,f,casme2", "006,006_1_2,anger,f,samm", "s1,a,x,f,"],
    )
    result = load("manifest", csv)
    assert [(s.subject, s.identity) for s in result.samples] == [
        ("casme2/sub01", "casme2/sub01"),
        ("samm/006", "samm/006"),
        ("manifest/s1", "manifest/s1"),
    ]


def test_manifest_takes_the_dataset_of_a_qualified_subject_on_rows_without_one(tmp_path) -> None:
    csv = _manifest(tmp_path, ["smic/s1,s1_po_01,positive,f,", "s2,b,negative,f,"])
    result = load("manifest", csv, dataset="composite")
    assert [(s.dataset, s.subject) for s in result.samples] == [
        ("smic", "smic/s1"),
        ("composite", "composite/s2"),
    ]


def test_manifest_refuses_a_subject_qualified_with_another_dataset(tmp_path: Path) -> None:
    csv = _manifest(tmp_path, ["sub01,EP02_01f,happiness,f,casme2", "samm/006,a,anger,f,casme2"])
    with pytest.raises(AnnotationError, match=r"list\.csv, row 3: subject 'samm/006' .*'casme2'"):
        load("manifest", csv)


def test_manifest_skips_an_empty_npy_by_path_and_reports_a_repeated_row(tmp_path) -> None:
    np.save(tmp_path / "clip.npy", np.zeros((3, 8, 8, 3), np.uint8))
    (tmp_path / "empty.npy").write_bytes(b"")
    csv = tmp_path / "list.csv"
    csv.write_text(
        "subject,clip,label,path,dataset\n"
        "sub01,a,happiness,clip.npy,casme2\n"
        "sub01,b,disgust,empty.npy,casme2\n"
        "sub01,a,happiness,clip.npy,casme2\n"
    )
    result = load("manifest", csv)
    assert [s.clip for s in result.samples] == ["a"]
    reasons = {s.row: s.reason for s in result.report.skipped}
    assert "empty.npy" in reasons[3] and "empty" in reasons[3]
    assert reasons[4] == "duplicate of row 2"
