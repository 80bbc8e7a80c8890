"""Batch normalization (Ioffe & Szegedy, 2015) for fully connected and convolutional layers.

``batchnorm_*`` normalizes x of shape (N, D) per feature over the minibatch;
``spatial_batchnorm_*`` normalizes x of shape (N, C, H, W) per channel over N, H and W (one
mean and variance per channel, like ``torch.nn.BatchNorm2d``).

In training mode each feature is normalized with the minibatch mean and the BIASED minibatch
variance (divide by m, the number of values per feature)::

    xhat = (x - mean) / sqrt(var_biased + eps),   out = gamma * xhat + beta

and the running statistics used in test mode are updated as exponential moving averages.

Convention: the one of PyTorch (``torch.nn.BatchNorm1d/2d``), so numpy and PyTorch agree
number for number:

- ``momentum`` (default 0.1) is the weight of the NEW batch statistic:
  ``running = (1 - momentum) * running + momentum * batch``;
- ``running_mean`` starts at zeros and ``running_var`` at ONES;
- ``running_var`` is updated with the UNBIASED batch variance (divide by m - 1) while the
  normalization itself uses the biased one;
- ``eps`` defaults to 1e-5.

CS231n's assignment code uses the opposite momentum convention (``momentum = 0.9`` is the
weight of the OLD running value), starts ``running_var`` at zeros and averages the biased
variance; a CS231n ``momentum`` of 0.9 is a PyTorch/CNN Lab ``momentum`` of 0.1.

``bn_param`` is a dict with the keys

- ``mode``: ``'train'`` or ``'test'`` (required),
- ``eps``: float > 0, default 1e-5,
- ``momentum``: float in [0, 1], default 0.1,
- ``running_mean``, ``running_var``: arrays of shape (D,) (or (C,)); created (zeros, ones) on
  the first call and replaced by their updated values in the dict after every training-mode
  call, as in CS231n.

Dtypes: float32 and float64 both work; ``out`` and ``dx`` have the dtype of ``x``, ``gamma`` and
``beta`` are used in that dtype and ``dgamma``/``dbeta`` come back in their own dtype.
"""
from __future__ import annotations

import numbers
from typing import NamedTuple

import numpy as np

from ..shapes import check_4d, check_dout

__all__ = [
    "BatchNormCache",
    "batchnorm_forward",
    "batchnorm_backward",
    "batchnorm_backward_alt",
    "spatial_batchnorm_forward",
    "spatial_batchnorm_backward",
]

_BN_KEYS = ("mode", "eps", "momentum", "running_mean", "running_var")


def _check(x, gamma, beta, bn_param, layer):
    """Validate the arguments; return (mode, eps, momentum, running_mean, running_var)."""
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{layer}: x must be a floating-point array (float32 or float64), got dtype {x.dtype}")
    D = x.shape[1]
    what = "D" if x.ndim == 2 else "C"
    for name, a in (("gamma", gamma), ("beta", beta)):
        if not isinstance(a, np.ndarray) or a.shape != (D,):
            got = a.shape if isinstance(a, np.ndarray) else type(a).__name__
            raise ValueError(
                f"{layer}: {name} must be an array of shape ({what},) = ({D},) for x of shape {x.shape}, got {got}"
            )
    if not isinstance(bn_param, dict):
        raise ValueError(f"{layer}: bn_param must be a dict with keys {list(_BN_KEYS)}, got {type(bn_param).__name__}")
    unknown = sorted(set(bn_param) - set(_BN_KEYS))
    if unknown:
        raise ValueError(f"{layer}: unknown bn_param keys {unknown}; allowed keys are {list(_BN_KEYS)}")
    mode = bn_param.get("mode")
    if mode not in ("train", "test"):
        raise ValueError(f"{layer}: bn_param['mode'] must be 'train' or 'test', got {mode!r}")
    eps = bn_param.get("eps", 1e-5)
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps > 0:
        raise ValueError(f"{layer}: bn_param['eps'] must be a number > 0, got {eps!r}")
    momentum = bn_param.get("momentum", 0.1)
    if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) or not 0 <= momentum <= 1:
        raise ValueError(
            f"{layer}: bn_param['momentum'] must be a number in [0, 1] (the weight of the new batch "
            f"statistic, PyTorch's convention; CS231n's 0.9 is 0.1 here), got {momentum!r}"
        )
    running = []
    for key, init in (("running_mean", np.zeros), ("running_var", np.ones)):
        r = bn_param.get(key)
        if r is None:
            r = init(D, dtype=x.dtype)
        elif not isinstance(r, np.ndarray) or r.shape != (D,):
            got = r.shape if isinstance(r, np.ndarray) else type(r).__name__
            raise ValueError(f"{layer}: bn_param['{key}'] must be an array of shape ({what},) = ({D},), got {got}")
        running.append(r)
    return mode, float(eps), float(momentum), running[0], running[1]


