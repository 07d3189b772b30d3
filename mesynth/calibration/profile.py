"""A calibration profile: what real clips of one dataset look like, in numbers the renderer uses.

Written by :func:`mesynth.calibration.calibrate.calibrate`, saved as versioned YAML, read by
``mesynth generate realism=<profile.yaml>``. Every spread is the median and quartiles of one
per-clip measurement; the renderer draws per-clip values from a log-normal with that median and
inter-quartile range (:meth:`Spread.sample`).

Convention:
    Lengths are IOD units (multiples of the inter-ocular distance) unless named ``_px``; angles
    degrees; ``head_scale`` is ``|scale - 1|``; brightness drift is relative change per second;
    framing positions are fractions of the crop width (x) and height (y).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from mesynth.face.canonical import N_LANDMARKS

PROFILE_VERSION = 1
#: ``Phi^-1(0.75)``: a log-normal's quartiles are ``median * exp(+-0.6745 sigma)``.
_QUARTILE_Z = 0.6744897501960817


class ProfileError(ValueError):
    """A calibration profile is missing a key or holds a bad value; names the file and key."""


@dataclass(frozen=True)
class Spread:
    """Median and quartiles of a non-negative per-clip measurement (``n`` clips measured)."""

    median: float
    q25: float
    q75: float
    n: int = 0

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        """Summarise finite values (an empty input gives zeros, ``n = 0``)."""
        array = np.asarray([v for v in values if v is not None and np.isfinite(v)], float)
        if array.size == 0:
            return cls(0.0, 0.0, 0.0, 0)
        q25, median, q75 = np.percentile(array, [25, 50, 75])
        return cls(float(median), float(q25), float(q75), int(array.size))

    def sample(self, generator: np.random.Generator, size: int | None = None) -> np.ndarray:
        """Draw from the log-normal with this median and inter-quartile range.

        A zero median gives zeros; a zero lower quartile uses ``q75`` alone for the width.
        Always consumes the same number of draws, so a profile with a zero spread does not shift
        the random stream of the other effects.
        """
        normal = generator.standard_normal(size)
        if self.median <= 0:
            return np.zeros_like(normal)
        if self.q25 > 0 and self.q75 > self.q25:
            sigma = np.log(self.q75 / self.q25) / (2 * _QUARTILE_Z)
        elif self.q75 > self.median:
            sigma = np.log(self.q75 / self.median) / _QUARTILE_Z
        else:
            sigma = 0.0
        return self.median * np.exp(sigma * normal)

    def to_dict(self) -> dict[str, float | int]:
        return {"median": self.median, "q25": self.q25, "q75": self.q75, "n": self.n}


ZERO = Spread(0.0, 0.0, 0.0, 0)

REQUIRED_SPREADS = (
    "apex_peak_iod",
    "head_translation_iod",
    "head_rotation_deg",
    "head_scale",
    "residual_rms_iod",
    "residual_correlation_iod",
    "noise_sigma",
    "brightness_drift_per_s",
)
OPTIONAL_SPREADS = ("clip_head_translation_iod", "clip_head_rotation_deg")
#: every spread of a profile.
SPREADS = REQUIRED_SPREADS + OPTIONAL_SPREADS


@dataclass(frozen=True)
class Framing:
    """Where the face sits in the crop: eye and mouth centres as fractions of (W, H).

    Attributes:
        right_eye, left_eye, mouth: ``(x, y)`` centres, fractions of the crop width and height.
        iod_fraction: inter-ocular distance / crop width.
        landmarks: optional mean ``(68, 2)`` landmarks in the same fractions (measured on the
            target's own crops, :func:`mesynth.face.framing.measure_crop_framing`); what
            ``identities.framing=profile`` aligns faces to. Saved only when present.
    """

    right_eye: tuple[float, float]
    left_eye: tuple[float, float]
    mouth: tuple[float, float]
    iod_fraction: float
    landmarks: tuple[tuple[float, float], ...] | None = None

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "right_eye": list(self.right_eye),
            "left_eye": list(self.left_eye),
            "mouth": list(self.mouth),
            "iod_fraction": self.iod_fraction,
        }
        if self.landmarks is not None:
            out["landmarks"] = [[round(float(x), 6), round(float(y), 6)] for x, y in self.landmarks]
        return out

    def target(self) -> np.ndarray:
        """What faces are aligned to: the ``(68, 2)`` landmarks when measured, else the
        ``(3, 2)`` right-eye, left-eye and mouth centres (normalised)."""
        if self.landmarks is not None:
            return np.asarray(self.landmarks, dtype=np.float64)
        return np.array([self.right_eye, self.left_eye, self.mouth], dtype=np.float64)

    @classmethod
    def of_landmarks(cls, landmarks: np.ndarray) -> Framing:
        """The framing of normalised ``(68, 2)`` landmarks of a square crop, landmarks kept."""
        points = np.asarray(landmarks, dtype=np.float64)
        right = points[36:42].mean(0)
        left = points[42:48].mean(0)
        return cls(
            right_eye=(float(right[0]), float(right[1])),
            left_eye=(float(left[0]), float(left[1])),
            mouth=tuple(float(v) for v in points[48:68].mean(0)),
            iod_fraction=float(np.linalg.norm(left - right)),
            landmarks=tuple((float(x), float(y)) for x, y in points),
        )


@dataclass(frozen=True)
class CalibrationProfile:
    """Measured statistics of a real dataset (see the module docs for units).

    Attributes:
        apex_peak_iod: largest non-rigid landmark displacement onset -> apex per clip.
        per_au_peak_iod: the same, over the clips coding each AU.
        motion_kind: ``"fitted"`` (``motion_basis`` learned by ridge regression) or
            ``"expert"`` (the expert basis, rescaled to ``apex_peak_iod`` by the generator).
        motion_basis: ``{code: (68, 2)}`` fitted bases in IOD units (``None`` for expert).
        head_translation_iod, head_rotation_deg, head_scale: rigid motion onset -> apex.
        clip_head_translation_iod, clip_head_rotation_deg: the largest rigid motion over the
            frames read from each clip (zero spreads when clips had only onset and apex).
        residual_rms_iod: RMS of the non-rigid flow outside every annotated AU region.
        residual_correlation_iod: half-correlation length of that flow (autocorrelation 0.5).
        noise_sigma: sensor noise, grey levels (0-255).
        brightness_drift_per_s: absolute relative brightness change per second.
        blink_rate_per_s: eye-aspect-ratio dips per second (``None``: clips too short).
        framing: eye/mouth placement in the crop.
        source: where and how it was measured (counts, datasets, backend, flow method...).
    """

    apex_peak_iod: Spread
    head_translation_iod: Spread
    head_rotation_deg: Spread
    head_scale: Spread
    residual_rms_iod: Spread
    residual_correlation_iod: Spread
    noise_sigma: Spread
    brightness_drift_per_s: Spread
    framing: Framing
    per_au_peak_iod: Mapping[int, Spread] = field(default_factory=dict)
    motion_kind: str = "expert"
    motion_basis: Mapping[int, np.ndarray] | None = None
    clip_head_translation_iod: Spread = ZERO
    clip_head_rotation_deg: Spread = ZERO
    blink_rate_per_s: float | None = None
    source: Mapping[str, object] = field(default_factory=dict)
    version: int = PROFILE_VERSION

    @classmethod
    def quiet(cls, framing: Framing) -> CalibrationProfile:
        """Every effect at zero and no blinks, in ``framing`` (the searches' default base)."""
        return cls(**{name: ZERO for name in SPREADS}, framing=framing, blink_rate_per_s=0.0)

    def to_dict(self) -> dict[str, object]:
        """YAML-ready nested dict (the file format)."""
        spreads = {name: getattr(self, name).to_dict() for name in SPREADS}
        basis = None
        if self.motion_basis is not None:
            basis = {
                int(code): np.round(np.asarray(b), 6).tolist()
                for code, b in sorted(self.motion_basis.items())
            }
        return {
            "version": self.version,
            "source": dict(self.source),
            **spreads,
            "per_au_peak_iod": {
                int(k): v.to_dict() for k, v in sorted(self.per_au_peak_iod.items())
            },
            "motion": {"kind": self.motion_kind, "basis": basis},
            "blink_rate_per_s": self.blink_rate_per_s,
            "framing": self.framing.to_dict(),
        }

    def save(self, path: str | Path) -> Path:
        """Write the profile as YAML (parent folders are created)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            "# mesynth calibration profile (units: see mesynth.calibration.profile)\n"
            + yaml.safe_dump(_plain(self.to_dict()), sort_keys=False)
        )
        return path

    @classmethod
    def load(cls, path: str | Path) -> CalibrationProfile:
        """Read and validate a profile file.

        Raises:
            ProfileError: unreadable YAML, wrong version, a missing key or a bad value (the
                message names the file and the key).
        """
        path = Path(path)
        if not path.is_file():
            raise ProfileError(f"{path}: calibration profile not found")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise ProfileError(f"{path}: not valid YAML ({err})") from err
        return cls.from_dict(data, str(path))

    @classmethod
    def from_dict(cls, data: object, where: str = "<profile>") -> CalibrationProfile:
        """Validate a nested dict in the file format (``where`` names it in errors)."""
        reader = _Reader(data, where)
        version = reader.integer("version")
        if version != PROFILE_VERSION:
            raise ProfileError(
                f"{where}: key 'version' is {version}; this mesynth reads version {PROFILE_VERSION}"
            )
        spreads = {name: reader.spread(name) for name in REQUIRED_SPREADS}
        spreads |= {name: reader.spread(name) for name in OPTIONAL_SPREADS if name in reader.data}
        per_au_raw = reader.mapping("per_au_peak_iod", required=False) or {}
        per_au = {}
        for code, value in per_au_raw.items():
            key = f"per_au_peak_iod.{code}"
            if not str(code).isdigit():
                raise ProfileError(f"{where}: key '{key}' must be an AU number")
            per_au[int(code)] = _Reader({"x": value}, where).spread("x", key)
        motion = reader.mapping("motion")
        kind = motion.get("kind")
        if kind not in ("expert", "fitted"):
            raise ProfileError(f"{where}: key 'motion.kind' must be expert or fitted, got {kind!r}")
        basis = _read_basis(motion.get("basis"), where) if kind == "fitted" else None
        blink = reader.data.get("blink_rate_per_s")
        if blink is not None and not (_is_number(blink) and blink >= 0):
            raise ProfileError(f"{where}: key 'blink_rate_per_s' must be >= 0 or null")
        source = reader.mapping("source", required=False) or {}
        return cls(
            **spreads,
            framing=reader.framing("framing"),
            per_au_peak_iod=per_au,
            motion_kind=kind,
            motion_basis=basis,
            blink_rate_per_s=None if blink is None else float(blink),
            source=dict(source),
            version=version,
        )


def _plain(value: object) -> object:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


def _read_basis(raw: object, where: str) -> dict[int, np.ndarray]:
    if not isinstance(raw, dict) or not raw:
        raise ProfileError(f"{where}: key 'motion.basis' must map AU numbers to 68 [dx, dy] rows")
    out = {}
    for code, rows in raw.items():
        try:
            array = np.asarray(rows, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ProfileError(f"{where}: key 'motion.basis.{code}' is not numeric") from err
        if array.shape != (N_LANDMARKS, 2) or not np.isfinite(array).all():
            raise ProfileError(
                f"{where}: key 'motion.basis.{code}' must be 68 finite [dx, dy] rows, "
                f"got shape {array.shape}"
            )
        out[int(code)] = array
    return out


class _Reader:
    def __init__(self, data: object, where: str) -> None:
        if not isinstance(data, dict):
            raise ProfileError(f"{where}: a calibration profile must be a mapping")
        self.data, self.where = data, where

    def _get(self, key: str, label: str | None = None) -> object:
        if key not in self.data:
            raise ProfileError(f"{self.where}: missing key '{label or key}'")
        return self.data[key]

    def integer(self, key: str) -> int:
        value = self._get(key)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ProfileError(f"{self.where}: key '{key}' must be an integer, got {value!r}")
        return value

    def mapping(self, key: str, required: bool = True) -> dict | None:
        if not required and self.data.get(key) is None:
            return None
        value = self._get(key)
        if not isinstance(value, dict):
            raise ProfileError(f"{self.where}: key '{key}' must be a mapping, got {value!r}")
        return value

    def spread(self, key: str, label: str | None = None) -> Spread:
        label = label or key
        value = self._get(key, label)
        if not isinstance(value, dict):
            raise ProfileError(f"{self.where}: key '{label}' must have median, q25, q75")
        numbers = {}
        for part in ("median", "q25", "q75"):
            if part not in value:
                raise ProfileError(f"{self.where}: missing key '{label}.{part}'")
            if not _is_number(value[part]) or value[part] < 0:
                raise ProfileError(
                    f"{self.where}: key '{label}.{part}' must be a number >= 0, got {value[part]!r}"
                )
            numbers[part] = float(value[part])
        if not numbers["q25"] <= numbers["median"] <= numbers["q75"]:
            raise ProfileError(f"{self.where}: key '{label}' needs q25 <= median <= q75")
        n = value.get("n", 0)
        if not isinstance(n, int) or n < 0:
            raise ProfileError(f"{self.where}: key '{label}.n' must be a count >= 0")
        return Spread(numbers["median"], numbers["q25"], numbers["q75"], n)

    def framing(self, key: str) -> Framing:
        value = self.mapping(key)
        points = {}
        for part in ("right_eye", "left_eye", "mouth"):
            point = value.get(part)
            if (
                not isinstance(point, list)
                or len(point) != 2
                or not all(_is_number(v) for v in point)
            ):
                raise ProfileError(f"{self.where}: key '{key}.{part}' must be [x, y] fractions")
            points[part] = (float(point[0]), float(point[1]))
        iod = value.get("iod_fraction")
        if not _is_number(iod) or not 0 < iod < 1:
            raise ProfileError(f"{self.where}: key '{key}.iod_fraction' must be in (0, 1)")
        landmarks = value.get("landmarks")
        if landmarks is not None:
            ok = isinstance(landmarks, list) and len(landmarks) == N_LANDMARKS
            ok = ok and all(
                isinstance(p, list) and len(p) == 2 and all(_is_number(v) for v in p)
                for p in landmarks
            )
            if not ok:
                raise ProfileError(
                    f"{self.where}: key '{key}.landmarks' must be 68 [x, y] fractions or absent"
                )
            landmarks = tuple((float(x), float(y)) for x, y in landmarks)
        return Framing(**points, iod_fraction=float(iod), landmarks=landmarks)
