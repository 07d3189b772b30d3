"""Thin-plate-spline face warping, batched: one ``grid_sample`` renders many clips.

For a fixed identity the thin-plate spline (TPS) whose centres are the neutral landmarks is
*linear* in the values it interpolates. :func:`tps_influence` precomputes, once per identity,
the dense operator ``A`` of shape ``(H*W, N)``: the TPS interpolant of landmark values ``v``
(``(N, 2)``) at every pixel is ``A @ v``. A frame's displacement field is then one small matrix
product, and all frames of many clips are resampled by a single
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
    ``s <- x + v(s)`` (one ``grid_sample`` of the field each) make it second order and better,
    which matters for large motions such as blinks. ``grid_sample`` is called with normalised
    coordinates, ``align_corners=False`` (pixel centre ``x`` maps to ``2 x / W - 1``), bilinear
    interpolation and ``padding_mode="border"``.

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
  :func:`mesynth.render.face_mask.face_mask` (1 on the face, 0 a little outside its hull).
* *Blinks that squash the iris.* A blink is an occlusion drawn by
  :func:`mesynth.render.eyelids.blink_offsets` at the AU-warped positions, not a landmark motion.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from mesynth.render.eyelids import (
    DEFAULT_LID_HEIGHT_IOD,
    blink_offsets,
    lid_height_px,
    lid_polylines,
)
from mesynth.render.face_mask import DEFAULT_FALLOFF_IOD, DEFAULT_MARGIN_IOD, face_mask

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


def backward_flow(
    influence_t: torch.Tensor,
    patterns: torch.Tensor,
    weights: torch.Tensor,
    size: tuple[int, int],
    inverse_iterations: int = 1,
) -> torch.Tensor:
    """Backward sampling offsets of every frame of a clip.

    The clip's forward landmark displacement at frame ``t`` is ``sum_k weights[t, k] *
    patterns[k]`` (e.g. one pattern per AU, weighted by its intensity curve). Each pattern's
    dense field is computed once (``2K`` rows times the operator), then every frame is a
    ``(T, K) @ (K, 2*H*W)`` product.

    Args:
        influence_t: ``(N, H*W)``, the *transpose* of :func:`tps_influence` (this layout makes
            the product come out as ``(T, 2, H, W)`` without a copy).
        patterns: ``(K, N, 2)`` forward landmark displacement patterns, pixels.
        weights: ``(T, K)`` weight of each pattern in each frame.
        size: ``(H, W)``.
        inverse_iterations: fixed-point refinements of the backward map (0 = first order).

    Returns:
        ``(T, H, W, 2)`` offsets ``s(x) - x`` in *normalised* ``grid_sample`` units
        (``(x, y)`` order; one pixel is ``2 / W`` in x and ``2 / H`` in y).
    """
    height, width = size
    n_patterns, n_points, _ = patterns.shape
    scale = torch.tensor(
        [2.0 / width, 2.0 / height], dtype=influence_t.dtype, device=influence_t.device
    )
    values = (patterns * -scale).permute(0, 2, 1).reshape(n_patterns * 2, n_points)
    fields = (values @ influence_t).view(n_patterns, 2 * height * width)
    field = (weights @ fields).view(len(weights), 2, height, width)
    flow = field.permute(0, 2, 3, 1)
    if inverse_iterations > 0:
        base = normalised_pixel_grid(size, flow.dtype, flow.device)
        for _ in range(inverse_iterations):
            flow = F.grid_sample(
                field, base + flow, mode="bilinear", padding_mode="border", align_corners=False
            ).permute(0, 2, 3, 1)
    return flow


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

    All frame grids are stacked along the grid's height, so the single source image is read by
    every frame without copying it.

    Args:
        image: ``(C, H', W')`` float source face (any resolution; see
            :func:`prefiltered_source`).
        grids: ``(B, T, H, W, 2)`` normalised sampling positions.

    Returns:
        ``(B, T, H, W, C)`` float frames.
    """
    batch, frames, height, width, _ = grids.shape
    out = F.grid_sample(
        image[None],
        grids.reshape(1, batch * frames * height, width, 2),
        mode="bilinear",
        padding_mode="border",
        align_corners=False,
    )  # (1, C, B*T*H, W)
    return out.reshape(image.shape[0], batch, frames, height, width).permute(1, 2, 3, 4, 0)


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

    influence_t: torch.Tensor  # (N, H*W) TPS operator, transposed, times the face mask
    source: torch.Tensor  # (C, f*H, f*W) pre-filtered, upsampled face
    mask: torch.Tensor  # (H, W, 1) face mask
    upper: torch.Tensor  # (2, 4, 2) upper lid polylines, pixels
    lower: torch.Tensor  # (2, 4, 2) lower lid polylines, pixels
    lid_height: float  # pixels
    size: tuple[int, int]  # (H, W)


