"""A clip store written by ``mesynth generate`` (layout: docs/datasets/mesynth.md).

Expected under ``root``::

    meta.json                     generation config, scheme, class names, format, mode
    manifest.csv                  one row per finished clip
    clips/<clip_id>/img<frame>.jpg|png     format "frames" (unpadded frame numbers)
    clips/<clip_id>.npy                    format "npy": uint8 (T, H, W, C)

Each row becomes ``Sample(dataset="mesynth", subject="mesynth/<identity>", clip=<clip_id>,
source="synthetic", identity=<identity>, emotion=<label>, aus=<aus>)``. Clips stored as arrays
have no frame files: the full-rate frame number of each array slice is kept in
``extra["frame_numbers"]`` (``"0;3;7"``); see
:func:`recognizer.data.frame_source.clip_frame_numbers`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from mesynth.generation.store import MANIFEST_COLUMNS
from recognizer.data.samples import Sample, qualify_subject
from recognizer.datasets.errors import AnnotationError, DatasetError, ReleaseNotFoundError
from recognizer.datasets.frames import discover_frames
from recognizer.datasets.report import LoadReport, LoadResult

PREFER = ("npy", "frames")


def load(root: str | Path, *, prefer: str = "npy") -> LoadResult:
    """Load a clip store.

    Args:
        root: the store folder (holding ``manifest.csv``).
        prefer: ``"npy"`` (arrays when written, else frames) or ``"frames"`` (the reverse).
    """
    if prefer not in PREFER:
        raise ValueError(f"prefer must be one of {PREFER}; got {prefer!r}")
    root = Path(root)
    manifest = root / "manifest.csv"
    if not root.is_dir():
        raise ReleaseNotFoundError(f"clip store not found: {root}")
    if not manifest.is_file():
        raise ReleaseNotFoundError(f"{root} is not a clip store: no manifest.csv")
    meta = _read_meta(root / "meta.json")
    table = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    missing = [c for c in MANIFEST_COLUMNS if c not in table.columns]
    if missing:
        raise AnnotationError(f"{manifest}: not a clip-store manifest; missing {missing}")
    report = LoadReport("mesynth", str(manifest), rows_read=len(table))
    if meta:
        report.note(f"scheme {meta.get('scheme', '?')}, format {meta.get('format', '?')}")
    samples = []
    for i, cells in enumerate(table.to_dict("records")):
        sample = _row_sample(root, i + 2, cells, prefer, report)
        if sample is not None:
            samples.append(sample)
    report.kept = len(samples)
    return LoadResult(samples, report)


def _read_meta(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise AnnotationError(f"{path}: not valid JSON ({err})") from err


def _row_sample(
    root: Path, row: int, cells: dict[str, str], prefer: str, report: LoadReport
) -> Sample | None:
    clip, identity = cells["clip_id"], cells["identity"]
    name = f"{identity}/{clip}"
    try:
        onset, apex, offset = (int(cells[k]) for k in ("onset", "apex", "offset"))
        numbers = tuple(int(n) for n in cells["frame_numbers"].split(";") if n.strip())
        fps = float(cells["fps"])
    except ValueError as err:
        report.skip(row, name, f"bad number in manifest ({err})")
        return None
    if not onset <= apex <= offset:
        report.skip(row, name, f"onset {onset}, apex {apex}, offset {offset} out of order")
        return None
    kinds = ["npy", "frames"] if prefer == "npy" else ["frames", "npy"]
    kinds = [k for k in kinds if cells["npy_path" if k == "npy" else "frames_dir"]]
    if not kinds:
        report.skip(row, name, "neither frames_dir nor npy_path is set")
        return None
    extra = {
        "row": str(row),
        "template_source": cells["template_source"],
        "seed": cells["seed"],
        "mode": cells["mode"],
        "frame_numbers": cells["frame_numbers"],
    }
    common = dict(
        dataset="mesynth",
        subject=qualify_subject("mesynth", identity),
        clip=clip,
        onset=onset,
        apex=apex,
        offset=offset,
        fps=fps,
        emotion=cells["label"],
        aus=cells["aus"],
        source="synthetic",
        identity=identity,
        extra=extra,
    )
    if kinds[0] == "npy":
        path = root / cells["npy_path"]
        try:
            shape = np.load(path, mmap_mode="r").shape
        except (OSError, ValueError) as err:
            report.skip(row, name, f"cannot read {path} ({err})")
            return None
        if len(shape) != 4 or shape[0] != len(numbers):
            report.skip(row, name, f"{path} has shape {shape}; expected ({len(numbers)}, H, W, C)")
            return None
        return Sample(frames=(), frame_numbers=(), array_path=path, **common)
    folder = root / cells["frames_dir"]
    if not folder.is_dir():
        report.skip(row, name, f"frame folder not found: {folder}")
        return None
    try:
        frames, found = discover_frames(folder)
    except DatasetError as err:
        report.skip(row, name, str(err))
        return None
    absent = sorted(set(numbers) - set(found))
    if absent:
        report.skip(row, name, f"{folder} lacks frames {absent[:5]} named in the manifest")
        return None
    return Sample(frames=frames, frame_numbers=found, **common)
