"""What a model wants as input, resolved from its declared config (as timm's
``resolve_data_config`` does): normalisation, pixel scaling, frame size and clip length.

Convention (pixel scaling, then normalisation, per channel)::

    unit:       y = x / 255              in [0, 1]
    symmetric:  y = x / 127.5 - 1        in [-1, 1]
    input = (y - mean) / std

with ``x`` the uint8 pixel. Hara's 3D-ResNets take ``unit`` with their Kinetics statistics,
torchvision's video models ``unit`` with theirs, I3D ``symmetric`` with mean 0 and std 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

#: pixel scaling -> ``(multiplier, offset)`` applied to uint8 values
INPUT_SCALES = {"unit": (1.0 / 255.0, 0.0), "symmetric": (2.0 / 255.0, -1.0)}


@dataclass(frozen=True)
class InputConfig:
    """The input a model expects.

    Attributes:
        mean, std: per-channel normalisation ``(C,)`` applied after the pixel scaling.
        input_scale: ``"unit"`` or ``"symmetric"`` (see the module's Convention).
        size: frame side in pixels (H = W).
        num_frames: clip length T; ``None`` for 2D models (apex flow).
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_scale: str
    size: int
    num_frames: int | None

    def __post_init__(self) -> None:
        if self.input_scale not in INPUT_SCALES:
            raise ValueError(
                f"input_scale must be one of {sorted(INPUT_SCALES)}, got {self.input_scale!r}"
            )
        if len(self.mean) != len(self.std) or min(self.std) <= 0:
            raise ValueError(
                f"mean and std need one value per channel with std > 0; got {self.mean}, {self.std}"
            )
        if self.size < 1 or (self.num_frames is not None and self.num_frames < 1):
            raise ValueError(f"size and num_frames must be positive; got {self}")

    @property
    def pixel_scale(self) -> tuple[float, float]:
        """``(multiplier, offset)`` mapping uint8 pixels to the scaled range."""
        return INPUT_SCALES[self.input_scale]


def resolve_input_config(
    model_or_cfg: object, overrides: Mapping[str, object] | None = None
) -> InputConfig:
    """The input of a model, from its declared config, with explicit settings winning.

    Args:
        model_or_cfg: a model with a ``default_cfg``, or that config itself
            (:class:`recognizer.models.ModelConfig`: ``mean``, ``std``, ``input_scale``,
            ``input_size`` ``(C, T, H, W)`` or ``(C, H, W)``).
        overrides: any of the :class:`InputConfig` fields set explicitly (e.g. a
            representation's ``size`` and ``num_frames``); ``None`` values are ignored.

    Raises:
        TypeError: ``model_or_cfg`` declares no input config.
        ValueError: an unknown key in ``overrides``, or invalid values (named).
    """
    cfg = getattr(model_or_cfg, "default_cfg", model_or_cfg)
    if not all(hasattr(cfg, key) for key in ("mean", "std", "input_scale", "input_size")):
        raise TypeError(
            "model_or_cfg must be a model with a default_cfg or a ModelConfig, "
            f"got {type(model_or_cfg).__name__}"
        )
    size = tuple(cfg.input_size)
    resolved = InputConfig(
        mean=tuple(float(v) for v in cfg.mean),
        std=tuple(float(v) for v in cfg.std),
        input_scale=str(cfg.input_scale),
        size=int(size[-1]),
        num_frames=int(size[1]) if len(size) == 4 else None,
    )
    given = {k: v for k, v in dict(overrides or {}).items() if v is not None}
    known = [f.name for f in fields(InputConfig)]
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ValueError(f"overrides has unknown keys {unknown}; known: {known}")
    for key in ("mean", "std"):
        if key in given:
            given[key] = tuple(float(v) for v in given[key])  # type: ignore[union-attr]
    return replace(resolved, **given)
