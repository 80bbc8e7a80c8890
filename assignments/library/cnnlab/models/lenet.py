"""LeNet-5 (LeCun et al., 1998), in the "modern" form the lectures draw.

Layer table for a 1x32x32 input (``K`` = kernel, ``S`` = stride)::

    layer              output      parameters
    input              1 x 32x32
    conv1 5x5, 6       6 x 28x28   (5*5*1 + 1) * 6    =    156
    pool  2x2 S2       6 x 14x14
    conv2 5x5, 16     16 x 10x10   (5*5*6 + 1) * 16   =  2,416
    pool  2x2 S2      16 x  5x5
    flatten               400
    fc 120                120      (400 + 1) * 120    = 48,120
    fc 84                  84      (120 + 1) * 84     = 10,164
    fc 10                  10      (84 + 1) * 10      =    850
                                               total   = 61,706

"Modern" means three simplifications of the 1998 network: C3 (``conv2``) is fully connected to
all six S2 maps (the paper used a hand-made sparse table of 60 connections, 1,516 weights),
the subsampling layers are plain max (or average) pooling without trainable coefficients, and
the output layer is an ordinary linear layer instead of Euclidean RBF units. The default
activation is ReLU with max pooling; ``activation="tanh", pool="avg"`` is closer to 1998.
Neither choice changes the parameter count (61,706 for 10 classes).

Parameter names follow torchvision's convention: ``features`` (convolutions) and
``classifier`` (fully connected layers), both ``nn.Sequential``.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..shapes import check_int
from .registry import register_model

__all__ = ["LeNet5", "lenet5"]

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}
_POOLS = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}


class LeNet5(nn.Module):
    """LeNet-5: conv5x5(6) - pool - conv5x5(16) - pool - fc120 - fc84 - fc(num_classes).

    Args:
        num_classes: outputs of the last layer (int >= 1), 10 for digits.
        in_channels: input channels (1 for grey-scale digits, 3 for colour images).
        activation: ``"relu"`` (default, modern) or ``"tanh"`` (1998).
        pool: ``"max"`` (default, modern) or ``"avg"`` (the 1998 subsampling, without its
            trainable coefficient and bias).

    Input: float tensor ``(N, in_channels, 32, 32)``. Output: logits ``(N, num_classes)``,
    same dtype and device as the input.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, activation: str = "relu",
                 pool: str = "max") -> None:
        super().__init__()
        num_classes = check_int("num_classes", num_classes, 1)
        in_channels = check_int("in_channels", in_channels, 1)
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        if pool not in _POOLS:
            raise ValueError(f"pool must be one of {sorted(_POOLS)}, got {pool!r}")
        act, pool_layer = _ACTIVATIONS[activation], _POOLS[pool]
        self.in_channels = in_channels
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5),   # 32 -> 28
            act(),
            pool_layer(kernel_size=2, stride=2),        # 28 -> 14
            nn.Conv2d(6, 16, kernel_size=5),            # 14 -> 10 (full C3 connectivity)
            act(),
            pool_layer(kernel_size=2, stride=2),        # 10 -> 5
        )
        self.classifier = nn.Sequential(
            nn.Linear(16 * 5 * 5, 120),
            act(),
            nn.Linear(120, 84),
            act(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(N, in_channels, 32, 32)`` float -> logits ``(N, num_classes)``."""
        if x.dim() != 4 or x.shape[1] != self.in_channels or tuple(x.shape[2:]) != (32, 32):
            raise ValueError(
                f"LeNet5 input x must have shape (N, {self.in_channels}, 32, 32), got "
                f"{tuple(x.shape)}: the 16*5*5 = 400 inputs of the first fully connected layer "
                f"fix the image size (32 -conv5-> 28 -pool-> 14 -conv5-> 10 -pool-> 5)")
        x = self.features(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


@register_model
def lenet5(num_classes: int = 10, *, in_channels: int = 1, activation: str = "relu",
           pool: str = "max") -> LeNet5:
    """LeNet-5, modern version (ReLU + max pooling by default, full C3): 61,706 parameters
    for 10 classes. Input ``(N, 1, 32, 32)``; see :class:`LeNet5` for the options.

    Note the default ``num_classes`` is 10 (digits), not 1000.
    """
    return LeNet5(num_classes=num_classes, in_channels=in_channels, activation=activation, pool=pool)
