"""Small-input networks for 32x32 images (CIFAR-10): the ResNet paper's CIFAR ResNets and a small VGG.

**CIFAR ResNets** (He et al. 2016, section 4.2): a 3x3 conv with 16 filters, then three stages of
``n`` :class:`~cnnlab.models.resnet.BasicBlock` s with 16, 32 and 64 filters on 32x32, 16x16 and
8x8 maps (the first block of stages 2 and 3 has stride 2), global average pooling and a
``num_classes``-way linear layer: ``6n + 2`` weighted layers. n = 3, 5, 7, 9, 18 gives
ResNet-20/32/44/56/110 with 0.27M, 0.46M, 0.66M, 0.85M, 1.7M parameters (the paper's table).

Shortcuts when the shape changes (``shortcut=`` option):

- ``"A"`` (default, the paper's CIFAR choice): identity with zero-padding,
  :class:`PadShortcut`: subsample by 2 (``x[:, :, ::2, ::2]``) and append zero channels.
  Parameter-free, which is why the counts above hold.
- ``"B"``: projection, a strided 1x1 conv + BN (as the ImageNet ResNets): a few more parameters.

**VGG-style** :func:`vgg8_cifar`: three stages of two 3x3 conv-BN-ReLU layers (64, 128, 256
channels) each followed by 2x2 max-pooling (32 -> 16 -> 8 -> 4), then FC 4096 -> 256 -> classes.

The builders default to ``num_classes=10`` (CIFAR-10); note that
``cnnlab.models.create(name)`` passes ``num_classes=1000`` unless told, so call
``create("resnet20", num_classes=10)``.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..shapes import check_int
from .registry import register_model
from ._utils import check_input, check_num_classes
from .resnet import BasicBlock, conv1x1, conv3x3, init_resnet_weights

__all__ = [
    "PadShortcut", "CifarResNet", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110",
    "CifarVGG", "vgg8_cifar",
]


class PadShortcut(nn.Module):
    """Option-A shortcut: ``x[:, :, ::stride, ::stride]`` with zero channels appended.

    (N, in_planes, H, W) -> (N, out_planes, ceil(H/stride), ceil(W/stride)); no parameters.
    The padding is split evenly before and after the input's channels, as in the common
    reference implementation (the sum with the residual is the same either way up to which
    output channels receive the identity).
    """

    def __init__(self, in_planes: int, out_planes: int, stride: int = 2) -> None:
        super().__init__()
        if out_planes < in_planes:
            raise ValueError(f"PadShortcut can only add channels: in_planes={in_planes} > "
                             f"out_planes={out_planes}")
        self.stride = stride
        extra = out_planes - in_planes
        self.pad_before, self.pad_after = extra // 2, extra - extra // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, ::self.stride, ::self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad_before, self.pad_after))


class CifarResNet(nn.Module):
    """The ResNet paper's CIFAR network: ``6n + 2`` layers, ``n`` BasicBlocks per stage.

    Args:
        depth: 6n + 2 (20, 32, 44, 56, 110, ...).
        num_classes: classifier outputs (10).
        shortcut: ``"A"`` (zero-padding identity, parameter-free) or ``"B"`` (1x1 projection).
        zero_init_residual: start every block's last BN with gamma = 0 (identity blocks).
        norm_layer: normalization constructor, default ``nn.BatchNorm2d``.

    Shapes: input (N, 3, H, W) float, native 32x32 (any size works; adaptive pooling);
    output (N, num_classes) logits.
    """

    def __init__(self, depth: int, num_classes: int = 10, shortcut: str = "A",
                 zero_init_residual: bool = False,
                 norm_layer: Callable[..., nn.Module] | None = None,
                 widths: Sequence[int] = (16, 32, 64)) -> None:
        super().__init__()
        depth = check_int("depth", depth, 8)
        if (depth - 2) % 6 != 0:
            raise ValueError(f"depth must be 6n + 2 (20, 32, 44, 56, 110, ...), got {depth}")
        if shortcut not in ("A", "B"):
            raise ValueError(f"shortcut must be 'A' (zero-padding) or 'B' (projection), got {shortcut!r}")
        num_classes = check_num_classes(num_classes)
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        n = (depth - 2) // 6
        self.depth, self.shortcut = depth, shortcut
        self._norm_layer = norm_layer
        self.inplanes = widths[0]
        self.conv1 = conv3x3(3, self.inplanes)
        self.bn1 = norm_layer(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(widths[0], n, stride=1)
        self.layer2 = self._make_layer(widths[1], n, stride=2)
        self.layer3 = self._make_layer(widths[2], n, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[2], num_classes)

        init_resnet_weights(self, zero_init_residual)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            if self.shortcut == "A":
                downsample = PadShortcut(self.inplanes, planes, stride)
            else:
                downsample = nn.Sequential(conv1x1(self.inplanes, planes, stride),
                                           self._norm_layer(planes))
        layers = [BasicBlock(self.inplanes, planes, stride, downsample, norm_layer=self._norm_layer)]
        self.inplanes = planes
        for _ in range(1, blocks):
            layers.append(BasicBlock(planes, planes, norm_layer=self._norm_layer))
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float -> (N, num_classes) logits."""
        check_input(x, 3, type(self).__name__)
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


