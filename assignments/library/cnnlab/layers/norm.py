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


# (withheld from the student edition: exercise layernorm_groupnorm of 02_pooling_batchnorm)
def _forward(*args, **kwargs):
    """Withheld from the student edition: exercise ``layernorm_groupnorm`` of 02_pooling_batchnorm."""
    raise NotImplementedError("_forward is not in the student edition of cnnlab: it is exercise 'layernorm_groupnorm' of assignment 02_pooling_batchnorm. Write it yourself in assignments/02_pooling_batchnorm/pooling_batchnorm.ipynb.")



# (withheld from the student edition: exercise norm_backward of 02_pooling_batchnorm)
def _backward(*args, **kwargs):
    """Withheld from the student edition: exercise ``norm_backward`` of 02_pooling_batchnorm."""
    raise NotImplementedError("_backward is not in the student edition of cnnlab: it is exercise 'norm_backward' of assignment 02_pooling_batchnorm. Write it yourself in assignments/02_pooling_batchnorm/pooling_batchnorm.ipynb.")



# (withheld from the student edition: exercise layernorm_groupnorm of 02_pooling_batchnorm)
def layernorm_forward(*args, **kwargs):
    """Withheld from the student edition: exercise ``layernorm_groupnorm`` of 02_pooling_batchnorm."""
    raise NotImplementedError("layernorm_forward is not in the student edition of cnnlab: it is exercise 'layernorm_groupnorm' of assignment 02_pooling_batchnorm. Write it yourself in assignments/02_pooling_batchnorm/pooling_batchnorm.ipynb.")



# (withheld from the student edition: exercise norm_backward of 02_pooling_batchnorm)
def layernorm_backward(*args, **kwargs):
    """Withheld from the student edition: exercise ``norm_backward`` of 02_pooling_batchnorm."""
    raise NotImplementedError("layernorm_backward is not in the student edition of cnnlab: it is exercise 'norm_backward' of assignment 02_pooling_batchnorm. Write it yourself in assignments/02_pooling_batchnorm/pooling_batchnorm.ipynb.")



# (withheld from the student edition: exercise layernorm_groupnorm of 02_pooling_batchnorm)
def groupnorm_forward(*args, **kwargs):
    """Withheld from the student edition: exercise ``layernorm_groupnorm`` of 02_pooling_batchnorm."""
    raise NotImplementedError("groupnorm_forward is not in the student edition of cnnlab: it is exercise 'layernorm_groupnorm' of assignment 02_pooling_batchnorm. Write it yourself in assignments/02_pooling_batchnorm/pooling_batchnorm.ipynb.")



# (withheld from the student edition: exercise norm_backward of 02_pooling_batchnorm)
def groupnorm_backward(*args, **kwargs):
    """Withheld from the student edition: exercise ``norm_backward`` of 02_pooling_batchnorm."""
    raise NotImplementedError("groupnorm_backward is not in the student edition of cnnlab: it is exercise 'norm_backward' of assignment 02_pooling_batchnorm. Write it yourself in assignments/02_pooling_batchnorm/pooling_batchnorm.ipynb.")

