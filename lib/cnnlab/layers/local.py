"""Locally-connected layer: a convolution *without weight sharing*.

A convolutional layer slides ONE bank of F filters over the image: every output position
(h, w) uses the same weights. A locally-connected layer has the same receptive fields (window
HH x WW, stride, pad) but a separate filter bank at every output position. It makes sense when
the inputs are aligned so that each region always shows the same kind of content -- e.g.
DeepFace's frontalised faces, where the eyes are always at the same place -- and it costs
``Hout * Wout`` times the parameters of the convolution (but the same FLOPs).

Shapes (NCHW):

- ``x``: input, (N, C, H, W), float32 or float64;
- ``w``: weights, **(Hout, Wout, F, C, HH, WW)** -- ``w[h, w]`` is an ordinary conv filter bank
  (F, C, HH, WW) used at output position (h, w) only. Position axes first, so that
  ``w.reshape(Hout*Wout, F, C*HH*WW)`` is one weight matrix per position (the ordering of
  :func:`cnnlab.im2col.im2col`'s rows);
- ``b``: biases, **(F, Hout, Wout)** -- one bias per filter and position, laid out like one
  sample of the output, so ``out[n] = ... + b``;
- ``out``: (N, F, Hout, Wout) with ``Hout = (H + 2*pad - HH) // stride + 1`` (likewise Wout).

The layer computes (no filter flip, like ``conv2d``)::

    out[n, f, h, w] = b[f, h, w] + sum_{c, i, j} w[h, w, f, c, i, j] * xpad[n, c, h*stride + i, w*stride + j]

:class:`cnnlab.models.LocallyConnected2d` (PyTorch) stores its ``weight`` and ``bias`` in exactly
these layouts, so ``w = module.weight.detach().numpy()`` needs no conversion.

``local_param`` keys: ``stride`` (int >= 1) and ``pad`` (int >= 0), both required.

Parameter count (:func:`local_params`, :func:`local_vs_conv_params`): ``Hout*Wout*(F*C*HH*WW + F)``
= ``Hout*Wout`` x the convolution's ``F*C*HH*WW + F``. A DeepFace-style layer (16 filters of
9x9x16 on a 63x63x16 input, 55x55 output) has 20,752 parameters as a convolution and
62,774,800 as a locally-connected layer.

Dtypes: ``x`` must be float32 or float64; the computation, ``out`` and ``dx`` use ``x``'s dtype,
``dw`` and ``db`` have the dtypes of ``w`` and ``b``.
"""
from __future__ import annotations

import numpy as np

from ..im2col import col2im, im2col
from ..shapes import check_4d, check_dout, check_int, check_pair, conv_output_size

__all__ = [
    "local_forward_naive",
    "local_backward_naive",
    "local_forward",
    "local_backward",
    "local_params",
    "local_vs_conv_params",
]

_KEYS = ("stride", "pad")


def _check(x, w, b, local_param):
    """Validate the forward arguments; return (stride, pad, Hout, Wout)."""
    if not isinstance(local_param, dict):
        raise ValueError(f"local_param must be a dict with keys 'stride' and 'pad', got {type(local_param).__name__}")
    unknown = sorted(str(k) for k in local_param if k not in _KEYS)
    if unknown:
        raise ValueError(f"local_param has unknown key(s) {unknown}; allowed keys are {list(_KEYS)}")
    missing = [k for k in _KEYS if k not in local_param]
    if missing:
        raise ValueError(f"local_param is missing the required key(s) {missing} (got {sorted(local_param)})")
    stride = check_int("local_param['stride']", local_param["stride"], 1)
    pad = check_int("local_param['pad']", local_param["pad"], 0)
    check_4d("x", x)
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"x must be a floating-point array (float32 or float64), got dtype {x.dtype}")
    if not isinstance(w, np.ndarray) or w.ndim != 6:
        got = f"shape {w.shape}" if isinstance(w, np.ndarray) else type(w).__name__
        raise ValueError(f"w must be a 6-D numpy array of shape (Hout, Wout, F, C, HH, WW), got {got}")
    N, C, H, W = x.shape
    Hw, Ww, F, Cw, HH, WW = w.shape
    if Cw != C:
        raise ValueError(f"channel mismatch: x.shape={x.shape} has C={C} but w.shape={w.shape} "
                         f"has w.shape[3]={Cw}; the rule is w.shape[3] == C")
    try:
        Hout = conv_output_size(H, HH, stride, pad, axis="H")
        Wout = conv_output_size(W, WW, stride, pad, axis="W")
    except ValueError as err:
        raise ValueError(f"locally-connected layer with x.shape={x.shape}, w.shape={w.shape}, "
                         f"stride={stride}, pad={pad}: {err}") from None
    if (Hw, Ww) != (Hout, Wout):
        raise ValueError(
            f"w.shape={w.shape} holds filters for {Hw}x{Ww} output positions, but x.shape={x.shape} "
            f"with a {HH}x{WW} window, stride {stride}, pad {pad} gives Hout x Wout = {Hout}x{Wout} "
            f"((H + 2*pad - HH)//stride + 1); the rule is w.shape[:2] == (Hout, Wout)")
    if not isinstance(b, np.ndarray) or b.shape != (F, Hout, Wout):
        got = b.shape if isinstance(b, np.ndarray) else type(b).__name__
        raise ValueError(f"b must be a numpy array of shape (F, Hout, Wout) = {(F, Hout, Wout)} "
                         f"to match w.shape={w.shape}, got {got}")
    return stride, pad, Hout, Wout


