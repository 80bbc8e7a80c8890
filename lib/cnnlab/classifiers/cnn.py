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


# BEGIN ANSWER 06_convnet three_layer_convnet
class ThreeLayerConvNet:
    """conv - relu - 2x2 max pool - affine - relu - affine - softmax, on NCHW minibatches.

    Args:
        input_dim: (C, H, W) of one input image.
        num_filters: F, number of convolution filters.
        filter_size: HH = WW, an odd int (the convolution keeps H and W).
        hidden_dim: units of the hidden affine layer.
        num_classes: number of scores produced.
        weight_scale: standard deviation of the Gaussian initialisation of the weights
            (biases start at zero).
        reg: L2 regularisation strength; the loss adds ``0.5 * reg * sum(W**2)`` for W1, W2, W3.
        dtype: numpy float dtype of the parameters (float64 for gradient checks).
        seed: seed of the ``numpy.random.Generator`` used for the initialisation.

    Parameters (``self.params``):
        W1 (F, C, HH, WW), b1 (F,); W2 (F*floor(H/2)*floor(W/2), hidden_dim), b2 (hidden_dim,);
        W3 (hidden_dim, num_classes), b3 (num_classes,).
    """

    def __init__(self, input_dim=(3, 32, 32), num_filters=32, filter_size=7, hidden_dim=100,
                 num_classes=10, weight_scale=1e-3, reg=0.0, dtype=np.float32, seed=None):
        C, H, W = check_input_dim(input_dim)
        F = check_int("num_filters", num_filters, 1)
        fs = check_int("filter_size", filter_size, 1)
        if fs % 2 == 0:
            raise ValueError(f"filter_size must be odd so that the convolution keeps H and W "
                             f"(pad = (filter_size - 1) // 2), got {fs}")
        hidden = check_int("hidden_dim", hidden_dim, 1)
        K = check_int("num_classes", num_classes, 1)
        if not reg >= 0:
            raise ValueError(f"reg must be >= 0, got {reg!r}")
        if not np.issubdtype(np.dtype(dtype), np.floating):
            raise ValueError(f"dtype must be a numpy float dtype, got {dtype!r}")
        self.input_dim = (C, H, W)
        self.reg = float(reg)
        self.dtype = np.dtype(dtype)
        self.conv_param = {"stride": 1, "pad": (fs - 1) // 2, "dilation": 1, "groups": 1}
        self.pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}
        Hp = conv_output_size(H, 2, 2, axis="H")
        Wp = conv_output_size(W, 2, 2, axis="W")

        rng = np.random.default_rng(seed)
        shapes = {"W1": (F, C, fs, fs), "W2": (F * Hp * Wp, hidden), "W3": (hidden, K)}
        self.params = {}
        for i, (name, shape) in enumerate(shapes.items(), start=1):
            self.params[name] = (weight_scale * rng.standard_normal(shape)).astype(self.dtype)
            self.params[f"b{i}"] = np.zeros(shape[0] if name == "W1" else shape[1], dtype=self.dtype)

    def loss(self, X, y=None):
        """Scores, or the loss and its gradients.

        Args:
            X: (N, C, H, W) inputs (cast to the model's dtype).
            y: (N,) int labels in ``[0, num_classes)``, or ``None``.

        Returns:
            ``y is None``: scores, (N, num_classes) array.
            otherwise: ``(loss, grads)``, a float (data loss + ``0.5*reg*sum W**2``) and a dict
            with the keys and shapes of ``self.params``.
        """
        check_X(X, self.input_dim)
        X = X.astype(self.dtype, copy=False)
        p = self.params
        h1, cache1 = conv_relu_pool_forward(X, p["W1"], p["b1"], self.conv_param, self.pool_param)
        h2, cache2 = affine_relu_forward(h1, p["W2"], p["b2"])
        scores, cache3 = affine_forward(h2, p["W3"], p["b3"])
        if y is None:
            return scores

        data_loss, dscores = softmax_loss(scores, y)
        reg_loss = 0.5 * self.reg * sum(np.sum(p[w] * p[w]) for w in ("W1", "W2", "W3"))
        grads = {}
        dh2, grads["W3"], grads["b3"] = affine_backward(dscores, cache3)
        dh1, grads["W2"], grads["b2"] = affine_relu_backward(dh2, cache2)
        _, grads["W1"], grads["b1"] = conv_relu_pool_backward(dh1, cache1)
        for w in ("W1", "W2", "W3"):
            grads[w] = grads[w] + self.reg * p[w]
        return float(data_loss + reg_loss), grads
# END ANSWER
