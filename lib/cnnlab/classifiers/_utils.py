"""Checks the numpy classifiers share (``ThreeLayerConvNet``, ``ConvNet``)."""
from __future__ import annotations

import numpy as np

from ..shapes import check_int

__all__ = ["check_input_dim", "check_X"]


def check_input_dim(input_dim) -> tuple[int, int, int]:
    """``input_dim`` as a tuple ``(C, H, W)`` of ints >= 1, or ``ValueError`` naming it."""
    if not isinstance(input_dim, (tuple, list)) or len(input_dim) != 3:
        raise ValueError(f"input_dim must be a tuple (C, H, W), got {input_dim!r}")
    return tuple(check_int(f"input_dim[{i}]", v, 1) for i, v in enumerate(input_dim))


def check_X(X, input_dim) -> None:
    """Raise ``ValueError`` unless ``X`` is a numpy array of shape ``(N, *input_dim)``."""
    if not isinstance(X, np.ndarray) or X.ndim != 4 or tuple(X.shape[1:]) != tuple(input_dim):
        shape = getattr(X, "shape", type(X).__name__)
        raise ValueError(f"X must be a numpy array of shape (N, {', '.join(map(str, input_dim))}) "
                         f"matching input_dim, got {shape}")