class BatchNormCache(NamedTuple):
    """What a batch-norm forward pass keeps for its backward pass (``out, cache = ...``).

    ``mode``: ``"train"`` or ``"test"``; ``axes``: the axes the statistics were taken over
    ((0,) for (N, D), (0, 2, 3) for NCHW); the dtypes of ``x``, ``gamma``, ``beta``; ``xhat``
    (test mode) or ``xmu = x - mean`` (train mode), both of ``x``'s shape; ``gamma`` in ``x``'s
    dtype, ``var``/``std`` (train mode) and ``inv_std = 1/std``, of shape (D,) or (C,); ``eps``.
    """
    mode: str
    axes: tuple
    x_dtype: object
    gamma_dtype: object
    beta_dtype: object
    xhat: object
    xmu: object
    gamma: object
    var: object
    std: object
    inv_std: object
    eps: float


# BEGIN ANSWER 02_pooling_batchnorm batchnorm_forward
def _forward(x, gamma, beta, bn_param, axes, layer):
    """Shared forward pass; statistics over ``axes`` ((0,) or (0, 2, 3))."""
    mode, eps, momentum, running_mean, running_var = _check(x, gamma, beta, bn_param, layer)
    dt = x.dtype
    bshape = (1, -1) + (1,) * (x.ndim - 2)  # broadcast a per-feature (D,) vector against x
    g = gamma.astype(dt, copy=False)
    if mode == "train":
        m = x.size // x.shape[1]  # values per feature
        if m < 2:
            raise ValueError(
                f"{layer}: training mode needs more than 1 value per feature to compute a variance "
                f"(x of shape {x.shape} gives {m}); use mode 'test' or a larger batch"
            )
        mean = x.mean(axis=axes, dtype=dt)
        xmu = x - mean.reshape(bshape)
        var = _sum_of_products(xmu, xmu) / dt.type(m)  # biased variance: normalizes the batch
        sqrtvar = np.sqrt(var + dt.type(eps))
        inv_std = 1 / sqrtvar
        # out = gamma * xhat + beta computed as xmu * (gamma / std) + beta: xhat itself is not
        # needed here (the backward passes recompute it from xmu), which saves a pass over x
        out = xmu * (g * inv_std).reshape(bshape)
        out += beta.astype(dt, copy=False).reshape(bshape)
        mom = momentum
        rdt = running_mean.dtype
        bn_param["running_mean"] = ((1 - mom) * running_mean + mom * mean).astype(rdt, copy=False)
        unbiased = var * (m / (m - 1))  # PyTorch averages the unbiased variance
        bn_param["running_var"] = ((1 - mom) * running_var + mom * unbiased).astype(running_var.dtype, copy=False)
        cache = BatchNormCache("train", axes, x.dtype, gamma.dtype, beta.dtype, xhat=None, xmu=xmu, gamma=g, var=var,
                               std=sqrtvar, inv_std=inv_std, eps=eps)
    else:
        inv_std = (1 / np.sqrt(running_var.astype(dt, copy=False) + dt.type(eps))).astype(dt, copy=False)
        xhat = (x - running_mean.astype(dt, copy=False).reshape(bshape)) * inv_std.reshape(bshape)
        out = xhat * g.reshape(bshape)
        out += beta.astype(dt, copy=False).reshape(bshape)
        bn_param["running_mean"], bn_param["running_var"] = running_mean, running_var
        cache = BatchNormCache("test", axes, x.dtype, gamma.dtype, beta.dtype, xhat=xhat, xmu=None, gamma=g, var=None,
                               std=None, inv_std=inv_std, eps=eps)
    return out, cache
# END ANSWER


# BEGIN ANSWER 02_pooling_batchnorm batchnorm_forward
def _sum_of_products(a, b):
    """Per-feature sum of a * b over every axis but 1, without a temporary of x's size."""
    if a.ndim == 2:
        return np.einsum("nd,nd->d", a, b)
    N, C = a.shape[:2]
    return np.einsum("ncl,ncl->c", a.reshape(N, C, -1), b.reshape(N, C, -1))
# END ANSWER


# BEGIN ANSWER 02_pooling_batchnorm batchnorm_backward
def _backward_test(dout, cache):
    """Backward pass in test mode: out is an affine function of x."""
    _, axes, xdt, gdt, bdt, xhat, _, g, _, _, inv_std, _ = cache
    bshape = (1, -1) + (1,) * (xhat.ndim - 2)
    dbeta = dout.sum(axis=axes)
    dgamma = _sum_of_products(dout, xhat)
    dx = dout * (g * inv_std).reshape(bshape)
    return dx, dgamma.astype(gdt, copy=False), dbeta.astype(bdt, copy=False)
