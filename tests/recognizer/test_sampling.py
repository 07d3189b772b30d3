"""Key-frame sampling against counts and positions computed independently (integer arithmetic)."""

from __future__ import annotations

import numpy as np
import pytest

from mesynth.keyframes import sample_key_frames


def _half_up(numerator: int, denominator: int) -> int:
    """round(numerator / denominator), halves up, in integers."""
    return (2 * numerator + denominator) // (2 * denominator)


def test_uniform_matches_integer_positions() -> None:
    keys = sample_key_frames("uniform", range(100), 0, 40, 99, 16)
    assert keys.frame_numbers == tuple(_half_up(k * 99, 15) for k in range(16))
    assert keys.roles[0] == "onset" and keys.roles[-1] == "offset"
    assert len(set(keys.frame_numbers)) == 16 and not keys.jittered


def test_uniform_only_uses_frames_present_between_onset_and_offset() -> None:
    present = [n for n in range(10, 200) if n % 3]  # dropped frames, plus frames outside
    keys = sample_key_frames("uniform", present, 20, 50, 80, 8)
    inside = [n for n in present if 20 <= n <= 80]
    assert set(keys.frame_numbers) <= set(inside)
    assert keys.frame_numbers == tuple(inside[_half_up(k * (len(inside) - 1), 7)] for k in range(8))


def test_uniform_repeats_when_frames_are_few() -> None:
    keys = sample_key_frames("uniform", [5, 6, 7], 5, 6, 7, 5)
    # positions round(k * 2 / 4), halves up: 0, 1, 1, 2, 2
    assert keys.frame_numbers == (5, 6, 6, 7, 7)


def test_adaptive_splits_by_duration_and_keeps_the_apex() -> None:
    keys = sample_key_frames("adaptive", range(91), 0, 30, 90, 16)
    frames = np.array(keys.frame_numbers)
    n_rise = _half_up(15 * 30, 90)  # 5
    assert (frames < 30).sum() == n_rise and (frames == 30).sum() == 1
    assert (frames > 30).sum() == 15 - n_rise
    assert [int(f) for f in frames[frames < 30]] == [6 * k for k in range(5)]
    assert [int(f) for f in frames[frames > 30]] == sorted(90 - 6 * k for k in range(10))
    assert keys.roles[0] == "onset" and keys.roles[-1] == "offset"
    assert keys.roles[n_rise] == "apex"


def test_adaptive_with_apex_at_onset_puts_everything_in_the_fall() -> None:
    keys = sample_key_frames("adaptive", range(50), 0, 0, 49, 8)
    assert keys.frame_numbers[0] == 0 and keys.roles[0] == "apex"
    assert all(r in ("fall", "offset") for r in keys.roles[1:])
    assert keys.frame_numbers[-1] == 49


def test_adaptive_uses_the_nearest_present_apex() -> None:
    present = [0, 2, 4, 9, 12, 20]  # apex 8 was dropped: 9 is nearest
    keys = sample_key_frames("adaptive", present, 0, 8, 20, 4)
    assert 9 in keys.frame_numbers and keys.roles[keys.frame_numbers.index(9)] == "apex"


def test_jitter_is_seeded_stays_in_its_part_and_keeps_anchors() -> None:
    draws = set()
    for seed in range(20):
        a = sample_key_frames("adaptive", range(91), 0, 30, 90, 16, np.random.default_rng(seed))
        b = sample_key_frames("adaptive", range(91), 0, 30, 90, 16, np.random.default_rng(seed))
        assert a == b and a.jittered
        frames = np.array(a.frame_numbers)
        assert (frames == 30).sum() >= 1 and (frames < 30).sum() == 5
        assert frames[0] == 0 and frames[-1] == 90
        draws.add(a.frame_numbers)
        u = sample_key_frames("uniform", range(100), 0, 0, 99, 8, np.random.default_rng(seed))
        assert u.frame_numbers[0] == 0 and u.frame_numbers[-1] == 99
        assert list(u.frame_numbers) == sorted(u.frame_numbers)
    assert len(draws) > 10  # jitter really moves frames


def test_onset_apex() -> None:
    assert sample_key_frames("onset_apex", range(60), 0, 20, 59, 2).frame_numbers == (0, 20)
    keys = sample_key_frames("onset_apex", range(60), 0, 20, 59, 5)
    assert keys.frame_numbers == (0, 5, 10, 15, 20)
    assert keys.roles == ("onset", "rise", "rise", "rise", "apex")


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="known strategies: uniform, adaptive, onset_apex"):
        sample_key_frames("random", range(5), 0, 2, 4, 2)
    with pytest.raises(ValueError, match="at least 1"):
        sample_key_frames("uniform", range(5), 0, 2, 4, 0)
    with pytest.raises(ValueError, match="no frame present between onset 10 and offset 20"):
        sample_key_frames("uniform", range(5), 10, 12, 20, 4)
