"""VGG (Simonyan & Zisserman, 2014): stacks of 3x3 convolutions, 11 to 19 weight layers.

The design rule the lectures teach: only 3x3 convolutions (stride 1, pad 1, keeping the spatial
size) and 2x2 max pools (stride 2, halving it), doubling the channels after each pool up to 512.
Two stacked 3x3 convolutions see a 5x5 region, three see 7x7, with fewer parameters
(3 * 3*3*C*C = 27C^2 against 7*7*C*C = 49C^2) and more non-linearities.

One config table, ``cfgs``, as in torchvision (numbers = conv output channels, ``"M"`` = max
pool); the column letters are the paper's table 1::

    "A" vgg11   64 M 128 M 256 256 M 512 512 M 512 512 M
    "B" vgg13   64 64 M 128 128 M 256 256 M 512 512 M 512 512 M
    "D" vgg16   64 64 M 128 128 M 256 256 256 M 512 512 512 M 512 512 512 M
    "E" vgg19   64 64 M 128 128 M 256 256 256 256 M 512 512 512 512 M 512 512 512 512 M

For a 224x224 input the five stages end at 224 -> 112 -> 56 -> 28 -> 14 -> 7. ``avgpool``
(``AdaptiveAvgPool2d(7)``, the identity at 224) feeds 512*7*7 = 25,088 features to the
classifier fc4096-fc4096-fc(num_classes) with dropout, which holds most of the parameters
(vgg16: 123.6M of 138.4M). ``*_bn`` variants put ``BatchNorm2d`` between each convolution and its
ReLU. Parameter names and counts equal torchvision's (vgg16: 138,357,544).

Initialization as torchvision: convolutions Kaiming-normal (fan_out, ReLU) with zero bias,
batch norm weight 1 and bias 0, linear layers N(0, 0.01) with zero bias (skipped for a model
built on the ``meta`` device, which has shapes but no values).
"""
from __future__ import annotations

from typing import Union

import torch
import torch.nn as nn

from ..shapes import check_int, check_probability
from .registry import register_model

__all__ = ["VGG", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19",
           "vgg19_bn"]

cfgs: dict[str, list[Union[str, int]]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M"],
}


def make_layers(cfg: list[Union[str, int]], batch_norm: bool = False) -> nn.Sequential:
    """The convolutional part of a VGG from a config list (see ``cfgs``).

    Each int ``v`` adds ``Conv2d(in, v, 3, padding=1)`` [+ ``BatchNorm2d(v)``] + ``ReLU``;
    each ``"M"`` adds ``MaxPool2d(2, 2)``. Input has 3 channels.
    """
    layers: list[nn.Module] = []
    in_channels = 3
    for v in cfg:
        if v == "M":
            layers += [nn.MaxPool2d(kernel_size=2, stride=2)]
        else:
            v = int(v)
            conv2d = nn.Conv2d(in_channels, v, kernel_size=3, padding=1)
            if batch_norm:
                layers += [conv2d, nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
            else:
                layers += [conv2d, nn.ReLU(inplace=True)]
            in_channels = v
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """VGG network: ``features`` (from :func:`make_layers`), ``avgpool``, ``classifier``.

    Args:
        features: the convolutional stages, ending in 512 channels.
        num_classes: outputs of the last layer.
        init_weights: apply torchvision's initialization (see the module docstring).
        dropout: dropout probability after the two hidden fully connected layers.

    Input ``(N, 3, H, W)`` float with ``H, W >= 32`` (five 2x2 pools; 224 native); output
    logits ``(N, num_classes)``.
    """

    min_input_size = 32

    def __init__(self, features: nn.Module, num_classes: int = 1000, init_weights: bool = True,
                 dropout: float = 0.5) -> None:
        super().__init__()
        num_classes = check_int("num_classes", num_classes, 1)
        check_probability("dropout", dropout)
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )
        # meta tensors hold no values: skip the init there (normal_ on meta is slow to set up)
        if init_weights and not self.classifier[0].weight.is_meta:
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    if m.bias is not None:
                        nn.init.constant_(m.bias, 0)
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.constant_(m.weight, 1)
                    nn.init.constant_(m.bias, 0)
                elif isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, 0, 0.01)
                    nn.init.constant_(m.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(N, 3, H, W)`` float -> logits ``(N, num_classes)``."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"VGG input x must have shape (N, 3, H, W), got {tuple(x.shape)}")
        if min(x.shape[2:]) < self.min_input_size:
            raise ValueError(f"VGG input x of shape {tuple(x.shape)} is too small: H and W must be "
                             f">= 32, since five 2x2 max pools halve them (32 -> 1)")
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


def _vgg(cfg: str, batch_norm: bool, num_classes: int, init_weights: bool, dropout: float) -> VGG:
    return VGG(make_layers(cfgs[cfg], batch_norm=batch_norm), num_classes=num_classes,
               init_weights=init_weights, dropout=dropout)


@register_model
def vgg11(num_classes: int = 1000, *, init_weights: bool = True, dropout: float = 0.5) -> VGG:
    """VGG-11 (config "A"), 132,863,336 parameters. Input ``(N, 3, 224, 224)``."""
    return _vgg("A", False, num_classes, init_weights, dropout)


@register_model
def vgg11_bn(num_classes: int = 1000, *, init_weights: bool = True, dropout: float = 0.5) -> VGG:
    """VGG-11 with batch normalization, 132,868,840 parameters."""
    return _vgg("A", True, num_classes, init_weights, dropout)


@register_model
def vgg13(num_classes: int = 1000, *, init_weights: bool = True, dropout: float = 0.5) -> VGG:
    """VGG-13 (config "B"), 133,047,848 parameters."""
    return _vgg("B", False, num_classes, init_weights, dropout)


@register_model
def vgg13_bn(num_classes: int = 1000, *, init_weights: bool = True, dropout: float = 0.5) -> VGG:
    """VGG-13 with batch normalization, 133,053,736 parameters."""
    return _vgg("B", True, num_classes, init_weights, dropout)


@register_model
def vgg16(num_classes: int = 1000, *, init_weights: bool = True, dropout: float = 0.5) -> VGG:
    """VGG-16 (config "D"), 138,357,544 parameters."""
    return _vgg("D", False, num_classes, init_weights, dropout)


@register_model
def vgg16_bn(num_classes: int = 1000, *, init_weights: bool = True, dropout: float = 0.5) -> VGG:
    """VGG-16 with batch normalization, 138,365,992 parameters."""
    return _vgg("D", True, num_classes, init_weights, dropout)


@register_model
def vgg19(num_classes: int = 1000, *, init_weights: bool = True, dropout: float = 0.5) -> VGG:
    """VGG-19 (config "E"), 143,667,240 parameters."""
    return _vgg("E", False, num_classes, init_weights, dropout)


@register_model
def vgg19_bn(num_classes: int = 1000, *, init_weights: bool = True, dropout: float = 0.5) -> VGG:
    """VGG-19 with batch normalization, 143,678,248 parameters."""
    return _vgg("E", True, num_classes, init_weights, dropout)
