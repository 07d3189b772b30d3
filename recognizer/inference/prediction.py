"""``mer predict``: a final model (``final.pt``) applied to someone's own clip.

Input: a video file (:func:`recognizer.inference.clip_input.read_video`), a folder of frames or
a ``.npy``
clip. Per clip:

1. **Window.** ``onset`` (default: the first frame) to ``offset`` (default: ``onset +
   max_duration`` seconds, 0.5 s, the DFME bound on a micro-expression, or the last frame).
2. **Alignment.** 68-point landmarks on the onset frame (``landmark_backend``: ``auto`` =
   face-alignment when its weights are cached, else the offline ``dlib``) and the same
   similarity alignment and crop as ``mer prepare``
   (:func:`recognizer.data.preprocess.align_frames`), at ``crop_size`` pixels.
3. **Apex.** Given (``apex=``), else *spotted* by a heuristic: the frame of the window whose
   mean Farnebäck optical-flow magnitude from the onset (on the aligned crops, at 64 px) is
   largest (:func:`spot_apex`). Head motion or a blink can win over a subtle expression: give
   ``apex=`` when you know it.
4. **Model.** The run's representation (key frames or apex flow) and model; softmax
   probabilities per class.

Times are frame numbers or seconds (``0.4s``; :func:`recognizer.inference.clip_input.frame_of`).

A manifest CSV (``input=clips.csv``, the ``data=manifest`` columns) is many clips, one per row,
predicted by :mod:`recognizer.inference.manifest_input`: rows that fail are kept apart in an
``error``
column, a rerun resumes, and a row may be a precomputed apex-flow image (:func:`predict_image`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch

from mesynth.face.landmarks import LandmarkError
from mesynth.flow import apex_flow, optical_flow
from recognizer.data.frame_source import RawFrames
from recognizer.data.preprocess import PreprocessSettings, align_frames
from recognizer.data.representations import ApexFlow
from recognizer.data.samples import Sample
from recognizer.inference.clip_input import (
    ClipFrames,
    ClipTooShortError,
    PredictInputError,
    frame_of,
    read_array_clip,
    read_frame_folder,
    read_video,
    video_fps,
)
from recognizer.training.final_model import FinalModel, load_final_model

SPOT_SIZE = 64
#: tells every prediction's sample apart: an apex-flow representation memoises its image per
#: sample id, and two inputs of one name (or one video at two windows) must not share one
_PREDICTIONS = itertools.count()


class ArrayFrames:
    """A frame source over aligned crops in memory (``(T, S, S, 3)`` uint8, their numbers)."""

    def __init__(self, frames: np.ndarray, numbers: Sequence[int]) -> None:
        self.frames, self.numbers = frames, tuple(int(n) for n in numbers)

    def frame_numbers(self, sample: Sample) -> tuple[int, ...]:
        return self.numbers

    def read(self, sample: Sample, numbers: Sequence[int]) -> np.ndarray:
        position = {n: i for i, n in enumerate(self.numbers)}
        return self.frames[[position[n] for n in numbers]]


def unique_clip_id(path: Path) -> str:
    """``<file name>#<n>``, a new ``n`` at every call: the clip id of a prediction's sample."""
    return f"{path.name}#{next(_PREDICTIONS)}"


def spot_apex(crops: np.ndarray, numbers: Sequence[int]) -> tuple[int, np.ndarray]:
    """The heuristic apex: the frame after the onset (``crops[0]``) whose mean optical-flow
    magnitude from the onset is largest (Farnebäck, crops resized to 64 px; ties: earliest).

    Args:
        crops: ``(T, S, S, 3)`` uint8 aligned frames, T >= 2, the onset first.
        numbers: ``(T,)`` their frame numbers.

    Returns:
        ``(apex frame number, (T,) mean magnitudes in pixels at 64 px, 0 for the onset)``.
    """
    small = [cv2.resize(c, (SPOT_SIZE, SPOT_SIZE), interpolation=cv2.INTER_AREA) for c in crops]
    magnitude = np.zeros(len(small))
    for i in range(1, len(small)):
        flow = optical_flow(small[0], small[i], "farneback")
        magnitude[i] = float(np.linalg.norm(flow, axis=-1).mean())
    return int(numbers[1 + int(np.argmax(magnitude[1:]))]), magnitude


