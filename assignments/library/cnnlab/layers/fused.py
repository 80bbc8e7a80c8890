"""The "sandwich" layers: common sequences of layers as one forward/backward pair.

Each forward pass runs its layers in order and keeps their caches; the backward pass runs their
backward passes in reverse order (the chain rule). The convolutional sandwiches use the fast
layers (:func:`~cnnlab.layers.conv.conv_forward_im2col`, :func:`max_pool_forward_fast`).

Shapes: ``x`` (N, C, H, W) and filters ``w`` (F, C/groups, HH, WW) for the conv sandwiches,
``x`` (N, d_1, ..., d_k) and ``w`` (D, M) for the affine ones. float32 and float64 both work;
outputs and ``dx`` have the dtype of ``x``, parameter gradients the dtypes of the parameters.
"""
from __future__ import annotations

from .basic import affine_backward, affine_forward, relu_backward, relu_forward
from .batchnorm import batchnorm_backward_alt, batchnorm_forward, spatial_batchnorm_backward, spatial_batchnorm_forward
from .conv import conv_backward_im2col, conv_forward_im2col
from .pool import max_pool_backward_fast, max_pool_forward_fast

__all__ = [
    "affine_relu_forward",
    "affine_relu_backward",
    "affine_bn_relu_forward",
    "affine_bn_relu_backward",
    "conv_relu_forward",
    "conv_relu_backward",
    "conv_relu_pool_forward",
    "conv_relu_pool_backward",
    "conv_bn_relu_forward",
    "conv_bn_relu_backward",
]


def affine_relu_forward(x, w, b):
    """affine -> ReLU.

    Args:
        x: array of shape (N, d_1, ..., d_k); w: (D, M) with D = d_1 * ... * d_k; b: (M,).

    Returns:
        out: array of shape (N, M), dtype of ``x``.
        cache: for :func:`affine_relu_backward`.
    """
    a, fc_cache = affine_forward(x, w, b)
    out, relu_cache = relu_forward(a)
    return out, (fc_cache, relu_cache)


def affine_relu_backward(dout, cache):
    """Backward pass of :func:`affine_relu_forward`.

    Args:
        dout: upstream gradient of shape (N, M).

    Returns:
        dx: (N, d_1, ..., d_k); dw: (D, M); db: (M,).
    """
    fc_cache, relu_cache = cache
    da = relu_backward(dout, relu_cache)
    return affine_backward(da, fc_cache)


def affine_bn_relu_forward(x, w, b, gamma, beta, bn_param):
    """affine -> batch normalization -> ReLU.

    Args:
        x: array of shape (N, d_1, ..., d_k); w: (D, M); b: (M,).
        gamma, beta: batchnorm scale and shift, shape (M,).
        bn_param: dict for :func:`~cnnlab.layers.batchnorm.batchnorm_forward` (``mode`` ...);
            its running statistics are updated in training mode.

    Returns:
        out: array of shape (N, M), dtype of ``x``.
        cache: for :func:`affine_bn_relu_backward`.
    """
    a, fc_cache = affine_forward(x, w, b)
    an, bn_cache = batchnorm_forward(a, gamma, beta, bn_param)
    out, relu_cache = relu_forward(an)
    return out, (fc_cache, bn_cache, relu_cache)


def affine_bn_relu_backward(dout, cache):
    """Backward pass of :func:`affine_bn_relu_forward`.

    Args:
        dout: upstream gradient of shape (N, M).

    Returns:
        dx: (N, d_1, ..., d_k); dw: (D, M); db: (M,); dgamma: (M,); dbeta: (M,).
    """
    fc_cache, bn_cache, relu_cache = cache
    dan = relu_backward(dout, relu_cache)
    da, dgamma, dbeta = batchnorm_backward_alt(dan, bn_cache)
    dx, dw, db = affine_backward(da, fc_cache)
    return dx, dw, db, dgamma, dbeta


