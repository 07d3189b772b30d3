"""The MEGC2019 composite on fake releases whose membership mirrors the official one."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from recognizer.datasets import EXPECTED_COUNTS, load, megc2019
from recognizer.datasets.megc2019 import composite_counts
from recognizer.datasets.names import SUBJECT_NUMBER, TRAILING_F, NameRule, match_name
from tests.recognizer.fake_releases import fake_megc2019


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return fake_megc2019(tmp_path_factory.mktemp("megc"))


def _check_official(result) -> None:
    assert len(result.samples) == 442
    assert len(result.subjects) == 68
    assert composite_counts(result) == EXPECTED_COUNTS
    assert "matches the official counts" in str(result.report)
    assert len({s.uid for s in result.samples}) == 442


def test_membership_from_rules(releases: dict[str, Path]) -> None:
    result = megc2019(casme2=releases["casme2"], samm=releases["samm"], smic=releases["smic"])
    _check_official(result)
    reasons = result.report.skip_reasons()
    assert sum("bad apex annotation" in r for r in reasons) == 2
    assert reasons["emotion 'Other' is not in megc3"] == 26
    assert reasons["emotion 'others' is not in megc3"] == 10
    assert reasons["emotion 'fear' is not in megc3"] == 2  # CASME II fear is excluded
    labels = result.scheme_labels("megc3")
    assert labels.count("negative") == 250 and labels.count("positive") == 109
    assert result.label_indices("megc3").count(2) == 83


def _labels(result) -> dict[str, str]:
    return {s.uid: s.extra["label:megc3"] for s in result.samples}


def test_membership_from_ground_truth(releases: dict[str, Path]) -> None:
    result = megc2019(
        casme2=releases["casme2"],
        samm=releases["samm"],
        smic=releases["smic"],
        gt_csv=releases["gt"],
    )
    _check_official(result)
    assert result.report.rows_read == 442
    assert all(s.extra["megc2019"] == "ground truth" for s in result.samples)
    assert not [s for s in result.report.skipped if s.clip.startswith(("smic:s0", "casme2:sub"))]
    rules = megc2019(casme2=releases["casme2"], samm=releases["samm"], smic=releases["smic"])
    assert _labels(result) == _labels(rules)
    pair = {s.clip: s.extra["label:megc3"] for s in result.samples if s.subject.endswith("17")}
    assert pair["EP05_03"] == "positive" and pair["EP05_03f"] == "negative"
    padded = releases["gt"].read_text().count("smic,s0")
    assert f"{padded} ignoring case and zero padding" in str(result.report)


def test_fake_list_is_spelled_like_the_official_one(releases: dict[str, Path]) -> None:
    gt = releases["gt"].read_text()
    assert "smic,s01,s01_ne_01,0" in gt and "samm,6,006_11_1," in gt
    assert "casme2,sub17,EP05_03,1" in gt and "casme2,sub17,EP05_03f,0" in gt


def test_ground_truth_problems_are_reported(releases: dict[str, Path], tmp_path: Path) -> None:
    lines = releases["gt"].read_text().splitlines()
    added = [
        "casme2,sub01,EP99_99f,0",  # no such clip
        "kdef,1,x,0",  # unknown db
        lines[5],  # listed twice
        "smic,s07,s07_po_09,1",  # no such clip, near the subject's positive clips
        "samm,99,099_1_1,0",  # no such subject
        "casme2,sub26,EP20_01f,0",  # skipped by the CASME II loader (folder removed below)
    ]
    gt = tmp_path / "gt.csv"
    gt.write_text("\n".join([*lines[1:], *added]) + "\n")
    casme2 = shutil.copytree(releases["casme2"], tmp_path / "CASME2")
    shutil.rmtree(casme2 / "CASME2_RAW_selected" / "sub26" / "EP20_01f")
    smic = load("smic", releases["smic"])
    result = megc2019(casme2=casme2, samm=releases["samm"], smic=smic, gt_csv=gt)
    assert len(result.samples) == 441
    skipped = {s.row: s for s in result.report.skipped if s.row and s.row > 441}
    assert {row: s.clip for row, s in skipped.items()} == {
        442: "casme2:sub01/EP99_99f",
        443: "kdef:1/x",
        444: lines[5].split(",")[0] + ":" + "/".join(lines[5].split(",")[1:3]),
        445: "smic:s07/s07_po_09",
        446: "samm:99/099_1_1",
        447: "casme2:sub26/EP20_01f",
    }
    reasons = {row: s.reason for row, s in skipped.items()}
    assert reasons[442].startswith("no such clip in the CASME II release (closest: ")
    assert reasons[443] == "unknown db 'kdef' (expected smic, casme2 or samm)"
    assert reasons[444] == "listed twice (first on row 5)"
    assert reasons[445].startswith("no such clip in the SMIC release (closest: s7_po_0")
    assert reasons[446].startswith("no such subject in the SAMM release (closest: ")
    assert reasons[447].startswith("the CASME II loader skipped it (row ")
    assert "sub26/EP20_01f: frame folder not found" in reasons[447]
    assert "differs from the official counts: casme2 negative 87 vs 88" in str(result.report)


def test_ground_truth_never_merges_clips_a_looser_rule_cannot_tell_apart(
    releases: dict[str, Path], tmp_path: Path
) -> None:
    gt = tmp_path / "gt.csv"
    gt.write_text("casme2,sub17,EP05_03F,1\ncasme2,sub17,ep05_3,1\ncasme2,sub01,EP20_01,0\n")
    result = megc2019(
        casme2=releases["casme2"], samm=releases["samm"], smic=releases["smic"], gt_csv=gt
    )
    assert [(s.subject, s.clip) for s in result.samples] == [
        ("casme2/sub17", "EP05_03f"),
        ("casme2/sub17", "EP05_03"),
        ("casme2/sub01", "EP20_01f"),
    ]


def test_ground_truth_reports_a_name_several_clips_match(
    releases: dict[str, Path], tmp_path: Path
) -> None:
    gt = tmp_path / "gt.csv"
    gt.write_text("casme2,sub17,EP05_3F_,1\n")
    casme2 = load("casme2", releases["casme2"])
    ep05 = [s for s in casme2.samples if s.clip.startswith("EP05_03")]
    twins = [replace(s, clip=s.clip.removesuffix("f") + "F_") for s in ep05[:1]]
    twins += [replace(s, clip="EP05_003F_") for s in ep05[1:]]
    fake = replace(casme2, samples=[*casme2.samples, *twins])
    result = megc2019(casme2=fake, samm=releases["samm"], smic=releases["smic"], gt_csv=gt)
    assert result.samples == []
    (skipped,) = [s for s in result.report.skipped if s.row == 1]
    assert skipped.reason == (
        "clip 'EP05_3F_' matches several CASME II clips ignoring case and zero padding "
        "(EP05_003F_, EP05_03F_); the list must name one exactly"
    )


@pytest.mark.parametrize(
    ("wanted", "names", "looser", "expected"),
    [
        ("s01_ne_01", ["s1_ne_01", "s1_ne_10", "s10_ne_01"], (), "s1_ne_01"),
        ("6", ["006", "060", "016"], (), "006"),
        ("sub01", ["01", "10", "11"], (SUBJECT_NUMBER,), "01"),
        ("EP05_03", ["EP05_03", "EP05_03f"], (TRAILING_F,), "EP05_03"),
        ("EP05_03f", ["EP05_03", "EP05_03f"], (TRAILING_F,), "EP05_03f"),
        ("EP02_01", ["EP02_01f", "EP02_10f"], (TRAILING_F,), "EP02_01f"),
        ("EP05_3", ["EP05_03f", "EP05_03"], (TRAILING_F,), "EP05_03"),
        ("EP05_3g", ["EP05_03f", "EP05_03"], (TRAILING_F,), None),
        ("s1_ne_2", ["s1_ne_1", "s1_ne_12"], (), None),
    ],
)
def test_names_match_across_padding_without_merging_different_names(
    wanted: str, names: list[str], looser: tuple[NameRule, ...], expected: str | None
) -> None:
    assert match_name(wanted, names, looser).name == expected


def test_mer_train_and_prepare_use_the_ground_truth_labels(releases, tmp_path) -> None:
    """A list label that the raw emotion would not give (here: one happiness clip listed as
    negative) is what ``mer train``'s data side and the load result both use."""
    from hydra import compose, initialize_config_dir

    from mesynth.cli.app import config_dir
    from recognizer.cli import build_data

    rows = releases["gt"].read_text().splitlines()
    index = next(i for i, r in enumerate(rows) if r.startswith("casme2,sub17,EP05_03,"))
    dataset, subject, clip, label = rows[index].split(",")
    assert label == "1"  # positive in the official order (negative, positive, surprise)
    rows[index] = f"{dataset},{subject},{clip},0"
    gt = tmp_path / "gt.csv"
    gt.write_text("\n".join(rows) + "\n")
    overrides = [
        "data=megc2019",
        "model=ststnet",
        "representation=apex_flow",
        f"data.loader.casme2={releases['casme2']}",
        f"data.loader.samm={releases['samm']}",
        f"data.loader.smic={releases['smic']}",
        f"data.loader.gt_csv={gt}",
    ]
    with initialize_config_dir(str(config_dir()), version_base=None):
        cfg = compose("train", overrides=overrides)
    data = build_data(cfg)
    samples, labels, names = data.samples, data.labels, data.class_names
    assert names == ["negative", "positive", "surprise"] and len(samples) == 442
    by_clip = {(s.subject, s.clip): names[y] for s, y in zip(samples, labels)}
    assert by_clip[("casme2/sub17", "EP05_03")] == "negative"
    assert by_clip[("casme2/sub17", "EP05_03f")] == "negative"
    loaded = megc2019(releases["casme2"], releases["samm"], releases["smic"], gt_csv=gt)
    assert [names[y] for y in labels] == loaded.scheme_labels("megc3")


def test_record_label_prefers_the_stored_ground_truth() -> None:
    from mesynth.labels.emotions import UnknownLabelError, record_label
    from recognizer.data.samples import Sample

    raw = Sample("casme2", "casme2/sub01", "EP01", (), (), 0, None, 0, 200.0, "repression")
    assert record_label(raw, "megc3") == "negative"
    assert record_label(raw, "casme2_5") == "repression"
    listed = replace(raw, extra={"label:megc3": "positive"})
    assert record_label(listed, "megc3") == "positive"
    assert record_label(listed, "casme2_5") == "repression"  # other schemes map the emotion
    with pytest.raises(UnknownLabelError, match="happy"):
        record_label(replace(raw, extra={"label:megc3": "happy"}), "megc3")
