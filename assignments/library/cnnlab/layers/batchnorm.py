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


# (withheld from the student edition: exercise batchnorm_forward of 02_pooling_batchnorm)
def _forward(*args, **kwargs):
    """Withheld from the student edition: exercise ``batchnorm_forward`` of 02_pooling_batchnorm."""
    raise NotImplementedError("_forward is not in the student edition of cnnlab: it is exercise 'batchnorm_forward' of assignment 02_pooling_batchnorm. Write it yourself in assignments/02_pooling_batchnorm/pooling_batchnorm.ipynb.")



# (withheld from the student edition: exercise batchnorm_forward of 02_pooling_batchnorm)
def _sum_of_products(*args, **kwargs):
    """Withheld from the student edition: exercise ``batchnorm_forward`` of 02_pooling_batchnorm."""
    raise NotImplementedError("_sum_of_products is not in the student edition of cnnlab: it is exercise 'batchnorm_forward' of assignment 02_pooling_batchnorm. Write it yourself in assignments/02_pooling_batchnorm/pooling_batchnorm.ipynb.")



# (withheld from the student edition: exercise batchnorm_backward of 02_pooling_batchnorm)
def _backward_test(*args, **kwargs):
    """Withheld from the student edition: exercise ``batchnorm_backward`` of 02_pooling_batchnorm."""
    raise NotImplementedError("_backward_test is not in the student edition of cnnlab: it is exercise 'batchnorm_backward' of assignment 02_pooling_batchnorm. Write it yourself in assignments/02_pooling_batchnorm/pooling_batchnorm.ipynb.")



# (withheld from the student edition: exercise batchnorm_backward_alt of 02_pooling_batchnorm)
def _backward_alt(*args, **kwargs):
    """Withheld from the student edition: exercise ``batchnorm_backward_alt`` of 02_pooling_batchnorm."""
    raise NotImplementedError("_backward_alt is not in the student edition of cnnlab: it is exercise 'batchnorm_backward_alt' of assignment 02_pooling_batchnorm. Write it yourself in assignments/02_pooling_batchnorm/pooling_batchnorm.ipynb.")



# (withheld from the student edition: exercise batchnorm_forward of 02_pooling_batchnorm)
def batchnorm_forward(*args, **kwargs):
    """Withheld from the student edition: exercise ``batchnorm_forward`` of 02_pooling_batchnorm."""
    raise NotImplementedError("batchnorm_forward is not in the student edition of cnnlab: it is exercise 'batchnorm_forward' of assignment 02_pooling_batchnorm. Write it yourself in assignments/02_pooling_batchnorm/pooling_batchnorm.ipynb.")



# (withheld from the student edition: exercise batchnorm_backward of 02_pooling_batchnorm)
def batchnorm_backward(*args, **kwargs):
    """Withheld from the student edition: exercise ``batchnorm_backward`` of 02_pooling_batchnorm."""
    raise NotImplementedError("batchnorm_backward is not in the student edition of cnnlab: it is exercise 'batchnorm_backward' of assignment 02_pooling_batchnorm. Write it yourself in assignments/02_pooling_batchnorm/pooling_batchnorm.ipynb.")



# (withheld from the student edition: exercise batchnorm_backward_alt of 02_pooling_batchnorm)
def batchnorm_backward_alt(*args, **kwargs):
    """Withheld from the student edition: exercise ``batchnorm_backward_alt`` of 02_pooling_batchnorm."""
    raise NotImplementedError("batchnorm_backward_alt is not in the student edition of cnnlab: it is exercise 'batchnorm_backward_alt' of assignment 02_pooling_batchnorm. Write it yourself in assignments/02_pooling_batchnorm/pooling_batchnorm.ipynb.")



# (withheld from the student edition: exercise spatial_batchnorm of 02_pooling_batchnorm)
def spatial_batchnorm_forward(*args, **kwargs):
    """Withheld from the student edition: exercise ``spatial_batchnorm`` of 02_pooling_batchnorm."""
    raise NotImplementedError("spatial_batchnorm_forward is not in the student edition of cnnlab: it is exercise 'spatial_batchnorm' of assignment 02_pooling_batchnorm. Write it yourself in assignments/02_pooling_batchnorm/pooling_batchnorm.ipynb.")



# (withheld from the student edition: exercise spatial_batchnorm of 02_pooling_batchnorm)
def spatial_batchnorm_backward(*args, **kwargs):
    """Withheld from the student edition: exercise ``spatial_batchnorm`` of 02_pooling_batchnorm."""
    raise NotImplementedError("spatial_batchnorm_backward is not in the student edition of cnnlab: it is exercise 'spatial_batchnorm' of assignment 02_pooling_batchnorm. Write it yourself in assignments/02_pooling_batchnorm/pooling_batchnorm.ipynb.")

