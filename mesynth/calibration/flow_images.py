"""Calibration from apex-flow images and face crops: what MEGC2019 composite users have.

The composite ships no usable videos for calibration, only per-clip apex-flow images
(:func:`mesynth.flow.apex_flow`: channels ``(u, v, strain)``, each min-max scaled per image to
``0-255``) and the releases' face crops. :func:`measure_flow_images` summarises such images
(:class:`FlowStatistics`) and :func:`calibrate_from_flows` turns them into a
:class:`~mesynth.calibration.profile.CalibrationProfile` that ``mesynth generate
recipe/effects=profile`` and the synthetic remedies accept:

* **framing** from the face crops (:func:`mesynth.face.framing.measure_crop_framing`): the mean
  landmarks, stored in the profile, which ``recipe.identities.framing=profile`` aligns faces to
  and which locate the face regions below;
* **motion energy** ``|(u, v) - median(u, v)|`` per pixel (the realism report's energy): its
  distribution, its mean in the brows, eyes, nose, cheeks and mouth, and each region's share;
* **strain**: the 5th, 50th and 95th percentiles of the strain channel in ``[0, 1]`` over all
  pixels of all images;
* **diffuse residual motion**: the median-removed flow on the face (the hull of the jaw and
  brows) outside every face region: its RMS, and
  its half-correlation length (:func:`mesynth.calibration.measure.field_statistics`), and the
  ratio of that RMS to the image's peak region energy (scale-free, so it survives min-max
  scaling); and the share of the energy outside the face (border, neck and background moving);
* **noise floor**: robust std of the flow minus its 3x3 mean (the pixel-to-pixel jitter).

Min-max scaling removes every absolute size, so the profile's sizes are anchored: the residual
RMS in IOD units is ``ratio x apex_peak_iod`` (``apex_peak_iod`` from the argument, else
``base``, else the expert motion model's default) and the correlation length is converted with the
measured framing's IOD in flow pixels. Noise in grey levels, head motion and drift cannot be read
from flow images; they come from ``base`` (the adversarial search,
:func:`mesynth.calibration.adversarial.adversarial_calibration` with ``real_flows=``, fits them
against the same images). The profile's ``source`` records the measured statistics and the
subjects whose images were used (``real_subjects``), so
:func:`recognizer.protocols.leakage.check_profile` can refuse it for a fold that tests one of them.

Convention:
    Flow images are ``(N, S, S, 3)`` float in ``[0, 1]`` (stored ``uint8`` divided by 255),
    channels ``(u, v, strain)``, row 0 at the top of the face crop. Landmarks in flow pixels are
    the normalised crop landmarks times ``S`` (the flow image is the crop resized to ``S x S``).
    Energies and RMS are in those scaled units (fractions of each channel's range); lengths in
    flow pixels unless named ``_iod``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from mesynth.calibration.measure import face_mask, field_statistics, robust_std
from mesynth.calibration.profile import CalibrationProfile, Framing, Spread
from mesynth.face.canonical import canonical_landmarks, inter_ocular_distance
from mesynth.face.framing import CropFraming, measure_crop_framing, normalise
from mesynth.face.image_io import ImageReadError, read_rgb
from mesynth.face.landmarks import LandmarkDetector
from mesynth.motion.au_basis import MotionModel
from mesynth.records import RecordReadError, read_record_frames, record_frame_numbers, record_name

#: landmark groups of the face regions (as the realism report's, on the measured framing)
REGIONS: dict[str, np.ndarray] = {
    "brows": np.arange(17, 27),
    "eyes": np.arange(36, 48),
    "nose": np.arange(27, 36),
    "mouth": np.arange(48, 68),
    "cheeks": np.array([1, 2, 3, 13, 14, 15, 31, 35, 48, 54]),
}
STRAIN_PERCENTILES = (5, 50, 95)
#: quartiles of the anchored apex size relative to its median (no spread is measured)
APEX_QUARTILES = (0.8, 1.25)
ENERGY_PERCENTILES = (5, 25, 50, 75, 95, 99)


class FlowCalibrationError(ValueError):
    """Flow images or their subjects cannot be used; the message names the file, row or argument."""


@dataclass(frozen=True)
class FlowImages:
    """Apex-flow images with their subjects.

    Attributes:
        images: ``(N, S, S, 3)`` float32 in ``[0, 1]``, channels ``(u, v, strain)``.
        subjects: ``(N,)`` subject of each image (grouping and leakage).
        names: ``(N,)`` names for messages (file or ``subject/clip``).
        faces: ``(N,)`` path of each row's face crop, or ``None``.
    """

    images: np.ndarray
    subjects: tuple[str, ...]
    names: tuple[str, ...]
    faces: tuple[str | None, ...]

    def __len__(self) -> int:
        return len(self.subjects)

    def subset(self, keep: np.ndarray) -> FlowImages:
        """The images where the ``(N,)`` bool ``keep`` is true."""
        index = np.flatnonzero(keep)
        return FlowImages(
            self.images[index],
            tuple(self.subjects[i] for i in index),
            tuple(self.names[i] for i in index),
            tuple(self.faces[i] for i in index),
        )


def flow_images(
    images: np.ndarray | Sequence[np.ndarray],
    subjects: Sequence[str],
    *,
    names: Sequence[str] | None = None,
    faces: Sequence[str | None] | None = None,
) -> FlowImages:
    """Validate apex-flow images given as arrays.

    Args:
        images: ``(N, S, S, 3)`` uint8 (0-255) or float in ``[0, 1]``.
        subjects: a subject per image.
        names: a name per image for messages (default ``flows[i]``).
        faces: a face-crop path per image (or ``None``).

    Raises:
        FlowCalibrationError: a count mismatch, a non-square or non-3-channel image, or values
            outside the stored range (the message names the image).
    """
    count = len(images)
    names = [f"flows[{i}]" for i in range(count)] if names is None else [str(n) for n in names]
    faces = [None] * count if faces is None else list(faces)
    for what, values in (("subjects", subjects), ("names", names), ("faces", faces)):
        if len(values) != count:
            raise FlowCalibrationError(f"{len(values)} {what} for {count} flow images")
    if count == 0:
        raise FlowCalibrationError("no flow images given")
    out = []
    for image, name in zip(images, names):
        array = np.asarray(image)
        if array.ndim != 3 or array.shape[2] != 3 or array.shape[0] != array.shape[1]:
            raise FlowCalibrationError(
                f"{name}: an apex-flow image must be (S, S, 3) (u, v, strain), got {array.shape}"
            )
        if array.shape != np.asarray(images[0]).shape:
            raise FlowCalibrationError(
                f"{name}: shape {array.shape} differs from the first image's "
                f"{np.asarray(images[0]).shape}"
            )
        if array.dtype == np.uint8:
            array = array.astype(np.float32) / 255.0
        else:
            array = array.astype(np.float32)
            if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
                raise FlowCalibrationError(
                    f"{name}: float flow images must hold values in [0, 1] (stored uint8 / 255)"
                )
        out.append(array)
    return FlowImages(np.stack(out), tuple(str(s) for s in subjects), tuple(names), tuple(faces))


def read_flow_records(records: Sequence[object], size: int | None = None) -> FlowImages:
    """Apex-flow images of manifest rows (``recognizer.datasets.load("manifest", ...)``: one
    image per row; a ``face`` column gives ``extra["face"]``).

    Args:
        records: records holding one image each (``subject``, ``frames`` or ``array_path``).
        size: resize every image to ``size x size`` (area interpolation); ``None`` keeps them.

    Raises:
        FlowCalibrationError: a record that is a clip (several frames) or an unreadable or
            malformed image (the message names the record and file).
    """
    images, subjects, names, faces = [], [], [], []
    for record in records:
        name = record_name(record)
        numbers = record_frame_numbers(record)
        files = tuple(getattr(record, "frames", ()) or ())
        where = f"{name} ({files[0]})" if files else name
        if len(numbers) != 1:
            raise FlowCalibrationError(
                f"{where}: holds {len(numbers)} frames; calibration from flows needs one "
                "apex-flow image per row (use mesynth calibrate for clips)"
            )
        try:
            image = read_record_frames(record, numbers)[0]
        except (RecordReadError, OSError) as err:
            raise FlowCalibrationError(f"{where}: cannot read the flow image ({err})") from err
        if size is not None and image.shape[:2] != (size, size):
            image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
        images.append(image)
        subjects.append(str(record.subject))
        names.append(where)
        face = (getattr(record, "extra", None) or {}).get("face")
        faces.append(str(face) if face else None)
    return flow_images(images, subjects, names=names, faces=faces)


def select_subjects(
    flows: FlowImages,
    subjects: Collection[str] | None = None,
    exclude: Collection[str] = (),
) -> FlowImages:
    """The images of ``subjects`` (all when ``None``) minus those of ``exclude``: calibrate on a
    fold's training subjects only.

    Raises:
        FlowCalibrationError: a named subject has no image (a typo would otherwise calibrate on
            the wrong set), or nothing is left.
    """
    present = set(flows.subjects)
    for what, names in (("subjects", subjects or ()), ("exclude", exclude)):
        missing = sorted(set(map(str, names)) - present)
        if missing:
            raise FlowCalibrationError(
                f"{what}: {missing[:5]} have no flow image (known subjects: "
                f"{sorted(present)[:10]}{' ...' if len(present) > 10 else ''})"
            )
    wanted = present if subjects is None else set(map(str, subjects))
    wanted -= set(map(str, exclude))
    keep = np.array([s in wanted for s in flows.subjects])
    if not keep.any():
        raise FlowCalibrationError("no flow image left after choosing subjects")
    return flows.subset(keep)


def region_masks(
    landmarks: np.ndarray, size: int, radius_iod: float = 0.15
) -> dict[str, np.ndarray]:
    """``(size, size)`` bool masks of :data:`REGIONS` for a face with ``(68, 2)`` landmarks in
    flow pixels: the convex hull of each landmark group (each eye separately), grown by
    ``radius_iod`` IOD (at least one pixel)."""
    points = np.asarray(landmarks, dtype=np.float64)
    grow = max(1, int(round(radius_iod * float(inter_ocular_distance(points)))))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
    out = {}
    for name, indices in REGIONS.items():
        mask = np.zeros((size, size), np.uint8)
        for group in (indices,) if name != "eyes" else (indices[:6], indices[6:]):
            hull = cv2.convexHull((points[group] - 0.5).astype(np.float32))
            cv2.fillConvexPoly(mask, np.round(hull).astype(np.int32), 1)
        out[name] = cv2.dilate(mask, kernel).astype(bool)
    return out


def _centred_flow(images: np.ndarray) -> np.ndarray:
    """``(u, v)`` minus each image's median ``(u, v)``: ``(N, S, S, 2)``."""
    uv = np.asarray(images, dtype=np.float64)[..., :2]
    return uv - np.median(uv.reshape(len(uv), -1, 2), axis=1)[:, None, None, :]


