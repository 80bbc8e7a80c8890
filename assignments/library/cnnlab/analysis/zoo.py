"""Costs of the registered models (:mod:`cnnlab.models`), computed once and cached.

Models are built on the meta device (no memory for weights, no initialisation arithmetic) and
summarized there, so even VGG-19 costs milliseconds.
"""
from __future__ import annotations

import functools

import torch

from .summary import ModelSummary, summarize

__all__ = ["model_summary"]


@functools.lru_cache(maxsize=64)
def _cached(name, input_size, num_classes, flops):
    from .. import models

    with torch.device("meta"):
        net = models.create(name, num_classes=num_classes)
    return summarize(net, input_size, device="meta", flops=flops)


def model_summary(name: str, input_size=(3, 224, 224), num_classes: int = 1000,
                  flops: str = "mac") -> ModelSummary:
    """:func:`~cnnlab.analysis.summarize` of the registered model ``name``, cached.

    Args:
        name: a name from ``cnnlab.models.list_models()``, e.g. ``"resnet50"``.
        input_size: ``(C, H, W)`` or ``(N, C, H, W)``.
        num_classes: classifier outputs (1000 for ImageNet).
        flops: ``"mac"`` or ``"flop"``, see :func:`~cnnlab.analysis.summarize`.

    Returns:
        :class:`~cnnlab.analysis.ModelSummary` (shared between calls: do not modify it).
    """
    return _cached(name, tuple(input_size), int(num_classes), flops)
