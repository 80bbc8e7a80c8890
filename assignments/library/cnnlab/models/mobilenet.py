"""MobileNet v1 (Howard et al. 2017) and v2 (Sandler et al. 2018): depthwise separable convolutions.

A standard KxK convolution from C_in to C_out channels costs ``K*K*C_in*C_out`` weights per
position. MobileNet factorizes it into

- a *depthwise* KxK convolution (``groups = C_in``: one filter per channel, ``K*K*C_in`` weights),
- a *pointwise* 1x1 convolution mixing channels (``C_in*C_out`` weights),

about ``1/C_out + 1/K^2`` of the cost: 8-9x fewer for 3x3 (:class:`DepthwiseSeparableConv`).

v2 wraps this in an *inverted residual* (:class:`InvertedResidual`): 1x1 expand by ``t`` ->
3x3 depthwise -> 1x1 *linear* projection (no ReLU: the bottleneck is low-dimensional), with a
shortcut between the thin ends when the shape is kept.

:class:`MobileNetV2` matches torchvision's parameter names and shapes (``features.*``,
``classifier.1``), so its weight files load with ``strict=True``. v1 has no torchvision
counterpart; it follows Table 1 of the paper (4.2M parameters at width 1.0).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

from ..shapes import check_int, check_probability
from .registry import register_model
from ._utils import check_input, check_num_classes

__all__ = [
    "ConvBNReLU", "DepthwiseSeparableConv", "MobileNetV1", "InvertedResidual", "MobileNetV2",
    "mobilenet_v1", "mobilenet_v2",
]


def _make_divisible(v: float, divisor: int, min_value: int | None = None) -> int:
    """Round ``v`` channels to the nearest multiple of ``divisor`` (at least ``min_value``),
    never going down by more than 10% (torchvision's rule, from the TF reference code)."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def _check_width(width_mult, round_nearest) -> tuple[float, int]:
    if isinstance(width_mult, bool) or not isinstance(width_mult, (int, float)) or not width_mult > 0:
        raise ValueError(f"width_mult must be a number > 0, got {width_mult!r}")
    return float(width_mult), check_int("round_nearest", round_nearest, 1)


class ConvBNReLU(nn.Sequential):
    """Conv2d (no bias, "same" padding) -> norm -> activation, as torchvision's
    ``Conv2dNormActivation``: submodules ``0`` (conv), ``1`` (norm), ``2`` (activation).

    (N, in_planes, H, W) -> (N, out_planes, ceil(H/stride), ceil(W/stride)) for odd kernels.
    """

    def __init__(self, in_planes: int, out_planes: int, kernel_size: int = 3, stride: int = 1,
                 groups: int = 1, norm_layer: Callable[..., nn.Module] | None = None,
                 activation_layer: Callable[..., nn.Module] = nn.ReLU6) -> None:
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        padding = (kernel_size - 1) // 2
        super().__init__(
            nn.Conv2d(in_planes, out_planes, kernel_size, stride, padding, groups=groups, bias=False),
            norm_layer(out_planes),
            activation_layer(inplace=True),
        )
        self.out_channels = out_planes


class DepthwiseSeparableConv(nn.Module):
    """MobileNet v1's unit: 3x3 depthwise conv-BN-ReLU, then 1x1 pointwise conv-BN-ReLU.

    (N, inp, H, W) -> (N, oup, H/stride, W/stride). Parameters (without BN):
    ``9*inp + inp*oup`` versus ``9*inp*oup`` for a full 3x3 convolution.
    """

    def __init__(self, inp: int, oup: int, stride: int = 1,
                 norm_layer: Callable[..., nn.Module] | None = None) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride should be 1 or 2, got {stride}")
        self.depthwise = ConvBNReLU(inp, inp, 3, stride, groups=inp, norm_layer=norm_layer,
                                    activation_layer=nn.ReLU)
        self.pointwise = ConvBNReLU(inp, oup, 1, norm_layer=norm_layer, activation_layer=nn.ReLU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


def _init_weights(model: nn.Module) -> None:
    """torchvision's MobileNet init: conv kaiming-normal (fan_out), BN 1/0, linear N(0, 0.01)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


# MobileNet v1, Table 1 of the paper: (output channels, stride) of the 13 depthwise separable
# layers after the 3x3/2 stem conv with 32 channels. (The paper's table lists stride 2 for the
# last 1024-channel layer but the feature map stays 7x7: it is stride 1, as in every
# reference implementation.)
_V1_STEM = 32
_V1_SETTING: list[tuple[int, int]] = [
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1),
    (1024, 2), (1024, 1),
]


class MobileNetV1(nn.Module):
    """MobileNet v1: a 3x3/2 conv, 13 depthwise separable convs, global average pool, FC.

    Args:
        num_classes: classifier outputs.
        width_mult: the paper's width multiplier alpha (1.0, 0.75, 0.5, 0.25): every layer's
            channels are scaled by alpha (rounded to a multiple of ``round_nearest``); cost and
            parameters shrink roughly by alpha^2 (4.2M, 2.6M, 1.3M, 0.5M parameters).
        round_nearest: channel counts are rounded to multiples of this.
        dropout: dropout probability before the classifier (the paper uses none; 0.0).
        norm_layer: normalization constructor, default ``nn.BatchNorm2d``.

    The paper's *resolution multiplier* rho is not a constructor option: it is the input size.
    Feed 224*rho images (224, 192, 160, 128); adaptive pooling accepts any size, cost falls by rho^2.

    Shapes: input (N, 3, H, W) float (native 224x224), output (N, num_classes) logits.
    """

    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0, round_nearest: int = 8,
                 dropout: float = 0.0, norm_layer: Callable[..., nn.Module] | None = None) -> None:
        super().__init__()
        num_classes = check_num_classes(num_classes)
        width_mult, round_nearest = _check_width(width_mult, round_nearest)
        dropout = check_probability("dropout", dropout, include_one=False)
        input_channel = _make_divisible(_V1_STEM * width_mult, round_nearest)
        features: list[nn.Module] = [ConvBNReLU(3, input_channel, 3, stride=2, norm_layer=norm_layer,
                                                activation_layer=nn.ReLU)]
        for c, s in _V1_SETTING:
            output_channel = _make_divisible(c * width_mult, round_nearest)
            features.append(DepthwiseSeparableConv(input_channel, output_channel, s, norm_layer))
            input_channel = output_channel
        self.features = nn.Sequential(*features)
        self.last_channel = input_channel
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(input_channel, num_classes))
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float -> (N, num_classes) logits."""
        check_input(x, 3, type(self).__name__)
        x = torch.flatten(self.avgpool(self.features(x)), 1)
        return self.classifier(x)


class InvertedResidual(nn.Module):
    """MobileNet v2 block: 1x1 expand (x ``expand_ratio``, ReLU6) -> 3x3 depthwise (ReLU6) ->
    1x1 linear projection + BN; shortcut ``x + conv(x)`` when ``stride == 1 and inp == oup``.

    (N, inp, H, W) -> (N, oup, H/stride, W/stride). Submodule ``conv`` as in torchvision.
    """

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: float,
                 norm_layer: Callable[..., nn.Module] | None = None) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride should be 1 or 2, got {stride}")
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        self.stride = stride
        hidden_dim = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU(inp, hidden_dim, kernel_size=1, norm_layer=norm_layer))
        layers.extend([
            ConvBNReLU(hidden_dim, hidden_dim, stride=stride, groups=hidden_dim, norm_layer=norm_layer),
            nn.Conv2d(hidden_dim, oup, 1, 1, 0, bias=False),
            norm_layer(oup),
        ])
        self.conv = nn.Sequential(*layers)
        self.out_channels = oup

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


