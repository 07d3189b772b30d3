"""Preprocessing: align every clip once to the canonical face and cache it as uint8 arrays.

Per sample: landmarks on the onset frame (a landmark file when given, else a detector backend
of :mod:`mesynth.face.landmarks`, with an optional face box and the whole-image fallback for tight
crops); the similarity that puts the stable points (eye corners, nose bridge;
:data:`mesynth.face.canonical.STABLE_INDICES`) onto the canonical template; the same transform
applied
to every frame from onset to offset; a ``size × size`` crop. ``backend="none"`` skips alignment
and only resizes (for clips that are already aligned, such as a mesynth store).

Cache layout (``cache_dir``)::

    <settings key>/<dataset>/<uid hash>.npy    (T, S, S, 3) uint8 RGB, frames onset..offset present
    <settings key>/<dataset>/<uid hash>.json   uid, frame numbers, landmarks, matrix, settings

The key hashes the settings, so changed settings never reuse stale crops; the ``.npy`` is written
last and atomically (temp name, then rename), so an interrupted run loses at most the clips in
flight and a rerun reuses every finished one. Failures are collected per sample, not raised.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from mesynth.face.canonical import STABLE_INDICES, similarity_to_canonical, warp_with_matrix
from mesynth.face.landmarks import (
    LandmarkDetector,
    create_detector,
    detect_landmarks,
    load_landmark_file,
)
from recognizer.data.frame_source import RawFrames, clip_frame_numbers
from recognizer.data.safe_paths import path_inside, safe_path_component
from recognizer.data.samples import Sample

CACHE_VERSION = 1


@dataclass(frozen=True)
class PreprocessSettings:
    """How clips are aligned and cropped.

    Attributes:
        size: side of the square crop in pixels.
        backend: landmark backend (``"dlib"``, ``"face_alignment"``, ``"auto"``) or ``"none"``
            (no alignment: each frame is resized to ``size``).
        face_box: a face box ``(left, top, right, bottom)`` used for every onset frame.
        whole_image_fallback: when no face is found, treat the whole frame as the face box.
    """

    size: int = 128
    backend: str = "dlib"
    face_box: tuple[float, float, float, float] | None = None
    whole_image_fallback: bool = True

    def __post_init__(self) -> None:
        if self.size < 8:
            raise ValueError(f"size must be at least 8 pixels, got {self.size}")

    @property
    def key(self) -> str:
        """A short hash of the settings (the cache folder name)."""
        text = json.dumps({**asdict(self), "version": CACHE_VERSION}, sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class AlignedClip:
    """A preprocessed clip: ``frames`` ``(T, S, S, 3)`` uint8 and their frame numbers."""

    frames: np.ndarray
    frame_numbers: tuple[int, ...]
    landmarks: np.ndarray | None
    matrix: np.ndarray | None


def cache_paths(
    cache_dir: str | Path, sample: Sample, settings: PreprocessSettings
) -> tuple[Path, Path]:
    """``(array, metadata)`` paths of a sample in the cache.

    The dataset folder is :func:`~recognizer.data.safe_paths.safe_path_component` of
    ``sample.dataset``, so no annotation value moves a cache file outside ``cache_dir``.

    Raises:
        UnsafePathError: the dataset is empty, or the folder resolves outside ``cache_dir``.
    """
    digest = hashlib.sha1(sample.uid.encode()).hexdigest()[:20]
    dataset = safe_path_component(sample.dataset, f"dataset of {sample.uid}")
    folder = path_inside(cache_dir, Path(cache_dir) / settings.key / dataset)
    return folder / f"{digest}.npy", folder / f"{digest}.json"


def clip_span(sample: Sample) -> tuple[int, ...]:
    """Frame numbers present from onset to offset."""
    return tuple(n for n in clip_frame_numbers(sample) if sample.onset <= n <= sample.offset)


def align_clip(
    sample: Sample,
    settings: PreprocessSettings,
    *,
    detector: LandmarkDetector | None = None,
    landmark_file: str | Path | None = None,
) -> AlignedClip:
    """Align one clip (see the module docstring).

    Raises:
        FrameReadError: a frame cannot be read (the message names the file).
        LandmarkError: no usable face on the onset frame (the message names the file).
    """
    numbers = clip_span(sample)
    frames = RawFrames().read(sample, numbers)
    source = str(sample.frames[0]) if sample.frames else str(sample.array_path)
    return align_frames(
        frames,
        numbers,
        settings,
        detector=detector,
        landmarks=(
            load_landmark_file(landmark_file)
            if landmark_file is not None and settings.backend != "none"
            else None
        ),
        source=f"{sample.uid} onset frame {numbers[0]} ({source})",
    )


def align_frames(
    frames: np.ndarray,
    numbers: Sequence[int],
    settings: PreprocessSettings,
    *,
    detector: LandmarkDetector | None = None,
    landmarks: np.ndarray | None = None,
    source: str = "<frames>",
) -> AlignedClip:
    """Align frames already in memory as :func:`align_clip` aligns a sample's: landmarks on
    the first frame (``landmarks`` when given, else detected), one similarity to the
    canonical template, every frame warped with it and cropped to ``settings.size``.

    Args:
        frames: ``(T, H, W, 3)`` uint8 RGB, the first one the onset.
        numbers: ``(T,)`` their frame numbers.
        settings: crop size, backend (``"none"``: resize only), face box, fallback.
        detector: a landmark backend (default: one per process for ``settings.backend``).
        landmarks: ``(68, 2)`` landmarks of the first frame (continuous convention).
        source: what the first frame is, for error messages (a file and frame number).

    Raises:
        LandmarkError: no usable face on the first frame (the message names ``source``).
    """
    numbers = tuple(int(n) for n in numbers)
    if settings.backend == "none":
        size = (settings.size, settings.size)
        crops = [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames]
        return AlignedClip(np.stack(crops), numbers, None, None)
    if landmarks is None:
        landmarks = detect_landmarks(
            frames[0],
            detector if detector is not None else shared_detector(settings.backend),
            box=settings.face_box,
            whole_image_fallback=settings.whole_image_fallback,
            source=source,
        )
    matrix = similarity_to_canonical(landmarks, settings.size, STABLE_INDICES)
    crops = np.stack([warp_with_matrix(f, matrix, settings.size) for f in frames])
    return AlignedClip(crops, numbers, landmarks, matrix)


_DETECTORS: dict[str, LandmarkDetector] = {}


def shared_detector(backend: str) -> LandmarkDetector:
    """One detector per process and backend (models load once)."""
    if backend not in _DETECTORS:
        _DETECTORS[backend] = create_detector(backend)
    return _DETECTORS[backend]


def _save(clip: AlignedClip, sample: Sample, settings: PreprocessSettings, cache_dir: Path) -> Path:
    array_path, meta_path = cache_paths(cache_dir, sample, settings)
    array_path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "uid": sample.uid,
        "frame_numbers": list(clip.frame_numbers),
        "landmarks": None if clip.landmarks is None else clip.landmarks.tolist(),
        "matrix": None if clip.matrix is None else clip.matrix.tolist(),
        "settings": asdict(settings),
    }
    tmp_meta = meta_path.with_name(f"{meta_path.stem}.{os.getpid()}.tmp")
    tmp_meta.write_text(json.dumps(meta))
    tmp_meta.replace(meta_path)
    tmp_array = array_path.with_name(f"{array_path.stem}.{os.getpid()}.tmp.npy")
    np.save(tmp_array, clip.frames)
    tmp_array.replace(array_path)
    return array_path


def _work(
    sample: Sample, settings: PreprocessSettings, cache_dir: Path, landmark_file: Path | None
) -> Path:
    clip = align_clip(sample, settings, landmark_file=landmark_file)
    return _save(clip, sample, settings, cache_dir)


@dataclass
class PreprocessResult:
    """What a preprocessing run did.

    Attributes:
        cached: uid -> cached array, for every sample now in the cache.
        failed: uid -> message (the message names the file and the sheet row when known).
        reused: how many samples were already cached.
    """

    cached: dict[str, Path] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    reused: int = 0

    def __str__(self) -> str:
        lines = [
            f"preprocessed {len(self.cached)} clips ({self.reused} reused from the cache), "
            f"{len(self.failed)} failed"
        ]
        lines += [f"  failed {uid}: {message}" for uid, message in self.failed.items()]
        return "\n".join(lines)


def preprocess(
    samples: Sequence[Sample],
    cache_dir: str | Path,
    settings: PreprocessSettings | None = None,
    *,
    landmark_files: Mapping[str, str | Path] | None = None,
    n_jobs: int = 1,
    progress: bool = True,
) -> PreprocessResult:
    """Align and cache every sample; reuse what is cached; collect failures.

    Args:
        samples: the clips.
        cache_dir: cache root (``paths.cache_dir`` in the CLI).
        settings: alignment settings (default :class:`PreprocessSettings`).
        landmark_files: uid -> landmark file of its onset frame (``.pts``/``.npy``/``.json``),
            used instead of detection.
        n_jobs: worker processes (1: in this process).
        progress: show a tqdm progress bar.
    """
    settings = settings or PreprocessSettings()
    cache_dir = Path(cache_dir)
    files = dict(landmark_files or {})
    result = PreprocessResult()
    todo = []
    for sample in samples:
        array_path, _ = cache_paths(cache_dir, sample, settings)
        if array_path.is_file():
            result.cached[sample.uid] = array_path
            result.reused += 1
        else:
            todo.append(sample)
    bar = tqdm(total=len(todo), desc="preprocess", unit="clip", disable=not progress)

    def finish(sample: Sample, outcome: Path | BaseException) -> None:
        if isinstance(outcome, BaseException):
            row = sample.extra.get("row")
            where = f" (annotation row {row})" if row else ""
            result.failed[sample.uid] = f"{outcome}{where}"
        else:
            result.cached[sample.uid] = outcome
        bar.update()

    if n_jobs <= 1:
        for sample in todo:
            try:
                outcome: Path | BaseException = _work(
                    sample, settings, cache_dir, _file(files, sample)
                )
            except Exception as err:  # one bad clip must not stop the run
                outcome = err
            finish(sample, outcome)
    else:
        with ProcessPoolExecutor(max_workers=n_jobs) as pool:
            futures = {pool.submit(_work, s, settings, cache_dir, _file(files, s)): s for s in todo}
            for future in as_completed(futures):
                error = future.exception()
                finish(futures[future], error if error is not None else future.result())
    bar.close()
    return result


def _file(files: Mapping[str, str | Path], sample: Sample) -> Path | None:
    found = files.get(sample.uid)
    return Path(found) if found is not None else None


class CachedFrames:
    """A frame source over the preprocessing cache (``(T, S, S, 3)`` arrays, memory-mapped).

    Raises:
        FileNotFoundError: a sample is not cached (run ``mer prepare`` or :func:`preprocess`).
    """

    def __init__(self, cache_dir: str | Path, settings: PreprocessSettings | None = None) -> None:
        self.cache_dir = Path(cache_dir)
        self.settings = settings or PreprocessSettings()
        self._numbers: dict[str, tuple[int, ...]] = {}

    def _paths(self, sample: Sample) -> tuple[Path, Path]:
        array_path, meta_path = cache_paths(self.cache_dir, sample, self.settings)
        if not array_path.is_file():
            raise FileNotFoundError(
                f"{sample.uid} is not in the cache {self.cache_dir / self.settings.key}; run "
                "`mer prepare` (or recognizer.data.preprocess.preprocess) with the same settings"
            )
        return array_path, meta_path

    def frame_numbers(self, sample: Sample) -> tuple[int, ...]:
        if sample.uid not in self._numbers:
            _, meta_path = self._paths(sample)
            meta = json.loads(meta_path.read_text())
            self._numbers[sample.uid] = tuple(meta["frame_numbers"])
        return self._numbers[sample.uid]

    def read(self, sample: Sample, numbers: Sequence[int]) -> np.ndarray:
        array_path, _ = self._paths(sample)
        position = {n: i for i, n in enumerate(self.frame_numbers(sample))}
        missing = [n for n in numbers if n not in position]
        if missing:
            raise KeyError(f"{sample.uid}: frames {missing} are not in the cache")
        array = np.load(array_path, mmap_mode="r")
        return np.ascontiguousarray(array[[position[n] for n in numbers]])


__all__ = [
    "AlignedClip",
    "CachedFrames",
    "PreprocessResult",
    "PreprocessSettings",
    "align_clip",
    "align_frames",
    "cache_paths",
    "preprocess",
]
