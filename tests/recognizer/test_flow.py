"""Apex flow: direction and size of a known translation, strain by hand, scaling, flip."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mesynth.flow import (
    apex_flow,
    flip_apex_flow,
    minmax_uint8,
    optical_flow,
    optical_strain,
    save_apex_flow,
    tvl1_available,
)


def _texture(size: int = 96, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).uniform(0, 255, (size, size)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 2.0)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min()) * 255
    return smooth.astype(np.uint8)


def _shift(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image, matrix, image.shape[::-1], borderMode=cv2.BORDER_REFLECT)


@pytest.mark.parametrize("method", ["tvl1", "farneback"])
def test_flow_recovers_a_translation(method: str) -> None:
    if method == "tvl1":
        assert tvl1_available()  # the project installs opencv-contrib
    onset = _texture()
    apex = _shift(onset, 2.0, -1.0)  # content moves 2 px right and 1 px up
    flow = optical_flow(np.stack([onset] * 3, axis=-1), np.stack([apex] * 3, axis=-1), method)
    centre = flow[24:72, 24:72]
    assert flow.shape == (96, 96, 2) and flow.dtype == np.float32
    assert np.median(centre[..., 0]) == pytest.approx(2.0, abs=0.2)
    assert np.median(centre[..., 1]) == pytest.approx(-1.0, abs=0.2)


def test_strain_of_a_linear_field_by_hand() -> None:
    y, x = np.mgrid[0:20, 0:30].astype(np.float64)
    a, b, c = 0.1, -0.05, 0.2  # u = a x + c y, v = b y: e_xx = a, e_yy = b, shear = c
    flow = np.stack([a * x + c * y, b * y], axis=-1)
    strain = optical_strain(flow)
    expected = np.sqrt(a**2 + b**2 + 0.5 * c**2)
    assert np.allclose(strain, expected, atol=1e-6)


def test_minmax_scaling_by_hand() -> None:
    assert minmax_uint8(np.array([0.0, 1.0, 2.0])).tolist() == [0, 128, 255]
    assert minmax_uint8(np.full((3, 3), 7.0)).max() == 0


def test_apex_flow_image_channels_and_flip(tmp_path) -> None:
    onset = _texture(64)
    apex = _shift(onset, 1.5, 0.0)
    image = apex_flow(onset, apex, size=28, method="farneback")
    assert image.shape == (28, 28, 3) and image.dtype == np.uint8
    for channel in range(3):  # each channel spans [0, 255] on its own
        assert image[..., channel].min() == 0 and image[..., channel].max() == 255
    flow = optical_flow(onset, apex, "farneback")
    u_small = cv2.resize(flow[..., 0], (28, 28), interpolation=cv2.INTER_AREA)
    assert np.array_equal(image[..., 0], minmax_uint8(u_small))  # channel 0 is u
    flipped = flip_apex_flow(image)
    assert np.array_equal(flipped[:, ::-1, 0], 255 - image[..., 0])
    assert np.array_equal(flipped[:, ::-1, 1:], image[..., 1:])
    assert np.array_equal(flip_apex_flow(flipped), image)
    path = save_apex_flow(tmp_path / "a.png", image)
    assert np.array_equal(cv2.imread(str(path))[:, :, ::-1], image)


def test_flow_bad_input() -> None:
    with pytest.raises(ValueError, match="differ in size"):
        optical_flow(np.zeros((8, 8), np.uint8), np.zeros((9, 8), np.uint8))
    with pytest.raises(ValueError, match="method must be one of"):
        optical_flow(np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8), "lk")
    with pytest.raises(TypeError, match="uint8"):
        optical_flow(np.zeros((8, 8)), np.zeros((8, 8)))