def _noise_floor(uv: np.ndarray) -> float:
    """Robust std of ``uv - box3x3(uv)`` (both channels), scaled to a per-pixel std: for white
    noise of std ``s`` the residual std is ``s sqrt(1 - 1/9)``."""
    values = [
        channel - cv2.blur(channel, (3, 3), borderType=cv2.BORDER_REFLECT)
        for channel in np.moveaxis(uv.astype(np.float32), -1, 0)
    ]
    return robust_std(np.concatenate([v.ravel() for v in values])) / np.sqrt(8.0 / 9.0)


@dataclass(frozen=True)
class FlowStatistics:
    """What :func:`measure_flow_images` found (see the module docs for definitions and units).

    Attributes:
        n, size: images measured and their side ``S``.
        energy_percentiles: ``{p: value}`` of the per-pixel energy over all images.
        region_energy: mean energy per region.
        region_share: region energy / mean energy over the whole image.
        strain: ``{p: value}`` of the strain channel (``[0, 1]``) over all pixels.
        residual_rms, residual_correlation_px, residual_ratio, noise_floor: per-image values
            (their spreads), see the module docs.
        residual_fraction: share of the pixels that are face but in no region.
        background_share: mean energy outside the face hull (jaw and brows) / mean energy
            over the whole image (crop border, neck and background moving).
    """

    n: int
    size: int
    energy_percentiles: dict[int, float]
    region_energy: dict[str, float]
    region_share: dict[str, float]
    strain: dict[int, float]
    residual_rms: Spread
    residual_correlation_px: Spread
    residual_ratio: Spread
    noise_floor: Spread
    residual_fraction: float
    background_share: float

    def to_dict(self) -> dict[str, object]:
        """Plain values (written under ``source.flow_statistics`` of a profile)."""
        return {
            "n": self.n,
            "size": self.size,
            "energy_percentiles": {f"p{k}": v for k, v in self.energy_percentiles.items()},
            "region_energy": dict(self.region_energy),
            "region_share": dict(self.region_share),
            "strain": {f"p{k}": v for k, v in self.strain.items()},
            "residual_rms": self.residual_rms.to_dict(),
            "residual_correlation_px": self.residual_correlation_px.to_dict(),
            "residual_ratio": self.residual_ratio.to_dict(),
            "noise_floor": self.noise_floor.to_dict(),
            "residual_fraction": self.residual_fraction,
            "background_share": self.background_share,
        }


