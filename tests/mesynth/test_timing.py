import numpy as np
import pytest

from mesynth.motion.timing import SHAPES, Timing, TimingError, TimingSampler


@pytest.mark.parametrize("fps", [30, 90, 100, 200, 300, 500])
def test_constraints_hold_over_many_draws(fps: int) -> None:
    sampler = TimingSampler(fps=fps, shapes=SHAPES)
    generator = np.random.default_rng(fps)
    draws = [sampler.sample(3, generator) for _ in range(10_000)]
    offset = np.array([d.offset for d in draws])
    apex = np.array([d.apex for d in draws])
    assert (offset / fps <= 0.5).all()  # onset -> offset <= 500 ms
    assert (apex / fps <= 0.25).all()  # onset -> apex <= 250 ms
    assert ((apex > 0) & (apex < offset)).all()
    assert all(d.n_frames == d.offset + 1 and d.onset == 0 for d in draws)
    delays = np.array([d.au_delays for d in draws])
    assert (delays >= 0).all() and (delays.min(1) == 0).all()  # the first AU starts at onset
    assert (delays.max(1) < apex / fps).all()
    assert {d.shape for d in draws} == set(SHAPES)
    # durations are spread, not collapsed onto the limit
    assert np.median(offset / fps) < 0.45 and (offset / fps).max() >= 0.45


@pytest.mark.parametrize("shape", SHAPES)
def test_intensity_is_zero_at_onset_and_one_at_apex(shape: str) -> None:
    timing = Timing(200.0, 81, 0, 30, 80, shape, (0.0, 0.02))
    curve = timing.intensity(np.arange(81))
    assert curve.shape == (81, 2)
    np.testing.assert_allclose(curve[0], 0.0)
    np.testing.assert_allclose(curve[30], 1.0)
    np.testing.assert_allclose(curve[80], 0.0)
    assert (curve.argmax(0) == 30).all()
    assert curve[:5, 1].max() == 0.0  # 20 ms delay = 4 frames at 200 fps
    assert (np.diff(curve[:31, 0]) > 0).all() and (np.diff(curve[30:, 0]) < 0).all()
    assert ((curve >= 0) & (curve <= 1)).all()


def test_intensity_at_fractional_frames_matches_the_formula() -> None:
    smooth = Timing(100.0, 41, 0, 20, 40, "smooth", (0.0,))
    # frame 5 of a 20-frame raised-cosine rise: (1 - cos(pi * 0.25)) / 2
    assert smooth.intensity([5.0])[0, 0] == pytest.approx((1 - np.cos(np.pi / 4)) / 2)
    assert smooth.intensity([30.0])[0, 0] == pytest.approx(0.5)  # half-way down
    fast = Timing(100.0, 41, 0, 10, 40, "fast_rise", (0.0,))
    assert fast.intensity([2.5])[0, 0] == pytest.approx(np.sin(np.pi / 8))
    linear = Timing(100.0, 41, 0, 10, 40, "linear", (0.0,))
    np.testing.assert_allclose(linear.intensity([2.5, 10.0, 25.0, -3.0, 50.0])[:, 0],
                               [0.25, 1.0, 0.5, 0.0, 0.0])  # fmt: skip


def test_key_frames_equal_full_rate_values() -> None:
    timing = TimingSampler(fps=200).sample(2, np.random.default_rng(1))
    full = timing.intensity(np.arange(timing.n_frames))
    keys = np.linspace(0, timing.offset, 16).round().astype(int)
    np.testing.assert_array_equal(timing.intensity(keys.astype(float)), full[keys])


def test_same_seed_same_timing() -> None:
    sampler = TimingSampler(fps=90)
    a = [sampler.sample(2, np.random.default_rng(5)) for _ in range(2)]
    assert a[0] == a[1]
    others = {sampler.sample(2, np.random.default_rng(seed)) for seed in range(20)}
    assert len(others) > 10  # different seeds, different timings


def test_fast_rise_peaks_earlier_than_smooth() -> None:
    generator = np.random.default_rng(0)
    smooth = TimingSampler(shapes=["smooth"])
    fast = TimingSampler(shapes=["fast_rise"])
    ratio = lambda d: d.apex / d.offset  # noqa: E731
    assert np.mean([ratio(fast.sample(1, generator)) for _ in range(500)]) < np.mean(
        [ratio(smooth.sample(1, generator)) for _ in range(500)]
    )


def test_bad_settings_are_named() -> None:
    with pytest.raises(TimingError, match="unknown curve shape 'wobbly'"):
        TimingSampler(shapes=["wobbly"])
    with pytest.raises(TimingError, match="fps=3"):
        TimingSampler(fps=3)
    with pytest.raises(TimingError, match="0 < apex < offset"):
        Timing(200.0, 11, 0, 10, 10, "smooth", ())
    with pytest.raises(TimingError, match="AU delays"):
        Timing(200.0, 11, 0, 5, 10, "smooth", (0.03,))
    with pytest.raises(TimingError, match="fps must be positive"):
        TimingSampler(fps=0)
