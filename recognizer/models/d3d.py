"""D3D: 3D DenseNet.

Reference: G. Huang et al., "Densely Connected Convolutional Networks", CVPR 2017, inflated to
3D as in K. Hara et al.'s 3D-ResNets (DenseNet-121: growth 32, blocks 6-12-24-16, bottleneck
width 4×growth, 7×7×7 stem with stride (1,2,2) and a 3×3×3 max-pool, transitions halve the
channels and average-pool 2×2×2). The DFME benchmark trains D3D-121.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from recognizer.models.base import (
    ActLayer,
    ClampedPool3d,
    ModelConfig,
    NormLayer,
    VideoClassifier,
    init_conv_bn,
    relu,
)

BLOCKS = {121: (6, 12, 24, 16), 169: (6, 12, 32, 32), 201: (6, 12, 48, 32)}


class DenseLayer(nn.Module):
    """BN-act-1×1×1 conv to ``bn_size·growth``, BN-act-3×3×3 conv to ``growth``; concatenated."""

    def __init__(
        self,
        in_features: int,
        growth_rate: int,
        bn_size: int,
        norm_layer: NormLayer,
        act_layer: ActLayer,
    ) -> None:
        super().__init__()
        self.norm1 = norm_layer(in_features)
        self.act1 = act_layer()
        self.conv1 = nn.Conv3d(in_features, bn_size * growth_rate, 1, bias=False)
        self.norm2 = norm_layer(bn_size * growth_rate)
        self.act2 = act_layer()
        self.conv2 = nn.Conv3d(bn_size * growth_rate, growth_rate, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        new = self.conv1(self.act1(self.norm1(x)))
        new = self.conv2(self.act2(self.norm2(new)))
        return torch.cat([x, new], dim=1)


class Transition(nn.Sequential):
    """BN-act-1×1×1 conv to ``out_features``, then 2×2×2 average pooling."""

    def __init__(
        self, in_features: int, out_features: int, norm_layer: NormLayer, act_layer: ActLayer
    ) -> None:
        super().__init__()
        self.add_module("norm", norm_layer(in_features))
        self.add_module("act", act_layer())
        self.add_module("conv", nn.Conv3d(in_features, out_features, 1, bias=False))
        self.add_module("pool", ClampedPool3d("avg", 2, stride=2))


class D3D(VideoClassifier):
    """3D DenseNet over ``(B, C, T, H, W)`` clips.

    Attribute names follow Hara et al. (``features.conv1``, ``features.denseblock1.denselayer1``
    ..., ``classifier``) so their weight files load.

    Args:
        block_config: dense layers in each dense block.
        name: registry name recorded in ``default_cfg``.
        num_classes: classifier outputs.
        growth_rate: channels each dense layer adds (32).
        num_init_features: stem channels (64).
        bn_size: bottleneck width as a multiple of the growth rate (4).
        in_channels: input channels.
        dropout: dropout before the classifier.
        norm_layer, act_layer: constructors ``norm_layer(channels)``, ``act_layer()``.
    """

    def __init__(
        self,
        *,
        block_config: Sequence[int],
        name: str = "d3d",
        num_classes: int = 400,
        growth_rate: int = 32,
        num_init_features: int = 64,
        bn_size: int = 4,
        in_channels: int = 3,
        dropout: float = 0.0,
        norm_layer: NormLayer = nn.BatchNorm3d,
        act_layer: ActLayer = relu,
    ) -> None:
        super().__init__(
            ModelConfig(
                name=name,
                num_classes=num_classes,
                input_size=(in_channels, 16, 112, 112),
                classifier="classifier",
            )
        )
        features = nn.Sequential()
        features.add_module(
            "conv1",
            nn.Conv3d(in_channels, num_init_features, 7, stride=(1, 2, 2), padding=3, bias=False),
        )
        features.add_module("norm1", norm_layer(num_init_features))
        features.add_module("relu1", act_layer())
        features.add_module("pool1", ClampedPool3d("max", 3, stride=2, padding=1))
        channels = num_init_features
        for i, num_layers in enumerate(block_config):
            block = nn.Sequential()
            for j in range(num_layers):
                layer = DenseLayer(
                    channels + j * growth_rate, growth_rate, bn_size, norm_layer, act_layer
                )
                block.add_module(f"denselayer{j + 1}", layer)
            features.add_module(f"denseblock{i + 1}", block)
            channels += num_layers * growth_rate
            if i != len(block_config) - 1:
                trans = Transition(channels, channels // 2, norm_layer, act_layer)
                features.add_module(f"transition{i + 1}", trans)
                channels //= 2
        features.add_module("norm5", norm_layer(channels))
        features.add_module("relu5", act_layer())
        self.features = features
        self.add_head(channels, dropout)
        init_conv_bn(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, T, H, W)`` -> ``(B, 1024, T/16, H/32, W/32)`` (DenseNet-121; each ≥ 1)."""
        return self.features(x)


_LEGACY = re.compile(r"\.(norm|relu|conv)\.(\d)\.")


def remap_d3d_keys(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Hara's older DenseNet names (``conv0``/``norm0``, ``norm.1``) -> this module's names."""
    out = {}
    for key, value in state_dict.items():
        new = key.replace("features.conv0.", "features.conv1.")
        new = new.replace("features.norm0.", "features.norm1.")
        new = _LEGACY.sub(r".\1\2.", new)
        out[new] = value
    return out


def build_d3d(*, depth: int = 121, **kwargs: Any) -> D3D:
    """Build a 3D DenseNet-``depth``.

    Args:
        depth: 121, 169 or 201 (dense blocks (6,12,24,16), (6,12,32,32), (6,12,48,32)).
        **kwargs: the other keywords of :class:`D3D` (``num_classes``, ``growth_rate``,
            ``num_init_features``, ``bn_size``, ``in_channels``, ``dropout``, ``norm_layer``,
            ``act_layer``).
    """
    if depth not in BLOCKS:
        raise ValueError(f"D3D depth must be one of {sorted(BLOCKS)}, got {depth!r}")
    return D3D(block_config=BLOCKS[depth], name=f"d3d{depth}", **kwargs)