@register_model
def resnet20(num_classes: int = 10, **options) -> CifarResNet:
    """CIFAR ResNet-20 (n = 3), 0.27M parameters with option-A shortcuts and 10 classes."""
    return CifarResNet(20, num_classes=num_classes, **options)


@register_model
def resnet32(num_classes: int = 10, **options) -> CifarResNet:
    """CIFAR ResNet-32 (n = 5), 0.46M parameters with option-A shortcuts and 10 classes."""
    return CifarResNet(32, num_classes=num_classes, **options)


@register_model
def resnet44(num_classes: int = 10, **options) -> CifarResNet:
    """CIFAR ResNet-44 (n = 7), 0.66M parameters with option-A shortcuts and 10 classes."""
    return CifarResNet(44, num_classes=num_classes, **options)


@register_model
def resnet56(num_classes: int = 10, **options) -> CifarResNet:
    """CIFAR ResNet-56 (n = 9), 0.85M parameters with option-A shortcuts and 10 classes."""
    return CifarResNet(56, num_classes=num_classes, **options)


@register_model
def resnet110(num_classes: int = 10, **options) -> CifarResNet:
    """CIFAR ResNet-110 (n = 18), 1.7M parameters with option-A shortcuts and 10 classes."""
    return CifarResNet(110, num_classes=num_classes, **options)


# The small VGG's config table: channels of 3x3 conv-BN-ReLU layers, "M" = 2x2 max-pool.
_VGG_CONFIGS: dict[str, list[int | str]] = {
    "vgg8_cifar": [64, 64, "M", 128, 128, "M", 256, 256, "M"],
}


class CifarVGG(nn.Module):
    """A VGG-style net for 32x32 inputs: stacks of 3x3 conv-BN-ReLU and 2x2 max-pools
    (``features``), then ``classifier`` = flatten -> FC(hidden) -> ReLU -> dropout -> FC(classes).

    Args:
        cfg: channels per conv layer, ``"M"`` for a max-pool.
        num_classes: classifier outputs (10).
        hidden: width of the hidden FC layer (256).
        dropout: dropout probability before the last FC (0.5).
        input_size: spatial input size the FC layer is built for (32).

    Shapes: input (N, 3, input_size, input_size) float; output (N, num_classes) logits.
    """

    def __init__(self, cfg: Sequence[int | str], num_classes: int = 10, hidden: int = 256,
                 dropout: float = 0.5, input_size: int = 32) -> None:
        super().__init__()
        num_classes = check_num_classes(num_classes)
        hidden = check_int("hidden", hidden, 1)
        self.input_size = check_int("input_size", input_size, 1)
        layers: list[nn.Module] = []
        in_channels, size = 3, self.input_size
        for v in cfg:
            if v == "M":
                if size < 2:
                    raise ValueError(f"input_size={input_size} is too small for {cfg}: "
                                     "a 2x2 max-pool would get a map of size < 2")
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                size //= 2
            else:
                layers += [nn.Conv2d(in_channels, int(v), kernel_size=3, padding=1, bias=False),
                           nn.BatchNorm2d(int(v)), nn.ReLU(inplace=True)]
                in_channels = int(v)
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Linear(in_channels * size * size, hidden), nn.ReLU(inplace=True),
            nn.Dropout(p=dropout), nn.Linear(hidden, num_classes),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.constant_(m.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, input_size, input_size) float -> (N, num_classes) logits."""
        check_input(x, 3, type(self).__name__)
        if tuple(x.shape[2:]) != (self.input_size, self.input_size):
            raise ValueError(f"CifarVGG input x must have shape (N, 3, {self.input_size}, "
                             f"{self.input_size}) (input_size), got {tuple(x.shape)}")
        return self.classifier(torch.flatten(self.features(x), 1))


@register_model
def vgg8_cifar(num_classes: int = 10, **options) -> CifarVGG:
    """Small VGG for 32x32 (6 conv + 2 FC layers), 2.2M parameters with 10 classes.
    Options: ``hidden``, ``dropout``, ``input_size`` (see :class:`CifarVGG`)."""
    return CifarVGG(_VGG_CONFIGS["vgg8_cifar"], num_classes=num_classes, **options)
