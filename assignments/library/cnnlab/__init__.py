"""CNN Lab: the library behind the course notebooks.

Subpackages and modules (one concept each):

- :mod:`cnnlab.layers`    numpy layers as CS231n forward/backward pairs (naive and fast)
- :mod:`cnnlab.im2col`    im2col / col2im, the convolution-as-matrix-multiply transform
- :mod:`cnnlab.shapes`    the output-size formula and the checks built on it
- :mod:`cnnlab.gradcheck` numerical gradients and relative errors
- :mod:`cnnlab.models`    PyTorch reference architectures (torchvision-compatible names)
- :mod:`cnnlab.analysis`  per-layer shapes, memory, parameters, FLOPs, receptive fields
- :mod:`cnnlab.data`      offline data sets (digits, generated images, local CIFAR-10)
- :mod:`cnnlab.plots`     the figures the course shows
"""
from __future__ import annotations

import os

__version__ = "0.1.0"

__all__ = ["device", "scale", "__version__"]


def device(prefer: str | None = None):
    """Return the ``torch.device`` models and tensors should use.

    CUDA when a GPU is present (``cuda``), otherwise the CPU. ``prefer`` (or the environment
    variable ``CNNLAB_DEVICE``) forces one, e.g. ``"cpu"`` to compare against a GPU run.

    Returns:
        torch.device
    """
    import torch

    choice = prefer or os.environ.get("CNNLAB_DEVICE")
    if choice:
        return torch.device(choice)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def scale(default: float = 1.0) -> float:
    """The notebooks' scale knob: a multiplier for data-set sizes and training lengths.

    Read from the environment variable ``CNNLAB_SCALE`` (a positive float); ``1`` is the size that
    runs within CI's CPU budget, larger values (e.g. ``CNNLAB_SCALE=10`` on a GPU) train longer
    on more data.

    Returns:
        float, > 0
    """
    raw = os.environ.get("CNNLAB_SCALE")
    if raw is None or raw.strip() == "":
        return float(default)
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"CNNLAB_SCALE must be a positive number, got {raw!r}") from None
    if not value > 0:
        raise ValueError(f"CNNLAB_SCALE must be a positive number, got {raw!r}")
    return value
