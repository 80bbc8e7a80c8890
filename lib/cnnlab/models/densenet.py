"""DenseNet (Huang et al. 2017), torchvision-compatible.

Inside a *dense block* every layer receives the concatenation of the block input and the
outputs of all previous layers, and adds ``growth_rate`` new channels:
layer ``i`` sees ``C0 + i*k`` channels. Each layer is BN-ReLU-conv1x1 (to ``bn_size*k``
channels, the "bottleneck") then BN-ReLU-conv3x3 (to ``k``). Between blocks a *transition*
(BN-ReLU-conv1x1 halving the channels, 2x2 average pool) halves the resolution.

Parameter names (``features.denseblock1.denselayer1.norm1.weight``, ...) and shapes equal
torchvision's, so its weight files load with ``strict=True`` (older torchvision files spell
``norm.1``; :func:`cnnlab.models.load_weights` renames those).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp

from ..shapes import check_int, check_probability, conv_output_size
from .registry import register_model
from ._utils import check_input, check_num_classes

__all__ = ["DenseLayer", "DenseBlock", "Transition", "DenseNet", "densenet121"]


class DenseLayer(nn.Module):
    """BN-ReLU-conv1x1 (``bn_size * growth_rate`` channels) -> BN-ReLU-conv3x3 (``growth_rate``).

    Input: a tensor or a list of tensors (N, C_i, H, W), concatenated along channels
    (``sum C_i = num_input_features``). Output: (N, growth_rate, H, W), the new features only.
    ``memory_efficient=True`` recomputes the concatenation + bottleneck in the backward pass
    (gradient checkpointing) instead of storing it.
    """

    def __init__(self, num_input_features: int, growth_rate: int, bn_size: int, drop_rate: float,
                 memory_efficient: bool = False) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(num_input_features)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(num_input_features, bn_size * growth_rate, kernel_size=1, stride=1,
                               bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, kernel_size=3, stride=1,
                               padding=1, bias=False)
        self.drop_rate = float(drop_rate)
        self.memory_efficient = memory_efficient

    def bn_function(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        """The bottleneck: concatenate, BN-ReLU-conv1x1."""
        concated = torch.cat(inputs, 1)
        return self.conv1(self.relu1(self.norm1(concated)))

    def forward(self, input: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        prev_features = [input] if isinstance(input, torch.Tensor) else list(input)
        if self.memory_efficient and any(t.requires_grad for t in prev_features):
            bottleneck_output = cp.checkpoint(lambda *ts: self.bn_function(list(ts)), *prev_features,
                                              use_reentrant=False)
        else:
            bottleneck_output = self.bn_function(prev_features)
        new_features = self.conv2(self.relu2(self.norm2(bottleneck_output)))
        if self.drop_rate > 0:
            new_features = F.dropout(new_features, p=self.drop_rate, training=self.training)
        return new_features


class DenseBlock(nn.ModuleDict):
    """``num_layers`` dense layers ``denselayer1..N``; each sees all earlier outputs.

    (N, C0, H, W) -> (N, C0 + num_layers * growth_rate, H, W).
    """

    def __init__(self, num_layers: int, num_input_features: int, bn_size: int, growth_rate: int,
                 drop_rate: float, memory_efficient: bool = False) -> None:
        super().__init__()
        for i in range(num_layers):
            layer = DenseLayer(num_input_features + i * growth_rate, growth_rate=growth_rate,
                               bn_size=bn_size, drop_rate=drop_rate, memory_efficient=memory_efficient)
            self.add_module(f"denselayer{i + 1}", layer)

    def forward(self, init_features: torch.Tensor) -> torch.Tensor:
        features = [init_features]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    """BN-ReLU-conv1x1 (``num_input_features -> num_output_features``) then 2x2 average pool.

    (N, C_in, H, W) -> (N, C_out, H // 2, W // 2).
    """

    def __init__(self, num_input_features: int, num_output_features: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(num_input_features)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(num_input_features, num_output_features, kernel_size=1, stride=1,
                              bias=False)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)


class DenseNet(nn.Module):
    """DenseNet-BC: 7x7/2 conv + 3x3/2 max-pool stem, dense blocks with transitions, BN,
    global average pool, linear ``classifier``.

    Args:
        growth_rate: k, channels each dense layer adds (32).
        block_config: dense layers per block ((6, 12, 24, 16) = DenseNet-121).
        num_init_features: channels of the stem conv (64).
        bn_size: bottleneck width factor; the 1x1 conv outputs ``bn_size * k`` channels (4).
        drop_rate: dropout after each dense layer (0).
        num_classes: classifier outputs.
        memory_efficient: gradient checkpointing in the dense layers (less memory, slower).

    Shapes: input (N, 3, H, W) float, native 224x224; the stem (/4) and the three transitions
    (/2 each, floor) need H, W >= 29 for DenseNet-121 so at least one pixel is left; output
    (N, num_classes) logits.
    """

    def __init__(self, growth_rate: int = 32, block_config: Sequence[int] = (6, 12, 24, 16),
                 num_init_features: int = 64, bn_size: int = 4, drop_rate: float = 0.0,
                 num_classes: int = 1000, memory_efficient: bool = False) -> None:
        super().__init__()
        num_classes = check_num_classes(num_classes)
        growth_rate = check_int("growth_rate", growth_rate, 1)
        num_init_features = check_int("num_init_features", num_init_features, 1)
        bn_size = check_int("bn_size", bn_size, 1)
        if len(block_config) == 0:
            raise ValueError("block_config must list at least one dense block, got ()")
        for i, n in enumerate(block_config):
            check_int(f"block_config[{i}]", n, 1)
        check_probability("drop_rate", drop_rate, include_one=False)

        self.features = nn.Sequential(OrderedDict([
            ("conv0", nn.Conv2d(3, num_init_features, kernel_size=7, stride=2, padding=3, bias=False)),
            ("norm0", nn.BatchNorm2d(num_init_features)),
            ("relu0", nn.ReLU(inplace=True)),
            ("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
        ]))
        num_features = num_init_features
        for i, num_layers in enumerate(block_config):
            block = DenseBlock(num_layers=num_layers, num_input_features=num_features,
                               bn_size=bn_size, growth_rate=growth_rate, drop_rate=drop_rate,
                               memory_efficient=memory_efficient)
            self.features.add_module(f"denseblock{i + 1}", block)
            num_features = num_features + num_layers * growth_rate
            if i != len(block_config) - 1:
                trans = Transition(num_input_features=num_features,
                                   num_output_features=num_features // 2)
                self.features.add_module(f"transition{i + 1}", trans)
                num_features = num_features // 2
        self.features.add_module("norm5", nn.BatchNorm2d(num_features))
        self.num_transitions = len(block_config) - 1
        self.classifier = nn.Linear(num_features, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.constant_(m.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float -> (N, num_classes) logits."""
        check_input(x, 3, type(self).__name__)
        for axis, size in (("H", x.shape[2]), ("W", x.shape[3])):
            s = conv_output_size(conv_output_size(size, 7, 2, 3, axis=axis), 3, 2, 1, axis=axis)
            if s < 2 ** self.num_transitions:
                raise ValueError(f"DenseNet input x of shape {tuple(x.shape)} is too small along {axis}: "
                                 f"the stem leaves {s} pixels, the {self.num_transitions} transitions "
                                 f"(2x2 average pools) need at least {2 ** self.num_transitions}")
        features = self.features(x)
        out = F.relu(features, inplace=True)
        out = torch.flatten(F.adaptive_avg_pool2d(out, (1, 1)), 1)
        return self.classifier(out)


# The family's config table: (growth_rate, block_config, num_init_features).
_CONFIGS: dict[str, tuple[int, tuple[int, ...], int]] = {
    "densenet121": (32, (6, 12, 24, 16), 64),
}


@register_model
def densenet121(num_classes: int = 1000, **options) -> DenseNet:
    """DenseNet-121 (k = 32, blocks (6, 12, 24, 16)), 8.0M parameters.
    Options: ``bn_size``, ``drop_rate``, ``memory_efficient`` (see :class:`DenseNet`)."""
    growth_rate, block_config, num_init_features = _CONFIGS["densenet121"]
    return DenseNet(growth_rate, block_config, num_init_features, num_classes=num_classes, **options)