# ---------------------------------------------------------------------------------------------
# Naive version: explicit loops
# ---------------------------------------------------------------------------------------------

def local_forward_naive(x, w, b, local_param):
    """Forward pass of a locally-connected layer, with explicit loops.

    Args:
        x: input, shape (N, C, H, W), float32 or float64.
        w: weights, shape (Hout, Wout, F, C, HH, WW): one filter bank per output position.
        b: biases, shape (F, Hout, Wout).
        local_param: dict with 'stride' (int >= 1) and 'pad' (int >= 0).

    Returns:
        out: shape (N, F, Hout, Wout), dtype of ``x``.
        cache: ``(x, w, b, local_param)`` for :func:`local_backward_naive`.

    Raises:
        ValueError: for bad shapes or hyper-parameters (the message names the rule broken).
    """
    S, P, Hout, Wout = _check(x, w, b, local_param)
    N = x.shape[0]
    _, _, F, _, HH, WW = w.shape
    dt = x.dtype
    xp = np.pad(x, ((0, 0), (0, 0), (P, P), (P, P)))
    out = np.zeros((N, F, Hout, Wout), dtype=dt)
    for n in range(N):
        for f in range(F):
            for i in range(Hout):
                for j in range(Wout):
                    window = xp[n, :, i * S:i * S + HH, j * S:j * S + WW]       # (C, HH, WW)
                    out[n, f, i, j] = np.sum(window * w[i, j, f].astype(dt)) + b[f, i, j]
    return out, (x, w, b, local_param)


def local_backward_naive(dout, cache):
    """Backward pass of :func:`local_forward_naive`, with explicit loops.

    Args:
        dout: upstream gradient, shape (N, F, Hout, Wout).
        cache: from :func:`local_forward_naive`.

    Returns:
        dx: shape (N, C, H, W), dtype of ``x``.
        dw: shape (Hout, Wout, F, C, HH, WW), dtype of ``w``.
        db: shape (F, Hout, Wout), dtype of ``b``.
    """
    x, w, b, local_param = cache
    S, P, Hout, Wout = _check(x, w, b, local_param)
    N, C, H, W = x.shape
    _, _, F, _, HH, WW = w.shape
    check_dout(dout, (N, F, Hout, Wout), layout="(N, F, Hout, Wout)")
    dt = x.dtype
    xp = np.pad(x, ((0, 0), (0, 0), (P, P), (P, P)))
    dxp = np.zeros_like(xp)
    dw = np.zeros(w.shape, dtype=dt)
    for n in range(N):
        for f in range(F):
            for i in range(Hout):
                for j in range(Wout):
                    g = dout[n, f, i, j]
                    dxp[n, :, i * S:i * S + HH, j * S:j * S + WW] += g * w[i, j, f]
                    dw[i, j, f] += g * xp[n, :, i * S:i * S + HH, j * S:j * S + WW]
    dx = dxp[:, :, P:P + H, P:P + W]
    db = dout.sum(axis=0)
    return dx.astype(dt), dw.astype(w.dtype), db.astype(b.dtype)


# ---------------------------------------------------------------------------------------------
# Vectorised version: im2col + one batched matrix multiply (one matrix per output position)
# ---------------------------------------------------------------------------------------------

def local_forward(x, w, b, local_param):
    """Forward pass of a locally-connected layer via im2col and a batched matrix multiply.

    With ``L = Hout*Wout`` positions and ``K = C*HH*WW``, the columns of
    :func:`~cnnlab.im2col.im2col` are regrouped by position into ``X`` of shape (L, K, N) and the
    weights viewed as ``W`` of shape (L, F, K); then ``W @ X`` (L matrix products at once,
    ``np.matmul``) is (L, F, N), i.e. the output. A convolution would use one (F, K) matrix for
    every position instead.

    Args:
        x: input, shape (N, C, H, W), float32 or float64.
        w: weights, shape (Hout, Wout, F, C, HH, WW).
        b: biases, shape (F, Hout, Wout).
        local_param: dict with 'stride' (int >= 1) and 'pad' (int >= 0).

    Returns:
        out: shape (N, F, Hout, Wout), dtype of ``x``.
        cache: for :func:`local_backward` (holds the (L, K, N) columns).

    Raises:
        ValueError: for bad shapes or hyper-parameters (the message names the rule broken).
    """
    S, P, Hout, Wout = _check(x, w, b, local_param)
    N, C, H, W = x.shape
    _, _, F, _, HH, WW = w.shape
    L, K = Hout * Wout, C * HH * WW
    dt = x.dtype
    cols = im2col(x, HH, WW, S, P).reshape(K, N, L).transpose(2, 0, 1)   # (L, K, N)
    wl = w.astype(dt, copy=False).reshape(L, F, K)
    out = np.matmul(wl, cols)                                              # (L, F, N)
    out = out.transpose(2, 1, 0).reshape(N, F, Hout, Wout) + b.astype(dt, copy=False)
    return out, (x.shape, cols, w, b, S, P)


