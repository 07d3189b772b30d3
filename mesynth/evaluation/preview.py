"""Looking at a clip store: animated GIFs, a labelled contact sheet, and renderer checks.

Micro-expressions are tiny (1-3 px), so the contact sheet ends every row with the magnified
absolute difference between the apex-most stored frame and the onset, and the GIFs can
exaggerate motion (``magnify``) and play slowed down. The key-frame sheet is the compact form:
onset, apex and their magnified difference, one row per clip (e.g. one clip per class).

Two figures check for renderer artefacts that move with the expression (and so could give the
label away to a recognizer): ``sharpness.png``, the Laplacian variance of every stored frame
relative to the onset (it should stay flat while the face moves), and
``motion_outside_face.png``, the largest ``|frame - onset|`` of every pixel over the clip with
the dilated face hull outlined (without head motion nothing outside it should change).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np

from mesynth.generation.store import META, StoreError, iter_manifest, load_clip
from mesynth.render.face_mask import DEFAULT_FALLOFF_IOD, DEFAULT_MARGIN_IOD, face_support


def choose_clips(root: str | Path, clip_ids: Sequence[str] | None = None) -> list[dict[str, str]]:
    """Manifest rows of ``clip_ids`` (in that order), or the first clip of every class.

    Raises:
        StoreError: an id that the manifest does not list.
    """
    rows = list(iter_manifest(root))
    by_id = {row["clip_id"]: row for row in rows}
    if clip_ids:
        missing = [str(c) for c in clip_ids if str(c) not in by_id]
        if missing:
            raise StoreError(f"{root}/manifest.csv has no clip {', '.join(missing)}")
        return [by_id[str(c)] for c in clip_ids]
    first: dict[str, dict[str, str]] = {}
    for row in rows:
        first.setdefault(row["label"], row)
    return list(first.values())


def magnified(frames: np.ndarray, factor: float) -> np.ndarray:
    """``onset + factor * (frame - onset)``, clipped to uint8; ``(T, H, W, C)``."""
    if factor == 1.0:
        return frames
    onset = frames[:1].astype(np.float32)
    out = onset + factor * (frames.astype(np.float32) - onset)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def write_gif(frames: np.ndarray, path: str | Path, fps: float = 8.0) -> Path:
    """Write ``(T, H, W, C)`` uint8 frames as a looping GIF."""
    import imageio.v3 as iio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, list(frames), duration=int(round(1000 / fps)), loop=0)
    return path


def apex_position(row: Mapping[str, str]) -> int:
    """Index (into the stored frames) of the stored frame nearest the clip's apex frame."""
    numbers = [int(n) for n in row["frame_numbers"].split(";")]
    return numbers.index(min(numbers, key=lambda n: abs(n - int(row["apex"]))))


def onset_difference(frames: np.ndarray, position: int, gain: float) -> np.ndarray:
    """``(H, W)`` float: ``|frames[position] - frames[0]|`` averaged over channels, times
    ``gain``, clipped to ``[0, 255]`` (grey levels); ``frames`` is ``(T, H, W, C)`` uint8."""
    diff = np.abs(frames[position].astype(np.float32) - frames[0].astype(np.float32)).mean(-1)
    return np.clip(diff * gain, 0, 255)


def _row_title(row: dict[str, str]) -> str:
    aus = row["aus"] or "-"
    return f"{row['label']}\nAU {aus}\n{row['identity']}\nclip {row['clip_id']}"


def contact_sheet(
    root: str | Path,
    rows: Sequence[dict[str, str]],
    path: str | Path,
    max_frames: int = 8,
    difference_gain: float = 8.0,
) -> Path:
    """One row per clip: up to ``max_frames`` stored frames (titled with their frame numbers)
    and ``|apex - onset| * difference_gain``; each row is labelled with emotion, AUs, identity."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        raise StoreError(f"{root}: no clips to show")
    columns = max_frames + 1
    fig, axes = plt.subplots(
        len(rows), columns, figsize=(1.3 * columns + 1.2, 1.45 * len(rows)), squeeze=False
    )
    for r, row in enumerate(rows):
        frames = load_clip(root, row)
        numbers = [int(n) for n in row["frame_numbers"].split(";")]
        picks = np.unique(np.linspace(0, len(frames) - 1, min(max_frames, len(frames))).round())
        for c, ax in enumerate(axes[r]):
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(picks):
                i = int(picks[c])
                ax.imshow(frames[i])
                ax.set_title(f"f{numbers[i]}", fontsize=7)
            elif c == columns - 1:
                diff = onset_difference(frames, apex_position(row), difference_gain)
                ax.imshow(diff, cmap="magma", vmin=0, vmax=255)
                ax.set_title(f"|apex-onset| x{difference_gain:g}", fontsize=7)
            else:
                ax.axis("off")
        axes[r][0].set_ylabel(_row_title(row), fontsize=7, rotation=0, ha="right", va="center")
    fig.subplots_adjust(left=0.13, right=0.99, top=0.95, bottom=0.02, wspace=0.05, hspace=0.3)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def key_frame_sheet(
    root: str | Path,
    rows: Sequence[dict[str, str]],
    path: str | Path,
    difference_gain: float = 8.0,
) -> Path:
    """One row per clip: its onset (first stored) frame, the stored frame nearest its apex
    (:func:`apex_position`) and :func:`onset_difference` of the two, each row labelled with
    emotion, AUs and identity (``rows``: manifest rows, e.g. :func:`choose_clips`' one per class).

    Raises:
        StoreError: no rows, or a clip's files are missing.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        raise StoreError(f"{root}: no clips to show")
    fig, axes = plt.subplots(len(rows), 3, figsize=(5.6, 1.5 * len(rows) + 0.3), squeeze=False)
    for r, row in enumerate(rows):
        frames = load_clip(root, row)
        apex = apex_position(row)
        numbers = row["frame_numbers"].split(";")
        panels = (
            (frames[0], None, f"onset f{numbers[0]}"),
            (frames[apex], None, f"apex f{numbers[apex]}"),
            (onset_difference(frames, apex, difference_gain), "magma",
             f"|apex-onset| x{difference_gain:g}"),
        )  # fmt: skip
        for ax, (image, cmap, title) in zip(axes[r], panels):
            ax.imshow(image, cmap=cmap, vmin=0 if cmap else None, vmax=255 if cmap else None)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(title, fontsize=6)
        axes[r][0].set_ylabel(_row_title(row), fontsize=6, rotation=0, ha="right", va="center")
    fig.subplots_adjust(left=0.24, right=0.99, top=0.96, bottom=0.01, wspace=0.05, hspace=0.35)
    return _save(fig, path)


def laplacian_variance(frames: np.ndarray) -> np.ndarray:
    """Sharpness of each frame: variance of the Laplacian of its grey image, ``(T,)``.

    Args:
        frames: ``(T, H, W, 3)`` uint8 RGB.
    """
    return np.array(
        [
            cv2.Laplacian(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).astype(np.float64), cv2.CV_64F).var()
            for f in frames
        ]
    )