# END ANSWER


# BEGIN ANSWER 02_pooling_batchnorm batchnorm_backward_alt
def _backward_alt(dout, cache):
    """Closed-form backward pass over any axes (see :func:`batchnorm_backward_alt`)."""
    _, axes, xdt, gdt, bdt, _, xmu, g, _, _, inv_std, _ = cache
    bshape = (1, -1) + (1,) * (xmu.ndim - 2)
    m = xmu.dtype.type(xmu.size // xmu.shape[1])
    dbeta = dout.sum(axis=axes)
    dgamma = _sum_of_products(dout, xmu) * inv_std  # sum(dout * xhat) with xhat = xmu * inv_std
    # dx = gamma / sqrt(var + eps) * (dout - mean(dout) - xhat * mean(dout * xhat)), where
    # xhat * mean(dout * xhat) = xmu * (inv_std * dgamma / m): xhat is never formed
    dx = xmu * (-inv_std * dgamma / m).reshape(bshape)
    dx += dout
    dx -= (dbeta / m).reshape(bshape)
    dx *= (g * inv_std).reshape(bshape)
    return dx, dgamma.astype(gdt, copy=False), dbeta.astype(bdt, copy=False)
# END ANSWER


# BEGIN ANSWER 02_pooling_batchnorm batchnorm_forward
def batchnorm_forward(x, gamma, beta, bn_param):
    """Forward pass of batch normalization for fully connected layers.

    Training mode: normalize every feature with the minibatch mean and biased variance, scale
    by ``gamma``, shift by ``beta``, and update the running statistics in ``bn_param``
    (PyTorch's convention, see the module docstring). Test mode: normalize with the running
    statistics instead.

    Args:
        x: float array of shape (N, D); training mode needs N >= 2.
        gamma: scale, array of shape (D,).
        beta: shift, array of shape (D,).
        bn_param: dict with ``mode`` ('train'/'test'), optional ``eps`` (1e-5), ``momentum``
            (0.1, weight of the new batch statistic), ``running_mean`` (D,) (zeros) and
            ``running_var`` (D,) (ones); the running statistics are replaced in the dict.

    Returns:
        out: array of shape (N, D), dtype of ``x``.
        cache: tuple for :func:`batchnorm_backward` / :func:`batchnorm_backward_alt`.

    Raises:
        ValueError: for a non-2-D or non-float ``x``, ``gamma``/``beta``/running statistics of
            the wrong shape, unknown ``bn_param`` keys, an unknown ``mode``, ``eps <= 0``,
            ``momentum`` outside [0, 1], or N < 2 in training mode.
    """
    if not isinstance(x, np.ndarray) or x.ndim != 2:
        got = x.shape if isinstance(x, np.ndarray) else type(x).__name__
        raise ValueError(
            f"batchnorm: x must be a 2-D array of shape (N, D), got {got}; "
            "use spatial_batchnorm_forward for (N, C, H, W)"
        )
    return _forward(x, gamma, beta, bn_param, (0,), "batchnorm")
# END ANSWER


# BEGIN ANSWER 02_pooling_batchnorm batchnorm_backward
def batchnorm_backward(dout, cache):
    """Backward pass of batch normalization, step by step through the computational graph.

    The forward pass in training mode, as a graph of elementary steps (m = N)::

        1. mu      = mean(x)               6. ivar   = 1 / sqrtvar
        2. xmu     = x - mu                7. xhat   = xmu * ivar
        3. sq      = xmu ** 2              8. gammax = gamma * xhat
        4. var     = mean(sq)              9. out    = gammax + beta
        5. sqrtvar = sqrt(var + eps)

    and the backward pass walks it in reverse, one local gradient per step (xmu reaches x by
    two paths, 2 and 3-7, whose gradients add up). See :func:`batchnorm_backward_alt` for the
    same result in closed form. In test mode the statistics are constants and
    ``dx = gamma * dout / sqrt(running_var + eps)``.

    Args:
        dout: upstream gradient of shape (N, D).
        cache: from :func:`batchnorm_forward`.

    Returns:
        dx: array of shape (N, D), dtype of ``x``.
        dgamma: array of shape (D,), dtype of ``gamma``.
        dbeta: array of shape (D,), dtype of ``beta``.
    """
    ref = cache.xhat if cache.mode == "test" else cache.xmu   # both of x's shape
    dout = check_dout(dout, ref.shape, of="x", dtype=ref.dtype)
    if cache.mode == "test":
        return _backward_test(dout, cache)
    _, axes, xdt, gdt, bdt, _, xmu, gamma, var, sqrtvar, ivar, eps = cache
    m = xdt.type(xmu.shape[0])
    xhat = xmu * ivar  # step 7 of the forward pass, recomputed (the cache keeps xmu only)
    # step 9: out = gammax + beta
    dbeta = dout.sum(axis=0)
    dgammax = dout
    # step 8: gammax = gamma * xhat
    dgamma = np.sum(dgammax * xhat, axis=0)
    dxhat = dgammax * gamma
    # step 7: xhat = xmu * ivar (xmu also feeds step 3)
    divar = np.sum(dxhat * xmu, axis=0)
    dxmu1 = dxhat * ivar
    # step 6: ivar = 1 / sqrtvar
    dsqrtvar = -divar / sqrtvar**2
    # step 5: sqrtvar = sqrt(var + eps)
    dvar = dsqrtvar / (2 * sqrtvar)
    # step 4: var = mean(sq) spreads dvar / m to every row
    dsq = np.broadcast_to(dvar / m, xmu.shape)
    # step 3: sq = xmu ** 2
    dxmu2 = 2 * xmu * dsq
    # step 2: xmu = x - mu; both paths into xmu add up
    dx1 = dxmu1 + dxmu2
    dmu = -np.sum(dx1, axis=0)
    # step 1: mu = mean(x) spreads dmu / m to every row
    dx2 = np.broadcast_to(dmu / m, xmu.shape)
    dx = dx1 + dx2
    return dx, dgamma.astype(gdt, copy=False), dbeta.astype(bdt, copy=False)
# END ANSWER


# BEGIN ANSWER 02_pooling_batchnorm batchnorm_backward_alt
def batchnorm_backward_alt(dout, cache):
    """Backward pass of batch normalization in simplified closed form.

    Working the graph of :func:`batchnorm_backward` out on paper gives, per feature (sums over
    the m = N rows)::

        dbeta  = sum(dout)
        dgamma = sum(dout * xhat)
        dx     = gamma / sqrt(var + eps) * (dout - dbeta / m - xhat * dgamma / m)

    which needs no intermediate of the graph but ``xhat`` (here ``x - mean`` times ``1/std``)
    and is several times faster.

    Args:
        dout: upstream gradient of shape (N, D).
        cache: from :func:`batchnorm_forward`.

    Returns:
        dx: array of shape (N, D), dtype of ``x``.
        dgamma: array of shape (D,), dtype of ``gamma``.
        dbeta: array of shape (D,), dtype of ``beta``.
    """
    ref = cache.xhat if cache.mode == "test" else cache.xmu   # both of x's shape
    dout = check_dout(dout, ref.shape, of="x", dtype=ref.dtype)
    if cache.mode == "test":
        return _backward_test(dout, cache)
    return _backward_alt(dout, cache)
# END ANSWER


# BEGIN ANSWER 02_pooling_batchnorm spatial_batchnorm
def spatial_batchnorm_forward(x, gamma, beta, bn_param):
    """Forward pass of spatial batch normalization (``torch.nn.BatchNorm2d``).

    Every channel is normalized with one mean and variance computed over the N * H * W values
    of that channel (reduced directly over the axes (0, 2, 3), no transposes).

    Args:
        x: float array of shape (N, C, H, W); training mode needs N * H * W >= 2.
        gamma: scale, array of shape (C,).
        beta: shift, array of shape (C,).
        bn_param: as for :func:`batchnorm_forward`, with running statistics of shape (C,).

    Returns:
        out: array of shape (N, C, H, W), dtype of ``x``.
        cache: tuple for :func:`spatial_batchnorm_backward`.

    Raises:
        ValueError: as :func:`batchnorm_forward`, for a non-4-D ``x``.
    """
    check_4d("x", x)
    return _forward(x, gamma, beta, bn_param, (0, 2, 3), "spatial batchnorm")
# END ANSWER


# BEGIN ANSWER 02_pooling_batchnorm spatial_batchnorm
def spatial_batchnorm_backward(dout, cache):
    """Backward pass of spatial batch normalization (the closed form of
    :func:`batchnorm_backward_alt` with sums over N, H and W).

    Args:
        dout: upstream gradient of shape (N, C, H, W).
        cache: from :func:`spatial_batchnorm_forward`.

    Returns:
        dx: array of shape (N, C, H, W), dtype of ``x``.
        dgamma: array of shape (C,), dtype of ``gamma``.
        dbeta: array of shape (C,), dtype of ``beta``.
    """
    ref = cache.xhat if cache.mode == "test" else cache.xmu   # both of x's shape
    dout = check_dout(dout, ref.shape, of="x", dtype=ref.dtype)
    if cache.mode == "test":
        return _backward_test(dout, cache)
    return _backward_alt(dout, cache)
# END ANSWER
