"""The MEGC2019 composite on fake releases whose membership mirrors the official one."""

from __future__ import annotations

from pathlib import Path

import pytest

from recognizer.datasets import EXPECTED_COUNTS, load, megc2019
from recognizer.datasets.megc2019 import composite_counts
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


def test_ground_truth_problems_are_reported(releases: dict[str, Path], tmp_path: Path) -> None:
    lines = releases["gt"].read_text().splitlines()
    lines = [*lines[1:], "casme2,01,EP99_99f,0", "kdef,1,x,0", lines[5]]
    gt = tmp_path / "gt.csv"
    gt.write_text("\n".join(lines) + "\n")
    smic = load("smic", releases["smic"])
    result = megc2019(casme2=releases["casme2"], samm=releases["samm"], smic=smic, gt_csv=gt)
    assert len(result.samples) == 441
    ours = ("casme2:01/EP99", "kdef")
    skipped = {s.row: s.reason for s in result.report.skipped if s.clip.startswith(ours)}
    assert skipped == {
        442: "not found among the loaded casme2 samples",
        443: "unknown db 'kdef' (expected smic, casme2 or samm)",
    }
    assert any(s.row == 444 and s.reason == "listed twice" for s in result.report.skipped)
    assert "differs from the official counts: casme2 negative 87 vs 88" in str(result.report)
