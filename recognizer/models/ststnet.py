"""STSTNet: the Shallow Triple Stream Three-dimensional CNN on apex optical flow.

Reference: S.-T. Liong, Y. S. Gan, J. See, H.-Q. Khor, Y.-C. Huang, "Shallow Triple Stream
Three-dimensional CNN (STSTNet) for Micro-expression Recognition", FG 2019 (MEGC2019). Input: the
apex-flow representation ``(B, 3, 28, 28)`` with channels (u, v, optical strain). Three parallel
3×3 convolution streams (3, 5 and 8 channels), each followed by the activation, batch norm and a
3×3 max-pool with stride 3; the 16 channels are concatenated, average-pooled to 5×5 and
classified by one dense layer.
"""

from __future__ import annotations

from collections.abc import Sequence

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


class Stream(nn.Module):
    """3×3 convolution ("same"), activation, norm, 3×3 max-pool with stride 3."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        norm_layer: NormLayer,
        act_layer: ActLayer,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.act = act_layer()
        self.norm = norm_layer(out_channels)
        self.pool = nn.MaxPool2d(3, stride=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.norm(self.act(self.conv(x))))


class STSTNet(VideoClassifier):
    """Three shallow 2D streams over ``(B, C, H, W)`` apex flow.

    Args:
        num_classes: classifier outputs (3 on the MEGC2019 composite).
        in_channels: flow channels (u, v, strain).
        stream_channels: output channels of each stream (reference 3, 5, 8).
        pooled_size: side of the average-pooled map fed to the dense layer (5 at 28² input).
        dropout: dropout before the dense layer.
        norm_layer: ``norm_layer(channels)``; ``nn.Identity`` drops batch norm.
        act_layer: ``act_layer()``.
    """

    def __init__(
        self,
        *,
        num_classes: int = 3,
        in_channels: int = 3,
        stream_channels: Sequence[int] = (3, 5, 8),
        pooled_size: int = 5,
        dropout: float = 0.0,
        norm_layer: NormLayer = nn.BatchNorm2d,
        act_layer: ActLayer = relu,
    ) -> None:
        super().__init__(
            ModelConfig(
                name="ststnet",
                num_classes=num_classes,
                input_size=(in_channels, 28, 28),
                mean=(0.0,) * in_channels,
                std=(1.0,) * in_channels,
            )
        )
        self.pooled_size = pooled_size
        self.streams = nn.ModuleList(
            Stream(in_channels, c, norm_layer, act_layer) for c in stream_channels
        )
        self.add_head(sum(stream_channels) * pooled_size * pooled_size, dropout)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> ``(B, 16, 5, 5)`` (streams concatenated, average-pooled)."""
        if x.ndim != 4:
            raise ValueError(f"STSTNet takes (B, C, H, W) apex flow, got shape {tuple(x.shape)}")
        x = torch.cat([stream(x) for stream in self.streams], dim=1)
        return F.adaptive_avg_pool2d(x, self.pooled_size)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """``(B, 16, 5, 5)`` -> flattened ``(B, 400)`` -> ``(B, num_classes)`` logits."""
        x = x.flatten(1)
        if pre_logits:
            return x
        return self.fc(self.dropout(x))
