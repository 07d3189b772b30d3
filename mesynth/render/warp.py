"""Thin-plate-spline face warping, batched: one ``grid_sample`` renders many clips.

For a fixed identity the thin-plate spline (TPS) whose centres are the neutral landmarks is
*linear* in the values it interpolates. :func:`tps_influence` precomputes, once per identity,
the operator ``A`` of shape ``(P, N)``: the TPS interpolant of landmark values ``v``
(``(N, 2)``) at ``P`` points is ``A @ v``. TPS fields are smooth, so the points are the nodes of
a coarse *field lattice* (:func:`lattice_shape`, about 0.05 IOD apart: some 60 x 60 nodes for
a canonical crop of any size) rather than every pixel: a frame's backward map is one small matrix
product on the lattice, refined there, and interpolated bilinearly to every pixel by two matrix
products (:func:`upsample_flow`). All frames of many clips are then resampled by a single
:func:`torch.nn.functional.grid_sample`.

Convention:
    Pixel coordinates are continuous ``(x, y)``, x right, y down, the centre of pixel
    ``(row i, column j)`` at ``(j + 0.5, i + 0.5)`` (:mod:`mesynth.face.canonical`). Displacements
    are *forward*: landmark ``p`` moves to ``p + d``. Rendering is a *backward* map: each output
    pixel ``x`` pulls from the input at ``s(x)``, so moving content by a field ``u`` means
    ``output(x) = input(x - u(x'))`` where ``x'`` is the point that lands on ``x``. We interpolate
    ``-d`` at the neutral landmark positions (fixed TPS centres) to get a backward field ``v``;
    ``s(x) = x + v(x)`` is the first-order approximation (error ``O(|d| |grad d|)``, negligible
    for micro-expression displacements of 1-3 px). ``inverse_iterations`` fixed-point steps
    ``s <- x + v(s)`` (one ``grid_sample`` of the lattice field each) make it second order and
    better, which matters for large motions such as blinks. The lattice's corner nodes are the
    corner pixel centres (:func:`lattice_points`): on the lattice ``grid_sample`` uses
    ``align_corners=True``, and the lattice-to-pixel interpolation is bilinear with the same
    convention (``F.interpolate(..., align_corners=True)``). The image itself is sampled with
    normalised coordinates, ``align_corners=False`` (pixel centre ``x`` maps to ``2 x / W - 1``),
    bilinear interpolation and ``padding_mode="border"``.

    On CPU (``FaceWarper(sampler="auto")``) the same map is sampled by ``cv2.remap`` in source
    pixels instead, built a few frames at a time from the lattice of absolute positions
    (:mod:`mesynth.render.cpu_remap`); CUDA, float64 and ``sampler="torch"`` use
    ``grid_sample``.

Artefacts the renderer avoids, because they move with the expression and so give the label away:

* *Resampling blur tied to displacement.* Bilinear sampling blurs by an amount that depends on
  the sub-pixel offset (none at offset 0, most at 0.5), so a frame copied at the onset would be
  sharper than a resampled apex. Every frame, the onset included, samples one pre-filtered
  source per identity (:func:`prefiltered_source`): the face low-passed by a Gaussian and
  upsampled with Lanczos interpolation. The Gaussian removes the content near the Nyquist
  frequency whose attenuation depends on the phase of the sample, and bilinear sampling on the
  finer grid adds little phase-dependent blur, so a frame's sharpness does not depend on how far
  its pixels moved. ``grid_sample`` coordinates are unchanged: with ``align_corners=False`` the
  normalised coordinates cover the same image extent at any resolution.
* *Motion outside the face.* Every per-AU field and the skin field is multiplied by
  :func:`mesynth.render.face_mask.face_mask` (1 on the face, 0 a little outside its hull); the
  AU fields at the lattice nodes, and the few pixels just outside the mask's support that the
  interpolation from a node inside it still reaches are set back to 0, so no pixel outside the
  support moves.
* *Blinks that squash the iris.* A blink is an occlusion drawn by
  :func:`mesynth.render.eyelids.blink_offsets` at the AU-warped positions, not a landmark motion.
"""

from __future__ import annotations

import itertools
import math
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from mesynth.face.canonical import inter_ocular_distance
from mesynth.render import cpu_remap
from mesynth.render.eyelids import (
    DEFAULT_LID_HEIGHT_IOD,
    blink_offsets,
    lid_height_px,
    lid_polylines,
)
from mesynth.render.face_mask import (
    DEFAULT_FALLOFF_IOD,
    DEFAULT_MARGIN_IOD,
    face_mask,
    face_mask_at,
)

#: Tikhonov term added to the TPS kernel diagonal (normalised coordinates); it keeps the system
#: solvable when two landmarks (e.g. the inner lips of a closed mouth) nearly coincide.
DEFAULT_REGULARIZATION = 1e-6
#: Gaussian low-pass of the source face, pixels: enough to make the sharpness of a frame
#: independent of the sub-pixel offsets it is sampled at (about the blur of bilinear sampling
#: at a half-pixel offset, the worst case without it).
DEFAULT_PREFILTER_SIGMA = 0.5
#: upsampling factor of the source face: bilinear sampling on a 4x finer grid adds at most
#: 1/64 px^2 of blur variance, whatever the offset.
DEFAULT_UPSAMPLE = 4
#: spacing of the lattice the backward map is evaluated on, IOD (3.6 px at a 224 px canonical
#: crop, 1.6 px at 96 px): TPS fields are smooth, so the map is computed at the lattice nodes
#: and interpolated bilinearly to every pixel (:func:`lattice_shape`); 0 evaluates it at every
#: pixel centre.
DEFAULT_FIELD_SPACING_IOD = 0.05