def needed_frames(representation: object) -> int:
    """Frames the window must hold: 2 for apex flow (onset and a later apex), ``num_frames``
    (at least 2) for a key-frame clip."""
    if isinstance(representation, ApexFlow):
        return 2
    return max(2, int(getattr(representation, "num_frames", 2)))


@dataclass(frozen=True)
class ClipPrediction:
    """One clip's prediction: the frames used and the class probabilities ``(K,)``."""

    input: Path
    onset: int
    apex: int
    offset: int
    fps: float | None
    apex_rule: str
    probabilities: np.ndarray
    predicted: str
    crops: np.ndarray
    numbers: tuple[int, ...]


def read_input(
    path: Path, onset: object, offset: object, fps: float | None, max_duration: float | None
) -> tuple[ClipFrames, int, int, int]:
    """The clip of a video, frame folder or ``.npy`` clip, cut to its onset..offset window.

    Returns:
        ``(window, onset, offset, first)``: the frames of the window, its first and last frame
        numbers, and the input's first frame number (times in seconds count from it).
    """
    if path.is_dir():
        clip = read_frame_folder(path, fps=fps)
        first = clip.numbers[0]
    elif path.suffix.lower() == ".npy":
        clip, first = read_array_clip(path, fps=fps), 0
    else:
        rate = video_fps(path) or fps
        first, clip = 0, None
    rate = clip.fps if clip is not None else rate
    start = frame_of(onset, fps=rate, first=first, key="onset", path=path)
    start = first if start is None else start
    end = frame_of(offset, fps=rate, first=first, key="offset", path=path)
    if end is None and max_duration and rate:
        end = start + int(np.ceil(max_duration * rate))
    if clip is None:
        clip = read_video(path, first=start, last=end, fps=fps)
    keep = [i for i, n in enumerate(clip.numbers) if start <= n and (end is None or n <= end)]
    if not keep or clip.numbers[keep[0]] != start:
        raise PredictInputError(
            f"{path}: no frame {start} (onset); its frames are "
            f"{clip.numbers[0]}..{clip.numbers[-1]}"
        )
    window = replace(clip, frames=clip.frames[keep], numbers=tuple(clip.numbers[i] for i in keep))
    return window, start, window.numbers[-1], first


def predict_clip(
    final: FinalModel,
    path: str | Path,
    *,
    onset: object = None,
    apex: object = None,
    offset: object = None,
    fps: float | None = None,
    max_duration: float | None = 0.5,
    landmark_backend: str = "auto",
    crop_size: int = 128,
    whole_image_fallback: bool = False,
) -> ClipPrediction:
    """Predict one video or frame folder with ``final`` (see the module for the steps).

    Raises:
        PredictInputError: the input cannot be read, has no face on the onset frame, or the
            apex lies outside the window; ClipTooShortError: the window is too short.
    """
    path = Path(path)
    clip, start, end, first = read_input(path, onset, offset, fps, max_duration)
    need = needed_frames(final.representation)
    if len(clip.numbers) < need:
        raise ClipTooShortError(
            f"{path}: {len(clip.numbers)} frame(s) from onset {start} to offset {end}, but the "
            f"run's representation needs {need}; give a longer clip, a later offset= or "
            "max_duration=null"
        )
    settings = PreprocessSettings(
        size=crop_size, backend=landmark_backend, whole_image_fallback=whole_image_fallback
    )
    try:
        aligned = align_frames(clip.frames, clip.numbers, settings,
                               source=f"{path} onset frame {start}")  # fmt: skip
    except LandmarkError as err:
        raise PredictInputError(
            f"{err}; no usable face: give a clip where the face is visible on the onset frame, "
            "or whole_image_fallback=true for a tight face crop"
        ) from err
    given = frame_of(apex, fps=clip.fps, first=first, key="apex", path=path)
    if given is None:
        peak, rule = spot_apex(aligned.frames, aligned.frame_numbers)[0], "spotted"
    elif not start < given <= end:
        raise PredictInputError(f"{path}: apex={apex} is frame {given}, outside the window "
                                f"{start}..{end} after the onset")  # fmt: skip
    else:
        peak, rule = given, "given"
    sample = Sample("predict", "predict/input", unique_clip_id(path), (), (),
                    start, peak, end, float(clip.fps or 0.0), "")  # fmt: skip
    source = ArrayFrames(aligned.frames, aligned.frame_numbers)
    x = final.representation(sample, source)
    with torch.no_grad():
        probabilities = torch.softmax(final.model(x[None]).float(), dim=1)[0].numpy()
    return ClipPrediction(path, start, peak, end, clip.fps, rule, probabilities.astype(np.float64),
                          final.classes[int(np.argmax(probabilities))], aligned.frames,
                          aligned.frame_numbers)  # fmt: skip


