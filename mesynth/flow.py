"""Apex flow: optical flow onset -> apex plus optical strain, as a small 3-channel image.

This is the input of STSTNet and most MEGC2019 composite methods. The same function serves real
and synthetic clips.

Flow: TV-L1 (``cv2.optflow.DualTVL1OpticalFlow_create``, opencv-contrib) by default; when the
contrib module is absent, Farnebäck (``cv2.calcOpticalFlowFarneback``). Both run on grayscale.

Strain: with the flow ``(u, v)`` and central-difference gradients, the strain tensor is
``e_xx = du/dx``, ``e_yy = dv/dy``, ``e_xy = e_yx = (du/dy + dv/dx) / 2``; the strain magnitude
is its Frobenius norm ``sqrt(e_xx² + e_yy² + e_xy² + e_yx²) = sqrt(e_xx² + e_yy² + 0.5 γ²)``
with ``γ = du/dy + dv/dx`` (the engineering shear).

Image: each channel is resized to ``size × size`` (area interpolation) and then min-max scaled
per sample to ``[0, 255]`` (a constant channel becomes 0); channels are ``(u, v, strain)``.

Convention:
    The flow maps the onset frame to the apex frame: ``onset[y, x] ≈ apex[y + v, x + u]``, u to
    the right and v down, in pixels of the input frames.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

METHODS = ("auto", "tvl1", "farneback")


def tvl1_available() -> bool:
    """Whether opencv-contrib's TV-L1 is installed."""
    return hasattr(cv2, "optflow") and hasattr(cv2.optflow, "DualTVL1OpticalFlow_create")


def _gray(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise TypeError(f"frames must be uint8, got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    if image.ndim == 2:
        return image
    raise ValueError(f"a frame must be (H, W), (H, W, 1) or (H, W, 3); got {image.shape}")


def optical_flow(onset: np.ndarray, apex: np.ndarray, method: str = "auto") -> np.ndarray:
    """Dense optical flow from ``onset`` to ``apex``.

    Args:
        onset, apex: ``(H, W)`` or ``(H, W, 3)`` uint8 RGB frames of one size.
        method: ``"tvl1"``, ``"farneback"`` or ``"auto"`` (TV-L1 when available).

    Returns:
        ``(H, W, 2)`` float32 ``(u, v)`` in pixels (see Convention).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    first, second = _gray(onset), _gray(apex)
    if first.shape != second.shape:
        raise ValueError(f"onset {first.shape} and apex {second.shape} differ in size")
    if method == "auto":
        method = "tvl1" if tvl1_available() else "farneback"
    if method == "tvl1":
        if not tvl1_available():
            raise RuntimeError(
                "TV-L1 needs opencv-contrib-python-headless (cv2.optflow); use method='farneback'"
            )
        flow = cv2.optflow.DualTVL1OpticalFlow_create().calc(first, second, None)
    else:
        flow = cv2.calcOpticalFlowFarneback(first, second, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    return np.asarray(flow, dtype=np.float32)


def optical_strain(flow: np.ndarray) -> np.ndarray:
    """Strain magnitude ``sqrt(e_xx² + e_yy² + 0.5 (du/dy + dv/dx)²)`` of a ``(H, W, 2)`` flow.

    Returns:
        ``(H, W)`` float32, per pixel (unitless).
    """
    flow = np.asarray(flow, dtype=np.float64)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow must be (H, W, 2); got {flow.shape}")
    du_dy, du_dx = np.gradient(flow[:, :, 0])
    dv_dy, dv_dx = np.gradient(flow[:, :, 1])
    shear = du_dy + dv_dx
    return np.sqrt(du_dx**2 + dv_dy**2 + 0.5 * shear**2).astype(np.float32)


def minmax_uint8(channel: np.ndarray) -> np.ndarray:
    """Scale one channel to ``[0, 255]`` uint8 (min -> 0, max -> 255; constant -> 0)."""
    channel = np.asarray(channel, dtype=np.float64)
    low, high = channel.min(), channel.max()
    if high - low <= 1e-12:
        return np.zeros(channel.shape, dtype=np.uint8)
    return _round_uint8((channel - low) / (high - low) * 255.0)


def _round_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(x + 0.5), 0, 255).astype(np.uint8)


def apex_flow(
    onset: np.ndarray, apex: np.ndarray, size: int = 28, method: str = "auto"
) -> np.ndarray:
    """The apex-flow image of a clip.

    Args:
        onset, apex: ``(H, W)`` or ``(H, W, 3)`` uint8 frames (aligned crops).
        size: output side in pixels.
        method: flow method (see :func:`optical_flow`).

    Returns:
        ``(size, size, 3)`` uint8, channels ``(u, v, strain)``, each min-max scaled per sample.
    """
    flow = optical_flow(onset, apex, method)
    channels = [flow[:, :, 0], flow[:, :, 1], optical_strain(flow)]
    small = [cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA) for c in channels]
    return np.stack([minmax_uint8(c) for c in small], axis=-1)


def flip_apex_flow(image: np.ndarray) -> np.ndarray:
    """Mirror an apex-flow image ``(H, W, 3)``: flip left-right and negate u.

    Min-max scaling turns ``-u`` into ``255 - scaled(u)``, so the flip stays exact.
    """
    flipped = np.ascontiguousarray(image[:, ::-1])
    flipped[:, :, 0] = 255 - flipped[:, :, 0]
    return flipped


def save_apex_flow(path: str | Path, image: np.ndarray) -> Path:
    """Write an apex-flow image as ``.png`` (channels u, v, strain as R, G, B) or ``.npy``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".npy":
        np.save(path, image)
    elif path.suffix.lower() == ".png":
        if not cv2.imwrite(str(path), np.ascontiguousarray(image[:, :, ::-1])):
            raise OSError(f"cannot write {path}")
    else:
        raise ValueError(f"{path}: apex-flow images are stored as .png or .npy")
    return path
