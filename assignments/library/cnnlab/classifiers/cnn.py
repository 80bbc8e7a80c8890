"""A three-layer convolutional network (CS231n assignment 2):

    conv - relu - 2x2 max pool - affine - relu - affine - softmax

The convolution keeps the spatial size (stride 1, pad ``(filter_size - 1) // 2``, odd filter
sizes); the 2x2 max pool at stride 2 halves it (``floor(H / 2)``).
"""
from __future__ import annotations

import numpy as np

from ..layers import (
    affine_backward,
    affine_forward,
    affine_relu_backward,
    affine_relu_forward,
    conv_relu_pool_backward,
    conv_relu_pool_forward,
    softmax_loss,
)
from ..shapes import check_int, conv_output_size

__all__ = ["ThreeLayerConvNet"]


def _check_input_dim(input_dim) -> tuple[int, int, int]:
    if not isinstance(input_dim, (tuple, list)) or len(input_dim) != 3:
        raise ValueError(f"input_dim must be a tuple (C, H, W), got {input_dim!r}")
    return tuple(check_int(f"input_dim[{i}]", v, 1) for i, v in enumerate(input_dim))


def _check_X(X, input_dim) -> None:
    if not isinstance(X, np.ndarray) or X.ndim != 4 or tuple(X.shape[1:]) != tuple(input_dim):
        shape = getattr(X, "shape", type(X).__name__)
        raise ValueError(f"X must be a numpy array of shape (N, {', '.join(map(str, input_dim))}) "
                         f"matching input_dim, got {shape}")


# (withheld from the student edition: exercise three_layer_convnet of 06_convnet)
class ThreeLayerConvNet:
    """Withheld from the student edition: exercise ``three_layer_convnet`` of 06_convnet."""

    def __init__(self, *args, **kwargs):
        raise NotImplementedError("ThreeLayerConvNet is not in the student edition of cnnlab: it is exercise 'three_layer_convnet' of assignment 06_convnet. Write the class yourself in assignments/06_convnet/convnet.ipynb.")

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ThreeLayerConvNet is not in the student edition of cnnlab: it is exercise 'three_layer_convnet' of assignment 06_convnet. Write the class yourself in assignments/06_convnet/convnet.ipynb.")

