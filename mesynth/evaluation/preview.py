"""Looking at a clip store: animated GIFs and a labelled contact sheet.

Micro-expressions are tiny (1-3 px), so the contact sheet ends every row with the magnified
absolute difference between the apex-most stored frame and the onset, and the GIFs can
exaggerate motion (``magnify``) and play slowed down.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mesynth.generation.store import StoreError, iter_manifest, load_clip


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
                apex = numbers.index(min(numbers, key=lambda n: abs(n - int(row["apex"]))))
                diff = np.abs(frames[apex].astype(np.float32) - frames[0]).mean(-1)
                ax.imshow(np.clip(diff * difference_gain, 0, 255), cmap="magma", vmin=0, vmax=255)
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


def preview_store(
    root: str | Path,
    clip_ids: Sequence[str] | None = None,
    out_dir: str | Path | None = None,
    *,
    max_frames: int = 8,
    gif_fps: float = 8.0,
    magnify: float = 1.0,
) -> list[Path]:
    """GIF per chosen clip plus ``contact_sheet.png``; returns the written paths."""
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
    return paths
