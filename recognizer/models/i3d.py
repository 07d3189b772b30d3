"""I3D: Inception-v1 inflated to 3D.

Reference: J. Carreira, A. Zisserman, "Quo Vadis, Action Recognition? A New Model and the
Kinetics Dataset", CVPR 2017. Layer names and "same" padding follow the widely used PyTorch
port by piergiaj (``Conv3d_1a_7x7`` ... ``Mixed_5c``; batch norm eps 1e-3, momentum 0.01), so its
``rgb_imagenet.pt`` loads. Inputs are scaled to [-1, 1] (``input_scale="symmetric"``, then mean
0 and std 1).

Difference from the reference: its head is a fixed 2×7×7 average pool that breaks below 224²;
here pooling is global-average (identical at 16×224²), and the 1×1×1 logits convolution is the
equivalent ``nn.Linear`` (same parameters; weight files are reshaped on load).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from recognizer.models.base import (
    ActLayer,
    ModelConfig,
    NormLayer,
    VideoClassifier,
    relu,
)


def same_padding(sizes: Sequence[int], kernel: Sequence[int], stride: Sequence[int]) -> list[int]:
    """TensorFlow "SAME" padding for ``F.pad`` on a ``(..., T, H, W)`` tensor.

    Returns ``[w_front, w_back, h_front, h_back, t_front, t_back]``; the extra pixel of an odd
    total goes to the back, as in TensorFlow.
    """
    pads = []
    for size, k, s in zip(sizes, kernel, stride):
        total = max(k - s, 0) if size % s == 0 else max(k - size % s, 0)
        pads.append((total // 2, total - total // 2))
    (t0, t1), (h0, h1), (w0, w1) = pads
    return [w0, w1, h0, h1, t0, t1]


class Unit3D(nn.Module):
    """ "SAME"-padded 3D convolution, batch norm and activation (piergiaj's ``Unit3D``)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: Sequence[int] = (1, 1, 1),
        stride: Sequence[int] = (1, 1, 1),
        *,
        norm_layer: NormLayer,
        act_layer: ActLayer,
    ) -> None:
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)
        self.conv3d = nn.Conv3d(in_channels, out_channels, self.kernel, self.stride, bias=False)
        self.bn = norm_layer(out_channels)
        self.act = act_layer()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, same_padding(x.shape[-3:], self.kernel, self.stride))
        return self.act(self.bn(self.conv3d(x)))


class SamePool3d(nn.Module):
    """ "SAME"-padded max pooling (zero padding; inputs are post-ReLU, so zeros never win)."""

    def __init__(self, kernel: Sequence[int], stride: Sequence[int]) -> None:
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, same_padding(x.shape[-3:], self.kernel, self.stride))
        return F.max_pool3d(x, self.kernel, self.stride)


class InceptionModule(nn.Module):
    """Four branches: 1×1×1; 1×1×1→3×3×3; 1×1×1→3×3×3; 3×3×3 max-pool→1×1×1; concatenated.

    ``widths`` = (b0, b1 reduce, b1, b2 reduce, b2, b3); output channels b0 + b1 + b2 + b3.
    """

    def __init__(
        self, in_channels: int, widths: Sequence[int], norm_layer: NormLayer, act_layer: ActLayer
    ) -> None:
        super().__init__()
        unit = partial(Unit3D, norm_layer=norm_layer, act_layer=act_layer)
        self.b0 = unit(in_channels, widths[0])
        self.b1a = unit(in_channels, widths[1])
        self.b1b = unit(widths[1], widths[2], (3, 3, 3))
        self.b2a = unit(in_channels, widths[3])
        self.b2b = unit(widths[3], widths[4], (3, 3, 3))
        self.b3a = SamePool3d((3, 3, 3), (1, 1, 1))
        self.b3b = unit(in_channels, widths[5])
        self.out_channels = widths[0] + widths[2] + widths[4] + widths[5]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))],
            dim=1,
        )


MIXED = (
    ("Mixed_3b", (64, 96, 128, 16, 32, 32)),
    ("Mixed_3c", (128, 128, 192, 32, 96, 64)),
    ("MaxPool3d_4a_3x3", ((3, 3, 3), (2, 2, 2))),
    ("Mixed_4b", (192, 96, 208, 16, 48, 64)),
    ("Mixed_4c", (160, 112, 224, 24, 64, 64)),
    ("Mixed_4d", (128, 128, 256, 24, 64, 64)),
    ("Mixed_4e", (112, 144, 288, 32, 64, 64)),
    ("Mixed_4f", (256, 160, 320, 32, 128, 128)),
    ("MaxPool3d_5a_2x2", ((2, 2, 2), (2, 2, 2))),
    ("Mixed_5b", (256, 160, 320, 32, 128, 128)),
    ("Mixed_5c", (384, 192, 384, 48, 128, 128)),
)


#: the reference's batch norm: eps 1e-3, momentum 0.01.
REFERENCE_NORM: NormLayer = partial(nn.BatchNorm3d, eps=1e-3, momentum=0.01)


class I3D(VideoClassifier):
    """Inflated Inception-v1 over ``(B, C, T, H, W)`` clips (RGB: ``in_channels=3``; flow: 2).

    Args:
        num_classes: classifier outputs.
        in_channels: input channels.
        dropout: dropout before the classifier (reference 0.5).
        norm_layer: ``norm_layer(channels)``; default :data:`REFERENCE_NORM`.
        act_layer: ``act_layer()``.
    """

    def __init__(
        self,
        *,
        num_classes: int = 400,
        in_channels: int = 3,
        dropout: float = 0.5,
        norm_layer: NormLayer = REFERENCE_NORM,
        act_layer: ActLayer = relu,
    ) -> None:
        super().__init__(
            ModelConfig(
                name="i3d",
                num_classes=num_classes,
                input_size=(in_channels, 16, 224, 224),
                mean=(0.0,) * in_channels,
                std=(1.0,) * in_channels,
                input_scale="symmetric",
            )
        )
        unit = partial(Unit3D, norm_layer=norm_layer, act_layer=act_layer)
        features = nn.Sequential()
        features.add_module("Conv3d_1a_7x7", unit(in_channels, 64, (7, 7, 7), (2, 2, 2)))
        features.add_module("MaxPool3d_2a_3x3", SamePool3d((1, 3, 3), (1, 2, 2)))
        features.add_module("Conv3d_2b_1x1", unit(64, 64))
        features.add_module("Conv3d_2c_3x3", unit(64, 192, (3, 3, 3)))
        features.add_module("MaxPool3d_3a_3x3", SamePool3d((1, 3, 3), (1, 2, 2)))
        channels = 192
        for name, spec in MIXED:
            if name.startswith("MaxPool"):
                features.add_module(name, SamePool3d(*spec))
            else:
                module = InceptionModule(channels, spec, norm_layer, act_layer)
                features.add_module(name, module)
                channels = module.out_channels
        self.features = features
        self.add_head(channels, dropout)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, T, H, W)`` -> ``(B, 1024, T/8, H/32, W/32)`` (rounded up)."""
        return self.features(x)


def remap_i3d_keys(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """piergiaj's names (``Mixed_3b.b0.conv3d.weight``, ``logits.conv3d.*``) -> this module's."""
    out = {}
    for key, value in state_dict.items():
        if key.startswith("logits.conv3d."):
            out["fc." + key.removeprefix("logits.conv3d.")] = value
        elif key.startswith(("Conv3d_", "Mixed_")):
            out["features." + key] = value
        else:
            out[key] = value
    return out
