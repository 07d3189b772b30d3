"""Realism effects for synthetic clips: head micro-motion, blinks, sensor noise, flicker, JPEG,
brightness drift and smooth random skin motion.

Each effect is switchable (:class:`EffectsConfig`; or drawn from a measured calibration profile,
:class:`mesynth.calibration.profile_effects.ProfileEffects`). Its random parameters are drawn once
per
clip from the clip's own generator (:func:`sample_effects`), and every effect is an analytic
function of the full-rate frame position, so a key-frame clip shows exactly the frames the
full-rate clip would show at those positions. Noise for frame ``f`` of a clip comes from a
generator seeded with ``(clip seed, f)``.

Convention:
    Frame positions are full-rate frame numbers (onset = 0); times are ``position / fps``.
    Head motion is a small similarity expressed as a *backward* map about the crop centre
    (see :func:`mesynth.render.warp.apply_backward_affine`); it is zero at the onset frame so the
    onset
    frame stays aligned to the canonical face. Displacements are pixels, ``(x, y)``, y down.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np
import torch

from mesynth.render.skin_motion import smooth_random_field
from mesynth.render.warp import to_uint8

# eyelid landmarks (iBUG 68): upper lid points and the lower lid points below them
UPPER_LID = np.array([37, 38, 43, 44])
LOWER_LID = np.array([41, 40, 47, 46])


@dataclass(frozen=True)
class EffectsConfig:
    """Which effects are on, and the ranges their per-clip parameters are drawn from.

    Attributes:
        head_motion: small per-frame similarity jitter.
        head_translation_px: peak translation (pixels at the output size).
        head_rotation_deg: peak in-plane rotation.
        head_scale: peak relative scale change.
        blinks: AU45-like eyelid closure: the upper lid slides down over the eye.
        blink_probability: chance that a clip contains one blink.
        blink_duration_s: (min, max) blink duration.
        noise: additive Gaussian sensor noise.
        noise_sigma: (min, max) noise standard deviation, grey levels.
        flicker: slow brightness oscillation.
        flicker_amplitude: peak relative brightness change.
        jpeg: JPEG re-encoding of every frame.
        jpeg_quality: (min, max) JPEG quality.
    """

    head_motion: bool = False
    head_translation_px: float = 0.6
    head_rotation_deg: float = 0.3
    head_scale: float = 0.003
    blinks: bool = False
    blink_probability: float = 0.3
    blink_duration_s: tuple[float, float] = (0.10, 0.20)
    noise: bool = False
    noise_sigma: tuple[float, float] = (0.5, 2.0)
    flicker: bool = False
    flicker_amplitude: float = 0.02
    jpeg: bool = False
    jpeg_quality: tuple[int, int] = (75, 95)

    def __post_init__(self) -> None:
        for name in ("blink_duration_s", "noise_sigma", "jpeg_quality"):
            value = tuple(getattr(self, name))  # YAML and Hydra give lists
            object.__setattr__(self, name, value)
            if len(value) != 2 or not 0 <= value[0] <= value[1]:
                raise ValueError(f"EffectsConfig.{name} must be (min, max) with 0 <= min <= max")
        if not 0 <= self.blink_probability <= 1:
            raise ValueError("EffectsConfig.blink_probability must be in [0, 1]")
        if not (1 <= self.jpeg_quality[0] and self.jpeg_quality[1] <= 100):
            raise ValueError("EffectsConfig.jpeg_quality must lie in [1, 100]")


@dataclass(frozen=True)
class EffectParams:
    """Per-clip realism parameters (all zero / ``None`` for an effect that is off).

    Attributes:
        head_amplitudes: ``(4,)`` peak tx, ty (px), rotation (rad), scale.
        head_frequencies: ``(4, 2)`` Hz of two sinusoids per motion component.
        head_phases: ``(4, 2)`` radians.
        blink_start_s, blink_duration_s, blink_depth: a blink, or ``None``.
        noise_sigma: grey levels (0 = no noise).
        flicker_amplitude, flicker_frequency, flicker_phase: brightness oscillation.
        jpeg_quality: 0 = no re-encoding.
        head_apex: ``(4,)`` forward tx, ty (px), rotation (rad), scale change reached at the
            apex along the expression envelope (:func:`head_affines`).
        head_pinned_at_apex: the sinusoidal head motion is also zero at the apex, so the
            onset -> apex head motion is exactly ``head_apex``.
        skin_rms_px, skin_half_correlation_px, skin_seed: smooth random skin motion at the apex
            (:func:`skin_field`); ``skin_rms_px = 0`` = none.
        drift_per_s: linear relative brightness change per second.
    """

    head_amplitudes: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)
    head_frequencies: tuple[tuple[float, float], ...] = ((0.0, 0.0),) * 4
    head_phases: tuple[tuple[float, float], ...] = ((0.0, 0.0),) * 4
    blink_start_s: float | None = None
    blink_duration_s: float = 0.0
    blink_depth: float = 0.0
    noise_sigma: float = 0.0
    flicker_amplitude: float = 0.0
    flicker_frequency: float = 0.0
    flicker_phase: float = 0.0
    jpeg_quality: int = 0
    head_apex: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)
    head_pinned_at_apex: bool = False
    skin_rms_px: float = 0.0
    skin_half_correlation_px: float = 0.0
    skin_seed: int = 0
    drift_per_s: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def sample_effects(
    config: EffectsConfig, duration_s: float, generator: np.random.Generator
) -> EffectParams:
    """Draw one clip's realism parameters. Every effect draws even when off, so switching one
    effect never changes the parameters of another."""
    amplitudes = generator.uniform(-1.0, 1.0, 4) * np.array(
        [
            config.head_translation_px,
            config.head_translation_px,
            np.deg2rad(config.head_rotation_deg),
            config.head_scale,
        ]
    )
    frequencies = generator.uniform(0.5, 3.0, (4, 2))
    phases = generator.uniform(0.0, 2 * np.pi, (4, 2))
    has_blink = generator.random() < config.blink_probability
    blink_duration = generator.uniform(*config.blink_duration_s)
    blink_start = generator.uniform(-0.5 * blink_duration, max(duration_s, 1e-3))
    blink_depth = generator.uniform(0.6, 1.0)
    sigma = generator.uniform(*config.noise_sigma)
    flicker = (
        generator.uniform(0.0, config.flicker_amplitude),
        generator.uniform(1.0, 10.0),
        generator.uniform(0.0, 2 * np.pi),
    )
    quality = int(generator.integers(config.jpeg_quality[0], config.jpeg_quality[1] + 1))
    head = config.head_motion
    blink = config.blinks and has_blink
    return EffectParams(
        head_amplitudes=tuple(float(a) for a in amplitudes) if head else (0.0,) * 4,
        head_frequencies=_pairs(frequencies) if head else ((0.0, 0.0),) * 4,
        head_phases=_pairs(phases) if head else ((0.0, 0.0),) * 4,
        blink_start_s=float(blink_start) if blink else None,
        blink_duration_s=float(blink_duration) if blink else 0.0,
        blink_depth=float(blink_depth) if blink else 0.0,
        noise_sigma=float(sigma) if config.noise else 0.0,
        flicker_amplitude=float(flicker[0]) if config.flicker else 0.0,
        flicker_frequency=float(flicker[1]) if config.flicker else 0.0,
        flicker_phase=float(flicker[2]) if config.flicker else 0.0,
        jpeg_quality=quality if config.jpeg else 0,
    )


def _pairs(values: np.ndarray) -> tuple[tuple[float, float], ...]:
    return tuple((float(a), float(b)) for a, b in values)


def head_affines(
    params: EffectParams,
    times_s: np.ndarray,
    envelope: np.ndarray | None = None,
    apex_s: float | None = None,
) -> np.ndarray | None:
    """Backward similarity per frame, ``(T, 2, 3)``, or ``None`` when the head is still.

    Each sinusoidal component (tx, ty, rotation, scale) is ``a * (s(t) - s(0)) / 2`` with ``s``
    the sum of two sinusoids, so motion is smooth, bounded by the amplitude, and zero at the
    onset. With ``params.head_pinned_at_apex`` it becomes ``w(t) - envelope(t) w(apex_s)``: zero
    at the apex too. The forward apex motion ``params.head_apex`` is added along the envelope,
    as the backward components ``-envelope(t) * head_apex`` (first-order inverse; the error is
    the product of two micro-motions, below 0.01 px).

    Args:
        params: the clip's realism parameters.
        times_s: ``(T,)`` seconds since onset.
        envelope: ``(T,)`` expression envelope (0 at onset, 1 at apex); needed with
            ``head_apex`` or ``head_pinned_at_apex``.
        apex_s: apex time, needed with ``head_pinned_at_apex``.
    """
    amplitudes = np.asarray(params.head_amplitudes)
    apex_motion = np.asarray(params.head_apex, dtype=np.float64)
    if not amplitudes.any() and not apex_motion.any():
        return None
    freq = np.asarray(params.head_frequencies)[None]  # (1, 4, 2)
    phase = np.asarray(params.head_phases)[None]
    t = np.asarray(times_s, dtype=np.float64)[:, None, None]
    wave = np.sin(2 * np.pi * freq * t + phase) - np.sin(phase)
    components = amplitudes * wave.sum(-1) / 2.0  # (T, 4)
    if params.head_pinned_at_apex or apex_motion.any():
        if envelope is None or (params.head_pinned_at_apex and apex_s is None):
            raise ValueError("head_affines needs the envelope (and apex_s) for apex head motion")
        envelope = np.asarray(envelope, dtype=np.float64)[:, None]
        if params.head_pinned_at_apex:
            at_apex = np.sin(2 * np.pi * freq[0] * apex_s + phase[0]) - np.sin(phase[0])
            components = components - envelope * (amplitudes * at_apex.sum(-1) / 2.0)
        components = components - envelope * apex_motion
    tx, ty, rot, scale = components.T
    cos, sin = np.cos(rot) * (1 + scale), np.sin(rot) * (1 + scale)
    out = np.zeros((len(times_s), 2, 3))
    out[:, 0, 0], out[:, 0, 1], out[:, 0, 2] = cos, -sin, tx
    out[:, 1, 0], out[:, 1, 1], out[:, 1, 2] = sin, cos, ty
    return out


def skin_field(params: EffectParams, size: tuple[int, int]) -> np.ndarray | None:
    """The clip's skin-motion field at the apex, ``(H, W, 2)`` backward pixel offsets, or
    ``None`` without skin motion.

    Drawn by :func:`mesynth.render.skin_motion.smooth_random_field` from a generator seeded with
    ``params.skin_seed``; the renderer scales it by the expression envelope. The field's
    distribution is symmetric, so as a backward offset it has the statistics of the forward
    motion it stands for (to first order).
    """
    if params.skin_rms_px <= 0:
        return None
    return smooth_random_field(
        size,
        params.skin_rms_px,
        params.skin_half_correlation_px,
        np.random.default_rng(params.skin_seed),
    )


def blink_closure(params: EffectParams, times_s: np.ndarray) -> np.ndarray:
    """Eyelid closure in ``[0, 1]`` per frame, ``(T,)``: a raised-cosine pulse times the depth."""
    times_s = np.asarray(times_s, dtype=np.float64)
    if params.blink_start_s is None or params.blink_duration_s <= 0:
        return np.zeros(len(times_s))
    phase = (times_s - params.blink_start_s) / params.blink_duration_s
    pulse = np.where((phase > 0) & (phase < 1), 0.5 - 0.5 * np.cos(2 * np.pi * phase), 0.0)
    return params.blink_depth * pulse


def blink_displacements(landmarks: np.ndarray, closure: np.ndarray) -> np.ndarray:
    """Landmark displacements ``(T, 68, 2)`` closing the eyes by ``closure`` ``(T,)``.

    The landmark view of a blink: the upper lid points travel ``closure`` of the way to the
    lower lid points, which stay put (at closure 1 the lids meet). The renderer draws the same
    lid motion as an occlusion over a static eyeball (:mod:`mesynth.render.eyelids`), not as a
    warp of these points.
    """
    landmarks = np.asarray(landmarks, dtype=np.float64)
    closure = np.asarray(closure, dtype=np.float64)
    gap = landmarks[LOWER_LID] - landmarks[UPPER_LID]  # (4, 2)
    out = np.zeros((len(closure), len(landmarks), 2))
    out[:, UPPER_LID] = closure[:, None, None] * gap
    return out


def flicker_gains(params: EffectParams, times_s: np.ndarray) -> np.ndarray:
    """Brightness gain per frame ``(T,)``, 1 at the onset: the flicker oscillation times the
    linear drift ``1 + drift_per_s * t``."""
    t = np.asarray(times_s, dtype=np.float64)
    gains = np.ones(len(t))
    if params.flicker_amplitude != 0:
        wave = np.sin(2 * np.pi * params.flicker_frequency * t + params.flicker_phase)
        gains = 1.0 + params.flicker_amplitude * (wave - np.sin(params.flicker_phase))
    if params.drift_per_s != 0:
        gains = gains * (1.0 + params.drift_per_s * t)
    return gains


def finish_frames(
    frames: torch.Tensor,
    params: EffectParams,
    frame_numbers: np.ndarray,
    times_s: np.ndarray,
    clip_seed: int,
    *,
    overwrite: bool = False,
) -> np.ndarray:
    """Photometric effects and quantisation: float ``(T, H, W, C)`` 0-255 RGB -> uint8 array.

    Order: flicker and drift gain, sensor noise (drawn on the CPU per frame from a generator
    seeded with ``(clip_seed, frame number)``, so it does not depend on the device), rounding,
    JPEG round trip. ``overwrite=True`` lets the rounding reuse ``frames``' memory (frames that
    are not read again, see :func:`~mesynth.render.warp.to_uint8`).
    """
    # channel-first view: the renderer's frames are views of a (B, C, T, H, W) batch, where
    # every channel plane is contiguous and the (H, W, C) order is not
    out = frames.permute(3, 0, 1, 2)
    owned = overwrite
    if params.flicker_amplitude != 0 or params.drift_per_s != 0:
        gains = torch.as_tensor(flicker_gains(params, times_s), dtype=out.dtype)
        out = out * gains.to(out.device)[None, :, None, None]
        owned = True
    if params.noise_sigma > 0:
        noise = np.stack(
            [
                np.random.default_rng([clip_seed, int(number)]).standard_normal(
                    tuple(frames.shape[1:]), dtype=np.float32
                )
                for number in frame_numbers
            ]
        )
        noise = torch.from_numpy(noise * np.float32(params.noise_sigma)).to(out.device)
        out = out + noise.permute(3, 0, 1, 2)
        owned = True
    return compress_frames(to_uint8(out.permute(1, 2, 3, 0), overwrite=owned), params)


def changes_brightness(params: EffectParams) -> bool:
    """Whether :func:`finish_frames` changes a clip's float frames before rounding them
    (flicker, drift or sensor noise); without it a clip is just rounded and compressed."""
    return params.flicker_amplitude != 0 or params.drift_per_s != 0 or params.noise_sigma > 0


def compress_frames(quantised: np.ndarray, params: EffectParams) -> np.ndarray:
    """The last step of :func:`finish_frames`: the JPEG round trip of ``(T, H, W, 3)`` uint8
    frames when ``params.jpeg_quality > 0``, else the frames themselves."""
    if params.jpeg_quality > 0:
        return np.stack([jpeg_round_trip(f, params.jpeg_quality) for f in quantised])
    return quantised


def jpeg_round_trip(frame: np.ndarray, quality: int) -> np.ndarray:
    """Encode an ``(H, W, 3)`` uint8 RGB frame as JPEG and decode it again."""
    ok, data = cv2.imencode(".jpg", frame[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("OpenCV failed to JPEG-encode a frame")
    return cv2.imdecode(data, cv2.IMREAD_COLOR)[:, :, ::-1]
