"""Smooth random non-rigid skin motion: a band-limited Gaussian random displacement field.

Real onset-to-apex flow carries diffuse motion that no AU explains (skin texture, soft tissue,
small expression leaks). The renderer models it as white noise low-passed by a Gaussian kernel:
its autocorrelation is Gaussian, ``rho(r) = exp(-r^2 / (4 s^2))`` for kernel width ``s``, so it
falls to 0.5 at the *half-correlation length* ``r_half = 2 s sqrt(ln 2)``, which is what
calibration measures (:func:`mesynth.calibration.measure.field_statistics`).

Convention:
    Fields are ``(H, W, 2)`` float64 ``(dx, dy)`` pixel displacements at pixel centres.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: kernel width per unit of half-correlation length, ``1 / (2 sqrt(ln 2))``.
KERNEL_PER_HALF_LENGTH = 1.0 / (2.0 * np.sqrt(np.log(2.0)))


def smooth_random_field(
    shape: tuple[int, int],
    rms_px: float,
    half_correlation_px: float,
    generator: np.random.Generator,
) -> np.ndarray:
    """A zero-mean smooth random displacement field with a given RMS and correlation length.

    Args:
        shape: ``(H, W)``.
        rms_px: root mean square of the displacement vectors, pixels (>= 0).
        half_correlation_px: lag at which the autocorrelation is 0.5, pixels (> 0).
        generator: draws the white noise (``2 H W`` standard normals, whatever ``rms_px``).

    Returns:
        ``(H, W, 2)`` float64 field whose RMS is exactly ``rms_px``.
    """
    if rms_px < 0 or not half_correlation_px > 0:
        raise ValueError(
            f"rms_px must be >= 0 and half_correlation_px > 0; got {rms_px}, {half_correlation_px}"
        )
    noise = generator.standard_normal((2, *shape))
    sigma = half_correlation_px * KERNEL_PER_HALF_LENGTH
    field = np.stack([ndimage.gaussian_filter(n, sigma, mode="reflect") for n in noise], axis=-1)
    field -= field.mean(axis=(0, 1))
    power = np.sqrt((field**2).sum(-1).mean())
    return field * (rms_px / power) if power > 0 else field
