"""A configurable deeper convolutional network (the numpy counterpart of a small VGG):

    [conv - (spatial batchnorm) - relu - (2x2 max pool)] x N
        - [affine - (batchnorm) - relu] x M - affine - softmax

Convolutions are ``filter_size x filter_size`` at stride 1 with "same" padding
``(filter_size - 1) // 2``; each pool halves H and W (``floor``).

Parameter names follow CS231n's ``FullyConnectedNet``: layer ``i`` (1-based, conv layers first,
then hidden affine layers, then the output layer) has ``W{i}``, ``b{i}`` and, with batch
normalisation, ``gamma{i}``, ``beta{i}`` (not for the output layer).

Batch normalisation has a train and a test mode: ``loss(X, y)`` (labels given) runs in train
mode -- batch statistics, running averages updated in ``self.bn_params`` -- and ``loss(X)``
runs in test mode with the running averages. ``mode="train"``/``"test"`` overrides this.
"""
from __future__ import annotations

import numpy as np

from ..layers import (
    affine_backward,
    affine_bn_relu_backward,
    affine_bn_relu_forward,
    affine_forward,
    affine_relu_backward,
    affine_relu_forward,
    conv_bn_relu_backward,
    conv_bn_relu_forward,
    conv_relu_backward,
    conv_relu_forward,
    max_pool_backward_fast,
    max_pool_forward_fast,
    softmax_loss,
)
from ..shapes import check_int, conv_output_size
from ._utils import check_input_dim, check_X

__all__ = ["ConvNet"]


def _as_list(name: str, value, length: int) -> list:
    """An int/bool broadcast to a list of ``length``, or a list checked to have that length."""
    if isinstance(value, (list, tuple)):
        if len(value) != length:
            raise ValueError(f"{name} must have one entry per conv layer ({length}), got {len(value)}: {value!r}")
        return list(value)
    return [value] * length


