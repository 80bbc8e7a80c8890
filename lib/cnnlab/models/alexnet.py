"""AlexNet (Krizhevsky, Sutskever & Hinton, 2012), in two versions.

``alexnet``: torchvision's single-tower variant ("One weird trick", Krizhevsky 2014), with
64-192-384-256-256 filters, which the pretrained torchvision weights use::

    layer                       output (224 input)   parameters
    features.0  conv 11x11 S4 P2, 64     64 x 55x55        23,296
    features.2  maxpool 3x3 S2           64 x 27x27
    features.3  conv 5x5 P2, 192        192 x 27x27       307,392
    features.5  maxpool 3x3 S2          192 x 13x13
    features.6  conv 3x3 P1, 384        384 x 13x13       663,936
    features.8  conv 3x3 P1, 256        256 x 13x13       884,992
    features.10 conv 3x3 P1, 256        256 x 13x13       590,080
    features.12 maxpool 3x3 S2          256 x  6x6
    avgpool     adaptive avg -> 6x6     256 x  6x6
    classifier.1 fc 4096 (after dropout)     4096      37,752,832
    classifier.4 fc 4096 (after dropout)     4096      16,781,312
    classifier.6 fc 1000                     1000       4,097,000
                                               total   61,100,840

``alexnet_original``: the network of the 2012 paper, 96-256-384-384-256 filters trained on two
GPUs. Each GPU held half of the filters of every layer; the halves ("towers") only exchange
activations at conv3 and at the fully connected layers, so conv2, conv4 and conv5 are grouped
convolutions with ``groups=2`` (each filter sees only the 48/192/192 channels of its own tower).
conv1 is split too, but every conv1 filter sees the whole RGB image, so it is an ordinary
convolution. Local response normalization (``size=5, alpha=1e-4, beta=0.75, k=2``) follows the
ReLU of conv1 and conv2, and overlapping max pooling (3x3, stride 2) follows both
normalizations and conv5 -- the paper's order (the CS231n slide lists NORM after POOL)::

    layer                              output (227 input)  parameters = (K*K*Cin/groups + 1)*Cout
    features.0  conv 11x11 S4, 96            96 x 55x55   (11*11*3 + 1) * 96      =     34,944
    features.2  LRN, features.3 maxpool      96 x 27x27
    features.4  conv 5x5 P2, 256, groups=2  256 x 27x27   (5*5*48 + 1) * 256      =    307,456
    features.6  LRN, features.7 maxpool     256 x 13x13
    features.8  conv 3x3 P1, 384            384 x 13x13   (3*3*256 + 1) * 384     =    885,120
    features.10 conv 3x3 P1, 384, groups=2  384 x 13x13   (3*3*192 + 1) * 384     =    663,936
    features.12 conv 3x3 P1, 256, groups=2  256 x 13x13   (3*3*192 + 1) * 256     =    442,624
    features.14 maxpool                     256 x  6x6
    classifier.1 fc 4096                          4096    (9216 + 1) * 4096       = 37,752,832
    classifier.4 fc 4096                          4096    (4096 + 1) * 4096       = 16,781,312
    classifier.6 fc 1000                          1000    (4096 + 1) * 1000       =  4,097,000
                                                                         total    = 60,965,224

i.e. the paper's "60 million parameters". The paper's "224x224" input only gives the 55x55
conv1 output with a 227x227 image (``(227 - 11)/4 + 1 = 55``). An ``avgpool`` layer
(``AdaptiveAvgPool2d(6)``, the identity at 227) lets other sizes (>= 67) through, as in
torchvision.

Initialization: both use PyTorch's default layer initialization, as torchvision's AlexNet does;
``alexnet_original(init_weights=True)`` applies the paper's instead (weights N(0, 0.01), biases
1 in conv2, conv4, conv5 and the hidden fully connected layers, 0 elsewhere).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..shapes import check_int, check_probability
from ._utils import check_images, fc_head
from .registry import register_model

__all__ = ["AlexNet", "AlexNetOriginal", "alexnet", "alexnet_original"]


class AlexNet(nn.Module):
    """torchvision's AlexNet (single tower, 64-192-384-256-256 filters), 61,100,840 parameters.

    Input ``(N, 3, H, W)`` float with ``H, W >= 63`` (224 native); output logits
    ``(N, num_classes)``.
    """

    # conv1 -> 15, pool -> 7, conv2 -> 7, pool -> 3, conv3-5 -> 3, pool -> 1 (hand derivation)
    min_input_size = 63

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        num_classes = check_int("num_classes", num_classes, 1)
        dropout = check_probability("dropout", dropout)
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = fc_head(256 * 6 * 6, num_classes, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(N, 3, H, W)`` float -> logits ``(N, num_classes)``."""
        check_images(self, x)
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