# MobileNet v2, Table 2 of the paper: expansion t, output channels c, repeats n, first stride s.
_V2_STEM, _V2_LAST = 32, 1280
_V2_SETTING: list[list[int]] = [
    [1, 16, 1, 1],
    [6, 24, 2, 2],
    [6, 32, 3, 2],
    [6, 64, 4, 2],
    [6, 96, 3, 1],
    [6, 160, 3, 2],
    [6, 320, 1, 1],
]


class MobileNetV2(nn.Module):
    """MobileNet v2 (torchvision-compatible): stem 3x3/2 conv, 17 inverted residuals, 1x1 conv to
    1280 channels, global average pool, dropout, linear.

    Args:
        num_classes: classifier outputs.
        width_mult: width multiplier for all layers (the last conv is never made thinner).
        inverted_residual_setting: list of ``[t, c, n, s]`` rows (default: the paper's table).
        round_nearest: channel counts are rounded to multiples of this (8; 1 turns rounding off).
        dropout: dropout probability before the classifier (0.2).
        norm_layer: normalization constructor, default ``nn.BatchNorm2d``.

    Shapes: input (N, 3, H, W) float (native 224x224), output (N, num_classes) logits.
    """

    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0,
                 inverted_residual_setting: list[list[int]] | None = None, round_nearest: int = 8,
                 dropout: float = 0.2, norm_layer: Callable[..., nn.Module] | None = None) -> None:
        super().__init__()
        num_classes = check_num_classes(num_classes)
        width_mult, round_nearest = _check_width(width_mult, round_nearest)
        dropout = check_probability("dropout", dropout, include_one=False)
        if inverted_residual_setting is None:
            inverted_residual_setting = _V2_SETTING
        if len(inverted_residual_setting) == 0 or any(len(row) != 4 for row in inverted_residual_setting):
            raise ValueError("inverted_residual_setting should be a non-empty list of [t, c, n, s] rows, "
                             f"got {inverted_residual_setting}")
        input_channel = _make_divisible(_V2_STEM * width_mult, round_nearest)
        self.last_channel = _make_divisible(_V2_LAST * max(1.0, width_mult), round_nearest)
        features: list[nn.Module] = [ConvBNReLU(3, input_channel, stride=2, norm_layer=norm_layer)]
        for t, c, n, s in inverted_residual_setting:
            output_channel = _make_divisible(c * width_mult, round_nearest)
            for i in range(n):
                stride = s if i == 0 else 1
                features.append(InvertedResidual(input_channel, output_channel, stride, t, norm_layer))
                input_channel = output_channel
        features.append(ConvBNReLU(input_channel, self.last_channel, kernel_size=1, norm_layer=norm_layer))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(self.last_channel, num_classes))
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float -> (N, num_classes) logits."""
        check_input(x, 3, type(self).__name__)
        x = self.features(x)
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, (1, 1)), 1)
        return self.classifier(x)


@register_model
def mobilenet_v1(num_classes: int = 1000, **options) -> MobileNetV1:
    """MobileNet v1 (paper Table 1), 4.2M parameters at ``width_mult=1.0``.
    Options: ``width_mult``, ``round_nearest``, ``dropout``, ``norm_layer`` (see :class:`MobileNetV1`)."""
    return MobileNetV1(num_classes=num_classes, **options)


@register_model
def mobilenet_v2(num_classes: int = 1000, **options) -> MobileNetV2:
    """MobileNet v2 (torchvision-compatible), 3.5M parameters at ``width_mult=1.0``.
    Options: ``width_mult``, ``round_nearest``, ``dropout``, ``inverted_residual_setting``,
    ``norm_layer`` (see :class:`MobileNetV2`)."""
    return MobileNetV2(num_classes=num_classes, **options)
