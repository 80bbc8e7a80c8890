"""Convolutional layer: forward and backward passes, naive (loops) and fast (im2col + matmul).

Shapes (NCHW, as in PyTorch):

- ``x``: input of shape (N, C, H, W)
- ``w``: filters of shape (F, C/groups, HH, WW)
- ``b``: biases of shape (F,)
- ``out``: output of shape (N, F, Hout, Wout) with
  ``Hout = (H + 2*pad - dilation*(HH - 1) - 1) // stride + 1`` (see
  :func:`cnnlab.shapes.conv_output_size`), likewise ``Wout``.

Like ``torch.nn.functional.conv2d`` the layer computes a *cross-correlation* (the filter is not
flipped):

    out[n, f, h, w] = b[f] + sum_{c, i, j} w[f, c, i, j] * xpad[n, g*C/groups + c,
                                                              h*stride + i*dilation,
                                                              w*stride + j*dilation]

where ``g = f // (F/groups)`` is the group of filter ``f`` and ``xpad`` is ``x`` zero-padded by
``pad`` on each side of H and W.

``conv_param`` keys:

- ``stride`` (required): int >= 1, step between receptive fields.
- ``pad`` (required): int >= 0, zero-padding on each side.
- ``dilation`` (optional, default 1): int >= 1, spacing between filter taps.
- ``groups`` (optional, default 1): int >= 1 dividing C and F; input and output channels are
  split into ``groups`` independent convolutions (``groups == C == F`` is depthwise).
- ``max_cols_bytes`` (optional, used by the im2col version only, default
  :data:`DEFAULT_MAX_COLS_BYTES` = 32 MiB; ``None`` for no bound): the most memory the fast
  layer's im2col buffers may take. The batch is processed in chunks of a few images (in
  parallel, one chunk per thread, see :data:`NUM_THREADS`), each chunk's ``X_col`` at most
  ``max_cols_bytes / threads`` (but at least one image). When the whole batch's ``X_col`` fits in
  ``max_cols_bytes``, the forward pass keeps it in the cache and the backward pass reuses it;
  otherwise the backward pass recomputes each chunk's columns. Recomputing is cheap (one copy of
  a cache-sized chunk, next to two matrix multiplies), which is why the default is small: a large
  cached ``X_col`` is about as costly to allocate (page faults) as to recompute.

float32 and float64 inputs both work; the computation and ``out``/``dx`` use ``x``'s dtype
(integer inputs are computed in float64), and ``dw``/``db`` have the dtypes of ``w``/``b``.
"""
from __future__ import annotations


import numpy as np

from ..im2col import col2im_padded, pad_images, window_view
from ..shapes import check_4d, check_dout, check_int, conv_output_size
from .threads import blas_threads, parallel_map

__all__ = [
    "conv_forward_naive",
    "conv_backward_naive",
    "conv_forward_im2col",
    "conv_backward_im2col",
    "DEFAULT_MAX_COLS_BYTES",
    "NUM_THREADS",
]

#: Default bound (bytes) on the im2col buffer of :func:`conv_forward_im2col` /
#: :func:`conv_backward_im2col`; override per call with ``conv_param["max_cols_bytes"]``.
DEFAULT_MAX_COLS_BYTES = 32 * 2**20

_REQUIRED = ("stride", "pad")
_OPTIONAL = ("dilation", "groups", "max_cols_bytes")


# --------------------------------------------------------------------------------------------
# Input checks shared by both implementations
# --------------------------------------------------------------------------------------------

class _Geometry:
    """The checked hyper-parameters and derived sizes of one convolution."""

    __slots__ = ("N", "C", "H", "W", "F", "HH", "WW", "stride", "pad", "dilation", "groups",
                 "Hout", "Wout", "max_cols_bytes", "dtype")


def _compute_dtype(x):
    return x.dtype if np.issubdtype(x.dtype, np.floating) else np.dtype(np.float64)


