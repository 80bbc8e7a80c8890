"""GoogLeNet / Inception v1 (Szegedy et al., 2014), with torchvision's parameter names.

Three ideas the lectures teach:

* **Stem**: an aggressive downsampling start (``conv1`` 7x7/2, ``maxpool1``, ``conv2`` 1x1,
  ``conv3`` 3x3, ``maxpool2``) takes 224x224 to 28x28 cheaply before the expensive modules.
* **Inception module** (:class:`Inception`): four parallel branches concatenated along the
  channels -- 1x1; 1x1 then 3x3; 1x1 then "5x5"; 3x3 max pool then 1x1. The 1x1 convolutions
  in front of the big filters are **bottlenecks**: they cut the channels (e.g. 192 -> 16 in
  front of the 5x5 of ``inception3a``) so the big convolution is cheap.
* **Global average pooling** (``avgpool``, ``AdaptiveAvgPool2d(1)``) turns the final
  1024 x 7x7 map into 1024 numbers, so a single ``fc`` layer (1024 -> classes) replaces
  AlexNet's and VGG's huge fully connected layers: 6.6M parameters in all, against VGG-16's 138M.

Two **auxiliary classifiers** (``aux1`` after ``inception4a``, ``aux2`` after ``inception4d``)
inject extra gradient into the middle of the network during training; at test time they are
ignored. ``aux_logits=True`` builds them; then ``forward`` in training mode returns
``GoogLeNetOutputs(logits, aux_logits2, aux_logits1)`` and in eval mode only the logits.

Sizes for a 224x224 input (channels x height x width)::

    conv1 7x7/2 -> 64x112x112   maxpool1 -> 64x56x56    conv2 1x1 -> 64x56x56
    conv3 3x3 -> 192x56x56      maxpool2 -> 192x28x28
    inception3a -> 256x28x28    inception3b -> 480x28x28    maxpool3 -> 480x14x14
    inception4a -> 512x14x14 (aux1)  4b, 4c -> 512  4d -> 528 (aux2)  4e -> 832x14x14
    maxpool4 -> 832x7x7   inception5a -> 832x7x7   inception5b -> 1024x7x7
    avgpool -> 1024x1x1   dropout, fc -> num_classes

**torchvision quirk**: torchvision's ``Inception.branch3`` uses a **3x3** convolution where the
paper has a **5x5** one (https://github.com/pytorch/vision/issues/906); its pretrained weights
were trained that way. This module keeps the 3x3 by default so that names, shapes and the
parameter count (6,624,904 with ``aux_logits=False``; 13,004,888 with the two auxiliary
classifiers) equal torchvision's. ``paper_5x5=True`` builds the paper's 5x5 filters instead
(+ sum of ``ch5x5red * ch5x5 * 16`` weights; such a model does not load torchvision weights).

Every convolution is a :class:`BasicConv2d` (conv without bias + batch norm with eps 0.001 +
ReLU): batch norm comes from torchvision's version, not the 2014 paper. Initialization as
torchvision: conv and linear weights truncated normal (std 0.01, cut at +-2), batch norm 1 / 0.
"""
from __future__ import annotations

from collections import namedtuple
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..shapes import check_int, check_probability
from .registry import register_model

__all__ = ["GoogLeNet", "GoogLeNetOutputs", "googlenet"]

GoogLeNetOutputs = namedtuple("GoogLeNetOutputs", ["logits", "aux_logits2", "aux_logits1"])
GoogLeNetOutputs.__annotations__ = {"logits": Tensor, "aux_logits2": Optional[Tensor],
                                    "aux_logits1": Optional[Tensor]}
GoogLeNetOutputs.__doc__ = ("Training-mode output of GoogLeNet with auxiliary classifiers: "
                            "three ``(N, num_classes)`` logit tensors (main, aux2, aux1).")


class BasicConv2d(nn.Module):
    """Conv2d (no bias) -> BatchNorm2d(eps=0.001) -> ReLU. ``kwargs`` go to ``nn.Conv2d``.

    ``(N, in_channels, H, W)`` -> ``(N, out_channels, H', W')``.
    """

    def __init__(self, in_channels: int, out_channels: int, **kwargs) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


