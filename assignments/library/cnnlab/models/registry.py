"""The model registry: ``create(name, num_classes=None, **options)`` and ``list_models()``.

Each family module decorates its public builder functions with :func:`register_model`; the
builder's name (``resnet50``, ``vgg16_bn``, ...) is the registry name, matching torchvision's.
"""
from __future__ import annotations

from typing import Callable

import torch.nn as nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}

__all__ = ["register_model", "create", "list_models"]


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Decorator: register a builder ``fn(num_classes=1000, **options) -> nn.Module``."""
    name = fn.__name__
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is registered twice")
    _REGISTRY[name] = fn
    return fn


def list_models(pattern: str | None = None) -> list[str]:
    """Sorted names of all registered models, optionally only those containing ``pattern``."""
    names = sorted(_REGISTRY)
    return [n for n in names if pattern is None or pattern in n]


def create(name: str, num_classes: int | None = None, **options) -> nn.Module:
    """Build a registered model by name.

    Args:
        name: a name from :func:`list_models`, e.g. ``"resnet18"``.
        num_classes: size of the classifier output; ``None`` keeps the builder's default
            (1000 ImageNet classes, 10 for LeNet-5 and the CIFAR models).
        **options: family-specific options (e.g. ``aux_logits=True`` for GoogLeNet,
            ``width_mult=0.5`` for MobileNet, ``zero_init_residual=True`` for ResNet).

    Returns:
        torch.nn.Module in training mode, float32 parameters on the CPU.
    """
    try:
        builder = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(list_models())}") from None
    if num_classes is not None:
        options["num_classes"] = num_classes
    return builder(**options)