def predict_image(final: FinalModel, path: Path) -> np.ndarray:
    """``(K,)`` class probabilities of a precomputed apex-flow image, taken as is (resized).

    Raises:
        PredictInputError: the run's representation is key frames, not apex flow.
        FrameReadError: the image cannot be read.
    """
    if not isinstance(final.representation, ApexFlow):
        raise PredictInputError(
            f"{path} is one image (an apex-flow image?), but this run's model takes "
            f"{final.representation.num_frames} key frames: give a clip, or use an apex-flow run"
        )
    sample = Sample("predict", "predict/input", unique_clip_id(path), (), (), 0, 0, 0, 0.0, "",
                    array_path=path)  # fmt: skip
    x = final.representation(sample, RawFrames())
    with torch.no_grad():
        return torch.softmax(final.model(x[None]).float(), dim=1)[0].numpy().astype(np.float64)


def write_preview(prediction: ClipPrediction, path: Path, scale: int = 4) -> Path:
    """A PNG: the aligned onset, apex and offset frames, then the apex flow (u, v, strain as
    R, G, B) of onset -> apex at the crop size."""
    position = {n: i for i, n in enumerate(prediction.numbers)}
    size = prediction.crops.shape[1]
    picks = [prediction.crops[position[n]] for n in (prediction.onset, prediction.apex,
                                                     prediction.offset)]  # fmt: skip
    flow = apex_flow(picks[0], picks[1], size, "farneback")
    strip = np.concatenate([*picks, flow], axis=1)
    strip = cv2.resize(strip, (strip.shape[1] * scale // 2, size * scale // 2),
                       interpolation=cv2.INTER_NEAREST)  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), strip[:, :, ::-1]):
        raise OSError(f"cannot write {path}")
    return path


def prediction_row(prediction: ClipPrediction, classes: Sequence[str]) -> dict[str, object]:
    """One clip's row of ``predictions.csv``: input, onset, apex, offset, fps, apex_rule,
    ``p_<class>`` per class (in ``classes`` order), predicted."""
    return {
        "input": str(prediction.input), "onset": prediction.onset, "apex": prediction.apex,
        "offset": prediction.offset, "fps": prediction.fps, "apex_rule": prediction.apex_rule,
        **{f"p_{c}": float(p) for c, p in zip(classes, prediction.probabilities)},
        "predicted": prediction.predicted,
    }  # fmt: skip


def predict(
    run_dir: str | Path, inputs: Sequence[str | Path], out_dir: str | Path, *,
    preview: bool = False, **options: object,
) -> pd.DataFrame:  # fmt: skip
    """Predict every input with ``run_dir``'s final model; write ``predictions.csv`` (one row
    per clip: input, onset, apex, offset, fps, apex_rule, ``p_<class>`` per class, predicted)
    and, with ``preview``, ``preview/<input name>.png``.

    Raises:
        FinalModelError: ``run_dir`` has no ``final.pt``; PredictInputError: a bad input.
    """
    final = load_final_model(run_dir)
    out = Path(out_dir)
    rows = []
    for item in inputs:
        done = predict_clip(final, item, **options)  # type: ignore[arg-type]
        rows.append(prediction_row(done, final.classes))
        if preview:
            write_preview(done, out / "preview" / f"{done.input.stem}.png")
    table = pd.DataFrame(rows)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "predictions.csv", index=False)
    return table
