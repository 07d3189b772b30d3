"""The before/after calibration report on fake clips: the numbers it prints are the domain test,
region energies and strain percentiles recomputed independently on the same images."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import moving_clips, read_written_report

from mesynth.evaluation.calibration_comparison import calibration_comparison, region_ratios
from mesynth.evaluation.domain_test import domain_classifier_test
from mesynth.evaluation.features import ApexFlowFeature
from mesynth.evaluation.realism_report import (
    REGIONS,
    ReportError,
    emotion_or_all,
    region_masks,
    report_settings,
)
from mesynth.flow import apex_flow


@pytest.fixture(scope="module")
def comparison(aligned_face, tmp_path_factory):
    root = tmp_path_factory.mktemp("comparison")
    sets = {
        "real": moving_clips(root, aligned_face, 20, 1.0, 4.0, 0, "real"),
        # still and clean: what an uncalibrated generator gives
        "uncalibrated": moving_clips(root, aligned_face, 20, 0.0, 0.0, 1, "clean"),
        # the real setting drawn again: what a perfect calibration gives
        "calibrated": moving_clips(root, aligned_face, 20, 1.0, 4.0, 2, "tuned"),
    }
    result = calibration_comparison(
        sets["real"],
        sets["uncalibrated"],
        sets["calibrated"],
        root / "report",
        n_permutations=10,
    )
    return sets, result


def _images(records):
    feature = ApexFlowFeature(size=28)
    return np.stack([feature(r) for r in records])


def test_domain_accuracies_are_the_domain_test_on_the_same_features(comparison):
    sets, result = comparison
    pooled = {}
    for name, records in sets.items():
        images = _images(records)
        # independent 14 x 14 pooling: means over 2 x 2 blocks of the 28 x 28 images
        pooled[name] = images.reshape(-1, 14, 2, 14, 2, 3).mean((2, 4)).reshape(len(images), -1)
    groups = {name: np.array([r.subject for r in records]) for name, records in sets.items()}
    for name in ("uncalibrated", "calibrated"):
        expected = domain_classifier_test(
            pooled["real"], pooled[name], groups["real"], groups[name], n_permutations=10
        )
        assert result.domain[name].accuracy == pytest.approx(expected.accuracy)
        row = result.domain_table.set_index("set").loc[name]
        assert row["accuracy"] == pytest.approx(expected.accuracy)
    # the comparison says what happened: the clean set is told apart, the tuned one is not
    assert result.domain["uncalibrated"].accuracy > 0.9
    assert result.domain["calibrated"].accuracy < 0.75


def test_region_ratios_equal_a_numpy_computation_on_the_same_maps(comparison):
    sets, result = comparison
    masks = region_masks(28)
    energy = {}
    for name, records in sets.items():
        uv = _images(records)[..., :2]
        centred = uv - np.median(uv.reshape(len(uv), -1, 2), axis=1)[:, None, None, :]
        energy[name] = np.sqrt((centred**2).sum(-1))
    ratios = result.region_ratios.set_index("region")
    assert list(ratios.index) == list(REGIONS)
    for region, mask in masks.items():
        real = energy["real"][:, mask].mean()
        for name in ("uncalibrated", "calibrated"):
            expected = energy[name][:, mask].mean() / real
            assert ratios.loc[region, f"{name} / real"] == pytest.approx(expected, rel=1e-5)
    # still clips move less than real ones everywhere; the real setting drawn again does not
    assert (ratios["uncalibrated / real"] < 0.8).all()
    assert (ratios["calibrated / real"] > 0.8).all()


def test_strain_percentiles_are_of_the_per_image_minmax_strain_channel(comparison):
    sets, result = comparison
    strain = result.strain.set_index("set")
    for name, records in sets.items():
        values = []
        for record in records:
            frames = np.load(record.array_path)
            # the composite's convention: strain min-max scaled per image to [0, 1]
            values.append(apex_flow(frames[0], frames[1], 28)[..., 2] / 255.0)
        p5, median, p95 = np.percentile(np.ravel(values), [5, 50, 95])
        assert strain.loc[name, ["p5", "median", "p95"]].to_numpy() == pytest.approx(
            [p5, median, p95], rel=1e-5
        )
        # each image spans [0, 1], or is all 0 when the clip does not move (constant strain)
        spans = [(v.min(), v.max()) for v in values]
        assert all(span in ((0.0, 1.0), (0.0, 0.0)) for span in spans)
        assert (name == "uncalibrated") == (spans[0] == (0.0, 0.0))


def test_the_report_has_every_section_and_figure(comparison):
    _, result = comparison
    headings = (
        "Domain-classifier test before and after calibration",
        "Class-mean energy maps",
        "synthetic / real",
        "Strain channel",
    )
    figures = {
        "domain_before_after.png",
        "class_means_comparison.png",
        "region_ratios.png",
        "strain_histograms.png",
    }
    text = read_written_report(result, headings, figures)
    before, after = (result.domain[n].accuracy for n in ("uncalibrated", "calibrated"))
    assert f"**{before:.3f}** uncalibrated -> **{after:.3f}** calibrated" in text


def test_history_adds_the_search_figure_and_a_small_set_is_an_error(comparison, tmp_path):
    sets, _ = comparison
    history = tmp_path / "history.csv"
    pd.DataFrame(
        {
            "trial": [0, 1],
            "accuracy": [0.9, 0.6],
            "objective": [0.4, 0.1],
            "best_accuracy": [0.9, 0.6],
        }
    ).to_csv(history, index=False)
    real, clean, tuned = sets["real"][:6], sets["uncalibrated"][:6], sets["calibrated"][:6]
    result = calibration_comparison(
        real, clean, tuned, tmp_path / "r", n_permutations=0, history=tmp_path
    )  # the search's out_dir: its history.csv is read
    assert (tmp_path / "r" / "search_history.png") in result.figures
    assert "## Adversarial calibration" in result.markdown.read_text()
    with pytest.raises(ReportError, match="calibrated set has 1 readable clips"):
        calibration_comparison(real, clean, tuned[:1], tmp_path / "e", n_permutations=0)


def test_region_ratios_are_nan_where_the_real_set_does_not_move():
    rows = [
        {"set": name, "class": "all", "region": region, "energy": energy, "n": 4}
        for name, scale in (("real", 1.0), ("uncalibrated", 0.5), ("calibrated", 2.0))
        for region, energy in zip(REGIONS, scale * np.array([0.0, 1.0, 2.0, 3.0, 4.0]))
    ]
    ratios = region_ratios(pd.DataFrame(rows)).set_index("region")
    first = next(iter(REGIONS))
    assert np.isnan(ratios.loc[first, "uncalibrated / real"])
    rest = [r for r in REGIONS if r != first]
    assert ratios.loc[rest, "uncalibrated / real"].tolist() == pytest.approx([0.5] * 4)
    assert ratios.loc[rest, "calibrated / real"].tolist() == pytest.approx([2.0] * 4)


def test_settings_take_the_realism_reports_defaults_and_unknown_keywords_are_refused(tmp_path):
    assert report_settings({"pool": 6}, "f") == {
        "size": 28,
        "pool": 6,
        "n_splits": 5,
        "n_permutations": 100,
        "seed": 0,
        "label_of": emotion_or_all,
    }
    with pytest.raises(TypeError, match="unexpected keyword argument 'n_permutation'"):
        calibration_comparison([], [], [], tmp_path / "out", n_permutation=0)
    assert not (tmp_path / "out").exists()  # refused before anything was written
