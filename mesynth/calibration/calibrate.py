"""Calibrate the generator to a real dataset: measure its clips, summarise them as a profile.

For each clip with onset/apex annotations (:func:`measure_clip`):

1. landmarks on the onset frame (a :mod:`mesynth.face.landmarks` backend) and on the apex frame,
   either tracked by the onset->apex optical flow (``tracking="flow"``, sub-pixel, the default)
   or detected again (``tracking="detect"``);
2. rigid head motion: the similarity between the two landmark sets (stable points);
3. apex size: the largest landmark displacement after removing that similarity, IOD units,
   over the points the annotated AUs move (:func:`mesynth.calibration.measure.au_points`);
4. residual motion: the flow minus the similarity's flow, over face pixels that no annotated AU
   explains (:func:`mesynth.calibration.measure.static_mask`), as an RMS and a half-correlation
   length;
5. sensor noise on those static pixels (three consecutive frames when the clip has them, else
   the flow-compensated onset/apex pair), brightness drift over the frames read;
6. over up to ``max_frames`` frames of the clip (clips stored with more than two frames):
   rigid motion relative to the onset and eye-aspect-ratio dips (blinks);
7. framing: eye and mouth centres in the crop.

:func:`calibrate` aggregates the clips into a :class:`~mesynth.calibration.profile.
CalibrationProfile` and fits an AU motion basis (:meth:`mesynth.motion.au_basis.MotionModel.fit`)
when
there are enough labelled clips.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from mesynth.calibration.measure import (
    EYE_INDICES,
    RigidMotion,
    au_points,
    brightness_drift,
    count_blinks,
    eye_aspect_ratio,
    face_framing,
    field_statistics,
    noise_from_pair,
    noise_from_triplet,
    non_rigid_displacement,
    rigid_motion,
    similarity_flow,
    static_mask,
    track_points,
)
from mesynth.calibration.profile import CalibrationProfile, Framing, Spread
from mesynth.face.canonical import inter_ocular_distance, similarity_to_canonical
from mesynth.face.landmarks import LandmarkError, create_detector, detect_landmarks
from mesynth.flow import optical_flow
from mesynth.labels.au import parse_aus
from mesynth.motion.au_basis import MotionModel, MotionModelError
from mesynth.records import (
    FrameReader,
    RecordReadError,
    apex_of,
    read_record_frames,
    record_frame_numbers,
    record_name,
)

#: finds the 68 landmarks of one ``(H, W, 3)`` uint8 frame; ``source`` names it in errors.
Landmarker = Callable[[np.ndarray, str], np.ndarray]
TRACKING = ("flow", "detect")


class CalibrationError(ValueError):
    """Calibration cannot run: bad arguments, or no clip could be measured (reasons listed)."""


@dataclass(frozen=True)
class ClipMeasurement:
    """What :func:`measure_clip` found in one clip (units: see :mod:`mesynth.calibration.measure`).

    Attributes:
        name: ``subject/clip``.
        au_intensities: ``{code: relative intensity}`` of the annotated AUs (empty: none).
        peak_iod: largest non-rigid landmark displacement onset -> apex.
        offsets_iod: ``(68, 2)`` non-rigid displacements, rotated to the canonical face.
        head: rigid motion onset -> apex.
        clip_translation_iod, clip_rotation_deg: largest rigid motion relative to the onset over
            the frames read (``None`` with fewer than three frames).
        residual_rms_iod, residual_half_iod: residual flow RMS and half-correlation length.
        noise_sigma: grey levels.
        drift_per_s: relative brightness change per second (``None`` without an fps).
        blinks, blink_seconds: EAR dips and the time they were counted over (``None``: too few
            frames).
        framing: :func:`mesynth.calibration.measure.face_framing` of the onset face.
    """

    name: str
    au_intensities: dict[int, float]
    peak_iod: float
    offsets_iod: np.ndarray
    head: RigidMotion
    residual_rms_iod: float
    residual_half_iod: float
    noise_sigma: float
    framing: dict[str, np.ndarray]
    drift_per_s: float | None = None
    clip_translation_iod: float | None = None
    clip_rotation_deg: float | None = None
    blinks: int | None = None
    blink_seconds: float | None = None


def detector_landmarker(backend: str = "dlib") -> Landmarker:
    """A :data:`Landmarker` over a :mod:`mesynth.face.landmarks` backend (whole-image fallback on,
    as aligned crops defeat face detectors)."""
    detector = create_detector(backend)

    def find(frame: np.ndarray, source: str) -> np.ndarray:
        return detect_landmarks(frame, detector, whole_image_fallback=True, source=source)

    return find


def au_intensities(text: object) -> dict[int, float]:
    """``{code: relative intensity}`` of an AU cell; reference-only AUs are left out."""
    out: dict[int, float] = {}
    for au in parse_aus(text).aus:
        if au.reference_only:
            continue
        try:
            value = au.relative_intensity
        except ValueError:
            value = 1.0
        out[au.code] = max(out.get(au.code, 0.0), value)
    return out


def _gray(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)


def _clip_numbers(numbers: Sequence[int], onset: int, offset: int, max_frames: int) -> list[int]:
    inside = [n for n in numbers if onset <= n <= offset]
    if len(inside) <= max_frames:
        return inside
    picks = np.unique(np.round(np.linspace(0, len(inside) - 1, max_frames)).astype(int))
    return [inside[i] for i in picks]


def measure_clip(
    record: object,
    landmarker: Landmarker,
    *,
    read_frames: FrameReader = read_record_frames,
    tracking: str = "flow",
    flow_method: str = "auto",
    max_frames: int = 16,
    motion: MotionModel | None = None,
) -> ClipMeasurement:
    """Measure one clip record (see the module docs for the steps).

    Args:
        record: a clip record (:mod:`mesynth.records`) whose frames include onset and apex.
        landmarker: finds the 68 landmarks of a frame (:func:`detector_landmarker`).
        read_frames: reads frames of the record by number.
        tracking: ``"flow"`` or ``"detect"`` (apex landmarks).
        flow_method: :func:`mesynth.flow.optical_flow` method.
        max_frames: frames read across the clip for blinks and clip-long head motion.
        motion: the model whose AU regions mask AU motion (default: the expert basis).

    Raises:
        RecordReadError: onset or apex frame missing or unreadable.
        mesynth.face.landmarks.LandmarkError: no plausible face on the onset (or apex) frame.
    """
    if tracking not in TRACKING:
        raise CalibrationError(f"tracking must be one of {TRACKING}, got {tracking!r}")
    motion = motion or MotionModel.expert(1.0)
    name = record_name(record)
    numbers = record_frame_numbers(record)
    onset, apex = int(record.onset), apex_of(record)
    for what, number in (("onset", onset), ("apex", apex)):
        if number not in numbers:
            raise RecordReadError(f"{name}: the {what} frame {number} is not among its frames")
    triplet = [onset, onset + 1, onset + 2]
    has_triplet = all(n in numbers for n in triplet) and apex > onset + 2
    along = _clip_numbers(numbers, onset, int(record.offset), max_frames)
    wanted = sorted({onset, apex, *along, *(triplet if has_triplet else [])})
    frames = dict(zip(wanted, read_frames(record, wanted)))
    gray = {n: _gray(f) for n, f in frames.items()}
    shape = gray[onset].shape

    onset_points = landmarker(frames[onset], f"{name} onset frame {onset}")
    iod = float(inter_ocular_distance(onset_points))
    flow = optical_flow(frames[onset], frames[apex], flow_method).astype(np.float64)
    if tracking == "flow":
        apex_points = track_points(onset_points, flow)
    else:
        apex_points = landmarker(frames[apex], f"{name} apex frame {apex}")
    head, matrix = rigid_motion(onset_points, apex_points)

    intensities = au_intensities(getattr(record, "aus", ""))
    known = [c for c in intensities if c in motion.known_codes]
    points = au_points(known, motion) if known else np.setdiff1d(np.arange(68), EYE_INDICES)
    displacement = non_rigid_displacement(onset_points, apex_points)
    peak = float(np.linalg.norm(displacement[points], axis=1).max())
    to_canonical = similarity_to_canonical(onset_points, shape)[:, :2]
    rotation = to_canonical / np.sqrt(abs(np.linalg.det(to_canonical)))

    mask = static_mask(onset_points, list(intensities) or None, shape, motion)
    residual = flow - similarity_flow(matrix, shape)
    rms, half = field_statistics(residual, mask)
    if has_triplet:
        noise = noise_from_triplet(np.stack([gray[n] for n in triplet]), mask)
    else:
        noise = noise_from_pair(gray[onset], gray[apex], flow, mask)

    fps = float(getattr(record, "fps", 0) or 0)
    timed = sorted({onset, apex, *along})
    drift = None
    if fps > 0 and len(timed) >= 2:
        times = (np.asarray(timed, dtype=np.float64) - onset) / fps
        drift = brightness_drift(np.stack([gray[n] for n in timed]), times, mask)

    result = ClipMeasurement(
        name=name,
        au_intensities=intensities,
        peak_iod=peak,
        offsets_iod=displacement @ rotation.T,
        head=head,
        residual_rms_iod=rms / iod,
        residual_half_iod=half / iod,
        noise_sigma=noise,
        framing=face_framing(onset_points, shape),
        drift_per_s=drift,
    )
    if len(along) < 3:
        return result
    return _with_clip_motion(result, along, frames, onset_points, landmarker, name, fps)


def _with_clip_motion(
    result: ClipMeasurement,
    along: Sequence[int],
    frames: dict[int, np.ndarray],
    onset_points: np.ndarray,
    landmarker: Landmarker,
    name: str,
    fps: float,
) -> ClipMeasurement:
    """Add clip-long head motion and blinks from landmarks detected on the frames ``along``."""
    found = {}
    for number in along:
        try:
            found[number] = landmarker(frames[number], f"{name} frame {number}")
        except LandmarkError:
            continue
    if len(found) < 3:
        return result
    motions = [rigid_motion(onset_points, points)[0] for points in found.values()]
    ear = eye_aspect_ratio(np.stack(list(found.values())))
    seconds = (max(found) - min(found)) / fps if fps > 0 else None
    return ClipMeasurement(
        **{
            **result.__dict__,
            "clip_translation_iod": max(m.translation_size_iod for m in motions),
            "clip_rotation_deg": max(abs(m.rotation_deg) for m in motions),
            "blinks": count_blinks(ear) if seconds else None,
            "blink_seconds": seconds,
        }
    )


@dataclass
class _CalibrationRun:
    """Per-clip measurements and the clips that could not be measured (``(name, reason)``)."""

    measurements: list[ClipMeasurement] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _measure_clips(
    samples: Iterable[object],
    landmarker: Landmarker,
    *,
    progress: bool = False,
    **options: object,
) -> _CalibrationRun:
    """:func:`measure_clip` over records; unreadable clips and faceless frames are skipped."""
    from tqdm.auto import tqdm

    run = _CalibrationRun()
    samples = list(samples)
    for record in tqdm(samples, desc="calibrate", unit="clip", disable=not progress):
        try:
            run.measurements.append(measure_clip(record, landmarker, **options))
        except (RecordReadError, LandmarkError) as err:
            run.skipped.append((record_name(record), str(err)))
    return run


def _fit_motion(
    measurements: Sequence[ClipMeasurement],
    *,
    min_samples: int = 40,
    min_clips_per_au: int = 5,
    ridge: float = 1.0,
) -> dict[int, np.ndarray] | None:
    """Fit an AU landmark basis from labelled clips, or ``None`` when there are too few.

    The AUs coded in at least ``min_clips_per_au`` clips become columns (relative intensities
    from the FACS letters); the fit shrinks toward the expert basis scaled to the measured
    median apex size (:meth:`MotionModel.fit` with ``prior``).
    """
    labelled = [m for m in measurements if m.au_intensities]
    counts: dict[int, int] = defaultdict(int)
    for m in labelled:
        for code in m.au_intensities:
            counts[code] += 1
    codes = sorted(c for c, n in counts.items() if n >= min_clips_per_au)
    if len(labelled) < min_samples or not codes:
        return None
    rows = [m for m in labelled if any(c in m.au_intensities for c in codes)]
    design = np.array([[m.au_intensities.get(c, 0.0) for c in codes] for m in rows])
    offsets = np.stack([m.offsets_iod for m in rows])
    prior = MotionModel.expert(float(np.median([m.peak_iod for m in rows])))
    try:
        fitted = MotionModel.fit(design, offsets, codes, ridge=ridge, prior=prior)
    except MotionModelError:
        return None
    return {code: fitted.basis(code) for code in codes}


def _summarise(
    run: _CalibrationRun,
    *,
    basis: dict[int, np.ndarray] | None = None,
    source: dict[str, object] | None = None,
) -> CalibrationProfile:
    """Aggregate per-clip measurements into a profile (medians and quartiles)."""
    ms = run.measurements
    if not ms:
        reasons = "; ".join(f"{n}: {r}" for n, r in run.skipped[:5])
        raise CalibrationError(f"no clip could be measured ({len(run.skipped)} skipped: {reasons})")
    per_au: dict[int, list[float]] = defaultdict(list)
    for m in ms:
        for code in m.au_intensities:
            per_au[code].append(m.peak_iod)
    timed = [m for m in ms if m.blinks is not None and m.blink_seconds]
    seconds = sum(m.blink_seconds for m in timed)
    framing = {k: np.median(np.stack([m.framing[k] for m in ms]), axis=0) for k in ms[0].framing}
    return CalibrationProfile(
        apex_peak_iod=Spread.of([m.peak_iod for m in ms]),
        head_translation_iod=Spread.of([m.head.translation_size_iod for m in ms]),
        head_rotation_deg=Spread.of([abs(m.head.rotation_deg) for m in ms]),
        head_scale=Spread.of([abs(m.head.scale - 1) for m in ms]),
        residual_rms_iod=Spread.of([m.residual_rms_iod for m in ms]),
        residual_correlation_iod=Spread.of([m.residual_half_iod for m in ms]),
        noise_sigma=Spread.of([m.noise_sigma for m in ms]),
        brightness_drift_per_s=Spread.of([m.drift_per_s for m in ms]),
        clip_head_translation_iod=Spread.of([m.clip_translation_iod for m in ms]),
        clip_head_rotation_deg=Spread.of([m.clip_rotation_deg for m in ms]),
        per_au_peak_iod={code: Spread.of(v) for code, v in sorted(per_au.items())},
        motion_kind="fitted" if basis else "expert",
        motion_basis=basis,
        blink_rate_per_s=sum(m.blinks for m in timed) / seconds if seconds > 0 else None,
        framing=Framing(
            right_eye=tuple(float(v) for v in framing["right_eye"]),
            left_eye=tuple(float(v) for v in framing["left_eye"]),
            mouth=tuple(float(v) for v in framing["mouth"]),
            iod_fraction=float(framing["iod_fraction"]),
        ),
        source={
            **(source or {}),
            "n_measured": len(ms),
            "n_skipped": len(run.skipped),
            "skipped": [f"{n}: {r}" for n, r in run.skipped[:20]],
        },
    )


def calibrate(
    samples: Iterable[object],
    *,
    landmarker: Landmarker | None = None,
    backend: str = "dlib",
    read_frames: FrameReader = read_record_frames,
    tracking: str = "flow",
    flow_method: str = "auto",
    max_frames: int = 16,
    min_fit_samples: int = 40,
    min_clips_per_au: int = 5,
    ridge: float = 1.0,
    progress: bool = False,
) -> CalibrationProfile:
    """Measure real clips and summarise them as a calibration profile.

    Args:
        samples: clip records with onset/apex annotations (:mod:`mesynth.records`), e.g.
            ``recognizer.datasets.load(...).samples``.
        landmarker: finds landmarks on a frame; default :func:`detector_landmarker` (``backend``).
        backend: landmark backend when no ``landmarker`` is given.
        read_frames: reads a record's frames by number (default: files or ``.npy``).
        tracking: ``"flow"`` (apex landmarks tracked by optical flow) or ``"detect"``.
        flow_method: optical-flow method (``auto``: TV-L1 when available).
        max_frames: frames read across each clip for blinks and clip-long head motion.
        min_fit_samples, min_clips_per_au, ridge: when and how to fit the AU motion basis
            (:func:`_fit_motion`); otherwise the profile asks for the expert basis.
        progress: show a progress bar.

    Raises:
        CalibrationError: no clip could be measured (the message lists why).
    """
    if max_frames < 2:
        raise CalibrationError(f"max_frames must be >= 2, got {max_frames}")
    landmark_source = backend if landmarker is None else "custom"
    landmarker = landmarker or detector_landmarker(backend)
    samples = list(samples)
    run = _measure_clips(
        samples,
        landmarker,
        progress=progress,
        read_frames=read_frames,
        tracking=tracking,
        flow_method=flow_method,
        max_frames=max_frames,
    )
    basis = _fit_motion(
        run.measurements,
        min_samples=min_fit_samples,
        min_clips_per_au=min_clips_per_au,
        ridge=ridge,
    )
    datasets = sorted({str(getattr(s, "dataset", "")) for s in samples} - {""})
    fps = sorted({float(getattr(s, "fps", 0) or 0) for s in samples})
    source = {
        "n_samples": len(samples),
        # checked by recognizer.protocols.leakage.check_profile against a fold's test subjects
        "real_subjects": sorted({str(getattr(s, "subject", "")) for s in samples} - {""}),
        "datasets": datasets,
        "fps": fps,
        "landmarks": landmark_source,
        "tracking": tracking,
        "flow_method": flow_method,
    }
    return _summarise(run, basis=basis, source=source)
