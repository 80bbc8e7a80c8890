"""ResNet (He et al. 2016) and ResNeXt (Xie et al. 2017), in the style of torchvision's resnet.py.

A residual block computes ``out = relu(F(x) + shortcut(x))``: the layers ``F`` learn a residual
on top of the identity. Two block types:

- :class:`BasicBlock` (ResNet-18/34): two 3x3 convolutions, ``expansion = 1``.
- :class:`Bottleneck` (ResNet-50/101/152, ResNeXt): 1x1 reduce, 3x3 (grouped for ResNeXt),
  1x1 expand by ``expansion = 4``.

The shortcut is the identity, or a 1x1 convolution + BN ("projection", option B of the paper)
when the block changes the spatial size (stride 2) or the number of channels.

:class:`ResNet` stacks a 7x7/2 stem conv, a 3x3/2 max-pool, four stages ``layer1..layer4``
(built by ``_make_layer``), global average pooling and a linear classifier ``fc``. Parameter
names and shapes are identical to torchvision's, so its pretrained weight files load with
``load_state_dict(strict=True)`` (see :mod:`cnnlab.models.weights`).

    >>> from cnnlab.models import resnet50
    >>> net = resnet50(num_classes=10, zero_init_residual=True)
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn as nn

from ..shapes import check_int
from ._utils import check_input, check_num_classes
from .registry import register_model

__all__ = [
    "conv3x3", "conv1x1", "BasicBlock", "Bottleneck", "ResNet",
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "resnext50_32x4d", "resnext101_32x8d",
]


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, groups: int = 1,
            dilation: int = 1) -> nn.Conv2d:
    """3x3 convolution with "same" padding (``padding = dilation``), no bias (a BN follows)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=dilation,
                     groups=groups, bias=False, dilation=dilation)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution, no bias: mixes channels (and subsamples with ``stride``)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers and a shortcut: ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``.

    Input (N, inplanes, H, W) -> output (N, planes, H/stride, W/stride). ``downsample`` is the
    shortcut module when the shape changes (``None`` = identity).
    """

    expansion: int = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None, groups: int = 1, base_width: int = 64,
                 dilation: int = 1, norm_layer: Callable[..., nn.Module] | None = None) -> None:
        super().__init__()
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        if groups != 1 or base_width != 64:
            raise ValueError(f"BasicBlock only supports groups=1 and base_width=64, "
                             f"got groups={groups}, base_width={base_width}")
        if dilation > 1:
            raise ValueError(f"BasicBlock does not support dilation > 1, got dilation={dilation} "
                             "(replace_stride_with_dilation needs Bottleneck blocks)")
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out = out + identity
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 (stride, groups) -> 1x1 expand, each with BN, plus a shortcut.

    Input (N, inplanes, H, W) -> output (N, planes * 4, H/stride, W/stride). The inner width is
    ``int(planes * base_width / 64) * groups``: ``planes`` for ResNet, e.g. ``4 * 32 = 128`` in the
    first stage of ResNeXt-50 32x4d (32 groups of width 4). The stride sits on the 3x3 conv
    (ResNet v1.5, as torchvision).
    """

    expansion: int = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None, groups: int = 1, base_width: int = 64,
                 dilation: int = 1, norm_layer: Callable[..., nn.Module] | None = None) -> None:
        super().__init__()
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = norm_layer(width)
        self.conv2 = conv3x3(width, width, stride, groups, dilation)
        self.bn2 = norm_layer(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out = out + identity
        return self.relu(out)



def init_resnet_weights(model: nn.Module, zero_init_residual: bool = False) -> None:
    """torchvision's ResNet initialisation, in place: Kaiming-normal (fan_out) convolutions,
    norm layers with weight 1 and bias 0; with ``zero_init_residual`` the last norm layer of every
    residual branch gets weight 0, so each block starts as the identity (Goyal et al. 2017)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
    if zero_init_residual:
        for m in model.modules():
            if isinstance(m, Bottleneck) and m.bn3.weight is not None:
                nn.init.constant_(m.bn3.weight, 0)
            elif isinstance(m, BasicBlock) and m.bn2.weight is not None:
                nn.init.constant_(m.bn2.weight, 0)

class ResNet(nn.Module):
    """ResNet / ResNeXt for ImageNet-sized inputs.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        layers: number of blocks in each of the four stages, e.g. ``[3, 4, 6, 3]`` for ResNet-50.
        num_classes: outputs of the classifier ``fc``.
        zero_init_residual: start the last BN of every block with ``gamma = 0``, so each residual
            branch outputs 0 and every block starts as the identity (Goyal et al. 2017).
        groups, width_per_group: ResNeXt's cardinality and per-group width (1 and 64 = ResNet).
        replace_stride_with_dilation: three booleans for ``layer2..layer4``: keep the resolution
            and dilate the 3x3 convs instead of striding (for dense prediction; Bottleneck only).
        norm_layer: normalization constructor ``norm_layer(channels)``, default ``nn.BatchNorm2d``.

    Shapes: input (N, 3, H, W) float, any H, W >= 1 (224 is the native size; adaptive pooling
    takes any size); output (N, num_classes) logits.
    """

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: Sequence[int],
                 num_classes: int = 1000, zero_init_residual: bool = False, groups: int = 1,
                 width_per_group: int = 64,
                 replace_stride_with_dilation: Sequence[bool] | None = None,
                 norm_layer: Callable[..., nn.Module] | None = None) -> None:
        super().__init__()
        num_classes = check_num_classes(num_classes)
        if len(layers) != 4:
            raise ValueError(f"layers must list the blocks of 4 stages, got {list(layers)}")
        for i, n in enumerate(layers):
            check_int(f"layers[{i}]", n, 1)
        groups = check_int("groups", groups, 1)
        width_per_group = check_int("width_per_group", width_per_group, 1)
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        self._norm_layer = norm_layer
        self.inplanes = 64
        self.dilation = 1
        if replace_stride_with_dilation is None:
            replace_stride_with_dilation = [False, False, False]
        if len(replace_stride_with_dilation) != 3:
            raise ValueError("replace_stride_with_dilation should be None or a 3-element sequence "
                             f"(one flag for layer2, layer3, layer4), got {replace_stride_with_dilation}")
        self.groups = groups
        self.base_width = width_per_group
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = norm_layer(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2,
                                       dilate=replace_stride_with_dilation[0])
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2,
                                       dilate=replace_stride_with_dilation[1])
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2,
                                       dilate=replace_stride_with_dilation[2])
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)

        init_resnet_weights(self, zero_init_residual)

    def _make_layer(self, block: type[BasicBlock] | type[Bottleneck], planes: int, blocks: int,
                    stride: int = 1, dilate: bool = False) -> nn.Sequential:
        """One stage: ``blocks`` blocks of width ``planes``; the first one strides (or dilates)
        and gets a projection shortcut when the shape changes."""
        norm_layer = self._norm_layer
        downsample = None
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                norm_layer(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample, self.groups, self.base_width,
                        previous_dilation, norm_layer)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes, groups=self.groups,
                                base_width=self.base_width, dilation=self.dilation,
                                norm_layer=norm_layer))
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float -> (N, num_classes) logits."""
        check_input(x, 3, type(self).__name__)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


# The family's config table: block type, blocks per stage, ResNeXt (groups, width_per_group).
_CONFIGS: dict[str, tuple[type[nn.Module], list[int], dict]] = {
    "resnet18": (BasicBlock, [2, 2, 2, 2], {}),
    "resnet34": (BasicBlock, [3, 4, 6, 3], {}),
    "resnet50": (Bottleneck, [3, 4, 6, 3], {}),
    "resnet101": (Bottleneck, [3, 4, 23, 3], {}),
    "resnet152": (Bottleneck, [3, 8, 36, 3], {}),
    "resnext50_32x4d": (Bottleneck, [3, 4, 6, 3], {"groups": 32, "width_per_group": 4}),
    "resnext101_32x8d": (Bottleneck, [3, 4, 23, 3], {"groups": 32, "width_per_group": 8}),
}


def _resnet(name: str, num_classes: int, **options) -> ResNet:
    block, layers, fixed = _CONFIGS[name]
    clash = sorted(set(fixed) & set(options))
    if clash:
        raise ValueError(f"{name} fixes {', '.join(f'{k}={fixed[k]}' for k in clash)}; "
                         "build ResNet(...) directly for other values")
    return ResNet(block, layers, num_classes=num_classes, **fixed, **options)


@register_model
def resnet18(num_classes: int = 1000, **options) -> ResNet:
    """ResNet-18: BasicBlock x [2, 2, 2, 2], 11.7M parameters. Options: see :class:`ResNet`."""
    return _resnet("resnet18", num_classes, **options)


@register_model
def resnet34(num_classes: int = 1000, **options) -> ResNet:
    """ResNet-34: BasicBlock x [3, 4, 6, 3], 21.8M parameters. Options: see :class:`ResNet`."""
    return _resnet("resnet34", num_classes, **options)


@register_model
def resnet50(num_classes: int = 1000, **options) -> ResNet:
    """ResNet-50: Bottleneck x [3, 4, 6, 3], 25.6M parameters. Options: see :class:`ResNet`."""
    return _resnet("resnet50", num_classes, **options)


@register_model
def resnet101(num_classes: int = 1000, **options) -> ResNet:
    """ResNet-101: Bottleneck x [3, 4, 23, 3], 44.5M parameters. Options: see :class:`ResNet`."""
    return _resnet("resnet101", num_classes, **options)


@register_model
def resnet152(num_classes: int = 1000, **options) -> ResNet:
    """ResNet-152: Bottleneck x [3, 8, 36, 3], 60.2M parameters. Options: see :class:`ResNet`."""
    return _resnet("resnet152", num_classes, **options)


@register_model
def resnext50_32x4d(num_classes: int = 1000, **options) -> ResNet:
    """ResNeXt-50 (32x4d): ResNet-50 with 32 groups of width 4 in the 3x3 convs, 25.0M parameters."""
    return _resnet("resnext50_32x4d", num_classes, **options)


@register_model
def resnext101_32x8d(num_classes: int = 1000, **options) -> ResNet:
    """ResNeXt-101 (32x8d): ResNet-101 with 32 groups of width 8 in the 3x3 convs, 88.8M parameters."""
    return _resnet("resnext101_32x8d", num_classes, **options)
