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
from ._utils import check_input_dim, check_X

__all__ = ["ThreeLayerConvNet"]


# (withheld from the student edition: exercise three_layer_convnet of 06_convnet)
class ThreeLayerConvNet:
    """Withheld from the student edition: exercise ``three_layer_convnet`` of 06_convnet."""

    def __init__(self, *args, **kwargs):
        raise NotImplementedError("ThreeLayerConvNet is not in the student edition of cnnlab: it is exercise 'three_layer_convnet' of assignment 06_convnet. Write the class yourself in assignments/06_convnet/convnet.ipynb.")

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ThreeLayerConvNet is not in the student edition of cnnlab: it is exercise 'three_layer_convnet' of assignment 06_convnet. Write the class yourself in assignments/06_convnet/convnet.ipynb.")

