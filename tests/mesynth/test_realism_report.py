"""Realism report on fake clips: moving noisy clips vs still clean ones, and a set vs itself."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import FakeRecord, moving_clips, read_written_report

from mesynth.evaluation.domain_test import domain_classifier_test
from mesynth.evaluation.realism_report import ReportError, realism_report, region_masks
from mesynth.flow import apex_flow, save_apex_flow


def test_different_sets_are_told_apart_and_the_report_is_written(aligned_face, tmp_path):
    real = moving_clips(tmp_path, aligned_face, 20, 1.0, 4.0, 0, "real")
    clean = moving_clips(tmp_path, aligned_face, 20, 0.0, 0.0, 1, "syn")
    result = realism_report(real, clean, tmp_path / "report", n_permutations=20)
    assert result.domain_accuracy > 0.9
    assert result.domain.binomial_p < 0.01
    assert result.domain.permutation_p <= 1 / 21 + 1e-9
    assert result.domain.grouped
    read_written_report(
        result,
        ("Domain-classifier test", "Channel statistics", "Class-mean energy maps"),
        {"channels.png", "region_energy.png", "class_means.png", "domain_test.png"},
    )
    assert set(result.region_energy["class"]) == {"all", "happiness", "surprise"}
    stats = result.channel_stats.set_index(["set", "channel"])
    assert stats.loc[("real", "u"), "std"] != stats.loc[("synthetic", "u"), "std"]


def test_two_draws_of_one_setting_are_indistinguishable(aligned_face, tmp_path):
    first = moving_clips(tmp_path, aligned_face, 20, 1.0, 2.0, 2, "a")
    second = moving_clips(tmp_path, aligned_face, 20, 1.0, 2.0, 3, "b")
    result = realism_report(first, second, tmp_path / "same", n_permutations=0)
    assert result.domain_accuracy < 0.75


def test_precomputed_apex_flow_images_are_read_as_images(aligned_face, tmp_path):
    clips = moving_clips(tmp_path, aligned_face, 4, 1.0, 2.0, 4, "p")
    images = []
    for clip in clips:
        frames = np.load(clip.array_path)
        path = save_apex_flow(tmp_path / f"{clip.clip}.png", apex_flow(frames[0], frames[1]))
        images.append(
            FakeRecord(clip.subject, clip.clip, path, 0, 0, 0, extra={"frame_numbers": "0"})
        )
    result = realism_report(images, clips, tmp_path / "images", n_permutations=0)
    # the same clips, once as PNGs and once as frames: identical apex flow
    stats = result.channel_stats.set_index(["set", "channel"])
    np.testing.assert_allclose(
        stats.xs("real", level="set").to_numpy(), stats.xs("synthetic", level="set").to_numpy()
    )


def test_domain_test_keeps_groups_whole():
    """No domain signal, but every group (subject / identity) has its own offset: folds that
    split a group let the classifier recognise the group, not the domain."""
    rng = np.random.default_rng(0)
    n_groups, per_group, n_features = 40, 3, 100
    centres = rng.normal(0.0, 1.0, (2 * n_groups, n_features))  # the same law for both domains
    clips = np.repeat(centres, per_group, axis=0)
    clips += rng.normal(0.0, 0.05, clips.shape)
    real, synthetic = clips[: n_groups * per_group], clips[n_groups * per_group :]
    groups = np.repeat(np.arange(n_groups), per_group)
    grouped = domain_classifier_test(real, synthetic, groups, groups, n_permutations=0)
    # one group per clip: the same data cross-validated with groups split across folds
    clip_ids = np.arange(len(groups))
    leaky = domain_classifier_test(real, synthetic, clip_ids, clip_ids, n_permutations=0)
    assert leaky.accuracy > 0.85
    assert grouped.grouped and grouped.n_splits == 5
    assert grouped.accuracy < 0.65


def test_too_few_clips_is_a_clear_error(aligned_face, tmp_path):
    clips = moving_clips(tmp_path, aligned_face, 3, 1.0, 2.0, 5, "x")
    with pytest.raises(ReportError, match="real set has 1 readable clips"):
        realism_report(clips[:1], clips, tmp_path / "r")


def test_region_masks_cover_the_mouth_below_the_eyes():
    masks = region_masks(28)
    mouth_rows = np.flatnonzero(masks["mouth"].any(1))
    eye_rows = np.flatnonzero(masks["eyes"].any(1))
    assert mouth_rows.min() > eye_rows.max()
