"""R3D: 3D residual networks.

Reference: K. Hara, H. Kataoka, Y. Satoh, "Can Spatiotemporal 3D CNNs Retrace the History of 2D
CNNs and ImageNet?", CVPR 2018 (shortcut type B: 1×1×1 convolution + BN when the shape changes);
D. Tran et al., "A Closer Look at Spatiotemporal Convolutions for Action Recognition", CVPR 2018
(the torchvision ``r3d_18`` stem: 3×7×7, no max-pool). The DFME benchmark trains R3D-18.

Shapes at 16×224² (Hara stem): conv1 (64,16,112,112) -> pool (64,8,56,56) -> layer2
(128,4,28,28) -> layer3 (256,2,14,14) -> layer4 (512,1,7,7).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from recognizer.models.base import (
    KINETICS_MEAN_HARA,
    KINETICS_MEAN_TV,
    KINETICS_STD_HARA,
    KINETICS_STD_TV,
    ActLayer,
    ModelConfig,
    NormLayer,
    ResidualBlock,
    VideoClassifier,
    init_conv_bn,
    projection,
    relu,
)

STEMS = ("hara", "torchvision")
LAYERS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3)}


class R3DBlock(ResidualBlock):
    """A block of an R3D stage, ``in_planes -> planes * expansion`` channels; ``stride`` and
    ``downsample`` (the projection shortcut, ``None``: the identity) are set for the first block
    of a stage. Subclasses define :meth:`build` and :meth:`ResidualBlock.residual`."""

    expansion: int

    def __init__(
        self,
        in_planes: int,
        planes: int,
        stride: int,
        downsample: nn.Module | None,
        norm_layer: NormLayer,
        act_layer: ActLayer,
    ) -> None:
        super().__init__()
        self.build(in_planes, planes, stride, norm_layer, act_layer)
        self.downsample = downsample

    def build(self, cin: int, planes: int, stride: int, norm: NormLayer, act: ActLayer) -> None:
        """Register the convolutions, norms and activations (``act_out`` among them); the
        shortcut is registered after them, as in the reference."""
        raise NotImplementedError


class BasicBlock(R3DBlock):
    """Two 3×3×3 convolutions with an identity (or 1×1×1 projection) shortcut."""

    expansion = 1

    def build(self, cin: int, planes: int, stride: int, norm: NormLayer, act: ActLayer) -> None:
        self.conv1 = nn.Conv3d(cin, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = norm(planes)
        self.act1 = act()
        self.conv2 = nn.Conv3d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = norm(planes)
        self.act_out = act()

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x)))))


class Bottleneck(R3DBlock):
    """1×1×1 reduce, 3×3×3 (strided), 1×1×1 expand (×4), with a projection shortcut."""

    expansion = 4

    def build(self, cin: int, planes: int, stride: int, norm: NormLayer, act: ActLayer) -> None:
        self.conv1 = nn.Conv3d(cin, planes, 1, bias=False)
        self.bn1 = norm(planes)
        self.conv2 = nn.Conv3d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = norm(planes)
        self.conv3 = nn.Conv3d(planes, planes * 4, 1, bias=False)
        self.bn3 = norm(planes * 4)
        self.act1, self.act2, self.act_out = act(), act(), act()

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.act2(self.bn2(self.conv2(x)))
        return self.bn3(self.conv3(x))


class R3D(VideoClassifier):
    """3D ResNet over ``(B, C, T, H, W)`` clips.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        layers: blocks in each of the four stages.
        name: registry name recorded in ``default_cfg``.
        num_classes: classifier outputs.
        stem: ``"hara"`` (7×7×7 conv, stride (1,2,2), then 3×3×3 max-pool, stride 2) or
            ``"torchvision"`` (3×7×7 conv, stride (1,2,2), no max-pool).
        widths: planes of the four stages (reduce them for tiny experiments).
        in_channels: input channels (3 for RGB).
        dropout: dropout before the classifier.
        norm_layer, act_layer: constructors ``norm_layer(channels)``, ``act_layer()``.
    """

    def __init__(
        self,
        *,
        block: type[R3DBlock],
        layers: Sequence[int],
        name: str = "r3d",
        num_classes: int = 400,
        stem: str = "hara",
        widths: Sequence[int] = (64, 128, 256, 512),
        in_channels: int = 3,
        dropout: float = 0.0,
        norm_layer: NormLayer = nn.BatchNorm3d,
        act_layer: ActLayer = relu,
    ) -> None:
        if stem not in STEMS:
            raise ValueError(f"unknown R3D stem {stem!r}; known stems: {', '.join(STEMS)}")
        if len(widths) != 4 or len(layers) != 4:
            raise ValueError(f"R3D needs 4 widths and 4 layer counts, got {widths}, {layers}")
        hara = stem == "hara"
        super().__init__(
            ModelConfig(
                name=name,
                num_classes=num_classes,
                input_size=(in_channels, 16, 112, 112),
                mean=KINETICS_MEAN_HARA if hara else KINETICS_MEAN_TV,
                std=KINETICS_STD_HARA if hara else KINETICS_STD_TV,
            )
        )
        kernel, padding = ((7, 7, 7), (3, 3, 3)) if hara else ((3, 7, 7), (1, 3, 3))
        self.conv1 = nn.Conv3d(
            in_channels, widths[0], kernel, stride=(1, 2, 2), padding=padding, bias=False
        )
        self.bn1 = norm_layer(widths[0])
        self.act = act_layer()
        self.maxpool = nn.MaxPool3d(3, stride=2, padding=1) if hara else nn.Identity()
        self._in_planes = widths[0]
        self.layer1 = self._make_layer(block, widths[0], layers[0], 1, norm_layer, act_layer)
        self.layer2 = self._make_layer(block, widths[1], layers[1], 2, norm_layer, act_layer)
        self.layer3 = self._make_layer(block, widths[2], layers[2], 2, norm_layer, act_layer)
        self.layer4 = self._make_layer(block, widths[3], layers[3], 2, norm_layer, act_layer)
        self.add_head(widths[3] * block.expansion, dropout)
        init_conv_bn(self)

    def _make_layer(
        self,
        block: type[R3DBlock],
        planes: int,
        blocks: int,
        stride: int,
        norm_layer: NormLayer,
        act_layer: ActLayer,
    ) -> nn.Sequential:
        downsample = None
        if stride != 1 or self._in_planes != planes * block.expansion:
            downsample = projection(self._in_planes, planes * block.expansion, stride, norm_layer)
        layers = [block(self._in_planes, planes, stride, downsample, norm_layer, act_layer)]
        self._in_planes = planes * block.expansion
        layers += [
            block(self._in_planes, planes, 1, None, norm_layer, act_layer) for _ in range(1, blocks)
        ]
        return nn.Sequential(*layers)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, T, H, W)`` -> ``(B, F, T/8, H/32, W/32)`` (Hara stem; T/8 at least 1)."""
        x = self.maxpool(self.act(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def remap_r3d_keys(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename torchvision ``r3d_18`` keys to this module's (Hara's) names; others pass."""
    out = {}
    for key, value in state_dict.items():
        new = key.replace("stem.0.", "conv1.").replace("stem.1.", "bn1.")
        for i in (1, 2):
            new = new.replace(f".conv{i}.0.", f".conv{i}.").replace(f".conv{i}.1.", f".bn{i}.")
        out[new] = value
    return out


def build_r3d(*, depth: int = 18, **kwargs: Any) -> R3D:
    """Build an R3D-``depth``.

    Args:
        depth: 18 or 34 (basic blocks) or 50 (bottlenecks).
        **kwargs: the other keywords of :class:`R3D` (``num_classes``, ``stem``, ``widths``,
            ``in_channels``, ``dropout``, ``norm_layer``, ``act_layer``).
    """
    if depth not in LAYERS:
        raise ValueError(f"R3D depth must be one of {sorted(LAYERS)}, got {depth!r}")
    block = Bottleneck if depth >= 50 else BasicBlock
    return R3D(block=block, layers=LAYERS[depth], name=f"r3d{depth}", **kwargs)