def _check_conv(x, w, b, conv_param) -> _Geometry:
    """Validate the arguments of a conv forward pass; raise ValueError with the rule broken."""
    if not isinstance(conv_param, dict):
        raise ValueError(f"conv_param must be a dict with keys 'stride' and 'pad', got "
                         f"{type(conv_param).__name__}")
    allowed = "'stride', 'pad' (required), 'dilation', 'groups', 'max_cols_bytes' (optional)"
    unknown = sorted(str(k) for k in conv_param if k not in _REQUIRED + _OPTIONAL)
    if unknown:
        raise ValueError(f"conv_param has unknown key(s) {unknown}; allowed keys are {allowed}")
    for key in _REQUIRED:
        if key not in conv_param:
            raise ValueError(f"conv_param is missing the required key {key!r} "
                             f"(got keys {sorted(conv_param)}); allowed keys are {allowed}")
    check_4d("x", x, "(N, C, H, W)")
    check_4d("w", w, "(F, C/groups, HH, WW)")
    g = _Geometry()
    g.stride = check_int("conv_param['stride']", conv_param["stride"], 1)
    g.pad = check_int("conv_param['pad']", conv_param["pad"], 0)
    g.dilation = check_int("conv_param['dilation']", conv_param.get("dilation", 1), 1)
    g.groups = check_int("conv_param['groups']", conv_param.get("groups", 1), 1)
    mcb = conv_param.get("max_cols_bytes", DEFAULT_MAX_COLS_BYTES)
    g.max_cols_bytes = None if mcb is None else check_int("conv_param['max_cols_bytes']", mcb, 1)
    g.N, g.C, g.H, g.W = x.shape
    g.F, Cw, g.HH, g.WW = w.shape
    G = g.groups
    if g.C % G:
        raise ValueError(f"groups={G} must divide the input channels C={g.C} (x.shape={x.shape})")
    if g.F % G:
        raise ValueError(f"groups={G} must divide the number of filters F={g.F} (w.shape={w.shape})")
    if Cw * G != g.C:
        raise ValueError(
            f"channel mismatch: x.shape={x.shape} has C={g.C} channels but w.shape={w.shape} "
            f"expects w.shape[1]*groups = {Cw}*{G} = {Cw * G}; the rule is C == w.shape[1]*groups")
    if not isinstance(b, np.ndarray) or b.shape != (g.F,):
        got = b.shape if isinstance(b, np.ndarray) else type(b).__name__
        raise ValueError(f"b must be a numpy array of shape (F,) = ({g.F},) to match "
                         f"w.shape={w.shape}, got {got}")
    try:
        g.Hout = conv_output_size(g.H, g.HH, g.stride, g.pad, g.dilation, axis="H")
        g.Wout = conv_output_size(g.W, g.WW, g.stride, g.pad, g.dilation, axis="W")
    except ValueError as err:
        raise ValueError(f"convolution of x.shape={x.shape} with w.shape={w.shape}, "
                         f"stride={g.stride}, pad={g.pad}, dilation={g.dilation}: {err}") from None
    g.dtype = _compute_dtype(x)
    return g


# --------------------------------------------------------------------------------------------
# Naive version: explicit loops, one output number at a time
# --------------------------------------------------------------------------------------------

# (withheld from the student edition: exercise conv_forward of 01_convolution)
def conv_forward_naive(*args, **kwargs):
    """Withheld from the student edition: exercise ``conv_forward`` of 01_convolution."""
    raise NotImplementedError("conv_forward_naive is not in the student edition of cnnlab: it is exercise 'conv_forward' of assignment 01_convolution. Write it yourself in assignments/01_convolution/convolution.ipynb.")



# (withheld from the student edition: exercise conv_backward of 01_convolution)
def conv_backward_naive(*args, **kwargs):
    """Withheld from the student edition: exercise ``conv_backward`` of 01_convolution."""
    raise NotImplementedError("conv_backward_naive is not in the student edition of cnnlab: it is exercise 'conv_backward' of assignment 01_convolution. Write it yourself in assignments/01_convolution/convolution.ipynb.")



# --------------------------------------------------------------------------------------------
# Fast version: im2col + one matrix multiply per group, over chunks of the batch
# --------------------------------------------------------------------------------------------
#
# Threading. Like PyTorch's CPU convolution, the fast layer splits the batch into chunks and
# works on the chunks in parallel (Python threads; numpy releases the GIL in copies and matmuls),
# each with single-threaded BLAS. This parallelises im2col/col2im too, and -- unlike
# OpenBLAS's own threads, which spin-wait for each other -- degrades gracefully on a busy
# machine. The number of threads is that of numpy's BLAS (OPENBLAS_NUM_THREADS,
# OMP_NUM_THREADS or threadpoolctl set it), or NUM_THREADS when set. Without ``threadpoolctl``
# the chunks run one after the other with multi-threaded BLAS.

#: Threads for the fast conv layer; ``None`` (default): as many as numpy's BLAS uses.
NUM_THREADS: int | None = None