def measure_flow_images(images: np.ndarray, landmarks: np.ndarray) -> FlowStatistics:
    """Summarise apex-flow images ``(N, S, S, 3)`` in ``[0, 1]`` (module docs).

    Args:
        images: the flow images.
        landmarks: ``(68, 2)`` face landmarks in flow pixels (locate the regions).

    Raises:
        FlowCalibrationError: no image, or the regions cover the whole image (nothing left to
            measure residual motion on).
    """
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 4 or images.shape[-1] != 3 or len(images) == 0:
        raise FlowCalibrationError(f"flow images must be (N, S, S, 3), got {images.shape}")
    size = images.shape[1]
    masks = region_masks(landmarks, size)
    inside = np.logical_or.reduce(list(masks.values()))
    face = face_mask(landmarks, (size, size))
    outside = face & ~inside
    if outside.sum() < 4:
        raise FlowCalibrationError(
            "the face regions cover the whole face in the flow image; no pixel is left for "
            "residual motion"
        )
    uv = _centred_flow(images)
    energy = np.sqrt((uv**2).sum(-1))
    total = float(energy.mean())
    region_energy = {name: float(energy[:, m].mean()) for name, m in masks.items()}
    background = float(energy[:, ~face].mean()) if (~face).any() else 0.0
    rms, half, ratio, noise = [], [], [], []
    for field, image_energy in zip(uv, energy):
        value, length = field_statistics(field, outside)
        peak = float(np.percentile(image_energy[inside], 99))
        rms.append(value)
        half.append(length)
        ratio.append(value / peak if peak > 0 else 0.0)
        noise.append(_noise_floor(field))
    strain = images[..., 2].ravel()
    return FlowStatistics(
        n=len(images),
        size=size,
        energy_percentiles={
            p: float(v)
            for p, v in zip(ENERGY_PERCENTILES, np.percentile(energy, ENERGY_PERCENTILES))
        },
        region_energy=region_energy,
        region_share={k: (v / total if total > 0 else 0.0) for k, v in region_energy.items()},
        strain={
            p: float(v)
            for p, v in zip(STRAIN_PERCENTILES, np.percentile(strain, STRAIN_PERCENTILES))
        },
        residual_rms=Spread.of(rms),
        residual_correlation_px=Spread.of(half),
        residual_ratio=Spread.of(ratio),
        noise_floor=Spread.of(noise),
        residual_fraction=float(outside.mean()),
        background_share=background / total if total > 0 else 0.0,
    )