class FaceWarper:
    """Renders clips of registered faces: per-identity TPS operators, batched resampling.

    Args:
        device: torch device for the operators and ``grid_sample``.
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

    Results depend only on each clip's request, never on which other clips share the batch:
    every per-clip operation has the same shapes whatever the batch, and ``grid_sample`` treats
    every output pixel independently.
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
    ) -> None:
        if inverse_iterations < 0:
            raise ValueError(f"inverse_iterations must be >= 0, got {inverse_iterations}")
        if prefilter_sigma < 0 or upsample < 1 or mask_margin_iod < 0:
            raise ValueError(
                "need prefilter_sigma >= 0, upsample >= 1 and mask_margin_iod >= 0, got "
                f"{prefilter_sigma}, {upsample} and {mask_margin_iod}"
            )
        if not (mask_falloff_iod > 0 and lid_height_iod > 0):
            raise ValueError(
                "need mask_falloff_iod > 0 and lid_height_iod > 0, got "
                f"{mask_falloff_iod} and {lid_height_iod}"
            )
        self.device = torch.device(device)
        self.dtype = dtype
        self.inverse_iterations = inverse_iterations
        self.cache_size = cache_size
        self.prefilter_sigma = float(prefilter_sigma)
        self.upsample = int(upsample)
        self.mask_margin_iod = float(mask_margin_iod)
        self.mask_falloff_iod = float(mask_falloff_iod)
        self.lid_height_iod = float(lid_height_iod)
        self._faces: dict[Hashable, tuple[np.ndarray, np.ndarray]] = {}
        self._operators: OrderedDict[Hashable, _Face] = OrderedDict()

    def settings(self) -> dict[str, float | int]:
        """The settings that change rendered pixels (for a store's configuration hash)."""
        return {
            "inverse_iterations": self.inverse_iterations,
            "prefilter_sigma": self.prefilter_sigma,
            "upsample": self.upsample,
            "mask_margin_iod": self.mask_margin_iod,
            "mask_falloff_iod": self.mask_falloff_iod,
            "lid_height_iod": self.lid_height_iod,
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
        mask = self.face_mask(key)
        # the operator is zero where the mask is: evaluate the TPS on the mask's support only
        support = mask.reshape(-1) > 0
        influence_t = np.zeros((len(landmarks), support.size))
        points = pixel_centres(image.shape[:2])[support]
        influence_t[:, support] = (
            tps_influence(landmarks, image.shape[:2], points=points).T * mask.reshape(-1)[support]
        )
        upper, lower = lid_polylines(landmarks)

        def tensor(array: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(array)).to(self.device, self.dtype)

        entry = _Face(
            influence_t=tensor(influence_t),
            source=tensor(self.source(key)).permute(2, 0, 1),
            mask=tensor(mask[..., None]),
            upper=tensor(upper),
            lower=tensor(lower),
            lid_height=lid_height_px(landmarks, self.lid_height_iod),
            size=(image.shape[0], image.shape[1]),
        )
        self._operators[key] = entry
        while len(self._operators) > self.cache_size:
            self._operators.popitem(last=False)
        return entry

    def grids(self, request: WarpRequest, out: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised sampling grid ``(T, H, W, 2)`` of one clip (written into ``out`` if given)."""
        face = self._operator(request.identity)
        size = face.size
        patterns = torch.as_tensor(request.patterns, dtype=self.dtype).to(self.device)
        weights = torch.as_tensor(request.weights, dtype=self.dtype).to(self.device)
        n_points = face.influence_t.shape[0]
        if patterns.ndim != 3 or patterns.shape[1:] != (n_points, 2):
            raise ValueError(f"patterns must be (K, {n_points}, 2), got {tuple(patterns.shape)}")
        if weights.ndim != 2 or weights.shape[1] != patterns.shape[0]:
            raise ValueError(
                f"weights must be (T, K={patterns.shape[0]}), got {tuple(weights.shape)}"
            )
        flow = backward_flow(face.influence_t, patterns, weights, size, self.inverse_iterations)
        if request.field is not None:
            flow = flow + self._field_offsets(request, face)
        base = normalised_pixel_grid(size, self.dtype, self.device)
        if request.affines is None and request.blink is None:
            return torch.add(flow, base, out=out)
        points = from_normalised(flow + base, size)
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
        grid = to_normalised(points, size)
        return grid if out is None else out.copy_(grid)

    def _field_offsets(self, request: WarpRequest, face: _Face) -> torch.Tensor:
        """``(T, H, W, 2)`` normalised offsets of a request's extra field, inside the face mask."""
        size = face.size
        field = torch.as_tensor(request.field, dtype=self.dtype).to(self.device)
        if field.shape != (*size, 2):
            raise ValueError(f"field must be ({size[0]}, {size[1]}, 2), got {tuple(field.shape)}")
        if request.field_weights is None or len(request.field_weights) != request.n_frames:
            raise ValueError(f"field_weights must be ({request.n_frames},) with a field")
        weights = torch.as_tensor(request.field_weights, dtype=self.dtype).to(self.device)
        scale = torch.tensor([2.0 / size[1], 2.0 / size[0]], dtype=self.dtype, device=self.device)
        return weights[:, None, None, None] * (field * face.mask * scale)

    def render(self, requests: Sequence[WarpRequest]) -> list[torch.Tensor]:
        """Render clips: one float ``(T, H, W, C)`` tensor (0-255 scale) per request, on the
        warper's device.

        Clips may differ in identity and length (not in size); the clips of one identity share
        one ``grid_sample``, shorter clips padded for it and trimmed afterwards.
        """
        if not requests:
            return []
        out: list[torch.Tensor | None] = [None] * len(requests)
        by_identity: dict[Hashable, list[int]] = {}
        for index, request in enumerate(requests):
            by_identity.setdefault(request.identity, []).append(index)
        for key, indices in by_identity.items():
            face = self._operator(key)
            height, width = face.size
            lengths = [requests[i].n_frames for i in indices]
            grids = torch.empty(len(indices), max(lengths), height, width, 2, dtype=self.dtype)
            grids = grids.to(self.device)
            base = normalised_pixel_grid(face.size, self.dtype, self.device)
            for b, (i, length) in enumerate(zip(indices, lengths)):
                self.grids(requests[i], out=grids[b, :length])
                grids[b, length:] = base  # padding frames: any valid grid, trimmed later
            frames = sample_clips(face.source, grids)
            for b, (i, length) in enumerate(zip(indices, lengths)):
                out[i] = frames[b, :length]
        return [f for f in out if f is not None]


def to_uint8(frames: torch.Tensor | np.ndarray) -> np.ndarray:
    """Round (half up) and clip 0-255 float frames to a uint8 array.

    ``(..., H, W, C)`` frames whose channel planes are contiguous (the renderer's output, see
    :func:`sample_clips`) are quantised plane by plane and interleaved as bytes: the same values
    as quantising them in ``(H, W, C)`` order, without reading the floats across planes.
    """
    frames = torch.as_tensor(frames)
    if frames.ndim < 3 or frames.device.type != "cpu" or frames.stride(-1) == 1:
        return (frames + 0.5).clamp_(0, 255).to(torch.uint8).cpu().numpy()
    planes = frames.movedim(-1, 0)
    quantised = (planes + 0.5).clamp_(0, 255).to(torch.uint8).numpy()
    *lead, height, width = quantised.shape[1:]
    rows = int(np.prod(lead, dtype=np.int64)) * height
    merged = cv2.merge([plane.reshape(rows, width) for plane in quantised])
    return merged.reshape(*lead, height, width, len(quantised))
