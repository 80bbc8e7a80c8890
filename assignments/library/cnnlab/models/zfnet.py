"""ZFNet (Zeiler & Fergus, 2013): AlexNet with a smaller, denser first layer and wider conv3-5.

The CS231n lecture describes it as "AlexNet but: CONV1 (11x11 stride 4) -> (7x7 stride 2);
CONV3,4,5: 384, 384, 256 -> 512, 1024, 512 filters". Sizes follow the paper's figure for a
224x224 input (single tower, dense convolutions; max pools in Caffe's ``ceil_mode``; local
response normalization after the first two pools, the paper's "contrast normalization")::

    layer                                    output        parameters = (K*K*Cin + 1)*Cout
    features.0  conv 7x7 S2 P1, 96           96 x 110x110   (7*7*3 + 1) * 96        =     14,208
    features.2  maxpool 3x3 S2 (ceil)        96 x  55x55
    features.3  LRN
    features.4  conv 5x5 S2, 256            256 x  26x26   (5*5*96 + 1) * 256      =    614,656
    features.6  maxpool 3x3 S2 (ceil)       256 x  13x13
    features.7  LRN
    features.8  conv 3x3 P1, 512            512 x  13x13   (3*3*256 + 1) * 512     =  1,180,160
    features.10 conv 3x3 P1, 1024          1024 x  13x13   (3*3*512 + 1) * 1024    =  4,719,616
    features.12 conv 3x3 P1, 512            512 x  13x13   (3*3*1024 + 1) * 512    =  4,719,104
    features.14 maxpool 3x3 S2 (ceil)       512 x   6x6
    avgpool     adaptive avg -> 6x6         512 x   6x6
    classifier.1 fc 4096                          4096     (18432 + 1) * 4096      = 75,501,568
    classifier.4 fc 4096                          4096     (4096 + 1) * 4096       = 16,781,312
    classifier.6 fc 1000                          1000     (4096 + 1) * 1000       =  4,097,000
                                                                          total    = 107,627,624

Names follow torchvision's AlexNet (``features``, ``avgpool``, ``classifier``); weights use
PyTorch's default initialization, as torchvision's AlexNet does.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..shapes import check_int, check_probability
from ._utils import check_images, fc_head
from .registry import register_model

__all__ = ["ZFNet", "zfnet"]


class ZFNet(nn.Module):
    """ZFNet, the lecture version (96-256-512-1024-512 filters), 107,627,624 parameters.

    Args:
        num_classes: outputs of the last layer.
        dropout: dropout probability before the two hidden fully connected layers.

    Input ``(N, 3, H, W)`` float with ``H, W >= 47`` (224 native); output logits
    ``(N, num_classes)``.
    """

    # conv1 -> 22, pool -> 11, conv2 -> 4, pool -> 2, conv3-5 -> 2, pool -> 1; a ceil_mode
    # 3x3/2 pool needs an input >= 2, so 46 (-> 21, 10, 3, 1, 1, fail) is one too small
    min_input_size = 47

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        num_classes = check_int("num_classes", num_classes, 1)
        dropout = check_probability("dropout", dropout)
        self.features = nn.Sequential(
            nn.Conv2d(3, 96, kernel_size=7, stride=2, padding=1),        # 224 -> 110
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),       # 110 -> 55
            nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0),
            nn.Conv2d(96, 256, kernel_size=5, stride=2),                 # 55 -> 26
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),       # 26 -> 13
            nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0),
            nn.Conv2d(256, 512, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(512, 1024, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(1024, 512, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),       # 13 -> 6
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = fc_head(512 * 6 * 6, num_classes, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(N, 3, H, W)`` float -> logits ``(N, num_classes)``."""
        check_images(self, x)
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


@register_model
def zfnet(num_classes: int = 1000, *, dropout: float = 0.5) -> ZFNet:
    """ZFNet (lecture version, 107,627,624 parameters). Input ``(N, 3, 224, 224)``."""
    return ZFNet(num_classes=num_classes, dropout=dropout)