#: Target size (bytes) of one chunk's X_col: small enough to stay in cache, large enough for
#: an efficient matrix multiply.
_TASK_BYTES = 4 * 2**20

def _n_threads() -> int:
    if NUM_THREADS is not None:
        return check_int("NUM_THREADS", NUM_THREADS, 1)
    return blas_threads()


def _plan(g: _Geometry, n_threads: int):
    """Split the batch into chunks of images: returns (list of (n0, n1), keep_all).

    ``keep_all``: the whole batch's X_col fits in ``max_cols_bytes`` and is kept for the backward
    pass. Otherwise each of the ``n_threads`` threads holds one chunk's columns at a time, so the
    chunks are at most ``max_cols_bytes / n_threads`` (but at least one image).
    """
    per_image = max(1, g.C * g.HH * g.WW * g.Hout * g.Wout * np.dtype(g.dtype).itemsize)
    keep_all = g.max_cols_bytes is None or g.N * per_image <= g.max_cols_bytes
    size = max(1, _TASK_BYTES // per_image)
    size = min(size, -(-g.N // n_threads))                     # every thread gets work
    if not keep_all:
        size = min(size, max(1, g.max_cols_bytes // (per_image * n_threads)))
    n_chunks = -(-g.N // size)
    size = -(-g.N // n_chunks)                                  # balanced chunks
    return [(n0, min(n0 + size, g.N)) for n0 in range(0, g.N, size)], keep_all


def _cols_into(x, n0, n1, g: _Geometry, out6=None):
    """im2col of images n0:n1 of ``x`` as a (C, HH, WW, n, Hout, Wout) array (``out6`` if given)."""
    xp = pad_images(x[n0:n1].astype(g.dtype, copy=False), g.pad)
    view = window_view(xp, g.HH, g.WW, g.Hout, g.Wout, g.stride, g.dilation)
    if out6 is None:
        out6 = np.empty(view.shape, dtype=g.dtype)
    np.copyto(out6, view)
    return out6


def _weight_rows(w, g: _Geometry):
    """W_row per group: a list of (F/groups, C/groups*HH*WW) matrices (views of ``w``)."""
    w = np.ascontiguousarray(w, dtype=g.dtype)
    F_g = g.F // g.groups
    rows = w.reshape(g.F, -1)
    return [rows[k * F_g:(k + 1) * F_g] for k in range(g.groups)]


def conv_forward_im2col(x, w, b, conv_param):
    """Fast forward pass of a convolutional layer: ``out = W_row @ X_col + b``.

    ``X_col = im2col(x)`` (see :mod:`cnnlab.im2col`) has shape (C*HH*WW, N*Hout*Wout) and
    ``W_row = w.reshape(F, -1)`` shape (F, C*HH*WW); with groups, each group multiplies its own
    block of rows. The batch is processed in chunks (in parallel, see ``NUM_THREADS``); the
    im2col buffers never exceed ``conv_param.get('max_cols_bytes', DEFAULT_MAX_COLS_BYTES)``
    bytes in total (``None``: no bound; at least one image per thread). When the whole batch's
    ``X_col`` fits, it is kept in the cache for the backward pass.

    Args:
        x: input, shape (N, C, H, W), float32 or float64.
        w: filters, shape (F, C/groups, HH, WW).
        b: biases, shape (F,).
        conv_param: dict with 'stride', 'pad' and optionally 'dilation', 'groups',
            'max_cols_bytes' (see the module docstring).

    Returns:
        out: shape (N, F, Hout, Wout), dtype of ``x``.
        cache: for :func:`conv_backward_im2col`: ``(x, w, b, conv_param, X_col or None)``,
            X_col as a (C*HH*WW, N, Hout*Wout) array.

    Raises:
        ValueError: for bad shapes or hyper-parameters (the message names the rule broken).
    """
    g = _check_conv(x, w, b, conv_param)
    G, CKK, HW = g.groups, g.C * g.HH * g.WW, g.Hout * g.Wout
    rows_g, F_g = CKK // G, g.F // G
    W_rows = _weight_rows(w, g)
    bias = b.astype(g.dtype, copy=False)[:, None]
    n_threads = _n_threads()
    chunks, keep_all = _plan(g, n_threads)
    cols6 = np.empty((g.C, g.HH, g.WW, g.N, g.Hout, g.Wout), dtype=g.dtype) if keep_all else None
    out = np.empty((g.N, g.F, HW), dtype=g.dtype)

    def forward_chunk(chunk):
        n0, n1 = chunk
        c6 = _cols_into(x, n0, n1, g, None if cols6 is None else cols6[:, :, :, n0:n1])
        cols_n = c6.reshape(CKK, n1 - n0, HW).transpose(1, 0, 2)   # (n, C*HH*WW, HW) view
        for k in range(G):
            # One gemm per image, written straight into out (no transposed copy).
            np.matmul(W_rows[k], cols_n[:, k * rows_g:(k + 1) * rows_g],
                      out=out[n0:n1, k * F_g:(k + 1) * F_g])
        out[n0:n1] += bias

    parallel_map(forward_chunk, chunks, n_threads)
    kept = None if cols6 is None else cols6.reshape(CKK, g.N, HW)
    return out.reshape(g.N, g.F, g.Hout, g.Wout), (x, w, b, conv_param, kept)


def conv_backward_im2col(dout, cache):
    """Fast backward pass of :func:`conv_forward_im2col`.

    With ``dout_rows`` = ``dout`` as an (F, N*Hout*Wout) matrix (per group):

    - ``db = dout.sum(axis=(0, 2, 3))``
    - ``dw = dout_rows @ X_col.T`` (reshaped to w's shape)
    - ``dx = col2im(W_row.T @ dout_rows)``

    all computed chunk by chunk over the batch. ``X_col`` is taken from the cache when the forward
    pass kept it, else recomputed per chunk; the gradient columns obey the same
    ``max_cols_bytes`` bound.

    Args:
        dout: upstream gradient, shape (N, F, Hout, Wout).
        cache: the cache returned by :func:`conv_forward_im2col`.

    Returns:
        dx: shape (N, C, H, W), dtype of the computation (``x``'s);
        dw: shape (F, C/groups, HH, WW), dtype of ``w``; db: shape (F,), dtype of ``b``.
    """
    x, w, b, conv_param, kept = cache
    g = _check_conv(x, w, b, conv_param)
    check_dout(dout, (g.N, g.F, g.Hout, g.Wout), layout="(N, F, Hout, Wout)")
    G, CKK, HW = g.groups, g.C * g.HH * g.WW, g.Hout * g.Wout
    rows_g, F_g = CKK // G, g.F // G
    P = g.pad
    W_rows = _weight_rows(w, g)
    dout = dout.astype(g.dtype, copy=False).reshape(g.N, g.F, HW)
    dx = np.empty((g.N, g.C, g.H, g.W), dtype=g.dtype)
    n_threads = _n_threads()
    chunks, _ = _plan(g, n_threads)

    def backward_chunk(chunk):
        n0, n1 = chunk
        n = n1 - n0
        if kept is not None:
            cols = kept[:, n0:n1].reshape(CKK, n * HW)            # view, row stride N*HW
        else:
            cols = _cols_into(x, n0, n1, g).reshape(CKK, n * HW)
        # dout of this chunk as (F, n*HW): columns ordered (n, h, w) like X_col.
        d_rows = np.ascontiguousarray(dout[n0:n1].transpose(1, 0, 2)).reshape(g.F, n * HW)
        dw_part = np.empty((g.F, rows_g), dtype=g.dtype)
        for k in range(G):
            rs, fs = slice(k * rows_g, (k + 1) * rows_g), slice(k * F_g, (k + 1) * F_g)
            np.matmul(d_rows[fs], cols[rs].T, out=dw_part[fs])
        del cols                                                   # free X_col before dX_col
        dcols = np.empty((CKK, n * HW), dtype=g.dtype)
        for k in range(G):
            rs, fs = slice(k * rows_g, (k + 1) * rows_g), slice(k * F_g, (k + 1) * F_g)
            np.matmul(W_rows[k].T, d_rows[fs], out=dcols[rs])
        dxp = col2im_padded(dcols.reshape(g.C, g.HH, g.WW, n, g.Hout, g.Wout),
                      (n, g.C, g.H, g.W), g.stride, P, g.dilation)
        del dcols
        dx[n0:n1] = dxp[:, :, P:P + g.H, P:P + g.W]
        return dw_part

    parts = parallel_map(backward_chunk, chunks, n_threads)
    dw = parts[0]
    for part in parts[1:]:
        dw += part
    db = dout.sum(axis=(0, 2))
    return (dx, dw.reshape(w.shape).astype(w.dtype, copy=False),
            db.astype(b.dtype, copy=False))