def local_backward(dout, cache):
    """Backward pass of :func:`local_forward`.

    With ``D`` = dout regrouped as (L, F, N): ``dW = D @ X^T`` (L, F, K), ``dX = W^T @ D``
    (L, K, N), scattered back to the image by :func:`~cnnlab.im2col.col2im`, and ``db`` is
    ``dout`` summed over the batch.

    Args:
        dout: upstream gradient, shape (N, F, Hout, Wout).
        cache: from :func:`local_forward`.

    Returns:
        dx: shape (N, C, H, W), dtype of ``x``.
        dw: shape (Hout, Wout, F, C, HH, WW), dtype of ``w``.
        db: shape (F, Hout, Wout), dtype of ``b``.
    """
    x_shape, cols, w, b, S, P = cache
    N = x_shape[0]
    Hout, Wout, F, C, HH, WW = w.shape
    L, K = Hout * Wout, C * HH * WW
    check_dout(dout, (N, F, Hout, Wout), layout="(N, F, Hout, Wout)")
    dt = cols.dtype
    d = dout.astype(dt, copy=False).reshape(N, F, L).transpose(2, 1, 0)   # (L, F, N)
    dw = np.matmul(d, cols.transpose(0, 2, 1))                             # (L, F, K)
    dcols = np.matmul(w.astype(dt, copy=False).reshape(L, F, K).transpose(0, 2, 1), d)   # (L, K, N)
    dcols = dcols.transpose(1, 2, 0).reshape(K, N * L)
    dx = col2im(dcols, x_shape, HH, WW, S, P)
    db = dout.sum(axis=0)
    return dx, dw.reshape(w.shape).astype(w.dtype, copy=False), db.astype(b.dtype, copy=False)


# ---------------------------------------------------------------------------------------------
# Parameter counts
# ---------------------------------------------------------------------------------------------


def local_params(in_channels, out_channels, kernel_size, output_size, bias=True) -> int:
    """Learnable parameters of a locally-connected layer.

    ``Hout*Wout*(F*C*HH*WW)`` weights plus ``F*Hout*Wout`` biases (if ``bias``).

    Args:
        in_channels: C (int >= 1).
        out_channels: F (int >= 1).
        kernel_size: HH = WW (int) or (HH, WW).
        output_size: Hout = Wout (int) or (Hout, Wout).
        bias: count the biases.

    Returns:
        int, the number of parameters.

    Example:
        >>> local_params(16, 16, 9, 55)   # DeepFace-style layer
        62774800
    """
    C = check_int("in_channels", in_channels, 1)
    F = check_int("out_channels", out_channels, 1)
    HH, WW = check_pair("kernel_size", kernel_size)
    Hout, Wout = check_pair("output_size", output_size)
    return Hout * Wout * (F * C * HH * WW + (F if bias else 0))


def local_vs_conv_params(in_channels, out_channels, input_size, kernel_size, stride=1, pad=0,
                         bias=True) -> dict:
    """Parameter counts of a convolution and of the locally-connected layer with the same geometry.

    Args:
        in_channels: C; out_channels: F (ints >= 1).
        input_size: H = W (int) or (H, W).
        kernel_size: HH = WW (int) or (HH, WW).
        stride: int >= 1; pad: int >= 0.
        bias: count biases (F for the convolution, F*Hout*Wout for the local layer).

    Returns:
        dict with ``output_size`` (Hout, Wout), ``conv`` (int, ``F*C*HH*WW + F``), ``local``
        (int, :func:`local_params`) and ``ratio`` (float, ``local / conv`` = ``Hout*Wout``).

    Raises:
        ValueError: for bad sizes or a window that does not fit.

    Example:
        >>> local_vs_conv_params(16, 16, 63, 9)["ratio"]
        3025.0
    """
    C = check_int("in_channels", in_channels, 1)
    F = check_int("out_channels", out_channels, 1)
    H, W = check_pair("input_size", input_size)
    HH, WW = check_pair("kernel_size", kernel_size)
    Hout = conv_output_size(H, HH, stride, pad, axis="H")
    Wout = conv_output_size(W, WW, stride, pad, axis="W")
    conv = F * C * HH * WW + (F if bias else 0)
    local = local_params(C, F, (HH, WW), (Hout, Wout), bias)
    return {"output_size": (Hout, Wout), "conv": conv, "local": local, "ratio": local / conv}
