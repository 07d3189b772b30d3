"""CPU sampling of rendered frames with OpenCV's ``remap`` (the ``sampler="cv2"`` renderer).

On CPU, :class:`mesynth.render.warp.FaceWarper` resamples frames with :func:`cv2.remap` on the
interleaved ``(H', W', C)`` float source instead of :func:`torch.nn.functional.grid_sample` on
planar channels, and never stores a full-size map: each block of a few frames gets its map from
the lattice of *absolute* sampling positions, in source pixels, interpolated bilinearly to every
pixel (:class:`LatticeMaps`, :func:`upsample_positions`), is remapped, and rounded to uint8 from
a float buffer that stays in cache (:func:`remap_clips`). Bilinear interpolation reproduces
affine functions, so interpolating absolute positions equals interpolating offsets and adding
the pixel grid afterwards, without that pass over every pixel.

Convention:
    A continuous image position ``p = (x, y)`` (pixel centre of ``(row i, column j)`` at
    ``(j + 0.5, i + 0.5)``, :mod:`mesynth.face.canonical`) of an ``(H, W)`` frame is read from
    source pixel ``f p - 0.5`` of the ``f``-times upsampled source (pixel centres at integers,
    OpenCV's convention): the point ``grid_sample`` reads with ``align_corners=False``.
    ``padding_mode="border"`` (clamp the position to the source) is ``BORDER_REPLICATE``: with
    replicated edge pixels, every bilinear tap outside the source reads the edge pixel that the
    clamped position reads. Lattice-to-pixel interpolation keeps the lattice's
    ``align_corners=True`` convention (:func:`mesynth.render.warp.lattice_points`). Maps are
    ``(x, y)`` interleaved, ``(..., H, W, 2)`` float32 (OpenCV's ``CV_32FC2``).

Differences from the ``grid_sample`` path, and why they do not matter:
    The maps equal the ``grid_sample`` grids up to float32 rounding (1e-4 source pixel). OpenCV
    5 interpolates with exact float weights; OpenCV 4 rounds every position to 1/32 of a source
    pixel (``INTER_TAB_SIZE``), 1/128 of a frame pixel at the default 4x upsampling, far below
    the map's own error (< 0.01 px from the lattice), which moves a value by at most 1/64 of the
    source's step between neighbouring pixels: under one grey level for the pre-filtered faces.
    Either way the rounded frames agree within one grey level, on under 1% of the pixels
    (``tests/mesynth/test_cpu_remap.py``), and every step is a fixed function of a pixel's own
    position, the same in every frame and every batch. The lattice is interpolated by a small
    numba kernel rather than by ``remap`` of the lattice (slower, measured, and rounded to 1/32
    of a 3.6 px cell on OpenCV 4) or ``cv2.resize`` (a half-pixel convention, which cannot put
    the corner nodes on the corner pixels).

Threads: everything runs on torch's intra-op thread count (the count the rest of the renderer
uses, see :func:`recognizer.runtime.use_threads_for_process`): blocks of frames on that many
Python threads (``remap``, the interpolation and the rounding release the GIL) with OpenCV's
pool at one thread meanwhile. OpenCV's and numba's pool sizes are set for the call and restored
afterwards (:func:`cpu_threads`): nothing process-wide is left changed.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from typing import Any

import cv2
import numba
import numpy as np
import torch

#: pixels per block of frames rendered at once: its maps and frames stay in cache
_BLOCK_PIXELS = 1 << 17


def default_sampler(device: str | torch.device, dtype: torch.dtype = torch.float32) -> str:
    """The sampler ``FaceWarper(device, dtype, sampler="auto")`` uses: ``"cv2"`` on CPU in
    float32, ``"torch"`` otherwise."""
    return "cv2" if torch.device(device).type == "cpu" and dtype == torch.float32 else "torch"


def resolve_sampler(sampler: str, device: torch.device, dtype: torch.dtype) -> str:
    """``"torch"`` or ``"cv2"`` from a :class:`~mesynth.render.warp.FaceWarper` ``sampler``
    setting (``"auto"``: :func:`default_sampler`), or a ``ValueError`` naming the setting."""
    if sampler == "auto":
        return default_sampler(device, dtype)
    if sampler == "cv2" and not (device.type == "cpu" and dtype == torch.float32):
        raise ValueError(f"sampler='cv2' needs a CPU float32 warper, got {device} {dtype}")
    if sampler not in ("torch", "cv2"):
        raise ValueError(f"sampler must be 'auto', 'torch' or 'cv2', got {sampler!r}")
    return sampler


def padded_source(source: np.ndarray) -> np.ndarray:
    """An ``(H', W', 3)`` source as ``(H', W', 4)`` float32, zeros in the fourth channel
    (``cv2.remap`` of 4 interleaved float channels takes 0.83x the time of 3, measured); other
    channel counts as they are."""
    if source.shape[2] != 3:
        return np.ascontiguousarray(source, dtype=np.float32)
    out = np.zeros((*source.shape[:2], 4), dtype=np.float32)
    out[..., :3] = source
    return out


@contextlib.contextmanager
def cpu_threads(threads: int | None = None) -> Iterator[None]:
    """OpenCV's and numba's thread counts set to ``threads`` (default: torch's intra-op count)
    inside the block, the previous counts restored after."""
    threads = torch.get_num_threads() if threads is None else int(threads)
    wanted = (threads, max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    previous = (cv2.getNumThreads(), numba.get_num_threads())
    # only changed where they differ: OpenCV rebuilds its pool on every change
    if previous != wanted:
        cv2.setNumThreads(wanted[0])
        numba.set_num_threads(wanted[1])
    try:
        yield
    finally:
        if previous != wanted:
            cv2.setNumThreads(previous[0])
            numba.set_num_threads(previous[1])


@cache
def axis_cells(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel of an axis of ``n_out`` pixels over ``n_in >= 2`` lattice nodes
    (``align_corners=True``): its cell's lower node ``(n_out,)`` int64 and its fractional
    position in the cell ``(n_out,)`` float32 in ``[0, 1]`` (read-only, cached)."""
    if n_in < 2 or n_out < 2:
        raise ValueError(f"need at least 2 pixels and 2 nodes, got {n_out} and {n_in}")
    position = np.arange(n_out) * ((n_in - 1) / (n_out - 1))
    lower = np.minimum(np.floor(position).astype(np.int64), n_in - 2)
    frac = (position - lower).astype(np.float32)
    lower.flags.writeable = frac.flags.writeable = False
    return lower, frac


@numba.njit(nogil=True, cache=True, boundscheck=False)
def _upsample(
    offsets, origin, gain, row_cell, row_frac, col_cell, col_frac, out
):  # pragma: no cover - jit
    frames, height, width = out.shape[0], out.shape[1], out.shape[2]
    nodes = offsets.shape[1]
    one = np.float32(1.0)
    along_x = np.empty((nodes, 2 * width), np.float32)
    for f in range(frames):
        for i in range(nodes):
            for x in range(width):
                j, a = col_cell[x], col_frac[x]
                for c in range(2):
                    left = origin[i, j, c] + gain[i, j, c] * offsets[f, i, j, c]
                    right = origin[i, j + 1, c] + gain[i, j + 1, c] * offsets[f, i, j + 1, c]
                    along_x[i, 2 * x + c] = left * (one - a) + right * a
        rows = out[f].reshape(height, 2 * width)
        for y in range(height):
            i, b = row_cell[y], row_frac[y]
            above, below, dst = along_x[i], along_x[i + 1], rows[y]  # row views: vectorised
            for k in range(2 * width):
                dst[k] = above[k] * (one - b) + below[k] * b


def upsample_positions(
    offsets: np.ndarray, origin: np.ndarray, gain: np.ndarray, out: np.ndarray
) -> np.ndarray:
    """Positions ``origin + gain * offsets`` at the lattice nodes, interpolated bilinearly to
    every pixel centre (``align_corners=True``, the :func:`mesynth.render.warp.lattice_points`
    convention) along x then along y with exact float32 weights, in one pass over the pixels
    (one thread; it releases the GIL).

    Args:
        offsets: ``(F, h, w, 2)`` float32 offsets at the nodes (``h, w >= 2``; any strides,
            e.g. the channel planes :func:`mesynth.render.warp.backward_flow` leaves).
        origin: ``(h, w, 2)`` float32 node positions.
        gain: ``(h, w, 2)`` float32 factor of each node's offsets (units, and 0
            at nodes that must not move).
        out: ``(F, H, W, 2)`` float32 C-contiguous array to write into.

    Returns:
        ``out``: up to float32 rounding, :func:`mesynth.render.warp.upsample_flow` of the node
        positions (the same two weights per axis, summed in another order), hence the
        interpolated offsets plus the interpolated origin.
    """
    frames, rows, cols, _ = offsets.shape
    arrays = (offsets, origin, gain, out)
    if (
        not all(a.dtype == np.float32 for a in arrays)
        or not out.flags.c_contiguous
        or origin.shape != (rows, cols, 2)
        or gain.shape != (rows, cols, 2)
        or out.shape[0] != frames
        or out.shape[-1] != 2
    ):
        raise ValueError(
            "need float32 offsets (F, h, w, 2), origin and gain (h, w, 2) and C-contiguous out "
            f"(F, H, W, 2), got {[a.shape for a in arrays]}"
        )
    size = out.shape[1:3]
    _upsample(offsets, origin, gain, *axis_cells(size[0], rows), *axis_cells(size[1], cols), out)
    return out


@dataclass(frozen=True)
class LatticeMaps:
    """The ``remap`` maps of a clip's frames, given at the lattice nodes and made a few frames
    at a time (:meth:`write`) where they are used, so full-size maps are never stored.

    Attributes:
        offsets: ``(T, h, w, 2)`` float32 offsets at the nodes, any strides.
        origin: ``(h, w, 2)`` float32 source-pixel positions of the nodes.
        gain: ``(h, w, 2)`` float32 factor from offsets to source pixels (0 at nodes that must
            not move).
        size: ``(H, W)`` pixels; a lattice of ``(H, W)`` nodes is the pixel grid itself.
        fixed: ``(P,)`` int64 flat pixel indices whose positions are ``fixed_positions``
            ``(P, 2)`` float32 in every frame (pixels that must not move but that the
            interpolation from a moving node reaches).
    """

    offsets: np.ndarray
    origin: np.ndarray
    gain: np.ndarray
    size: tuple[int, int]
    fixed: np.ndarray
    fixed_positions: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        """``(T, H, W, 2)``, the shape of the maps."""
        return (len(self.offsets), *self.size, 2)

    def write(self, frames: slice, out: np.ndarray) -> np.ndarray:
        """The maps of ``frames``, written into (the start of) C-contiguous float32 ``out``
        ``(>= n, H, W, 2)``; returns the ``(n, H, W, 2)`` view of ``out`` they fill."""
        offsets = self.offsets[frames]
        out = out[: len(offsets)]
        if self.offsets.shape[1:3] == tuple(self.size):
            np.add(self.origin, self.gain * offsets, out=out)
        else:
            upsample_positions(offsets, self.origin, self.gain, out)
        if len(self.fixed):
            out.reshape(len(out), -1, 2)[:, self.fixed] = self.fixed_positions
        return out


def remap_clips(
    source: np.ndarray, maps: Sequence[np.ndarray | LatticeMaps], out: np.ndarray
) -> np.ndarray:
    """Render frames of clips of one face: bilinear ``cv2.remap`` with replicated borders.

    Args:
        source: ``(H', W', C')`` float32 C-contiguous source face, ``C' <= 4``
            (:func:`mesynth.render.warp.prefiltered_source`; channels past the ``C`` of
            ``out`` are padding: ``remap`` of 4 channels is faster than of 3).
        maps: per clip, ``(T, H, W, 2)`` float32 C-contiguous ``(x, y)`` source-pixel positions
            of every output pixel (see the module's convention), or :class:`LatticeMaps` that
            make them.
        out: ``(B, T, H, W, C)`` C-contiguous array to write into: float32 (0-255 scale), or
            uint8 for frames rounded as :func:`quantise` does (``C <= C'``).

    Returns:
        ``out``. Every output pixel depends only on its own position and the source.

    A few frames at a time (a block that stays in cache: its maps, made there if given at the
    nodes, and its float frames when they are rounded), on ``torch.get_num_threads()`` worker
    threads (``remap``, the interpolation and the rounding release the GIL) with OpenCV's pool
    at one thread meanwhile: on a busy machine a parallel call per block would wait for its
    slowest thread every time.
    """
    batch, frames, height, width, channels = out.shape
    if (
        len(maps) != batch
        or any(m.shape != (frames, height, width, 2) for m in maps)
        or channels > source.shape[-1]
        or out.dtype not in (np.float32, np.uint8)
    ):
        raise ValueError(
            f"need {batch} maps (T, H, W, 2) and float32 or uint8 out (B, T, H, W, "
            f"<= {source.shape[-1]}), got {[m.shape for m in maps]} and {out.dtype} {out.shape}"
        )
    rounded = out.dtype == np.uint8
    sampled = source.shape[-1]
    step = max(1, _BLOCK_PIXELS // (height * width))
    blocks = [(b, slice(t, t + step)) for b in range(batch) for t in range(0, frames, step)]
    scratch = threading.local()

    def buffer(name: str, channels: int) -> np.ndarray:
        if getattr(scratch, name, None) is None:
            setattr(scratch, name, np.empty((step, height, width, channels), dtype=np.float32))
        return getattr(scratch, name)

    def render(block: tuple[int, slice]) -> None:
        clip, frames = block
        target = out[clip, frames]
        if isinstance(maps[clip], LatticeMaps):
            block_maps = maps[clip].write(frames, buffer("maps", 2))
        else:
            block_maps = maps[clip][frames]
        direct = not rounded and sampled == channels
        dst = target if direct else buffer("frames", sampled)[: len(target)]
        cv2.remap(
            source,
            block_maps.reshape(-1, width, 2),
            None,
            cv2.INTER_LINEAR,
            dst=dst.reshape(-1, width, sampled),
            borderMode=cv2.BORDER_REPLICATE,
        )
        if rounded:
            _quantise(dst.reshape(-1, sampled), target.reshape(-1, channels))
        elif not direct:
            target[...] = dst[..., :channels]

    _in_threads(render, blocks)
    return out


def _in_threads(work: Callable[[Any], None], blocks: Sequence[Any]) -> None:
    """``work(block)`` for every block on ``torch.get_num_threads()`` threads, OpenCV's pool
    at one thread meanwhile (restored after)."""
    workers = min(torch.get_num_threads(), len(blocks))
    if workers <= 1:
        for block in blocks:
            work(block)
        return
    with cpu_threads(1), ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(work, blocks))


@numba.njit(nogil=True, cache=True, boundscheck=False)
def _quantise(frames, out):  # pragma: no cover - jit
    # (N, C') float32 -> (N, C <= C') uint8: the first C channels
    half, low, top = np.float32(0.5), np.float32(0.0), np.float32(255.0)
    for i in range(out.shape[0]):
        for c in range(out.shape[1]):
            out[i, c] = np.uint8(min(max(frames[i, c] + half, low), top))


def quantise(frames: np.ndarray) -> np.ndarray:
    """Round half up and clip float32 frames to uint8 in one pass: the values of
    ``torch.clamp(frames + 0.5, 0, 255).to(torch.uint8)`` (float32 addition, truncation),
    on ``torch.get_num_threads()`` threads.

    Args:
        frames: C-contiguous float32 array, any shape, 0-255 scale.

    Returns:
        uint8 array of the same shape.
    """
    if frames.dtype != np.float32 or not frames.flags.c_contiguous:
        raise ValueError(f"need C-contiguous float32 frames, got {frames.dtype}")
    out = np.empty(frames.shape, dtype=np.uint8)
    flat, flat_out = frames.reshape(-1), out.reshape(-1)
    step = max(_BLOCK_PIXELS, -(-flat.size // torch.get_num_threads()))
    blocks = [slice(start, start + step) for start in range(0, flat.size, step)]
    _in_threads(lambda block: _quantise(flat[block, None], flat_out[block, None]), blocks)
    return out
