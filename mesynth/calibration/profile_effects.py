"""Realism drawn from a calibration profile: render clips that measure like a real dataset.

:class:`ProfileEffects` turns a :class:`~mesynth.calibration.profile.CalibrationProfile` into
per-clip :class:`~mesynth.render.effects.EffectParams`. Every value is drawn from the profile's
log-normal spread (:meth:`~mesynth.calibration.profile.Spread.sample`) with the clip's own
generator, in a fixed order, whatever effects are on:

* **head motion onset -> apex**: a similarity of the measured size (translation in a uniformly
  random direction, rotation and scale change with random signs), reached at the apex along the
  clip's expression envelope; plus smooth sinusoidal motion over the clip whose amplitude is the
  measured clip-long motion beyond it, zero at onset *and* apex;
* **skin motion**: a band-limited random field (:mod:`mesynth.render.skin_motion`) of the measured
  residual RMS and half-correlation length, growing with the envelope;
* **sensor noise**: the measured grey-level sigma, converted to independent RGB noise;
* **brightness drift**: the measured relative change per second, random sign;
* **blinks**: one blink with probability ``1 - exp(-rate * duration)`` (Poisson at the
  measured rate, at most one per clip).

The measured apex size sets the motion model's ``apex_iod`` (:func:`apex_iod_for_peak`).

Convention:
    The profile is in IOD units; parameters are converted to pixels with the rendered
    identity's IOD (``iod_px``). Grey levels are 0-255.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mesynth.calibration.profile import CalibrationProfile, ProfileError
from mesynth.render.effects import EffectParams, EffectsConfig

if TYPE_CHECKING:
    from mesynth.motion.au_basis import MotionModel
    from mesynth.templates.bank import TemplateBank

#: std of ``0.299 R + 0.587 G + 0.114 B`` (OpenCV's grey) for unit iid noise per channel.
GRAY_NOISE_FACTOR = float(np.sqrt(0.299**2 + 0.587**2 + 0.114**2))
#: blink duration range, seconds (as :class:`mesynth.render.effects.EffectsConfig`).
BLINK_DURATION_S = (0.10, 0.20)


@dataclass(frozen=True, kw_only=True)
class ProfileSwitches:
    """Which profile-driven effects are on (keyword-only; all on by default)."""

    head_motion: bool = True
    skin_motion: bool = True
    noise: bool = True
    drift: bool = True
    blinks: bool = True

    def switches(self) -> dict[str, bool]:
        """The switches as keywords (for building a sibling with the same ones)."""
        return {f.name: getattr(self, f.name) for f in fields(ProfileSwitches)}


@dataclass(frozen=True)
class ProfileEffects(ProfileSwitches):
    """Render effects with per-clip values drawn from a calibration profile.

    Attributes:
        profile: the measured statistics.
        path: the file it was read from (recorded in the store's ``meta.json``), if any.
        head_motion, skin_motion, noise, drift, blinks: switch single effects off
            (:class:`ProfileSwitches`).
    """

    profile: CalibrationProfile
    path: str | None = None

    @classmethod
    def load(cls, path: str | Path | None, **switches: bool) -> ProfileEffects:
        """Read a profile file (``mesynth calibrate`` writes them).

        Raises:
            ProfileError: no path given, or the file is missing or malformed (the message names
                the file and the key).
        """
        if path is None or str(path).strip() == "":
            raise ProfileError(
                "no calibration profile given: pass a path "
                "(mesynth generate recipe/effects=profile recipe.effects.path=profile.yaml)"
            )
        return cls(CalibrationProfile.load(path), str(path), **switches)

    def sample(
        self,
        duration_s: float,
        apex_s: float,
        iod_px: float,
        generator: np.random.Generator,
    ) -> EffectParams:
        """Draw one clip's parameters (see the module docs).

        Args:
            duration_s: onset -> offset, seconds.
            apex_s: onset -> apex, seconds.
            iod_px: the identity's inter-ocular distance in crop pixels.
            generator: the clip's generator.
        """
        p = self.profile
        translation = p.head_translation_iod.sample(generator) * iod_px
        direction = generator.uniform(0.0, 2 * np.pi)
        rotation = np.deg2rad(p.head_rotation_deg.sample(generator)) * _sign(generator)
        scale = p.head_scale.sample(generator) * _sign(generator)
        clip_translation = p.clip_head_translation_iod.sample(generator) * iod_px
        clip_rotation = np.deg2rad(p.clip_head_rotation_deg.sample(generator))
        frequencies = generator.uniform(0.5, 3.0, (4, 2))
        phases = generator.uniform(0.0, 2 * np.pi, (4, 2))
        directions = generator.uniform(-1.0, 1.0, 2)
        skin_rms = p.residual_rms_iod.sample(generator) * iod_px
        skin_half = p.residual_correlation_iod.sample(generator) * iod_px
        skin_seed = int(generator.integers(2**63 - 1))
        sigma = p.noise_sigma.sample(generator) / GRAY_NOISE_FACTOR
        drift = p.brightness_drift_per_s.sample(generator) * _sign(generator)
        rate = p.blink_rate_per_s or 0.0
        has_blink = generator.random() < 1.0 - np.exp(-rate * duration_s)
        blink_duration = generator.uniform(*BLINK_DURATION_S)
        blink_start = generator.uniform(-0.5 * blink_duration, max(duration_s, 1e-3))
        blink_depth = generator.uniform(0.6, 1.0)

        # sinusoids: the clip-long motion beyond the onset -> apex motion, per axis
        extra_translation = max(float(clip_translation) - float(translation), 0.0)
        extra_rotation = max(float(clip_rotation) - abs(float(rotation)), 0.0)
        amplitudes = (
            extra_translation * directions[0],
            extra_translation * directions[1],
            extra_rotation * _unit(directions[0] * directions[1]),
            0.0,
        )
        head = self.head_motion
        blink = self.blinks and has_blink
        skin = self.skin_motion and skin_rms > 0 and skin_half > 0
        return EffectParams(
            head_amplitudes=tuple(float(a) for a in amplitudes) if head else (0.0,) * 4,
            head_frequencies=_pairs(frequencies) if head else ((0.0, 0.0),) * 4,
            head_phases=_pairs(phases) if head else ((0.0, 0.0),) * 4,
            head_apex=(
                float(translation * np.cos(direction)),
                float(translation * np.sin(direction)),
                float(rotation),
                float(scale),
            )
            if head
            else (0.0,) * 4,
            head_pinned_at_apex=head,
            blink_start_s=float(blink_start) if blink else None,
            blink_duration_s=float(blink_duration) if blink else 0.0,
            blink_depth=float(blink_depth) if blink else 0.0,
            noise_sigma=float(sigma) if self.noise else 0.0,
            skin_rms_px=float(skin_rms) if skin else 0.0,
            skin_half_correlation_px=float(skin_half) if skin else 0.0,
            skin_seed=skin_seed if skin else 0,
            drift_per_s=float(drift) if self.drift else 0.0,
        )

    def describe(self) -> dict[str, object]:
        """What determines the clips (hashed into the store's configuration)."""
        return {
            "kind": "profile",
            "path": self.path,
            "profile": self.profile.to_dict(),
            "switches": {
                "head_motion": self.head_motion,
                "skin_motion": self.skin_motion,
                "noise": self.noise,
                "drift": self.drift,
                "blinks": self.blinks,
            },
        }


def _sign(generator: np.random.Generator) -> float:
    return 1.0 if generator.random() < 0.5 else -1.0


def _unit(value: float) -> float:
    return 1.0 if value >= 0 else -1.0


def _pairs(values: np.ndarray) -> tuple[tuple[float, float], ...]:
    return tuple((float(a), float(b)) for a, b in values)


#: Render-time effects: fixed ranges or drawn from a calibration profile.
Effects = EffectsConfig | ProfileEffects


def resolve_effects(spec: object) -> Effects:
    """The effects of ``generate(effects=...)``.

    Args:
        spec: ``None`` or ``"none"`` (all effects off), ``"default"`` or ``"full"`` (every
            effect of :class:`~mesynth.render.effects.EffectsConfig` on, its default ranges), a
            :class:`EffectsConfig`, a :class:`ProfileEffects`, a
            :class:`~mesynth.calibration.profile.CalibrationProfile`, or the path of a profile
            file.

    Raises:
        ProfileError: a path that is not a readable, valid profile.
        TypeError: any other value.
    """
    if spec is None or spec == "none":
        return EffectsConfig()
    if spec in ("default", "full"):
        return EffectsConfig(head_motion=True, blinks=True, noise=True, flicker=True, jpeg=True)
    if isinstance(spec, (EffectsConfig, ProfileEffects)):
        return spec
    if isinstance(spec, CalibrationProfile):
        return ProfileEffects(spec)
    if isinstance(spec, (str, Path)):
        return ProfileEffects.load(spec)
    raise TypeError(
        "effects must be None, 'none', 'full', an EffectsConfig, a CalibrationProfile, a "
        f"ProfileEffects or a profile path; got {type(spec).__name__}"
    )


def apex_size_ratio(
    bank: TemplateBank, motion: MotionModel, draws: int = 2000, seed: int = 0
) -> float:
    """Median apex size of the bank's expressions for a unit motion model.

    Draws ``draws`` template instances (emotions in turn, a fixed generator) and takes the
    largest landmark displacement of ``motion.calibrated(1.0).displacement(aus)``: the apex size,
    in IOD units, of a typical clip when every single AU at intensity 1 moves its largest point
    1 IOD. Templates combine several AUs at intensities below 1, so this is not 1 (the expert
    dfme7 bank gives about 0.8).
    """
    unit = motion.calibrated(1.0)
    generator = np.random.default_rng(seed)
    emotions = bank.emotions
    sizes = []
    for i in range(draws):
        aus = bank.sample(emotions[i % len(emotions)], generator).aus
        if aus:
            sizes.append(float(np.linalg.norm(unit.displacement(aus), axis=1).max()))
    if not sizes:
        raise ValueError("the template bank draws no AUs; cannot convert an apex size")
    return float(np.median(sizes))


def apex_iod_for_peak(peak_iod: float, bank: TemplateBank, motion: MotionModel) -> float:
    """The motion model's ``apex_iod`` (single AU, intensity 1) that makes the median clip of
    ``bank`` reach the measured median apex size ``peak_iod`` (IOD units):
    ``apex_iod = peak_iod / apex_size_ratio(bank, motion)``."""
    if not peak_iod > 0:
        raise ProfileError(f"the profile's apex_peak_iod median must be > 0, got {peak_iod}")
    return peak_iod / apex_size_ratio(bank, motion)


def calibrated_motion(
    motion: MotionModel, profile: CalibrationProfile, bank: TemplateBank
) -> MotionModel:
    """``motion`` rescaled so the bank's median clip has the profile's median apex size."""
    return motion.calibrated(apex_iod_for_peak(profile.apex_peak_iod.median, bank, motion))