def _tps_kernel(sq_dist: np.ndarray) -> np.ndarray:
    """``U(r) = r^2 log r^2`` from squared distances (``U(0) = 0``)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = sq_dist * np.log(sq_dist)
    return np.where(sq_dist > 0, out, 0.0)


def pixel_centres(size: tuple[int, int]) -> np.ndarray:
    """Continuous coordinates of every pixel centre, ``(H*W, 2)`` ``(x, y)``, row-major."""
    height, width = size
    ys, xs = np.meshgrid(np.arange(height) + 0.5, np.arange(width) + 0.5, indexing="ij")
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


def tps_influence(
    centres: np.ndarray,
    size: int | tuple[int, int],
    regularization: float = DEFAULT_REGULARIZATION,
    points: np.ndarray | None = None,
) -> np.ndarray:
    """Dense TPS influence operator: interpolant of centre values at every pixel centre.

    Args:
        centres: ``(N, 2)`` TPS centres (neutral landmarks), pixels.
        size: output size ``S`` or ``(H, W)``.
        regularization: kernel diagonal term, in coordinates normalised by ``max(H, W)``.
        points: ``(P, 2)`` pixel positions to evaluate at instead of every pixel centre (the
            rows of the full operator at those pixels, bit for bit).

    Returns:
        ``(H*W, N)`` (or ``(P, N)``) float64 ``A`` with ``f(pixels) = A @ values`` for any
        ``(N, D)`` values. Each row sums to 1 (the TPS reproduces constants, hence
        translations, exactly).
    """
    height, width = (size, size) if isinstance(size, int) else size
    centres = np.asarray(centres, dtype=np.float64)
    if centres.ndim != 2 or centres.shape[1] != 2 or len(centres) < 3:
        raise ValueError(f"centres must be (N >= 3, 2), got {centres.shape}")
    scale = float(max(height, width))  # the TPS is similarity-invariant: condition the system
    c = centres / scale
    n = len(c)
    kernel = _tps_kernel(_square_distances(c, c)) + regularization * np.eye(n)
    poly = np.hstack([np.ones((n, 1)), c])
    system = np.zeros((n + 3, n + 3))
    system[:n, :n] = kernel
    system[:n, n:] = poly
    system[n:, :n] = poly.T
    rhs = np.vstack([np.eye(n), np.zeros((3, n))])
    try:
        coef = np.linalg.solve(system, rhs)  # (N + 3, N)
    except np.linalg.LinAlgError:  # coincident centres without regularisation
        coef = np.linalg.lstsq(system, rhs, rcond=None)[0]
    points = (pixel_centres((height, width)) if points is None else points) / scale
    phi = _tps_kernel(_square_distances(points, c))  # (H*W, N)
    return phi @ coef[:n] + np.hstack([np.ones((len(points), 1)), points]) @ coef[n:]


def _square_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(len(a), len(b))`` squared distances of ``(., 2)`` point sets."""
    return (a[:, None, 0] - b[None, :, 0]) ** 2 + (a[:, None, 1] - b[None, :, 1]) ** 2


def lattice_shape(size: tuple[int, int], spacing_px: float) -> tuple[int, int]:
    """Nodes per axis ``(h, w)`` of the field lattice of an ``(H, W)`` image.

    The lattice spans the image from the first to the last pixel centre with at most
    ``spacing_px`` between neighbouring nodes; ``spacing_px <= 1`` gives one node per pixel
    centre (``(H, W)``), where interpolating from the lattice is the identity.
    """
    if spacing_px <= 1:
        return (int(size[0]), int(size[1]))
    return tuple(min(n, max(2, math.ceil((n - 1) / spacing_px) + 1)) for n in size)


