"""Layer normalization and group normalization, and why they behave the same in train and test.

Batch normalization (:mod:`cnnlab.layers.batchnorm`) averages over the *batch*: in training the
statistics of the current minibatch, in test mode the running averages, so the two modes give
different outputs and tiny batches give noisy (for batch 1 with 1x1 maps: degenerate)
statistics. The normalizations here average over each sample's own values only:

- **layer norm** (Ba et al., 2016): per sample over all features -- (D,) for x of shape (N, D),
  (C, H, W) for x of shape (N, C, H, W);
- **group norm** (Wu & He, 2018): per sample over each of G groups of C/G channels and all H x W
  positions. ``G = 1`` is layer norm, ``G = C`` is instance norm.

No running statistics, no batch dependence: the output of a sample does not depend on the other
samples in the batch, and training and test mode compute the same thing.

Both normalize with the mean and the BIASED variance (divide by the number of values M) and
``eps`` added to the variance, like PyTorch::

    xhat = (x - mean) / sqrt(var + eps),    out = gamma * xhat + beta

Affine parameters (this module's choice): **one (gamma, beta) per channel**, shape (C,) for
NCHW input -- the per-channel affine of the group-norm paper and of ``torch.nn.GroupNorm``, so
``layernorm_forward(x, ...)`` on 4-D input equals ``groupnorm_forward(x, ..., G=1, ...)``. (For
(N, D) input they have shape (D,), as in CS231n.) ``torch.nn.functional.layer_norm(x, (C, H, W),
weight, bias)`` takes a (C, H, W) weight instead; ours is the special case
``weight = gamma[:, None, None].expand(C, H, W)``, which keeps the layer independent of the image
size.

``ln_param`` / ``gn_param``: dict (or None) with the optional key ``eps`` (float > 0, default
1e-5). A ``mode`` key ('train'/'test') is accepted and ignored -- both modes are identical --
so the same param dicts as for batch norm can be passed.

Dtypes: float32 or float64 input; ``out`` and ``dx`` have ``x``'s dtype, ``dgamma``/``dbeta``
the dtypes of ``gamma``/``beta``.

:func:`cnnlab.train.norm_train_test_gap` measures the train/test discrepancy of the three
normalizations for several batch sizes (numbers for the notebook).
"""
from __future__ import annotations

import numbers

import numpy as np

from ..shapes import check_4d, check_int

__all__ = [
    "layernorm_forward",
    "layernorm_backward",
    "groupnorm_forward",
    "groupnorm_backward",
]

_KEYS = ("eps", "mode")


def _eps(param, name, layer):
    if param is None:
        param = {}
    if not isinstance(param, dict):
        raise ValueError(f"{layer}: {name} must be a dict (optional keys {list(_KEYS)}) or None, got {type(param).__name__}")
    unknown = sorted(str(k) for k in param if k not in _KEYS)
    if unknown:
        raise ValueError(f"{layer}: unknown {name} keys {unknown}; allowed keys are {list(_KEYS)}")
    if param.get("mode", "train") not in ("train", "test"):
        raise ValueError(f"{layer}: {name}['mode'] must be 'train' or 'test' (both compute the same), got {param['mode']!r}")
    eps = param.get("eps", 1e-5)
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps > 0:
        raise ValueError(f"{layer}: {name}['eps'] must be a number > 0, got {eps!r}")
    return float(eps)


def _check_affine(x, gamma, beta, layer):
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{layer}: x must be a floating-point array (float32 or float64), got dtype {x.dtype}")
    what = "D" if x.ndim == 2 else "C"
    D = x.shape[1]
    for name, a in (("gamma", gamma), ("beta", beta)):
        if not isinstance(a, np.ndarray) or a.shape != (D,):
            got = a.shape if isinstance(a, np.ndarray) else type(a).__name__
            raise ValueError(f"{layer}: {name} must be an array of shape ({what},) = ({D},) (one value per "
                             f"{'feature' if what == 'D' else 'channel'}) for x of shape {x.shape}, got {got}")


# BEGIN ANSWER 02_pooling_batchnorm layernorm_groupnorm
def _forward(x, gamma, beta, G, eps):
    """Normalize x (N, C, ...) over groups: x viewed as (N, G, M); returns out, cache."""
    dt = x.dtype
    N = x.shape[0]
    bshape = (1, -1) + (1,) * (x.ndim - 2)
    xg = x.reshape(N, G, -1)
    mean = xg.mean(axis=2, keepdims=True)
    xmu = xg - mean
    var = np.mean(xmu * xmu, axis=2, keepdims=True)
    inv_std = (1 / np.sqrt(var + dt.type(eps))).astype(dt, copy=False)
    xhat = (xmu * inv_std).reshape(x.shape)
    g = gamma.astype(dt, copy=False).reshape(bshape)
    out = xhat * g + beta.astype(dt, copy=False).reshape(bshape)
    return out, (xhat, inv_std, g, G, gamma.dtype, beta.dtype)
