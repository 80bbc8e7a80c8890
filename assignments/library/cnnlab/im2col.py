"""im2col / col2im: convolution as one big matrix multiply (CS231n notes, "Implementation as
Matrix Multiplication").

``im2col`` stretches every receptive field of the input into a column. For a batch ``x`` of
shape (N, C, H, W) and an ``HH x WW`` filter the result ``X_col`` has shape

    (C*HH*WW, N*Hout*Wout)

Row ordering: ``(c, i, j)`` with ``c`` slowest, i.e. row ``(c*HH + i)*WW + j`` holds input channel
``c`` at kernel offset ``(i, j)`` -- exactly the ordering of ``w.reshape(F, -1)`` for conv weights
``w`` of shape (F, C, HH, WW), so ``W_row @ X_col`` is the convolution.

Column ordering: ``(n, h, w)`` with ``n`` slowest, i.e. column ``(n*Hout + h)*Wout + w`` is the
receptive field of output position ``(h, w)`` of image ``n``; ``X_col.reshape(C*HH*WW, N, Hout,
Wout)`` separates them again.

Lecture example: a 227x227x3 image and 11x11x3 filters at stride 4, pad 0 give ``X_col`` of shape
(363, 3025); with 96 filters ``W_row`` is (96, 363) and ``W_row @ X_col`` is (96, 3025), i.e.
55x55x96.

``col2im`` is the adjoint (transpose) of ``im2col``: it scatters columns back to image positions,
*summing* where receptive fields overlap, so that ``<im2col(x), c> == <x, col2im(c)>``. It is what
the backward pass of convolution needs for ``dx``.

Both are pure numpy: ``im2col`` is one strided view (``as_strided``) plus one copy; ``col2im``
loops over the ``HH*WW`` kernel offsets (not over pixels), doing one strided add each.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .shapes import check_4d, check_int, conv_output_size

__all__ = ["im2col", "col2im", "im2col_out_shape", "pad_images", "window_view", "col2im_padded"]


def _geometry(x_shape, HH, WW, stride, pad, dilation):
    """Validate the window parameters and return (Hout, Wout)."""
    HH = check_int("HH (filter height)", HH, 1)
    WW = check_int("WW (filter width)", WW, 1)
    stride = check_int("stride", stride, 1)
    pad = check_int("pad", pad, 0)
    dilation = check_int("dilation", dilation, 1)
    _, _, H, W = x_shape
    Hout = conv_output_size(H, HH, stride, pad, dilation, axis="H")
    Wout = conv_output_size(W, WW, stride, pad, dilation, axis="W")
    return Hout, Wout


def im2col_out_shape(x_shape, HH, WW, stride=1, pad=0, dilation=1):
    """Shape ``(C*HH*WW, N*Hout*Wout)`` of ``im2col`` for an input of shape ``x_shape`` (N, C, H, W)."""
    N, C = x_shape[0], x_shape[1]
    Hout, Wout = _geometry(x_shape, HH, WW, stride, pad, dilation)
    return C * HH * WW, N * Hout * Wout


def pad_images(x, pad):
    """Zero-pad the two spatial axes of an NCHW array (a cheap alternative to ``np.pad``)."""
    if pad == 0:
        return x
    N, C, H, W = x.shape
    xp = np.zeros((N, C, H + 2 * pad, W + 2 * pad), dtype=x.dtype)
    xp[:, :, pad:pad + H, pad:pad + W] = x
    return xp


def window_view(xp, HH, WW, Hout, Wout, stride, dilation):
    """Read-only strided view of shape (C, HH, WW, N, Hout, Wout) into the padded input ``xp``:
    ``view[c, i, j, n, h, w] == xp[n, c, h*stride + i*dilation, w*stride + j*dilation]``."""
    N, C, _, _ = xp.shape
    sN, sC, sH, sW = xp.strides
    return as_strided(xp, shape=(C, HH, WW, N, Hout, Wout),
                      strides=(sC, sH * dilation, sW * dilation, sN, sH * stride, sW * stride),
                      writeable=False)


def im2col(x, HH, WW, stride=1, pad=0, dilation=1):
    """Stretch the receptive fields of ``x`` into the columns of a matrix.

    Args:
        x: input, numpy array of shape (N, C, H, W), any float dtype.
        HH, WW: filter height and width (ints >= 1).
        stride: step between receptive fields (int >= 1).
        pad: zero-padding on each side of H and W (int >= 0).
        dilation: spacing between filter taps (int >= 1).

    Returns:
        X_col: C-contiguous array of shape (C*HH*WW, N*Hout*Wout), same dtype as ``x``.
        Rows are ordered (c, i, j) like ``w.reshape(F, -1)``; columns are ordered (n, h, w).
        ``X_col[(c*HH + i)*WW + j, (n*Hout + h)*Wout + w] ==
        xpad[n, c, h*stride + i*dilation, w*stride + j*dilation]``.

    Raises:
        ValueError: if ``x`` is not 4-D or the window does not fit (see
            :func:`cnnlab.shapes.conv_output_size`).

    Example:
        >>> im2col(np.zeros((1, 3, 227, 227)), 11, 11, stride=4).shape   # lecture example
        (363, 3025)
    """
    check_4d("x", x)
    Hout, Wout = _geometry(x.shape, HH, WW, stride, pad, dilation)
    N, C, _, _ = x.shape
    view = window_view(pad_images(x, pad), HH, WW, Hout, Wout, stride, dilation)
    cols = np.empty(view.shape, dtype=x.dtype)
    np.copyto(cols, view)
    return cols.reshape(C * HH * WW, N * Hout * Wout)


def col2im(cols, x_shape, HH, WW, stride=1, pad=0, dilation=1):
    """Adjoint of :func:`im2col`: scatter-add columns back into an image batch.

    Every entry of ``cols`` is added to the input position it was copied from by ``im2col``;
    positions covered by several receptive fields receive the sum, and contributions that fall
    into the zero-padding are dropped. Hence ``<im2col(x), c> == <x, col2im(c, x.shape, ...)>``
    and ``col2im(im2col(x)) == x * (number of windows covering each pixel)``.

    Args:
        cols: array of shape (C*HH*WW, N*Hout*Wout), ordered as :func:`im2col` returns it.
        x_shape: (N, C, H, W), the shape of the input that ``im2col`` was applied to.
        HH, WW, stride, pad, dilation: as for :func:`im2col`.

    Returns:
        dx: array of shape ``x_shape`` and the dtype of ``cols``.

    Raises:
        ValueError: if ``x_shape`` is not 4-D, the window does not fit, or ``cols`` has the
            wrong shape.
    """
    x_shape = tuple(int(s) for s in x_shape)
    if len(x_shape) != 4:
        raise ValueError(f"x_shape must be (N, C, H, W), got {x_shape}")
    Hout, Wout = _geometry(x_shape, HH, WW, stride, pad, dilation)
    N, C, H, W = x_shape
    expected = (C * HH * WW, N * Hout * Wout)
    cols = np.asarray(cols)
    if cols.shape != expected:
        raise ValueError(
            f"cols must have shape (C*HH*WW, N*Hout*Wout) = ({C}*{HH}*{WW}, {N}*{Hout}*{Wout}) = "
            f"{expected} for x_shape {x_shape}, got {cols.shape}")
    dxp = col2im_padded(cols.reshape(C, HH, WW, N, Hout, Wout), x_shape, stride, pad, dilation)
    if pad == 0:
        return dxp
    return np.ascontiguousarray(dxp[:, :, pad:pad + H, pad:pad + W])


def col2im_padded(cols6, x_shape, stride, pad, dilation):
    """col2im on cols already viewed as (C, HH, WW, N, Hout, Wout); no checks. Returns the
    *padded* gradient of shape (N, C, H + 2*pad, W + 2*pad)."""
    C, HH, WW, N, Hout, Wout = cols6.shape
    _, _, H, W = x_shape
    dxp = np.zeros((N, C, H + 2 * pad, W + 2 * pad), dtype=cols6.dtype)
    # Viewed as (C, N, Hp, Wp) so that each kernel offset's slice lines up with cols6[:, i, j].
    dxp_cn = dxp.transpose(1, 0, 2, 3)
    h_end, w_end = stride * (Hout - 1) + 1, stride * (Wout - 1) + 1
    for i in range(HH):
        hi = i * dilation
        for j in range(WW):
            wj = j * dilation
            dxp_cn[:, :, hi:hi + h_end:stride, wj:wj + w_end:stride] += cols6[:, i, j]
    return dxp