def lattice_points(size: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    """Pixel positions ``(h*w, 2)`` ``(x, y)`` of the lattice nodes, row-major.

    Convention: node ``(i, j)`` lies at ``x = 0.5 + j (W - 1) / (w - 1)``,
    ``y = 0.5 + i (H - 1) / (h - 1)``: the corner nodes are the corner pixel centres, so the
    lattice is a ``grid_sample`` grid with ``align_corners=True`` over the same extent (a
    one-node axis sits at the first pixel centre).
    """
    axes = [0.5 + np.arange(m) * ((n - 1) / (m - 1) if m > 1 else 0.0) for n, m in zip(size, shape)]
    ys, xs = np.meshgrid(*axes, indexing="ij")
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


def interpolation_matrix(n_out: int, n_in: int) -> np.ndarray:
    """``(n_out, n_in)`` linear interpolation from ``n_in`` lattice nodes to ``n_out`` pixel
    centres of one axis (the :func:`lattice_points` convention; ``align_corners=True``).

    Each row has at most two non-zero weights, summing to 1; ``n_in == n_out`` is the identity.
    """
    if n_in == n_out:
        return np.eye(n_out)
    lower, frac = _cells(n_out, n_in)
    out = np.zeros((n_out, n_in))
    rows = np.arange(n_out)
    out[rows, lower] = 1.0 - frac
    if n_in > 1:
        out[rows, lower + 1] += frac
    return out


def _cells(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel of an axis: the lattice cell it lies in (its lower node, ``(n_out,)`` int)
    and its fractional position in that cell (``(n_out,)`` in ``[0, 1]``)."""
    position = np.arange(n_out) * ((n_in - 1) / (n_out - 1)) if n_in > 1 else np.zeros(n_out)
    lower = np.minimum(np.floor(position).astype(int), max(n_in - 2, 0))
    return lower, position - lower


def backward_flow(
    influence_t: torch.Tensor,
    patterns: torch.Tensor,
    weights: torch.Tensor,
    size: tuple[int, int],
    inverse_iterations: int = 1,
    lattice: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Backward sampling offsets of every frame of a clip (or a batch of clips), at the field
    lattice's nodes.

    The clip's forward landmark displacement at frame ``t`` is ``sum_k weights[t, k] *
    patterns[k]`` (e.g. one pattern per AU, weighted by its intensity curve). Each pattern's
    field is computed once (``2K`` rows times the operator), then every frame is a
    ``(T, K) @ (K, 2*h*w)`` product. The fixed-point refinement samples that field on the
    lattice too (bilinear, ``align_corners=True``, see :func:`lattice_points`).

    Args:
        influence_t: ``(N, h*w)``, the *transpose* of :func:`tps_influence` at the lattice
            nodes (this layout makes the product come out as ``(T, 2, h, w)`` without a copy).
        patterns: ``(..., K, N, 2)`` forward landmark displacement patterns, pixels (leading
            dimensions: a batch of clips, zero-padded to a common ``K``).
        weights: ``(..., T, K)`` weight of each pattern in each frame.
        size: ``(H, W)`` of the image.
        inverse_iterations: fixed-point refinements of the backward map (0 = first order).
        lattice: ``(h, w)`` nodes per axis (:func:`lattice_shape`); ``None``: every pixel
            centre, ``(H, W)``.

    Returns:
        ``(..., T, h, w, 2)`` offsets ``s(x) - x`` at the nodes in *normalised*
        ``grid_sample`` units of the image (``(x, y)`` order; one pixel is ``2 / W`` in x and
        ``2 / H`` in y), contiguous.
    """
    height, width = size
    rows, cols = size if lattice is None else lattice
    *lead, n_patterns, n_points, _ = patterns.shape
    n_frames = weights.shape[-2]
    options = {"dtype": influence_t.dtype, "device": influence_t.device}
    # the lattice's own align_corners=True units (one pixel: 2 / (W - 1)), so that a node's
    # sampling position is one exact addition; converted to image units at the end
    spans = (max(width - 1, 1), max(height - 1, 1))
    unit = torch.tensor([2.0 / spans[0], 2.0 / spans[1]], **options)
    values = (patterns * -unit).transpose(-1, -2).reshape(-1, n_points)
    fields = (values @ influence_t).view(*lead, n_patterns, 2 * rows * cols)
    field = (weights @ fields).view(-1, 2, rows, cols)
    flow = field.permute(0, 2, 3, 1)
    if inverse_iterations > 0:
        nodes = _lattice_grid((rows, cols), **options)
        for _ in range(inverse_iterations):
            flow = F.grid_sample(
                field,
                torch.add(nodes, flow),
                mode="bilinear",
                padding_mode="border",
                align_corners=True,
            ).permute(0, 2, 3, 1)
    to_image = torch.tensor([spans[0] / width, spans[1] / height], **options)
    return torch.mul(flow, to_image).view(*lead, n_frames, rows, cols, 2)


_LATTICE_GRIDS: dict[tuple[tuple[int, int], torch.dtype, str], torch.Tensor] = {}


def _lattice_grid(shape: tuple[int, int], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``(h, w, 2)`` ``align_corners=True`` coordinates of the lattice nodes (cached)."""
    key = (tuple(shape), dtype, str(device))
    if key not in _LATTICE_GRIDS:
        ys, xs = (torch.linspace(-1.0, 1.0, n, dtype=dtype, device=device) for n in shape)
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        _LATTICE_GRIDS[key] = torch.stack([grid_x, grid_y], dim=-1)
    return _LATTICE_GRIDS[key]


#: a band of an interpolation matrix: output indices ``[a0, a1)`` read input nodes ``[i0, i1)``
#: with weights ``block`` (``(a1 - a0, i1 - i0)``, or spread over two components, see
#: :func:`interpolation_blocks`)
Band = tuple[int, int, int, int, torch.Tensor]


def interpolation_blocks(
    n_out: int,
    n_in: int,
    n_blocks: int = 4,
    components: int = 1,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> list[Band]:
    """:func:`interpolation_matrix` cut into ``n_blocks`` bands of output indices, each with
    only the input nodes it reads: the matrix is banded (two weights a row), so the products
    of :func:`upsample_flow` skip most of its zeros. The skipped terms are exact zeros: the
    result is the same as with the whole matrix.

    Args:
        n_out, n_in: pixels and lattice nodes of the axis.
        n_blocks: number of bands (at most ``n_out``).
        components: ``2`` returns every band transposed and spread over the ``(x, y)``
            components (``kron(block.T, eye(2))``, ``(2 (i1 - i0), 2 (a1 - a0))``), for the x
            axis of ``(..., w, 2)`` offsets; ``1`` returns the blocks as they are.
    """
    matrix = interpolation_matrix(n_out, n_in)
    edges = np.linspace(0, n_out, min(n_blocks, n_out) + 1).astype(int)
    bands = []
    for a0, a1 in itertools.pairwise(edges):
        used = np.flatnonzero(matrix[a0:a1].any(axis=0))
        i0, i1 = int(used[0]), int(used[-1]) + 1
        block = matrix[a0:a1, i0:i1]
        if components == 2:
            block = np.kron(block.T, np.eye(2))
        bands.append((int(a0), int(a1), i0, i1, torch.from_numpy(block).to(device, dtype)))
    return bands


def upsample_flow(
    flow: torch.Tensor,
    rows: Sequence[Band],
    cols: Sequence[Band],
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Bilinear interpolation of lattice offsets to every pixel centre, as matrix products
    (along x, then along y, band by band).

    Args:
        flow: ``(T, h, w, 2)`` offsets at the lattice nodes.
        rows: :func:`interpolation_blocks` of the y axis (``H`` pixels from ``h`` nodes).
        cols: :func:`interpolation_blocks` of the x axis with ``components=2``.
        out: optional contiguous ``(T, H, W, 2)`` tensor to write into.

    Returns:
        ``(T, H, W, 2)`` offsets (``out`` if given): the same values as
        ``F.interpolate(flow.permute(0, 3, 1, 2), (H, W), mode="bilinear",
        align_corners=True)``, permuted back.
    """
    frames, h, w, _ = flow.shape
    height, width = rows[-1][1], cols[-1][1]
    if out is None:
        out = torch.empty(frames, height, width, 2, dtype=flow.dtype, device=flow.device)
    nodes = flow.reshape(frames * h, w, 2)
    along_x = torch.empty(frames * h, 2 * width, dtype=flow.dtype, device=flow.device)
    for x0, x1, j0, j1, block in cols:
        torch.matmul(
            nodes[:, j0:j1].reshape(frames * h, -1), block, out=along_x[:, 2 * x0 : 2 * x1]
        )
    along_x = along_x.view(frames, h, 2 * width)
    pixels = out.view(frames, height, 2 * width)
    for y0, y1, i0, i1, block in rows:
        torch.matmul(block, along_x[:, i0:i1], out=pixels[:, y0:y1])
    return out


def pixel_grid(size: tuple[int, int], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Pixel-centre coordinates ``(H, W, 2)`` ``(x, y)``."""
    height, width = size
    ys = torch.arange(height, dtype=dtype, device=device) + 0.5
    xs = torch.arange(width, dtype=dtype, device=device) + 0.5
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y], dim=-1)


def to_normalised(points: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Continuous pixel ``(x, y)`` to ``grid_sample`` coordinates (``align_corners=False``)."""
    height, width = size
    scale = torch.tensor([2.0 / width, 2.0 / height], dtype=points.dtype, device=points.device)
    return points * scale - 1.0


def from_normalised(grid: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`to_normalised`."""
    height, width = size
    scale = torch.tensor([width / 2.0, height / 2.0], dtype=grid.dtype, device=grid.device)
    return (grid + 1.0) * scale


_GRIDS: dict[tuple[tuple[int, int], torch.dtype, str], torch.Tensor] = {}


def normalised_pixel_grid(
    size: tuple[int, int], dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """Normalised coordinates of every pixel centre, ``(H, W, 2)`` (cached per size/device)."""
    key = (tuple(size), dtype, str(device))
    if key not in _GRIDS:
        _GRIDS[key] = to_normalised(pixel_grid(size, dtype, device), size)
    return _GRIDS[key]


def apply_backward_affine(
    points: torch.Tensor, affines: torch.Tensor, centre: tuple[float, float]
) -> torch.Tensor:
    """Map sampling positions through per-frame affines about ``centre``.

    Args:
        points: ``(T, H, W, 2)`` pixel positions.
        affines: ``(T, 2, 3)``; position ``p`` becomes ``L (p - c) + c + t`` with ``L`` the left
            ``2x2`` block and ``t`` the last column (a backward map, like the rest).
        centre: ``(x, y)`` pixel centre of rotation/scale.
    """
    c = torch.tensor(centre, dtype=points.dtype, device=points.device)
    linear = affines[:, None, None, :, :2]  # (T, 1, 1, 2, 2)
    shift = affines[:, None, None, :, 2]
    return (linear @ (points - c)[..., None])[..., 0] + c + shift


def prefiltered_source(image: np.ndarray, sigma: float, factor: int) -> np.ndarray:
    """The image every frame of a face is sampled from: Gaussian low-pass, then upsampling.

    Args:
        image: ``(H, W, C)`` uint8 face.
        sigma: Gaussian standard deviation, pixels of ``image`` (0: no low-pass).
        factor: integer upsampling factor (Lanczos-4 interpolation; 1: none).

    Returns:
        ``(factor H, factor W, C)`` float32, 0-255 scale. OpenCV's resize maps pixel centres
        like ``grid_sample`` with ``align_corners=False``, so one normalised grid samples the
        same point of the face in ``image`` and in the result.
    """
    if sigma < 0 or factor < 1:
        raise ValueError(f"need sigma >= 0 and factor >= 1, got {sigma} and {factor}")
    out = np.asarray(image, dtype=np.float32)
    if sigma > 0:
        out = cv2.GaussianBlur(out, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101)
    if factor > 1:
        height, width = out.shape[:2]
        out = cv2.resize(out, (factor * width, factor * height), interpolation=cv2.INTER_LANCZOS4)
    return out.reshape(*out.shape[:2], image.shape[2])


def sample_clips(image: torch.Tensor, grids: torch.Tensor) -> torch.Tensor:
    """Render all frames of ``B`` clips of one face with one ``grid_sample``.

    Each clip's frame grids are stacked along the grid's height, one batch entry per clip, and
    the single source image is expanded over the batch (a stride-0 view): every frame reads it
    without a copy, and ``grid_sample``, which splits its work between threads by batch entry,
    gets one entry per clip.

    Args:
        image: ``(C, H', W')`` float source face (any resolution; see
            :func:`prefiltered_source`).
        grids: ``(B, T, H, W, 2)`` normalised sampling positions.

    Returns:
        ``(B, T, H, W, C)`` float frames, a view of a ``(B, C, T, H, W)`` tensor (every clip's
        channel planes contiguous).
    """
    batch, frames, height, width, _ = grids.shape
    out = F.grid_sample(
        image[None].expand(batch, -1, -1, -1),
        grids.reshape(batch, frames * height, width, 2),
        mode="bilinear",
        padding_mode="border",
        align_corners=False,
    )  # (B, C, T*H, W)
    return out.view(batch, -1, frames, height, width).permute(0, 2, 3, 4, 1)


@dataclass(frozen=True)
class WarpRequest:
    """What to render for one clip.

    The forward landmark displacement of frame ``t`` is ``sum_k weights[t, k] * patterns[k]``.

    Attributes:
        identity: key of a face registered with :meth:`FaceWarper.add_identity`.
        patterns: ``(K, N, 2)`` forward landmark displacement patterns, pixels (e.g. one per AU
            at its apex intensity).
        weights: ``(T, K)`` weight of every pattern in every frame (e.g. intensity curves).
        affines: optional ``(T, 2, 3)`` backward similarity per frame (head micro-motion), see
            :func:`apply_backward_affine`; ``None`` for a still head.
        field: optional ``(H, W, 2)`` backward pixel offsets added to every frame's map, times
            ``field_weights`` and the face mask (e.g. smooth random skin motion), before the
            head affine.
        field_weights: ``(T,)`` weight of ``field`` per frame (required with ``field``).
        blink: optional ``(T,)`` eyelid closure per frame in ``[0, 1]``
            (:func:`mesynth.render.eyelids.blink_offsets`); ``None`` for open eyes.
    """

    identity: Hashable
    patterns: np.ndarray
    weights: np.ndarray
    affines: np.ndarray | None = None
    field: np.ndarray | None = None
    field_weights: np.ndarray | None = None
    blink: np.ndarray | None = None

    @classmethod
    def from_displacements(
        cls, identity: Hashable, displacements: np.ndarray, affines: np.ndarray | None = None
    ) -> WarpRequest:
        """A request from per-frame displacements ``(T, N, 2)`` (one pattern per frame)."""
        displacements = np.asarray(displacements, dtype=np.float64)
        return cls(identity, displacements, np.eye(len(displacements)), affines)

    @property
    def n_frames(self) -> int:
        return len(self.weights)


@dataclass(frozen=True)
class _Face:
    """A registered face's device tensors (see :meth:`FaceWarper.add_identity`)."""

    influence_t: torch.Tensor  # (N, h*w) TPS operator at the lattice nodes, transposed, masked
    lattice: tuple[int, int]  # (h, w) field lattice nodes per axis
    node_support: torch.Tensor  # (h, w, 1) 1 at the nodes inside the mask's support, else 0
    rows: list[Band]  # lattice-to-pixel interpolation along y (interpolation_blocks)
    cols: list[Band]  # along x, spread over the (x, y) components
    leak: torch.Tensor  # flat indices of pixels outside the mask the interpolation reaches
    source: torch.Tensor  # (C, f*H, f*W) pre-filtered, upsampled face
    remap_source: np.ndarray | None  # (f*H, f*W, 4) the same, zero-padded, for sampler="cv2"
    mask: torch.Tensor | None  # (H, W, 1) face mask at the pixels, computed on first use
    upper: torch.Tensor  # (2, 4, 2) upper lid polylines, pixels
    lower: torch.Tensor  # (2, 4, 2) lower lid polylines, pixels
    lid_height: float  # pixels
    size: tuple[int, int]  # (H, W)


class FaceWarper:
    """Renders clips of registered faces: per-identity TPS operators, batched resampling.

    Args:
        device: torch device for the operators and the sampling.
        dtype: floating type of the rendering (float32; float64 for reference checks).
        inverse_iterations: fixed-point refinements of the backward map, see module docs.
        cache_size: how many identities' operators stay on the device (least recently used
            ones are dropped and recomputed on demand).
        prefilter_sigma: Gaussian low-pass of the source face, pixels
            (:func:`prefiltered_source`).
        upsample: upsampling factor of the source face.
        mask_margin_iod, mask_falloff_iod: the face mask confining AU and skin motion
            (:func:`mesynth.render.face_mask.face_mask`).
        lid_height_iod: lid skin that stretches over the eye in a blink, IOD
            (:mod:`mesynth.render.eyelids`).
        field_spacing_iod: spacing of the lattice the backward map is computed on, IOD
            (:func:`lattice_shape`; rounded per identity so the lattice spans the crop); the
            map at every pixel is interpolated bilinearly from it. 0 computes it at every
            pixel. The lattice map differs from the per-pixel one by a mean of < 0.01 px on the
            built-in portraits at 224 px (``tests/mesynth/test_warp_lattice.py``).
        sampler: how frames are resampled: ``"torch"`` (``grid_sample`` on planar channels,
            any device), ``"cv2"`` (``cv2.remap`` on the interleaved source, CPU float32 only,
            :mod:`mesynth.render.cpu_remap`), or ``"auto"``: ``"cv2"`` on CPU in float32,
            ``"torch"`` otherwise. The two sample the same map and agree within a grey level,
            but not byte for byte, so the resolved name is part of :meth:`settings`.

    Results depend only on each clip's request, never on which other clips share the batch:
    every per-clip operation has the same shapes whatever the batch, and ``grid_sample`` and
    ``cv2.remap`` treat every output pixel independently.
    """

    def __init__(
        self,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        inverse_iterations: int = 1,
        cache_size: int = 64,
        prefilter_sigma: float = DEFAULT_PREFILTER_SIGMA,
        upsample: int = DEFAULT_UPSAMPLE,
        mask_margin_iod: float = DEFAULT_MARGIN_IOD,
        mask_falloff_iod: float = DEFAULT_FALLOFF_IOD,
        lid_height_iod: float = DEFAULT_LID_HEIGHT_IOD,
        field_spacing_iod: float = DEFAULT_FIELD_SPACING_IOD,
        sampler: str = "auto",
    ) -> None:
        if inverse_iterations < 0:
            raise ValueError(f"inverse_iterations must be >= 0, got {inverse_iterations}")
        if prefilter_sigma < 0 or upsample < 1 or mask_margin_iod < 0:
            raise ValueError(
                "need prefilter_sigma >= 0, upsample >= 1 and mask_margin_iod >= 0, got "
                f"{prefilter_sigma}, {upsample} and {mask_margin_iod}"
            )
        if not field_spacing_iod >= 0:
            raise ValueError(f"field_spacing_iod must be >= 0, got {field_spacing_iod}")
        if not (mask_falloff_iod > 0 and lid_height_iod > 0):
            raise ValueError(
                "need mask_falloff_iod > 0 and lid_height_iod > 0, got "
                f"{mask_falloff_iod} and {lid_height_iod}"
            )
        self.device = torch.device(device)
        self.dtype = dtype
        self.sampler = cpu_remap.resolve_sampler(sampler, self.device, dtype)
        self.inverse_iterations = inverse_iterations
        self.cache_size = cache_size
        self.prefilter_sigma = float(prefilter_sigma)
        self.upsample = int(upsample)
        self.mask_margin_iod = float(mask_margin_iod)
        self.mask_falloff_iod = float(mask_falloff_iod)
        self.lid_height_iod = float(lid_height_iod)
        self.field_spacing_iod = float(field_spacing_iod)
        self._faces: dict[Hashable, tuple[np.ndarray, np.ndarray]] = {}
        self._operators: OrderedDict[Hashable, _Face] = OrderedDict()
        self._grids = torch.empty(0, dtype=dtype, device=self.device)

    def settings(self) -> dict[str, float | int | str]:
        """The settings that change rendered pixels (for a store's configuration hash)."""
        return {
            "inverse_iterations": self.inverse_iterations,
            "prefilter_sigma": self.prefilter_sigma,
            "upsample": self.upsample,
            "mask_margin_iod": self.mask_margin_iod,
            "mask_falloff_iod": self.mask_falloff_iod,
            "lid_height_iod": self.lid_height_iod,
            "field_spacing_iod": self.field_spacing_iod,
            "sampler": self.sampler,
        }

    def add_identity(self, key: Hashable, image: np.ndarray, landmarks: np.ndarray) -> None:
        """Register a face: ``image`` ``(H, W, C)`` uint8, ``landmarks`` ``(N, 2)`` pixels
        (iBUG 68 for the face mask and the eyelids)."""
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3:
            raise ValueError(f"identity {key!r}: image must be (H, W, C) uint8, got {image.shape}")
        self._faces[key] = (image, np.asarray(landmarks, dtype=np.float64))
        self._operators.pop(key, None)

    def face_mask(self, key: Hashable) -> np.ndarray:
        """``(H, W)`` float64 face mask of a registered identity."""
        image, landmarks = self._known(key)
        return face_mask(landmarks, image.shape[:2], self.mask_margin_iod, self.mask_falloff_iod)

    def source(self, key: Hashable) -> np.ndarray:
        """``(f H, f W, C)`` float32 pre-filtered source of a registered identity."""
        return prefiltered_source(self._known(key)[0], self.prefilter_sigma, self.upsample)

    def _known(self, key: Hashable) -> tuple[np.ndarray, np.ndarray]:
        if key not in self._faces:
            raise KeyError(f"unknown identity {key!r}; register it with add_identity first")
        return self._faces[key]

    def _operator(self, key: Hashable) -> _Face:
        if key in self._operators:
            self._operators.move_to_end(key)
            return self._operators[key]
        image, landmarks = self._known(key)
        size = (image.shape[0], image.shape[1])
        spacing = self.field_spacing_iod * inter_ocular_distance(landmarks)
        lattice = lattice_shape(size, spacing)
        nodes = lattice_points(size, lattice)
        node_mask = face_mask_at(landmarks, nodes, self.mask_margin_iod, self.mask_falloff_iod)
        # the operator is zero where the mask is: evaluate the TPS on the mask's support only
        support = node_mask > 0
        influence_t = np.zeros((len(landmarks), len(nodes)))
        influence_t[:, support] = (
            tps_influence(landmarks, size, points=nodes[support]).T * node_mask[support]
        )
        leak = self._leak(landmarks, size, lattice, node_mask)
        upper, lower = lid_polylines(landmarks)
        source = self.source(key)

        def tensor(array: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(array)).to(self.device, self.dtype)

        entry = _Face(
            influence_t=tensor(influence_t),
            lattice=lattice,
            node_support=tensor(support.reshape(*lattice, 1)),
            rows=interpolation_blocks(size[0], lattice[0], dtype=self.dtype, device=self.device),
            cols=interpolation_blocks(
                size[1], lattice[1], components=2, dtype=self.dtype, device=self.device
            ),
            leak=torch.from_numpy(leak).to(self.device),
            source=tensor(source).permute(2, 0, 1),
            remap_source=cpu_remap.padded_source(source) if self.sampler == "cv2" else None,
            mask=None,
            upper=tensor(upper),
            lower=tensor(lower),
            lid_height=lid_height_px(landmarks, self.lid_height_iod),
            size=size,
        )
        self._operators[key] = entry
        while len(self._operators) > self.cache_size:
            self._operators.popitem(last=False)
        return entry

    def _leak(
        self,
        landmarks: np.ndarray,
        size: tuple[int, int],
        lattice: tuple[int, int],
        node_mask: np.ndarray,
    ) -> np.ndarray:
        """Flat indices of the pixels outside the face mask's support that the bilinear
        weights of a masked lattice node still reach (their offsets are zeroed after the
        interpolation, so nothing outside the mask ever moves).

        Only pixels of lattice cells that straddle the support's edge are tested: the support
        (the hull grown by the margin and falloff) is convex, so a cell whose four corners are
        inside it lies inside it, and a cell whose corners are all outside reaches no pixel.
        """
        if lattice == size:
            return np.zeros(0, dtype=np.int64)
        inside = node_mask.reshape(lattice) > 1e-6  # clear of the edge by far more than rounding
        reached = node_mask.reshape(lattice) > 0
        (row_cell, row_frac), (col_cell, col_frac) = (
            _cells(size[0], lattice[0]),
            _cells(size[1], lattice[1]),
        )

        def corners(flags: np.ndarray, reduce: np.ufunc) -> np.ndarray:
            # per pixel: the flags of its cell's corners (pixels on a node line ignore the
            # corners they give zero weight), reduced by `reduce`
            out = None
            for dy, wy in ((0, 1 - row_frac), (1, row_frac)):
                for dx, wx in ((0, 1 - col_frac), (1, col_frac)):
                    rows = np.minimum(row_cell + dy, lattice[0] - 1)
                    cols = np.minimum(col_cell + dx, lattice[1] - 1)
                    flag = flags[np.ix_(rows, cols)]
                    if reduce is np.logical_or:
                        flag = flag & (wy[:, None] > 0) & (wx[None, :] > 0)
                    out = flag if out is None else reduce(out, flag)
            return out

        doubtful = corners(reached, np.logical_or) & ~corners(inside, np.logical_and)
        candidates = np.flatnonzero(doubtful)
        centres = pixel_centres(size)[candidates]
        mask = face_mask_at(landmarks, centres, self.mask_margin_iod, self.mask_falloff_iod)
        return candidates[mask <= 0]

    def _pixel_mask(self, key: Hashable, face: _Face) -> torch.Tensor:
        """``(H, W, 1)`` face mask of an identity at its pixels (computed once)."""
        if face.mask is None:
            mask = torch.from_numpy(self.face_mask(key)[..., None]).to(self.device, self.dtype)
            face = replace(face, mask=mask)
            if key in self._operators:
                self._operators[key] = face
        return face.mask

    def grids(self, request: WarpRequest, out: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised sampling grid ``(T, H, W, 2)`` of one clip (written into ``out`` if given,
        a contiguous ``(T, H, W, 2)`` tensor)."""
        face = self._operator(request.identity)
        if out is None:
            out = torch.empty(request.n_frames, *face.size, 2, dtype=self.dtype, device=self.device)
        self._write_grids(face, [request], out[None])
        return out

    def maps(self, request: WarpRequest) -> np.ndarray:
        """``cv2.remap`` maps ``(T, H, W, 2)`` float32 of one clip (``sampler="cv2"`` only):
        source-pixel ``(x, y)`` positions (:mod:`mesynth.render.cpu_remap`), the map of
        :meth:`grids` in other units."""
        if self.sampler != "cv2":
            raise ValueError(f"maps are the cv2 sampler's; this warper uses {self.sampler!r}")
        face = self._operator(request.identity)
        with cpu_remap.cpu_threads():
            (maps,) = self._clip_maps(face, [request], request.n_frames)
        if isinstance(maps, cpu_remap.LatticeMaps):
            maps = maps.write(slice(None), np.empty(maps.shape, dtype=np.float32))
        return maps

    def _lattice_flow(
        self, face: _Face, requests: Sequence[WarpRequest], n_frames: int, masked: bool = True
    ) -> torch.Tensor:
        """``(B, n_frames, h, w, 2)`` normalised AU offsets of clips of one face at the lattice
        nodes (:func:`backward_flow`), 0 in the frames past a clip's end and (``masked``) at
        the nodes outside the mask's support (otherwise the caller must zero them).

        The backward maps of all clips are computed together (one product per step, however
        many clips), zero-padded to a common number of patterns and frames: the zeros add
        exact zeros, and every step treats each clip's rows alike, so a clip's map does not
        depend on the others (``tests/mesynth/test_warp.py``).
        """
        size = face.size
        n_points = face.influence_t.shape[0]
        n_patterns = max(len(np.asarray(r.patterns)) for r in requests)
        patterns = torch.zeros(len(requests), n_patterns, n_points, 2, dtype=self.dtype)
        weights = torch.zeros(len(requests), n_frames, n_patterns, dtype=self.dtype)
        for b, request in enumerate(requests):
            pattern = torch.as_tensor(request.patterns, dtype=self.dtype)
            weight = torch.as_tensor(request.weights, dtype=self.dtype)
            if pattern.ndim != 3 or pattern.shape[1:] != (n_points, 2):
                raise ValueError(f"patterns must be (K, {n_points}, 2), got {tuple(pattern.shape)}")
            if weight.ndim != 2 or weight.shape[1] != pattern.shape[0]:
                raise ValueError(
                    f"weights must be (T, K={pattern.shape[0]}), got {tuple(weight.shape)}"
                )
            patterns[b, : len(pattern)] = pattern
            weights[b, : len(weight), : len(pattern)] = weight
        flow = backward_flow(
            face.influence_t,
            patterns.to(self.device),
            weights.to(self.device),
            size,
            self.inverse_iterations,
            face.lattice,
        )
        # the field is 0 at a node outside the support, so is its refinement v(x + v(x)) = v(x)
        # (grid_sample's rounding would leave a trace of the neighbours there)
        return flow.mul_(face.node_support) if masked else flow

    def _write_grids(self, face: _Face, requests: Sequence[WarpRequest], out: torch.Tensor) -> None:
        """Write the normalised sampling grids of clips of one face into contiguous ``out``
        ``(B, T_max, H, W, 2)``; frames past a clip's end get the still face's grid."""
        size = face.size
        flow = self._lattice_flow(face, requests, out.shape[1])
        frames = out.view(-1, *size, 2)
        if face.lattice == size:
            frames.copy_(flow.view(frames.shape))
        else:
            upsample_flow(flow.view(-1, *face.lattice, 2), face.rows, face.cols, out=frames)
            frames.view(len(frames), -1, 2).index_fill_(1, face.leak, 0.0)
        finished = {
            b: self._finish_grid(request, face, out[b, : request.n_frames])
            for b, request in enumerate(requests)
            if _has_extras(request)
        }
        frames.add_(normalised_pixel_grid(size, self.dtype, self.device))
        for b, grid in finished.items():
            out[b, : len(grid)] = grid

    def _clip_maps(
        self, face: _Face, requests: Sequence[WarpRequest], n_frames: int
    ) -> list[np.ndarray | cpu_remap.LatticeMaps]:
        """Per clip of one face, its ``cv2.remap`` maps ``(n_frames, H, W, 2)``: source-pixel
        positions (:mod:`mesynth.render.cpu_remap`), the map of :meth:`_write_grids` in other
        units. The lattice of absolute positions is interpolated, so no pass over every pixel
        adds the pixel grid; a clip without skin field, blink or head motion gets
        :class:`~mesynth.render.cpu_remap.LatticeMaps`, made where they are used."""
        size = face.size
        nodes, pixels = _source_positions(size, face.lattice, self.upsample)
        # normalised offsets to source pixels, and 0 outside the support (see _lattice_flow)
        scale = torch.tensor([self.upsample * size[1] / 2, self.upsample * size[0] / 2])
        gain = (face.node_support * scale).contiguous().numpy()
        offsets = self._lattice_flow(face, requests, n_frames, masked=False).numpy()
        leak = face.leak.numpy()
        fixed = pixels.view(-1, 2).numpy()[leak]
        out: list[np.ndarray | cpu_remap.LatticeMaps] = []
        for clip, request in zip(offsets, requests):
            maps = cpu_remap.LatticeMaps(clip, nodes.numpy(), gain, size, leak, fixed)
            if _has_extras(request):
                full = torch.from_numpy(maps.write(slice(None), np.empty(maps.shape, np.float32)))
                moved = full[: request.n_frames]
                points = self._finish_points(request, face, (moved + 0.5) / self.upsample)
                moved.copy_(points * self.upsample - 0.5)
                maps = full.numpy()
            out.append(maps)
        return out

    def _finish_grid(self, request: WarpRequest, face: _Face, flow: torch.Tensor) -> torch.Tensor:
        """``(T, H, W, 2)`` grid from a clip's AU offsets ``flow`` plus its skin field, blink
        and head motion."""
        size = face.size
        points = from_normalised(flow + normalised_pixel_grid(size, self.dtype, self.device), size)
        return to_normalised(self._finish_points(request, face, points), size)

    def _finish_points(
        self, request: WarpRequest, face: _Face, points: torch.Tensor
    ) -> torch.Tensor:
        """``(T, H, W, 2)`` pixel sampling positions after the AU motion ``points`` plus a
        clip's skin field, blink and head motion."""
        size = face.size
        if request.field is not None:
            points = points + self._field_offsets(request, face)
        if request.blink is not None:
            closure = torch.as_tensor(request.blink, dtype=self.dtype).to(self.device)
            if closure.shape != (request.n_frames,):
                raise ValueError(f"blink must be ({request.n_frames},), got {tuple(closure.shape)}")
            points = points + blink_offsets(
                points, closure, face.upper, face.lower, face.lid_height
            )
        if request.affines is not None:
            affines = torch.as_tensor(request.affines, dtype=self.dtype).to(self.device)
            points = apply_backward_affine(points, affines, (size[1] / 2, size[0] / 2))
        return points

    def _field_offsets(self, request: WarpRequest, face: _Face) -> torch.Tensor:
        """``(T, H, W, 2)`` pixel offsets of a request's extra field, inside the face mask."""
        size = face.size
        field = torch.as_tensor(request.field, dtype=self.dtype).to(self.device)
        if field.shape != (*size, 2):
            raise ValueError(f"field must be ({size[0]}, {size[1]}, 2), got {tuple(field.shape)}")
        if request.field_weights is None or len(request.field_weights) != request.n_frames:
            raise ValueError(f"field_weights must be ({request.n_frames},) with a field")
        weights = torch.as_tensor(request.field_weights, dtype=self.dtype).to(self.device)
        mask = self._pixel_mask(request.identity, face)
        return weights[:, None, None, None] * (field * mask)

    def _grid_buffer(self, shape: tuple[int, ...]) -> torch.Tensor:
        """A ``shape`` tensor for sampling grids, reusing one buffer between calls (a fresh
        allocation of this size is paged in anew by the kernel every time)."""
        numel = math.prod(shape)
        if self._grids.numel() < numel:
            self._grids = torch.empty(numel, dtype=self.dtype, device=self.device)
        return self._grids[:numel].view(shape)

    def render(self, requests: Sequence[WarpRequest]) -> list[torch.Tensor]:
        """Render clips: one float ``(T, H, W, C)`` tensor (0-255 scale) per request, on the
        warper's device.

        Clips may differ in identity and length (not in size); the clips of one identity are
        sampled together (one ``grid_sample``, or ``cv2.remap`` blocks), shorter clips padded
        for it and trimmed afterwards.
        """
        out: list[torch.Tensor | None] = [None] * len(requests)
        for indices, frames in self.render_groups(requests, rounded=None):
            for b, i in enumerate(indices):
                out[i] = frames[b, : requests[i].n_frames]
        return [f for f in out if f is not None]

    def render_groups(
        self, requests: Sequence[WarpRequest], rounded: Sequence[bool] | None = None
    ) -> list[tuple[list[int], torch.Tensor]]:
        """:meth:`render` by identity: ``(indices, frames)`` per identity, ``frames`` the
        float ``(B, T_max, H, W, C)`` clips of the requests at ``indices`` (frames past a
        clip's length show the still face), so that per-frame work after rendering can run
        once over all of them.

        Args:
            requests: the clips.
            rounded: per request, whether its frames are only going to be rounded; a group
                whose requests all are comes back as a uint8 CPU tensor with
                :func:`to_uint8`'s values (the ``cv2`` sampler rounds a few frames at a time
                as it renders them, without full-size float frames).
        """
        if rounded is not None and len(rounded) != len(requests):
            raise ValueError(f"rounded must have one flag per request ({len(requests)})")
        by_identity: dict[Hashable, list[int]] = {}
        for index, request in enumerate(requests):
            by_identity.setdefault(request.identity, []).append(index)
        groups = []
        for key, indices in by_identity.items():
            face = self._operator(key)
            lengths = [requests[i].n_frames for i in indices]
            as_uint8 = rounded is not None and all(rounded[i] for i in indices)
            if self.sampler == "cv2":
                frames = np.empty(
                    (len(indices), max(lengths), *face.size, face.source.shape[0]),
                    dtype=np.uint8 if as_uint8 else np.float32,
                )
                with cpu_remap.cpu_threads():
                    maps = self._clip_maps(face, [requests[i] for i in indices], max(lengths))
                    cpu_remap.remap_clips(face.remap_source, maps, frames)
                groups.append((indices, torch.from_numpy(frames)))
                continue
            grids = self._grid_buffer((len(indices), max(lengths), *face.size, 2))
            if self.device.type == "cpu":
                self._write_grids(face, [requests[i] for i in indices], grids)
            else:  # batched products may pick shape-dependent kernels there: one clip at a time
                base = normalised_pixel_grid(face.size, self.dtype, self.device)
                for b, (i, length) in enumerate(zip(indices, lengths)):
                    self._write_grids(face, [requests[i]], grids[b : b + 1, :length])
                    grids[b, length:] = base
            frames = sample_clips(face.source, grids)
            if as_uint8:  # the floats are not read again: rounding may reuse their memory
                frames = torch.from_numpy(to_uint8(frames, overwrite=True))
            groups.append((indices, frames))
        return groups


def _has_extras(request: WarpRequest) -> bool:
    """Whether a request's map needs more than its AU motion (skin field, head, blink)."""
    return not (request.field is None and request.affines is None and request.blink is None)


_SOURCE_POSITIONS: dict[tuple[tuple[int, int], tuple[int, int], int], tuple] = {}


def _source_positions(
    size: tuple[int, int], lattice: tuple[int, int], factor: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Source-pixel positions (:mod:`mesynth.render.cpu_remap`) of the lattice nodes
    ``(h, w, 2)`` and of the pixel centres ``(H, W, 2)``, float32 (cached)."""
    key = (tuple(size), tuple(lattice), factor)
    if key not in _SOURCE_POSITIONS:
        nodes = lattice_points(size, lattice).reshape(*lattice, 2) * factor - 0.5
        pixels = pixel_centres(size).reshape(*size, 2) * factor - 0.5
        _SOURCE_POSITIONS[key] = tuple(
            torch.from_numpy(a.astype(np.float32)) for a in (nodes, pixels)
        )
    return _SOURCE_POSITIONS[key]


def to_uint8(frames: torch.Tensor | np.ndarray, *, overwrite: bool = False) -> np.ndarray:
    """Round (half up) and clip 0-255 float frames to a uint8 array.

    ``(..., H, W, C)`` frames whose channel planes are contiguous (the renderer's output, see
    :func:`sample_clips`) are quantised plane by plane and interleaved as bytes: the same values
    as quantising them in ``(H, W, C)`` order, without reading the floats across planes.

    Args:
        frames: ``(..., H, W, C)`` float frames, 0-255 scale.
        overwrite: round and clip a float CPU tensor in its own memory (left shifted by 0.5
            and clipped) instead of in a full-size temporary; for frames nobody reads again.
    """
    frames = torch.as_tensor(frames)
    if frames.device.type == "cpu" and frames.dtype == torch.float32 and frames.is_contiguous():
        return cpu_remap.quantise(frames.numpy())  # one pass, the same values
    in_place = overwrite and frames.device.type == "cpu" and frames.is_floating_point()
    if frames.ndim < 3 or frames.device.type != "cpu" or frames.stride(-1) == 1:
        shifted = frames.add_(0.5) if in_place else frames + 0.5
        return shifted.clamp_(0, 255).to(torch.uint8).cpu().numpy()
    planar = frames.movedim(-1, -3)  # (..., C, H, W): the layout in memory
    shifted = planar.add_(0.5) if in_place else planar + 0.5
    quantised = shifted.clamp_(0, 255).to(torch.uint8).numpy()  # strides kept
    out = np.empty(frames.shape, dtype=np.uint8)
    _interleave(quantised, out)
    return out


def _interleave(planar: np.ndarray, out: np.ndarray) -> None:
    """Write ``(..., C, H, W)`` uint8 ``planar`` into ``out`` ``(..., H, W, C)`` with
    ``cv2.merge``, over the fewest blocks in which every channel's planes are one contiguous
    run of rows."""
    planes = [planar[..., c, :, :] for c in range(planar.shape[-3])]
    if all(p.flags.c_contiguous for p in planes) or planar.ndim == 3:
        width = planar.shape[-1]
        rows = [np.ascontiguousarray(p).reshape(-1, width) for p in planes]
        cv2.merge(rows, dst=out.reshape(len(rows[0]), width, len(planes)))  # a view of out
        return
    for block, target in zip(planar, out):
        _interleave(block, target)