class Inception(nn.Module):
    """Inception module: four branches concatenated along channels.

    ``branch1``: 1x1 -> ``ch1x1``; ``branch2``: 1x1 -> ``ch3x3red``, 3x3 -> ``ch3x3``;
    ``branch3``: 1x1 -> ``ch5x5red``, 3x3 (torchvision) or 5x5 (``paper_5x5``) -> ``ch5x5``;
    ``branch4``: 3x3/1 max pool, 1x1 -> ``pool_proj``.

    ``(N, in_channels, H, W)`` -> ``(N, ch1x1 + ch3x3 + ch5x5 + pool_proj, H, W)``.
    """

    def __init__(self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int,
                 ch5x5: int, pool_proj: int, paper_5x5: bool = False) -> None:
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(
            BasicConv2d(in_channels, ch3x3red, kernel_size=1),
            BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1),
        )
        k = 5 if paper_5x5 else 3  # torchvision: 3 (pytorch/vision#906); paper: 5
        self.branch3 = nn.Sequential(
            BasicConv2d(in_channels, ch5x5red, kernel_size=1),
            BasicConv2d(ch5x5red, ch5x5, kernel_size=k, padding=k // 2),
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
            BasicConv2d(in_channels, pool_proj, kernel_size=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        outputs = [self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)]
        return torch.cat(outputs, 1)


class InceptionAux(nn.Module):
    """Auxiliary classifier: adaptive avg pool to 4x4, 1x1 conv to 128, fc 1024, dropout, fc.

    ``(N, in_channels, H, W)`` (14x14 at a 224 input) -> ``(N, num_classes)``.
    """

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.7) -> None:
        super().__init__()
        self.conv = BasicConv2d(in_channels, 128, kernel_size=1)
        self.fc1 = nn.Linear(2048, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = F.adaptive_avg_pool2d(x, (4, 4))   # N x C x 4 x 4
        x = self.conv(x)                       # N x 128 x 4 x 4
        x = torch.flatten(x, 1)                # N x 2048
        x = F.relu(self.fc1(x), inplace=True)  # N x 1024
        x = self.dropout(x)
        return self.fc2(x)                     # N x num_classes


class GoogLeNet(nn.Module):
    """GoogLeNet (Inception v1), torchvision layout. See the module docstring.

    Args:
        num_classes: outputs of ``fc`` (and of the auxiliary classifiers).
        aux_logits: build ``aux1``/``aux2`` (default False: 6,624,904 parameters, the
            torchvision manifest; True: 13,004,888).
        transform_input: re-normalize an input normalized with ImageNet mean/std to the
            (x - 0.5) / 0.5 normalization of the original Google weights, as torchvision does.
        init_weights: apply torchvision's initialization.
        dropout: dropout before ``fc`` (0.2); dropout_aux: in the auxiliary heads (0.7).
        paper_5x5: 5x5 instead of torchvision's 3x3 convolution in every ``branch3``.

    Input ``(N, 3, H, W)`` float with ``H, W >= 15`` (224 native). Output: logits
    ``(N, num_classes)``, or :data:`GoogLeNetOutputs` in training mode with ``aux_logits``.
    """

    # conv1 -> 8, maxpool1 -> 4, maxpool2 -> 2, maxpool3 -> 1, maxpool4 -> 1 (ceil_mode);
    # 14 gives 7, 3, 1 and maxpool3 (3x3/2, ceil) cannot fit a 1x1 map.
    min_input_size = 15

    def __init__(self, num_classes: int = 1000, aux_logits: bool = False,
                 transform_input: bool = False, init_weights: bool = True,
                 dropout: float = 0.2, dropout_aux: float = 0.7, paper_5x5: bool = False) -> None:
        super().__init__()
        num_classes = check_int("num_classes", num_classes, 1)
        for name, p in (("dropout", dropout), ("dropout_aux", dropout_aux)):
            check_probability(name, p)
        self.aux_logits = bool(aux_logits)
        self.transform_input = bool(transform_input)

        def inception(*channels: int) -> Inception:
            return Inception(*channels, paper_5x5=paper_5x5)

        self.conv1 = BasicConv2d(3, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)

        # in, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj (the paper's table 1)
        self.inception3a = inception(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = inception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)

        self.inception4a = inception(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = inception(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = inception(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = inception(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = inception(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)

        self.inception5a = inception(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = inception(832, 384, 192, 384, 48, 128, 128)

        if self.aux_logits:
            self.aux1: Optional[InceptionAux] = InceptionAux(512, num_classes, dropout=dropout_aux)
            self.aux2: Optional[InceptionAux] = InceptionAux(528, num_classes, dropout=dropout_aux)
        else:
            self.aux1 = None
            self.aux2 = None

        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(1024, num_classes)

        if init_weights and not self.fc.weight.is_meta:  # meta tensors hold no values
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.constant_(m.weight, 1)
                    nn.init.constant_(m.bias, 0)

    def _transform_input(self, x: Tensor) -> Tensor:
        if self.transform_input:
            x_ch0 = torch.unsqueeze(x[:, 0], 1) * (0.229 / 0.5) + (0.485 - 0.5) / 0.5
            x_ch1 = torch.unsqueeze(x[:, 1], 1) * (0.224 / 0.5) + (0.456 - 0.5) / 0.5
            x_ch2 = torch.unsqueeze(x[:, 2], 1) * (0.225 / 0.5) + (0.406 - 0.5) / 0.5
            x = torch.cat((x_ch0, x_ch1, x_ch2), 1)
        return x

    def forward(self, x: Tensor):
        """``x``: ``(N, 3, H, W)`` float -> logits ``(N, num_classes)``, or
        ``GoogLeNetOutputs(logits, aux_logits2, aux_logits1)`` when training with aux_logits."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"GoogLeNet input x must have shape (N, 3, H, W), got {tuple(x.shape)}")
        if min(x.shape[2:]) < self.min_input_size:
            raise ValueError(f"GoogLeNet input x of shape {tuple(x.shape)} is too small: H and W "
                             f"must be >= {self.min_input_size} so that the stride-2 pools fit")
        x = self._transform_input(x)
        x = self.maxpool1(self.conv1(x))                  # N x 64 x 56 x 56
        x = self.maxpool2(self.conv3(self.conv2(x)))      # N x 192 x 28 x 28
        x = self.inception3a(x)                           # N x 256 x 28 x 28
        x = self.inception3b(x)                           # N x 480 x 28 x 28
        x = self.maxpool3(x)                              # N x 480 x 14 x 14
        x = self.inception4a(x)                           # N x 512 x 14 x 14
        aux1 = self.aux1(x) if self.aux1 is not None and self.training else None
        x = self.inception4b(x)
        x = self.inception4c(x)
        x = self.inception4d(x)                           # N x 528 x 14 x 14
        aux2 = self.aux2(x) if self.aux2 is not None and self.training else None
        x = self.inception4e(x)                           # N x 832 x 14 x 14
        x = self.maxpool4(x)                              # N x 832 x 7 x 7
        x = self.inception5a(x)
        x = self.inception5b(x)                           # N x 1024 x 7 x 7
        x = self.avgpool(x)                               # N x 1024 x 1 x 1
        x = torch.flatten(x, 1)
        x = self.dropout(x)
        x = self.fc(x)                                    # N x num_classes
        if self.training and self.aux_logits:
            return GoogLeNetOutputs(x, aux2, aux1)
        return x


@register_model
def googlenet(num_classes: int = 1000, *, aux_logits: bool = False, transform_input: bool = False,
              init_weights: bool = True, dropout: float = 0.2, dropout_aux: float = 0.7,
              paper_5x5: bool = False) -> GoogLeNet:
    """GoogLeNet / Inception v1 in torchvision's layout (6,624,904 parameters without the
    auxiliary classifiers). Input ``(N, 3, 224, 224)``. See :class:`GoogLeNet` for options;
    ``paper_5x5=True`` gives the paper's 5x5 filters (not torchvision-weight compatible)."""
    return GoogLeNet(num_classes=num_classes, aux_logits=aux_logits,
                     transform_input=transform_input, init_weights=init_weights, dropout=dropout,
                     dropout_aux=dropout_aux, paper_5x5=paper_5x5)
