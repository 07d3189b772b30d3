"""Blinks as an occlusion: the upper lid slides down over a static eyeball.

A blink is not a smooth deformation of the eye: warping the lid landmarks with the thin-plate
spline would squash the iris. Here each eye's upper lid margin (a polyline through the upper lid
landmarks) descends towards the lower lid by ``closure`` times the lid gap; the lid skin above
it stretches down to follow, and below the new lid margin the eyeball stays where it is. As a
backward map (what each output pixel samples) this is discontinuous at the new lid margin: above
it the lid, below it the unmoved eye, so the visible iris shrinks from the top and its centre
does not move.

For one eye with upper lid ``u(x)``, lower lid ``l(x)``, gap ``g = max(l - u, 0)``, lid height
``h`` and closure ``c``, the new lid margin is ``e = u + c g``; an output pixel with
``u - h <= y < e`` samples ``y_s = (u - h) + (y - (u - h)) h / (h + c g)`` (the lid skin
``[u - h, u]`` stretched over ``[u - h, e]``), any other pixel samples itself. The offset is 0
at the eye corners (``g = 0``) and at ``y = u - h``, so the map is continuous everywhere but at
the lid margin.

Convention:
    Pixel coordinates are continuous ``(x, y)``, x right, y down (:mod:`mesynth.render.warp`).
    Lid polylines use the iBUG-68 eye points: subject-right eye 36-41 (image left), upper lid
    36-37-38-39, lower lid 36-41-40-39; subject-left eye 42-47, upper 42-43-44-45, lower
    42-47-46-45.
"""

from __future__ import annotations

import numpy as np
import torch

from mesynth.face.canonical import inter_ocular_distance

#: ``(eye, knot)`` landmark indices of the upper and lower lid polylines, corner to corner.
UPPER_LIDS = np.array([[36, 37, 38, 39], [42, 43, 44, 45]])
LOWER_LIDS = np.array([[36, 41, 40, 39], [42, 47, 46, 45]])
#: height of the upper-lid skin that stretches over the eye, IOD.
DEFAULT_LID_HEIGHT_IOD = 0.18


def lid_polylines(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Upper and lower lid knots of both eyes, each ``(2, 4, 2)`` pixels, sorted by x."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    upper, lower = landmarks[UPPER_LIDS], landmarks[LOWER_LIDS]
    return (
        np.take_along_axis(upper, np.argsort(upper[..., :1], axis=1), axis=1),
        np.take_along_axis(lower, np.argsort(lower[..., :1], axis=1), axis=1),
    )


def _polyline_y(knots: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """y of a polyline ``(M, 2)`` (x increasing) at ``x`` (any shape; clamped to its ends)."""
    xs, ys = knots[:, 0].contiguous(), knots[:, 1]
    segment = torch.searchsorted(xs[1:-1], x.contiguous())  # 0 .. M-2
    x0, x1 = xs[segment], xs[segment + 1]
    y0, y1 = ys[segment], ys[segment + 1]
    t = ((x - x0) / (x1 - x0).clamp_min(1e-9)).clamp(0.0, 1.0)
    return y0 + t * (y1 - y0)


def blink_offsets(
    points: torch.Tensor,
    closure: torch.Tensor,
    upper: torch.Tensor,
    lower: torch.Tensor,
    lid_height: float,
) -> torch.Tensor:
    """Backward offsets of a blink at the sampling positions ``points``.

    Args:
        points: ``(T, H, W, 2)`` positions in the neutral face, pixels.
        closure: ``(T,)`` lid closure in ``[0, 1]`` (1: the upper lid meets the lower lid).
        upper, lower: ``(E, M, 2)`` lid polylines per eye, pixels, x increasing
            (:func:`lid_polylines`).
        lid_height: height ``h`` of the lid skin that stretches, pixels (> 0).

    Returns:
        ``(T, H, W, 2)`` pixel offsets to add to ``points`` (x offsets are 0).
    """
    x, y = points[..., 0], points[..., 1]
    c = closure[:, None, None].to(points.dtype)
    dy = torch.zeros_like(y)
    for eye in range(len(upper)):
        u = _polyline_y(upper[eye], x)
        gap = (_polyline_y(lower[eye], x) - u).clamp_min(0.0)
        inside = (x > upper[eye, 0, 0]) & (x < upper[eye, -1, 0])
        top = u - lid_height
        descent = c * gap
        lid = inside & (y >= top) & (y < u + descent)
        stretched = top + (y - top) * (lid_height / (lid_height + descent))
        dy = torch.where(lid, stretched - y, dy)
    return torch.stack([torch.zeros_like(dy), dy], dim=-1)


def lid_height_px(landmarks: np.ndarray, lid_height_iod: float = DEFAULT_LID_HEIGHT_IOD) -> float:
    """The stretching lid-skin height of a face, pixels."""
    return float(lid_height_iod * inter_ocular_distance(landmarks))