def _read_faces(paths: Sequence[str]) -> list[np.ndarray]:
    out = []
    for path in paths:
        try:
            out.append(read_rgb(path))
        except ImageReadError as err:
            raise FlowCalibrationError(f"face crop {path}: {err}") from err
    return out


def calibrate_from_flows(
    flows: FlowImages,
    *,
    subjects: Collection[str] | None = None,
    exclude: Collection[str] = (),
    detector: LandmarkDetector | None = None,
    backend: str = "dlib",
    framing: CropFraming | None = None,
    base: CalibrationProfile | None = None,
    apex_peak_iod: float | None = None,
) -> CalibrationProfile:
    """A calibration profile from apex-flow images and face crops (module docs).

    Args:
        flows: the images (:func:`flow_images`, :func:`read_flow_records`); rows with a face
            path give the framing.
        subjects, exclude: calibrate on these subjects only / not on these (a fold's training
            subjects); recorded in ``source.real_subjects``.
        detector: landmark backend for the face crops (default: ``backend``).
        backend: ``dlib`` (offline) or ``face_alignment``.
        framing: an already measured framing (skips the face crops).
        base: spreads that flow images cannot measure (head motion, noise, drift, blinks);
            default: all zero and no blinks (as
            :func:`mesynth.calibration.adversarial.quiet_profile`).
        apex_peak_iod: the size anchor (IOD): default ``base``'s apex size, else the expert
            motion model's ``apex_iod``.

    Raises:
        FlowCalibrationError: bad subjects, no face crop and no ``framing``, an unreadable face
            crop (named), or no crop with landmarks.
    """
    from mesynth.face.framing import FramingError
    from mesynth.face.landmarks import create_detector

    chosen = select_subjects(flows, subjects, exclude)
    if framing is None:
        faces = sorted({f for f in chosen.faces if f})
        if not faces:
            raise FlowCalibrationError(
                "no face crop to measure the framing on: give the rows a `face` column (the "
                "subject's face crop) or pass framing="
            )
        detector = create_detector(backend) if detector is None else detector
        try:
            framing = measure_crop_framing(_read_faces(faces), detector, names=faces)
        except FramingError as err:
            raise FlowCalibrationError(str(err)) from err
    size = chosen.images.shape[1]
    landmarks = framing.mean * size
    if base is None:  # every effect off, no blinks (as the adversarial search's default base)
        base = CalibrationProfile.quiet(Framing.of_landmarks(framing.mean))
    stats = measure_flow_images(chosen.images, landmarks)
    anchor = apex_peak_iod
    if anchor is None:
        anchor = base.apex_peak_iod.median or MotionModel.expert().apex_iod
    if not anchor > 0:
        raise FlowCalibrationError(f"apex_peak_iod must be > 0, got {anchor}")
    iod_px = float(inter_ocular_distance(landmarks))
    apex = base.apex_peak_iod
    if apex_peak_iod is not None or apex.median <= 0:
        apex = Spread(anchor, APEX_QUARTILES[0] * anchor, APEX_QUARTILES[1] * anchor, 0)
    return dataclasses.replace(
        base,
        apex_peak_iod=apex,
        residual_rms_iod=_scaled(stats.residual_ratio, anchor),
        residual_correlation_iod=_scaled(stats.residual_correlation_px, 1.0 / iod_px),
        framing=Framing.of_landmarks(framing.mean),
        source={
            "method": "flow_images",
            "real_subjects": sorted(set(chosen.subjects)),
            "excluded_subjects": sorted(set(map(str, exclude))),
            "n_real": len(chosen),
            "n_faces": len(framing.sources),
            "apex_peak_anchor_iod": float(anchor),
            "flow_statistics": stats.to_dict(),
        },
    )


def _scaled(spread: Spread, factor: float) -> Spread:
    return Spread(spread.median * factor, spread.q25 * factor, spread.q75 * factor, spread.n)


def canonical_crop_framing() -> CropFraming:
    """The canonical crop's landmarks as a :class:`CropFraming` (for flows of canonical crops)."""
    points = normalise(canonical_landmarks(224), (224, 224))
    return CropFraming(points, points[None], ("canonical",))
