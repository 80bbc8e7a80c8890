"""Helpers the model families share (like torchvision's ``models/_utils.py``): input checks and the
AlexNet-style fully connected head. Families import from here, never from each other.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..shapes import check_int

__all__ = ["check_input", "check_images", "check_num_classes", "fc_head"]


def check_input(x: torch.Tensor, in_channels: int, model: str) -> None:
    """Raise ``ValueError`` unless ``x`` is a 4-D (N, C, H, W) tensor with ``in_channels`` channels."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{model} input x must be a torch.Tensor of shape (N, {in_channels}, H, W), "
                         f"got {type(x).__name__}")
    if x.dim() != 4 or x.shape[1] != in_channels:
        raise ValueError(f"{model} input x must have shape (N, {in_channels}, H, W), "
                         f"got {tuple(x.shape)}")


def check_images(model: nn.Module, x: torch.Tensor) -> None:
    """Raise ``ValueError`` unless ``x`` is ``(N, 3, H, W)`` with ``H, W >= model.min_input_size``."""
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"{type(model).__name__} input x must have shape (N, 3, H, W), "
                         f"got {tuple(x.shape)}")
    if min(x.shape[2:]) < model.min_input_size:
        raise ValueError(f"{type(model).__name__} input x of shape {tuple(x.shape)} is too small: "
                         f"H and W must be >= {model.min_input_size} so that every pooling "
                         f"window fits (output size (W - F + 2P)/S + 1 >= 1 at every layer)")


def check_num_classes(num_classes) -> int:
    """``num_classes`` as an int >= 1, or ``ValueError`` naming it."""
    return check_int("num_classes", num_classes, 1)


def fc_head(in_features: int, num_classes: int, dropout: float) -> nn.Sequential:
    """The fully connected head of AlexNet/ZFNet: dropout-fc4096-relu-dropout-fc4096-relu-fc."""
    return nn.Sequential(
        nn.Dropout(p=dropout),
        nn.Linear(in_features, 4096),
        nn.ReLU(inplace=True),
        nn.Dropout(p=dropout),
        nn.Linear(4096, 4096),
        nn.ReLU(inplace=True),
        nn.Linear(4096, num_classes),
    )