class AlexNetOriginal(nn.Module):
    """The 2012 paper's AlexNet: 96-256-384-384-256 filters, two towers (``groups=2`` in
    conv2/4/5), LRN after conv1 and conv2, overlapping pooling; 60,965,224 parameters.

    Args:
        num_classes: outputs of the last layer.
        dropout: dropout probability before the two hidden fully connected layers (paper: 0.5).
        init_weights: apply the paper's initialization (see the module docstring) instead of
            PyTorch's default.

    Input ``(N, 3, H, W)`` float with ``H, W >= 67`` (227 native); output logits
    ``(N, num_classes)``.
    """

    # conv1 (no padding) -> 15, pool -> 7, conv2 -> 7, pool -> 3, conv3-5 -> 3, pool -> 1
    min_input_size = 67

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5,
                 init_weights: bool = False) -> None:
        super().__init__()
        num_classes = check_int("num_classes", num_classes, 1)
        dropout = check_probability("dropout", dropout)
        self.features = nn.Sequential(
            nn.Conv2d(3, 96, kernel_size=11, stride=4),                 # 227 -> 55
            nn.ReLU(inplace=True),
            nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0),
            nn.MaxPool2d(kernel_size=3, stride=2),                       # 55 -> 27
            nn.Conv2d(96, 256, kernel_size=5, padding=2, groups=2),      # 27 -> 27
            nn.ReLU(inplace=True),
            nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0),
            nn.MaxPool2d(kernel_size=3, stride=2),                       # 27 -> 13
            nn.Conv2d(256, 384, kernel_size=3, padding=1),               # towers exchange here
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 384, kernel_size=3, padding=1, groups=2),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1, groups=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),                       # 13 -> 6
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = fc_head(256 * 6 * 6, num_classes, dropout)
        if init_weights and not self.classifier[1].weight.is_meta:  # meta tensors hold no values
            self._paper_init()

    def _paper_init(self) -> None:
        """Weights N(0, 0.01); biases 1 in conv2, conv4, conv5, fc6, fc7 and 0 elsewhere."""
        convs = [m for m in self.features if isinstance(m, nn.Conv2d)]
        fcs = [m for m in self.classifier if isinstance(m, nn.Linear)]
        ones = {id(convs[1]), id(convs[3]), id(convs[4]), id(fcs[0]), id(fcs[1])}
        for m in convs + fcs:
            nn.init.normal_(m.weight, mean=0.0, std=0.01)
            nn.init.constant_(m.bias, 1.0 if id(m) in ones else 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(N, 3, H, W)`` float -> logits ``(N, num_classes)``."""
        check_images(self, x)
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


@register_model
def alexnet(num_classes: int = 1000, *, dropout: float = 0.5) -> AlexNet:
    """torchvision's AlexNet (same parameter names and shapes; 61,100,840 parameters).
    Input ``(N, 3, 224, 224)``."""
    return AlexNet(num_classes=num_classes, dropout=dropout)


@register_model
def alexnet_original(num_classes: int = 1000, *, dropout: float = 0.5,
                     init_weights: bool = False) -> AlexNetOriginal:
    """The 2012 paper's two-tower AlexNet (60,965,224 parameters). Input ``(N, 3, 227, 227)``.
    Does not load torchvision weights (different shapes)."""
    return AlexNetOriginal(num_classes=num_classes, dropout=dropout, init_weights=init_weights)
