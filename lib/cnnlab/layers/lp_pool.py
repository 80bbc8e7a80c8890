"""L2-norm pooling: the square root of the sum of squares in each window.

CS231n notes ("Pooling layer"): besides max pooling, pooling units can perform average pooling
or *L2-norm pooling*. For a window ``R`` of the input channel::

    out[n, c, h, w] = sqrt( sum_{(i, j) in R(h, w)} x[n, c, i, j]**2 )

which is ``torch.nn.functional.lp_pool2d(x, 2, kernel_size, stride)`` (PyTorch computes it as
``(avg_pool2d(x**2) * kH*kW) ** (1/2)``). Like PyTorch's ``lp_pool2d`` there is no padding.

Gradient: ``d out / d x[i, j] = x[i, j] / out`` for the window's entries. A window of zeros has
``out = 0`` where the square root is not differentiable; its gradient is defined as **0**, which
is what PyTorch's autograd gives ("if the sum of all inputs to the power of p is zero, the
gradient is set to zero as well", ``lp_pool2d`` docs).

``pool_param`` keys (all required): ``pool_height``, ``pool_width``, ``stride`` (ints >= 1).
Shapes: ``x`` (N, C, H, W) -> ``out`` (N, C, Hout, Wout), ``Hout = (H - pool_height)//stride + 1``.
Dtypes: float32 or float64; ``out`` and ``dx`` have ``x``'s dtype.
"""
from __future__ import annotations

import numpy as np

from ..im2col import col2im, im2col
from ..shapes import check_4d, check_int, conv_output_size

__all__ = ["l2_pool_forward", "l2_pool_backward"]

_KEYS = ("pool_height", "pool_width", "stride")


def _geometry(x, pool_param):
    check_4d("x", x)
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"l2 pool: x must be a floating-point array (float32 or float64), got dtype {x.dtype}")
    if not isinstance(pool_param, dict):
        raise ValueError(f"l2 pool: pool_param must be a dict with keys {list(_KEYS)}, got {type(pool_param).__name__}")
    unknown = sorted(str(k) for k in pool_param if k not in _KEYS)
    if unknown:
        raise ValueError(f"l2 pool: unknown pool_param keys {unknown}; allowed keys are {list(_KEYS)} "
                         f"(no padding, as in torch.nn.functional.lp_pool2d)")
    missing = [k for k in _KEYS if k not in pool_param]
    if missing:
        raise ValueError(f"l2 pool: pool_param is missing the required keys {missing} (got {sorted(pool_param)})")
    ph = check_int("pool_param['pool_height']", pool_param["pool_height"], 1)
    pw = check_int("pool_param['pool_width']", pool_param["pool_width"], 1)
    stride = check_int("pool_param['stride']", pool_param["stride"], 1)
    N, C, H, W = x.shape
    try:
        Ho = conv_output_size(H, ph, stride, axis="H")
        Wo = conv_output_size(W, pw, stride, axis="W")
    except ValueError as err:
        raise ValueError(f"l2 pool: x of shape {x.shape} is too small for a {ph}x{pw} window "
                         f"with stride {stride}: {err}") from None
    return N, C, H, W, ph, pw, stride, Ho, Wo


# BEGIN ANSWER 02_pooling_batchnorm l2_pool
def l2_pool_forward(x, pool_param):
    """Forward pass of L2-norm pooling.

    Every channel is pooled separately: the input is viewed as N*C one-channel images and
    :func:`~cnnlab.im2col.im2col` turns each window into a column of ``pool_height*pool_width``
    values; the output is the Euclidean norm of each column.

    Args:
        x: input, shape (N, C, H, W), float32 or float64.
        pool_param: dict with 'pool_height', 'pool_width', 'stride' (ints >= 1).

    Returns:
        out: shape (N, C, Hout, Wout), dtype of ``x``; ``Hout = (H - pool_height)//stride + 1``.
        cache: ``(x.shape, cols, out, pool_param)`` for :func:`l2_pool_backward`.

    Raises:
        ValueError: for a non-4-D or non-float ``x``, bad/missing/unknown ``pool_param`` keys,
            or a window that does not fit.
    """
    N, C, H, W, ph, pw, stride, Ho, Wo = _geometry(x, pool_param)
    cols = im2col(x.reshape(N * C, 1, H, W), ph, pw, stride, 0)    # (ph*pw, N*C*Ho*Wo)
    out = np.sqrt(np.einsum("kp,kp->p", cols, cols)).reshape(N, C, Ho, Wo)
    return out, (x.shape, cols, out, dict(pool_param))
# END ANSWER


# BEGIN ANSWER 02_pooling_batchnorm l2_pool
def l2_pool_backward(dout, cache):
    """Backward pass of L2-norm pooling.

    ``dx[i, j] += dout * x[i, j] / out`` for every window holding (i, j) (overlapping windows
    add up); a window whose output is 0 (all zeros) passes gradient 0, as PyTorch does.

    Args:
        dout: upstream gradient, shape (N, C, Hout, Wout).
        cache: from :func:`l2_pool_forward`.

    Returns:
        dx: shape (N, C, H, W), dtype of ``x``.

    Raises:
        ValueError: if ``dout`` does not have the output's shape.
    """
    x_shape, cols, out, pool_param = cache
    if not isinstance(dout, np.ndarray) or dout.shape != out.shape:
        got = dout.shape if isinstance(dout, np.ndarray) else type(dout).__name__
        raise ValueError(f"dout must have the output's shape (N, C, Hout, Wout) = {out.shape}, got {got}")
    N, C, H, W = x_shape
    o = out.reshape(-1)
    scale = np.zeros_like(o)
    nz = o > 0
    scale[nz] = dout.reshape(-1)[nz] / o[nz]         # d sqrt(s) = ds / (2 sqrt(s)), ds = 2 x dx
    dcols = cols * scale                              # broadcast over the window rows
    dx = col2im(dcols, (N * C, 1, H, W), pool_param["pool_height"], pool_param["pool_width"],
                pool_param["stride"], 0)
    return dx.reshape(x_shape)
# END ANSWER