def conv_relu_forward(x, w, b, conv_param):
    """convolution -> ReLU.

    Args:
        x: (N, C, H, W); w: (F, C/groups, HH, WW); b: (F,).
        conv_param: dict for :func:`~cnnlab.layers.conv.conv_forward_im2col` (stride, pad, ...).

    Returns:
        out: array of shape (N, F, H_out, W_out), dtype of ``x``.
        cache: for :func:`conv_relu_backward`.
    """
    a, conv_cache = conv_forward_im2col(x, w, b, conv_param)
    out, relu_cache = relu_forward(a)
    return out, (conv_cache, relu_cache)


def conv_relu_backward(dout, cache):
    """Backward pass of :func:`conv_relu_forward`.

    Args:
        dout: upstream gradient of shape (N, F, H_out, W_out).

    Returns:
        dx: (N, C, H, W); dw: (F, C/groups, HH, WW); db: (F,).
    """
    conv_cache, relu_cache = cache
    da = relu_backward(dout, relu_cache)
    return conv_backward_im2col(da, conv_cache)


def conv_relu_pool_forward(x, w, b, conv_param, pool_param):
    """convolution -> ReLU -> max pooling.

    Args:
        x: (N, C, H, W); w: (F, C/groups, HH, WW); b: (F,).
        conv_param: dict for the convolution (stride, pad, ...).
        pool_param: dict for :func:`~cnnlab.layers.pool.max_pool_forward_fast`
            (pool_height, pool_width, stride, optional pad).

    Returns:
        out: array of shape (N, F, H_pool, W_pool), dtype of ``x``.
        cache: for :func:`conv_relu_pool_backward`.
    """
    a, conv_cache = conv_forward_im2col(x, w, b, conv_param)
    s, relu_cache = relu_forward(a)
    out, pool_cache = max_pool_forward_fast(s, pool_param)
    return out, (conv_cache, relu_cache, pool_cache)


def conv_relu_pool_backward(dout, cache):
    """Backward pass of :func:`conv_relu_pool_forward`.

    Args:
        dout: upstream gradient of shape (N, F, H_pool, W_pool).

    Returns:
        dx: (N, C, H, W); dw: (F, C/groups, HH, WW); db: (F,).
    """
    conv_cache, relu_cache, pool_cache = cache
    ds = max_pool_backward_fast(dout, pool_cache)
    da = relu_backward(ds, relu_cache)
    return conv_backward_im2col(da, conv_cache)


def conv_bn_relu_forward(x, w, b, gamma, beta, conv_param, bn_param):
    """convolution -> spatial batch normalization -> ReLU.

    Args:
        x: (N, C, H, W); w: (F, C/groups, HH, WW); b: (F,).
        gamma, beta: spatial batchnorm scale and shift, shape (F,).
        conv_param: dict for the convolution (stride, pad, ...).
        bn_param: dict for :func:`~cnnlab.layers.batchnorm.spatial_batchnorm_forward`;
            its running statistics are updated in training mode.

    Returns:
        out: array of shape (N, F, H_out, W_out), dtype of ``x``.
        cache: for :func:`conv_bn_relu_backward`.
    """
    a, conv_cache = conv_forward_im2col(x, w, b, conv_param)
    an, bn_cache = spatial_batchnorm_forward(a, gamma, beta, bn_param)
    out, relu_cache = relu_forward(an)
    return out, (conv_cache, bn_cache, relu_cache)


def conv_bn_relu_backward(dout, cache):
    """Backward pass of :func:`conv_bn_relu_forward`.

    Args:
        dout: upstream gradient of shape (N, F, H_out, W_out).

    Returns:
        dx: (N, C, H, W); dw: (F, C/groups, HH, WW); db: (F,); dgamma: (F,); dbeta: (F,).
    """
    conv_cache, bn_cache, relu_cache = cache
    dan = relu_backward(dout, relu_cache)
    da, dgamma, dbeta = spatial_batchnorm_backward(dan, bn_cache)
    dx, dw, db = conv_backward_im2col(da, conv_cache)
    return dx, dw, db, dgamma, dbeta
