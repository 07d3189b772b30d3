"""P3D: Pseudo-3D residual networks.

Reference: Z. Qiu, T. Yao, T. Mei, "Learning Spatio-Temporal Representation with Pseudo-3D
Residual Networks", ICCV 2017. Bottleneck blocks whose 3×3×3 convolution is factorised into a
spatial 1×3×3 (S) and a temporal 3×1×1 (T) convolution, cycling through three arrangements:
A (S then T), B (S and T in parallel, summed), C (S, then T added to S). The first three stages
(res2-res4) are pseudo-3D and followed by a temporal max-pool; res5 is 2D (1×k×k kernels).

Differences from the reference code, neither of which changes the parameters: res5 uses
1×k×k 3D convolutions instead of folding time into the batch (the reference reshapes pooled
time into the batch when T≠16), and pooling is global-average instead of a fixed 5×5 window,
so any input size works. The DFME benchmark trains P3D-63 on 160² inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from recognizer.models.base import (
    ActLayer,
    ClampedPool3d,
    ModelConfig,
    NormLayer,
    ResidualBlock,
    VideoClassifier,
    init_conv_bn,
    projection,
    relu,
)

LAYERS = {63: (3, 4, 6, 3), 131: (3, 4, 23, 3), 199: (3, 8, 36, 3)}
STRUCTURES = ("A", "B", "C")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class P3DBottleneck(ResidualBlock):
    """One P3D bottleneck; ``structure`` is "A", "B" or "C", or ``None`` for a 2D (res5) block."""

    expansion = 4

    def __init__(
        self,
        in_planes: int,
        planes: int,
        *,
        stride: tuple[int, int, int],
        downsample: nn.Module | None,
        structure: str | None,
        norm_layer: NormLayer,
        act_layer: ActLayer,
    ) -> None:
        super().__init__()
        self.structure = structure
        self.conv1 = nn.Conv3d(in_planes, planes, 1, stride=stride, bias=False)
        self.bn1 = norm_layer(planes)
        if structure is None:
            self.conv_normal = nn.Conv3d(planes, planes, (1, 3, 3), padding=(0, 1, 1), bias=False)
            self.bn_normal = norm_layer(planes)
        else:
            self.conv2 = nn.Conv3d(planes, planes, (1, 3, 3), padding=(0, 1, 1), bias=False)
            self.bn2 = norm_layer(planes)
            self.conv3 = nn.Conv3d(planes, planes, (3, 1, 1), padding=(1, 0, 0), bias=False)
            self.bn3 = norm_layer(planes)
        self.conv4 = nn.Conv3d(planes, planes * 4, 1, bias=False)
        self.bn4 = norm_layer(planes * 4)
        self.act1, self.act2, self.act3, self.act_out = (act_layer() for _ in range(4))
        self.downsample = downsample

    def _spatial(self, x: torch.Tensor) -> torch.Tensor:
        return self.act2(self.bn2(self.conv2(x)))

    def _temporal(self, x: torch.Tensor) -> torch.Tensor:
        return self.act3(self.bn3(self.conv3(x)))

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        if self.structure is None:
            out = self.act2(self.bn_normal(self.conv_normal(out)))
        elif self.structure == "A":
            out = self._temporal(self._spatial(out))
        elif self.structure == "B":
            out = self._spatial(out) + self._temporal(out)
        else:
            spatial = self._spatial(out)
            out = spatial + self._temporal(spatial)
        return self.bn4(self.conv4(out))


class P3D(VideoClassifier):
    """Pseudo-3D ResNet over ``(B, C, T, H, W)`` clips.

    Args:
        layers: bottlenecks in each of the four stages.
        name: registry name recorded in ``default_cfg``.
        num_classes: classifier outputs.
        structures: the cycle of block arrangements over res2-res4 (reference: A, B, C).
        in_channels: 3 for RGB, 2 for flow.
        dropout: dropout before the classifier (reference 0.5).
        norm_layer, act_layer: constructors ``norm_layer(channels)``, ``act_layer()``.
    """

    def __init__(
        self,
        *,
        layers: Sequence[int],
        name: str = "p3d",
        num_classes: int = 400,
        structures: Sequence[str] = STRUCTURES,
        in_channels: int = 3,
        dropout: float = 0.5,
        norm_layer: NormLayer = nn.BatchNorm3d,
        act_layer: ActLayer = relu,
    ) -> None:
        structures = tuple(structures)
        bad = [s for s in structures if s not in STRUCTURES]
        if bad or not structures:
            raise ValueError(f"P3D structures must be drawn from {STRUCTURES}, got {structures}")
        super().__init__(
            ModelConfig(
                name=name,
                num_classes=num_classes,
                input_size=(in_channels, 16, 160, 160),
                mean=IMAGENET_MEAN,
                std=IMAGENET_STD,
            )
        )
        self.conv1_custom = nn.Conv3d(
            in_channels, 64, (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False
        )
        self.bn1 = norm_layer(64)
        self.act = act_layer()
        self.maxpool = ClampedPool3d("max", (2, 3, 3), stride=2, padding=(0, 1, 1))
        self.maxpool_2 = ClampedPool3d("max", (2, 1, 1), stride=(2, 1, 1))
        self._in_planes = 64
        self._count = 0
        self._depth_3d = sum(layers[:3])
        make = self._make_layer
        self.layer1 = make(64, layers[0], structures, norm_layer, act_layer)
        self.layer2 = make(128, layers[1], structures, norm_layer, act_layer)
        self.layer3 = make(256, layers[2], structures, norm_layer, act_layer)
        self.layer4 = make(512, layers[3], structures, norm_layer, act_layer)
        self.add_head(512 * 4, dropout)
        init_conv_bn(self)

    def _make_layer(
        self,
        planes: int,
        blocks: int,
        structures: Sequence[str],
        norm_layer: NormLayer,
        act_layer: ActLayer,
    ) -> nn.Sequential:
        stride = (1, 1, 1) if self._count == 0 else (1, 2, 2)
        downsample = projection(self._in_planes, planes * 4, stride, norm_layer)
        layers = []
        for i in range(blocks):
            is_3d = self._count < self._depth_3d
            layers.append(
                P3DBottleneck(
                    self._in_planes,
                    planes,
                    stride=stride if i == 0 else (1, 1, 1),
                    downsample=downsample if i == 0 else None,
                    structure=structures[self._count % len(structures)] if is_3d else None,
                    norm_layer=norm_layer,
                    act_layer=act_layer,
                )
            )
            self._in_planes = planes * 4
            self._count += 1
        return nn.Sequential(*layers)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, T, H, W)`` -> ``(B, 2048, T/16, H/32, W/32)`` (each at least 1)."""
        x = self.maxpool(self.act(self.bn1(self.conv1_custom(x))))
        x = self.maxpool_2(self.layer1(x))
        x = self.maxpool_2(self.layer2(x))
        x = self.maxpool_2(self.layer3(x))
        return self.layer4(x)


def build_p3d(*, depth: int = 63, **kwargs: Any) -> P3D:
    """Build a P3D-``depth``.

    Args:
        depth: 63, 131 or 199 (bottleneck counts (3,4,6,3), (3,4,23,3), (3,8,36,3)).
        **kwargs: the other keywords of :class:`P3D` (``num_classes``, ``structures``,
            ``in_channels``, ``dropout``, ``norm_layer``, ``act_layer``).
    """
    if depth not in LAYERS:
        raise ValueError(f"P3D depth must be one of {sorted(LAYERS)}, got {depth!r}")
    return P3D(layers=LAYERS[depth], name=f"p3d{depth}", **kwargs)
