"""Pieces every recognition model shares: its config, the pooled linear head, safe pooling.

Every model in :mod:`recognizer.models` has the same interface:

- ``forward_features(x)``: the feature map before global pooling, ``(B, F, T', H', W')``
  (``(B, F, H', W')`` for 2D models);
- ``forward_head(features, pre_logits=False)``: global average pooling, dropout and the
  classifier; ``pre_logits=True`` returns the pooled ``(B, F)`` vector instead of logits;
- ``reset_classifier(num_classes)``: a fresh classifier for another class count;
- ``default_cfg``: a :class:`ModelConfig` (input size, clip length, mean/std, input scaling).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn

NormLayer = Callable[[int], nn.Module]
ActLayer = Callable[[], nn.Module]

#: Kinetics statistics of Hara et al.'s 3D-ResNets, for inputs scaled to [0, 1].
KINETICS_MEAN_HARA = (0.4345, 0.4051, 0.3775)
KINETICS_STD_HARA = (0.2768, 0.2713, 0.2737)
#: Kinetics statistics of torchvision's video models, for inputs scaled to [0, 1].
KINETICS_MEAN_TV = (0.43216, 0.394666, 0.37645)
KINETICS_STD_TV = (0.22803, 0.22145, 0.216989)


@dataclass(frozen=True)
class ModelConfig:
    """What a model expects as input; transforms are derived from it.

    Attributes:
        name: registry name.
        num_classes: number of classifier outputs.
        input_size: ``(C, T, H, W)`` of the reference input (``(C, H, W)`` for 2D models).
        mean, std: per-channel normalisation applied after the pixel scaling.
        input_scale: ``"unit"`` (uint8 pixels scaled to [0, 1], then ``(x - mean) / std``) or
            ``"symmetric"`` (scaled to [-1, 1], then ``(x - mean) / std``; I3D's convention,
            with mean 0 and std 1). :func:`recognizer.data.input_config.resolve_input_config`
            turns this config into the representation's transform.
        classifier: name of the classifier module (what ``load_pretrained`` skips when the class
            counts differ).
        label_names: optional class names.
    """

    name: str
    num_classes: int
    input_size: tuple[int, ...]
    mean: tuple[float, ...] = KINETICS_MEAN_HARA
    std: tuple[float, ...] = KINETICS_STD_HARA
    input_scale: str = "unit"
    classifier: str = "fc"
    label_names: tuple[str, ...] = field(default_factory=tuple)

    @property
    def clip_length(self) -> int | None:
        """T of the reference input, ``None`` for 2D models."""
        return self.input_size[1] if len(self.input_size) == 4 else None


def check_num_classes(num_classes: int) -> int:
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    return num_classes


def relu() -> nn.Module:
    """Default activation constructor."""
    return nn.ReLU(inplace=True)


def global_pool(x: torch.Tensor) -> torch.Tensor:
    """Average over every dimension after the channels: ``(B, F, ...)`` -> ``(B, F)``."""
    return x.flatten(2).mean(dim=2)


class ClampedPool3d(nn.Module):
    """Max or average 3D pooling whose kernel shrinks to fit inputs smaller than it.

    At the reference input sizes it equals ``nn.MaxPool3d``/``nn.AvgPool3d`` with the same
    arguments; on tiny clips (e.g. 8×32×32) a dimension of size 1 is pooled with kernel 1
    instead of raising.
    """

    def __init__(
        self,
        mode: str,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int],
        padding: int | Sequence[int] = 0,
    ) -> None:
        super().__init__()
        if mode not in ("max", "avg"):
            raise ValueError(f"mode must be 'max' or 'avg', got {mode!r}")
        self.mode = mode
        self.kernel_size = _triple(kernel_size)
        self.stride = _triple(stride)
        self.padding = _triple(padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sizes = x.shape[-3:]
        kernel = tuple(min(k, s + 2 * p) for k, s, p in zip(self.kernel_size, sizes, self.padding))
        padding = tuple(min(p, k // 2) for p, k in zip(self.padding, kernel))
        if self.mode == "max":
            return F.max_pool3d(x, kernel, self.stride, padding)
        return F.avg_pool3d(x, kernel, self.stride, padding)

    def extra_repr(self) -> str:
        return f"{self.mode}, kernel_size={self.kernel_size}, stride={self.stride}"


def _triple(value: int | Sequence[int]) -> tuple[int, int, int]:
    if isinstance(value, int):
        return (value, value, value)
    out = tuple(int(v) for v in value)
    if len(out) != 3:
        raise ValueError(f"expected an int or 3 ints, got {value!r}")
    return out  # type: ignore[return-value]


class VideoClassifier(nn.Module):
    """Shared ``forward``/``forward_head``/``reset_classifier`` over a linear classifier.

    Subclasses call ``super().__init__(default_cfg)``, build their layers, end ``__init__`` with
    :meth:`add_head` and define ``forward_features``.

    Raises:
        ValueError: ``default_cfg.num_classes`` is not a positive int.
    """

    dropout: nn.Module

    def __init__(self, default_cfg: ModelConfig) -> None:
        super().__init__()
        check_num_classes(default_cfg.num_classes)
        self.default_cfg = default_cfg

    def add_head(self, num_features: int, dropout: float) -> None:
        """Register the dropout and the ``num_features -> num_classes`` linear classifier under
        ``default_cfg.classifier``. Called last, so the classifier's parameters come last."""
        self.dropout = nn.Dropout(dropout)
        classifier = nn.Linear(num_features, self.default_cfg.num_classes)
        self.add_module(self.default_cfg.classifier, classifier)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def get_classifier(self) -> nn.Linear:
        return getattr(self, self.default_cfg.classifier)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """``(B, F, ...)`` feature map -> ``(B, num_classes)`` logits (or ``(B, F)``)."""
        x = global_pool(x)
        if pre_logits:
            return x
        return self.get_classifier()(self.dropout(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, T, H, W)`` clip (``(B, C, H, W)`` for 2D models) -> ``(B, num_classes)``."""
        return self.forward_head(self.forward_features(x))

    @property
    def num_features(self) -> int:
        return self.get_classifier().in_features

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier by a freshly initialised one with ``num_classes`` outputs."""
        check_num_classes(num_classes)
        old = self.get_classifier()
        new = nn.Linear(old.in_features, num_classes, device=old.weight.device)
        setattr(self, self.default_cfg.classifier, new)
        self.default_cfg = replace(self.default_cfg, num_classes=num_classes, label_names=())


class ResidualBlock(nn.Module):
    """``act_out(residual(x) + shortcut(x))``; the shortcut is ``downsample`` or the identity.

    Subclasses register their layers, then ``downsample`` and ``act_out`` (after the
    convolutions, so parameters keep the reference order), and define :meth:`residual`.
    """

    downsample: nn.Module | None
    act_out: nn.Module

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.act_out(self.residual(x) + shortcut)


def projection(
    in_channels: int, out_channels: int, stride: int | Sequence[int], norm_layer: NormLayer
) -> nn.Sequential:
    """The projection shortcut of a residual stage: 1×1×1 convolution (no bias) and norm."""
    return nn.Sequential(
        nn.Conv3d(in_channels, out_channels, 1, stride=stride, bias=False),
        norm_layer(out_channels),
    )


def init_conv_bn(module: nn.Module) -> None:
    """Kaiming-normal convolutions, unit/zero batch norms (the reference initialisation)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv3d, nn.Conv2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm3d, nn.BatchNorm2d)) and m.affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
