"""Apex flows of synthetic clips: the onset -> apex flow image of each clip of a store, as
:class:`recognizer.data.representations.ApexFlow` sees real clips, computed with
:func:`mesynth.flow.apex_flow` once and cached with the store
(``<store>/apex_flow_<method>_<size>/<clip>.png``), not per fold or epoch.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from mesynth.keyframes import sample_key_frames
from recognizer.data.representations import SyntheticFrames


def safe_file_name(name: str) -> str:
    """``name`` with every run of characters outside ``[A-Za-z0-9_.-]`` replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def flow_folder(root: str | Path, frames: SyntheticFrames) -> Path:
    """Where a store's apex-flow images of ``frames`` are cached."""
    from mesynth.flow import tvl1_available

    method = frames.flow_method
    if method == "auto":
        method = "tvl1" if tvl1_available() else "farneback"
    return Path(root) / f"apex_flow_{method}_{frames.flow_size}"


def _flow_pair(sample: object) -> tuple[int, int]:
    """The stored onset and apex frame numbers of a synthetic clip (its two key frames)."""
    from recognizer.data.frame_source import RawFrames

    return tuple(
        sample_key_frames(
            "onset_apex",
            RawFrames().frame_numbers(sample),
            sample.onset,
            sample.apex_or_middle,
            sample.offset,
            2,
        ).frame_numbers
    )


def _write_flow(sample: object, pair: tuple[int, int], frames: SyntheticFrames, path: Path) -> None:
    """Compute ``sample``'s onset → apex flow image and write it to ``path`` atomically."""
    from mesynth.flow import apex_flow, save_apex_flow
    from recognizer.data.frame_source import RawFrames

    onset, apex = RawFrames().read(sample, list(pair))
    image = apex_flow(onset, apex, int(frames.flow_size or 0), frames.flow_method)
    tmp = path.parent / f".tmp-{os.getpid()}-{threading.get_ident()}-{path.name}"
    save_apex_flow(tmp, image)  # ranks and threads may cache the same clip
    tmp.replace(path)


def _as_flow(sample: object, pair: tuple[int, int], path: Path) -> object:
    """``sample`` as its cached apex-flow image at ``path``, as
    :class:`recognizer.data.representations.ApexFlow` sees real clips; the two frame numbers
    are kept in ``extra["flow_frames"]``."""
    extra = {**sample.extra, "frame_numbers": "0", "flow_frames": ";".join(map(str, pair))}
    return replace(
        sample, frames=(), frame_numbers=(), array_path=path, onset=0, apex=0, offset=0,
        extra=extra,
    )  # fmt: skip


def compute_flows(
    samples: Sequence[object], frames: SyntheticFrames, folder: Path, workers: int | None = None
) -> list[object]:
    """Each synthetic clip as its apex-flow image cached under ``folder``; the missing images
    are computed by ``workers`` threads at once (OpenCV's optical flow releases the GIL, and
    each thread's OpenCV runs single-threaded; ``None``: the usable cores,
    :func:`recognizer.runtime.usable_cores`). Already cached images are reused as they are.

    Returns:
        the samples in order, each pointing at its ``.png`` flow image.
    """
    from concurrent.futures import ThreadPoolExecutor

    import cv2

    from recognizer.runtime import usable_cores

    jobs = []
    for sample in samples:
        pair = _flow_pair(sample)
        jobs.append((sample, pair, folder / f"{safe_file_name(sample.clip)}.png"))
    missing = [job for job in jobs if not job[2].is_file()]
    workers = max(1, min(usable_cores() if workers is None else int(workers), len(missing)))
    if workers == 1 or len(missing) < 2:
        for sample, pair, path in missing:
            _write_flow(sample, pair, frames, path)
    else:
        previous = cv2.getNumThreads()
        cv2.setNumThreads(1)  # one core per worker thread, not workers x OpenCV's pool
        try:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(lambda job: _write_flow(job[0], job[1], frames, job[2]), missing))
        finally:
            cv2.setNumThreads(previous)
    return [_as_flow(sample, pair, path) for sample, pair, path in jobs]
