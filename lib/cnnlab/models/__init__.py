"""PyTorch reference architectures of the course, with torchvision-compatible parameter names.

    >>> from cnnlab import models
    >>> net = models.create("resnet18", num_classes=10)
    >>> models.list_models()[:3]
"""
from .registry import create, list_models, register_model

__all__ = ["create", "list_models", "register_model"]