# END ANSWER


# BEGIN ANSWER 02_pooling_batchnorm norm_backward
def _backward(dout, cache, layer):
    xhat, inv_std, g, G, gdt, bdt = cache
    if not isinstance(dout, np.ndarray) or dout.shape != xhat.shape:
        got = dout.shape if isinstance(dout, np.ndarray) else type(dout).__name__
        raise ValueError(f"{layer}: dout must have the shape of x {xhat.shape}, got {got}")
    dout = dout.astype(xhat.dtype, copy=False)
    axes = (0,) + tuple(range(2, xhat.ndim))             # all but the channel/feature axis
    dbeta = dout.sum(axis=axes)
    dgamma = (dout * xhat).sum(axis=axes)
    N = xhat.shape[0]
    dxhat = (dout * g).reshape(N, G, -1)
    xh = xhat.reshape(N, G, -1)
    # d/dx of (x - mean)/std within each group of M values (the batch norm formula, per group)
    dx = inv_std * (dxhat - dxhat.mean(axis=2, keepdims=True)
                    - xh * np.mean(dxhat * xh, axis=2, keepdims=True))
    return dx.reshape(xhat.shape), dgamma.astype(gdt, copy=False), dbeta.astype(bdt, copy=False)
# END ANSWER


# BEGIN ANSWER 02_pooling_batchnorm layernorm_groupnorm
def layernorm_forward(x, gamma, beta, ln_param=None):
    """Forward pass of layer normalization: each sample normalized over all its features.

    Args:
        x: float32/float64 array of shape (N, D) or (N, C, H, W).
        gamma: scale, shape (D,) for 2-D x, (C,) for 4-D x (per channel, see module docstring).
        beta: shift, same shape as ``gamma``.
        ln_param: None or dict with optional 'eps' (default 1e-5); 'mode' is ignored.

    Returns:
        out: shape of ``x``, dtype of ``x``.
        cache: for :func:`layernorm_backward`.

    Raises:
        ValueError: for x that is not 2-D or 4-D or not float, gamma/beta of the wrong shape,
            or a bad ``ln_param``.
    """
    if not isinstance(x, np.ndarray) or x.ndim not in (2, 4):
        got = f"shape {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
        raise ValueError(f"layernorm: x must be a numpy array of shape (N, D) or (N, C, H, W), got {got}")
    eps = _eps(ln_param, "ln_param", "layernorm")
    _check_affine(x, gamma, beta, "layernorm")
    return _forward(x, gamma, beta, 1, eps)
# END ANSWER


# BEGIN ANSWER 02_pooling_batchnorm norm_backward
def layernorm_backward(dout, cache):
    """Backward pass of layer normalization.

    Args:
        dout: upstream gradient, shape of ``x``.
        cache: from :func:`layernorm_forward`.

    Returns:
        dx: shape and dtype of ``x``.
        dgamma, dbeta: shape of ``gamma`` ((D,) or (C,)), dtypes of ``gamma``/``beta``.
    """
    return _backward(dout, cache, "layernorm")
# END ANSWER


# BEGIN ANSWER 02_pooling_batchnorm layernorm_groupnorm
def groupnorm_forward(x, gamma, beta, G, gn_param=None):
    """Forward pass of group normalization (``torch.nn.functional.group_norm``).

    The C channels are split into G consecutive groups of C/G; each sample is normalized over
    each group's (C/G) * H * W values.

    Args:
        x: float32/float64 array of shape (N, C, H, W).
        gamma: scale, shape (C,).
        beta: shift, shape (C,).
        G: number of groups, an int >= 1 dividing C (1: layer norm, C: instance norm).
        gn_param: None or dict with optional 'eps' (default 1e-5); 'mode' is ignored.

    Returns:
        out: shape and dtype of ``x``.
        cache: for :func:`groupnorm_backward`.

    Raises:
        ValueError: for a non-4-D or non-float x, G not dividing C, gamma/beta not of shape (C,),
            or a bad ``gn_param``.
    """
    check_4d("x", x)
    G = check_int("G (number of groups)", G, 1)
    if x.shape[1] % G:
        raise ValueError(f"groupnorm: G={G} must divide the number of channels C={x.shape[1]} "
                         f"(x of shape {x.shape})")
    eps = _eps(gn_param, "gn_param", "groupnorm")
    _check_affine(x, gamma, beta, "groupnorm")
    return _forward(x, gamma, beta, G, eps)
# END ANSWER


# BEGIN ANSWER 02_pooling_batchnorm norm_backward
def groupnorm_backward(dout, cache):
    """Backward pass of group normalization.

    Args:
        dout: upstream gradient, shape (N, C, H, W).
        cache: from :func:`groupnorm_forward`.

    Returns:
        dx: shape and dtype of ``x``.
        dgamma, dbeta: shape (C,), dtypes of ``gamma``/``beta``.
    """
    return _backward(dout, cache, "groupnorm")
# END ANSWER