class ConvNet:
    """``[conv-(bn)-relu-(pool)] x N - [affine-(bn)-relu] x M - affine - softmax``.

    Args:
        input_dim: (C, H, W) of one input image.
        num_filters: list of N ints, the filters of each conv layer (N >= 1).
        filter_size: odd int, or a list of N odd ints.
        pool: bool, or a list of N bools: 2x2 max pool (stride 2) after that conv layer.
        hidden_dims: list of M ints, hidden affine layers (may be empty).
        num_classes: number of scores produced.
        normalization: ``None`` or ``"batchnorm"`` (spatial batchnorm after each conv,
            batchnorm after each hidden affine layer).
        weight_scale: standard deviation of the Gaussian weight initialisation, or ``None``
            for Kaiming (He) initialisation ``sqrt(2 / fan_in)``, which suits ReLU nets.
        reg: L2 regularisation strength: ``0.5 * reg * sum(W**2)`` over all ``W{i}``.
        dtype: numpy float dtype of the parameters (float64 for gradient checks).
        seed: seed of the ``numpy.random.Generator`` used for the initialisation.
        bn_eps, bn_momentum: ``eps`` and ``momentum`` of the batchnorm layers (PyTorch meaning:
            ``running = (1 - momentum) * running + momentum * batch_stat``).
    """

    def __init__(self, input_dim=(3, 32, 32), num_filters=(16, 32), filter_size=3, pool=True,
                 hidden_dims=(100,), num_classes=10, normalization=None, weight_scale=None,
                 reg=0.0, dtype=np.float32, seed=None, bn_eps=1e-5, bn_momentum=0.1):
        C, H, W = check_input_dim(input_dim)
        if not isinstance(num_filters, (list, tuple)) or len(num_filters) == 0:
            raise ValueError(f"num_filters must be a non-empty list of ints, got {num_filters!r}")
        filters = [check_int(f"num_filters[{i}]", f, 1) for i, f in enumerate(num_filters)]
        N_conv = len(filters)
        sizes = [check_int(f"filter_size[{i}]", s, 1)
                 for i, s in enumerate(_as_list("filter_size", filter_size, N_conv))]
        for i, s in enumerate(sizes):
            if s % 2 == 0:
                raise ValueError(f"filter_size[{i}] must be odd (\"same\" padding), got {s}")
        pools = [bool(p) for p in _as_list("pool", pool, N_conv)]
        if not isinstance(hidden_dims, (list, tuple)):
            raise ValueError(f"hidden_dims must be a list of ints, got {hidden_dims!r}")
        hidden = [check_int(f"hidden_dims[{i}]", h, 1) for i, h in enumerate(hidden_dims)]
        K = check_int("num_classes", num_classes, 1)
        if normalization not in (None, "batchnorm"):
            raise ValueError(f"normalization must be None or 'batchnorm', got {normalization!r}")
        if not reg >= 0:
            raise ValueError(f"reg must be >= 0, got {reg!r}")
        if not np.issubdtype(np.dtype(dtype), np.floating):
            raise ValueError(f"dtype must be a numpy float dtype, got {dtype!r}")

        self.input_dim = (C, H, W)
        self.normalization = normalization
        self.use_bn = normalization == "batchnorm"
        self.reg = float(reg)
        self.dtype = np.dtype(dtype)
        self.pools = pools
        self.num_conv = N_conv
        self.num_layers = N_conv + len(hidden) + 1
        self.conv_params = [{"stride": 1, "pad": (s - 1) // 2, "dilation": 1, "groups": 1} for s in sizes]
        self.pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}

        rng = np.random.default_rng(seed)

        def init(shape, fan_in):
            std = np.sqrt(2.0 / fan_in) if weight_scale is None else weight_scale
            return (std * rng.standard_normal(shape)).astype(self.dtype)

        self.params = {}
        c, h, w = C, H, W
        for i, (F, s, p) in enumerate(zip(filters, sizes, pools), start=1):
            self.params[f"W{i}"] = init((F, c, s, s), c * s * s)
            self.params[f"b{i}"] = np.zeros(F, dtype=self.dtype)
            if p:
                h = conv_output_size(h, 2, 2, axis="H")
                w = conv_output_size(w, 2, 2, axis="W")
            c = F
        dims = [c * h * w] + hidden + [K]
        for j in range(len(dims) - 1):
            i = N_conv + 1 + j
            self.params[f"W{i}"] = init((dims[j], dims[j + 1]), dims[j])
            self.params[f"b{i}"] = np.zeros(dims[j + 1], dtype=self.dtype)
        self.bn_params = []
        if self.use_bn:
            widths = filters + hidden
            for i, width in enumerate(widths, start=1):
                self.params[f"gamma{i}"] = np.ones(width, dtype=self.dtype)
                self.params[f"beta{i}"] = np.zeros(width, dtype=self.dtype)
            self.bn_params = [{"mode": "train", "eps": bn_eps, "momentum": bn_momentum}
                              for _ in widths]

    def loss(self, X, y=None, mode=None):
        """Scores, or the loss and its gradients.

        Args:
            X: (N, C, H, W) inputs (cast to the model's dtype).
            y: (N,) int labels in ``[0, num_classes)``, or ``None``.
            mode: ``"train"`` or ``"test"`` for batchnorm; default ``"test"`` when ``y is None``
                and ``"train"`` otherwise.

        Returns:
            ``y is None``: scores, (N, num_classes) array.
            otherwise: ``(loss, grads)``, a float (data loss + ``0.5*reg*sum W**2``) and a dict
            with the keys and shapes of ``self.params``.
        """
        check_X(X, self.input_dim)
        if mode is None:
            mode = "test" if y is None else "train"
        if mode not in ("train", "test"):
            raise ValueError(f"mode must be 'train' or 'test', got {mode!r}")
        for bn_param in self.bn_params:
            bn_param["mode"] = mode
        p = self.params
        out = X.astype(self.dtype, copy=False)
        caches = []
        for i in range(1, self.num_conv + 1):
            conv_param = self.conv_params[i - 1]
            if self.use_bn:
                out, cache = conv_bn_relu_forward(out, p[f"W{i}"], p[f"b{i}"], p[f"gamma{i}"],
                                                  p[f"beta{i}"], conv_param, self.bn_params[i - 1])
            else:
                out, cache = conv_relu_forward(out, p[f"W{i}"], p[f"b{i}"], conv_param)
            pool_cache = None
            if self.pools[i - 1]:
                out, pool_cache = max_pool_forward_fast(out, self.pool_param)
            caches.append((cache, pool_cache))
        for i in range(self.num_conv + 1, self.num_layers):
            if self.use_bn:
                out, cache = affine_bn_relu_forward(out, p[f"W{i}"], p[f"b{i}"], p[f"gamma{i}"],
                                                    p[f"beta{i}"], self.bn_params[i - 1])
            else:
                out, cache = affine_relu_forward(out, p[f"W{i}"], p[f"b{i}"])
            caches.append(cache)
        L = self.num_layers
        scores, cache_out = affine_forward(out, p[f"W{L}"], p[f"b{L}"])
        if y is None:
            return scores

        data_loss, dscores = softmax_loss(scores, y)
        reg_loss = 0.5 * self.reg * sum(np.sum(p[f"W{i}"] ** 2) for i in range(1, L + 1))
        grads = {}
        dout, grads[f"W{L}"], grads[f"b{L}"] = affine_backward(dscores, cache_out)
        for i in range(L - 1, self.num_conv, -1):
            cache = caches[i - 1]
            if self.use_bn:
                (dout, grads[f"W{i}"], grads[f"b{i}"], grads[f"gamma{i}"],
                 grads[f"beta{i}"]) = affine_bn_relu_backward(dout, cache)
            else:
                dout, grads[f"W{i}"], grads[f"b{i}"] = affine_relu_backward(dout, cache)
        for i in range(self.num_conv, 0, -1):
            cache, pool_cache = caches[i - 1]
            if pool_cache is not None:
                dout = max_pool_backward_fast(dout, pool_cache)
            if self.use_bn:
                (dout, grads[f"W{i}"], grads[f"b{i}"], grads[f"gamma{i}"],
                 grads[f"beta{i}"]) = conv_bn_relu_backward(dout, cache)
            else:
                dout, grads[f"W{i}"], grads[f"b{i}"] = conv_relu_backward(dout, cache)
        for i in range(1, L + 1):
            grads[f"W{i}"] = grads[f"W{i}"] + self.reg * p[f"W{i}"]
        return float(data_loss + reg_loss), grads