def motion_map(frames: np.ndarray) -> np.ndarray:
    """``(H, W)`` float32: per pixel, the largest channel-mean ``|frame - onset|`` over the clip
    (grey levels)."""
    diff = np.abs(frames.astype(np.float32) - frames[:1].astype(np.float32)).mean(-1)
    return diff.max(axis=0)


def store_face_supports(root: str | Path) -> dict[str, np.ndarray]:
    """Identity name -> ``(H, W)`` bool dilated face hull (where the renderer lets AU and skin
    motion act), from the landmarks and renderer settings in the store's ``meta.json``; empty
    for a store that does not record landmarks."""
    path = Path(root) / META
    meta = json.loads(path.read_text()) if path.is_file() else {}
    renderer = meta.get("config", {}).get("renderer", {})
    size = int(meta.get("config", {}).get("size", 0))
    return {
        name: face_support(
            np.asarray(points, dtype=np.float64),
            (size, size),
            float(renderer.get("mask_margin_iod", DEFAULT_MARGIN_IOD)),
            float(renderer.get("mask_falloff_iod", DEFAULT_FALLOFF_IOD)),
        )
        for name, points in meta.get("identity_landmarks", {}).items()
    }


def _save(fig, path: str | Path) -> Path:
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def sharpness_plot(root: str | Path, rows: Sequence[dict[str, str]], path: str | Path) -> Path:
    """Plot each clip's Laplacian variance per stored frame relative to its onset frame, with
    its apex marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for row in rows:
        sharpness = laplacian_variance(load_clip(root, row))
        numbers = [int(n) for n in row["frame_numbers"].split(";")]
        line = ax.plot(numbers, sharpness / sharpness[0], marker=".", label=row["clip_id"])[0]
        ax.axvline(int(row["apex"]), color=line.get_color(), lw=0.6, ls=":")
    ax.set_xlabel("frame number (dotted: apex)")
    ax.set_ylabel("Laplacian variance / onset")
    ax.set_title("Sharpness per stored frame (flat = blur independent of the expression)")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return _save(fig, path)


def outside_motion_sheet(
    root: str | Path, rows: Sequence[dict[str, str]], path: str | Path
) -> Path:
    """One panel per clip: :func:`motion_map` with the dilated face hull outlined; the title
    gives the largest change outside the hull (grey levels)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    supports = store_face_supports(root)
    fig, axes = plt.subplots(1, len(rows), figsize=(2.2 * len(rows), 2.5), squeeze=False)
    for ax, row in zip(axes[0], rows):
        change = motion_map(load_clip(root, row))
        ax.imshow(change, cmap="magma", vmin=0, vmax=max(float(change.max()), 1.0))
        support = supports.get(row["identity"])
        title = f"{row['clip_id']} {row['label']}"
        if support is not None and support.shape == change.shape:
            ax.contour(support, levels=[0.5], colors="cyan", linewidths=0.7)
            outside = change[~support]
            title += f"\noutside max {outside.max() if outside.size else 0:.0f}"
        ax.set_title(title, fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("max |frame - onset| over the clip (cyan: dilated face hull)", fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def preview_store(
    root: str | Path,
    clip_ids: Sequence[str] | None = None,
    out_dir: str | Path | None = None,
    *,
    max_frames: int = 8,
    gif_fps: float = 8.0,
    magnify: float = 1.0,
) -> list[Path]:
    """GIF per chosen clip plus ``contact_sheet.png``, ``sharpness.png`` and
    ``motion_outside_face.png``; returns the written paths."""
    out = Path(out_dir) if out_dir else Path(root) / "preview"
    rows = choose_clips(root, clip_ids)
    paths = [
        write_gif(
            magnified(load_clip(root, row), magnify),
            out / f"{row['clip_id']}_{row['label']}.gif",
            gif_fps,
        )
        for row in rows
    ]
    paths.append(contact_sheet(root, rows, out / "contact_sheet.png", max_frames))
    paths.append(sharpness_plot(root, rows, out / "sharpness.png"))
    paths.append(outside_motion_sheet(root, rows, out / "motion_outside_face.png"))
    return paths
