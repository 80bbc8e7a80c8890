"""Max pooling and average pooling, naive (loops over output positions) and fast (vectorised).

All functions take ``x`` of shape (N, C, H, W) (float32 or float64; outputs and ``dx`` have the
dtype of ``x``) and a ``pool_param`` dict with the keys

- ``pool_height``, ``pool_width``: window size (ints >= 1),
- ``stride``: step between windows (int >= 1), the same along H and W,
- ``pad`` (optional, default 0): padding on each side, at most half the window
  (``pad <= pool_height // 2`` and ``pad <= pool_width // 2``, PyTorch's rule).

The output has shape (N, C, H_out, W_out) with ``H_out = floor((H + 2*pad - pool_height) / stride) + 1``
(:func:`cnnlab.shapes.conv_output_size`; floor mode, like PyTorch's default ``ceil_mode=False``).

Padding conventions (those of ``torch.nn.functional``):

- max pooling pads with ``-inf``, so a padded position never wins a maximum;
- average pooling pads with zeros and the zeros count: every window is divided by
  ``pool_height * pool_width`` even where it overlaps the padding (PyTorch's default
  ``count_include_pad=True``).

Ties in max pooling: when several elements of a window share the maximum, the whole gradient of
that output goes to ONE of them, the first in row-major window order (top row first, left to
right), which is what PyTorch does. Naive and fast paths follow the same rule. (The fast forward
pass records the winning tap of every window, like the indices PyTorch saves.)

The fast functions choose a path:

- "reshape": when the windows tile the input exactly (``pool_height == pool_width == stride``,
  H and W divisible by it, no padding) the input is viewed (no copy) as
  (N, C, H_out, ph, W_out, pw); tap (r, c) of every window is ``x6[:, :, :, r, :, c]`` and the
  backward pass writes whole window rows of ``dx`` at once (no zero fill, no accumulation);
- "strided": otherwise. The output is built from ``pool_height * pool_width`` strided views of
  the (padded) input, one per window tap; each view holds that tap of every window, so the
  loop is over taps (e.g. 9 for a 3x3 window), never over output positions, and the backward
  pass adds into strided views of ``dx`` (no ``np.add.at``). This works for every valid
  window, stride and padding, overlapping windows (e.g. 3x3 stride 2) included.
"""
from __future__ import annotations

import numpy as np

from ..shapes import check_4d, check_dout, check_int, conv_output_size

__all__ = [
    "max_pool_forward_naive",
    "max_pool_backward_naive",
    "max_pool_forward_fast",
    "max_pool_backward_fast",
    "avg_pool_forward_naive",
    "avg_pool_backward_naive",
    "avg_pool_forward_fast",
    "avg_pool_backward_fast",
]

_POOL_KEYS = ("pool_height", "pool_width", "stride", "pad")


def _geometry(x, pool_param, layer):
    """Validate ``x`` and ``pool_param``; return (N, C, H, W, ph, pw, stride, pad, Ho, Wo)."""
    check_4d("x", x)
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{layer}: x must be a floating-point array (float32 or float64), got dtype {x.dtype}")
    if not isinstance(pool_param, dict):
        raise ValueError(f"{layer}: pool_param must be a dict with keys {_POOL_KEYS}, got {type(pool_param).__name__}")
    unknown = sorted(set(pool_param) - set(_POOL_KEYS))
    if unknown:
        raise ValueError(f"{layer}: unknown pool_param keys {unknown}; allowed keys are {list(_POOL_KEYS)}")
    missing = [k for k in _POOL_KEYS[:3] if k not in pool_param]
    if missing:
        raise ValueError(f"{layer}: pool_param is missing the required keys {missing} (got {sorted(pool_param)})")
    ph = check_int("pool_param['pool_height']", pool_param["pool_height"], 1)
    pw = check_int("pool_param['pool_width']", pool_param["pool_width"], 1)
    stride = check_int("pool_param['stride']", pool_param["stride"], 1)
    pad = check_int("pool_param['pad']", pool_param.get("pad", 0), 0)
    if pad > ph // 2 or pad > pw // 2:
        raise ValueError(
            f"{layer}: pool_param['pad'] = {pad} is more than half the window "
            f"({ph}x{pw}); the rule (PyTorch's) is pad <= pool_height // 2 = {ph // 2} and "
            f"pad <= pool_width // 2 = {pw // 2}"
        )
    N, C, H, W = x.shape
    try:
        Ho = conv_output_size(H, ph, stride, pad, axis="H")
        Wo = conv_output_size(W, pw, stride, pad, axis="W")
    except ValueError as err:
        raise ValueError(
            f"{layer}: x of shape {x.shape} is too small for a {ph}x{pw} window with stride {stride} "
            f"and pad {pad}: {err}"
        ) from None
    return N, C, H, W, ph, pw, stride, pad, Ho, Wo


def _pad(x, pad, value):
    if pad == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant", constant_values=value)


def _tap(a, r, c, stride, Ho, Wo):
    """Strided view of ``a`` holding tap (r, c) of every window: shape (N, C, Ho, Wo)."""
    return a[:, :, r:r + stride * (Ho - 1) + 1:stride, c:c + stride * (Wo - 1) + 1:stride]


def _tiles(ph, pw, stride, pad, H, W):
    return pad == 0 and ph == pw == stride and H % ph == 0 and W % pw == 0


def _taps(a, path, ph, pw, stride, Ho, Wo):
    """Yield, in row-major window order, one (N, C, Ho, Wo) view of ``a`` per window tap.

    "reshape" path: ``a`` is viewed as (N, C, Ho, ph, Wo, pw) and tap (r, c) is
    ``a6[:, :, :, r, :, c]``; "strided" path: tap (r, c) is ``a[:, :, r::stride, c::stride]``
    cut to Ho x Wo.
    """
    if path == "reshape":
        a6 = a.reshape(a.shape[0], a.shape[1], Ho, ph, Wo, pw)
        for r in range(ph):
            for c in range(pw):
                yield a6[:, :, :, r, :, c]
    else:
        for r in range(ph):
            for c in range(pw):
                yield _tap(a, r, c, stride, Ho, Wo)


# ----------------------------------------------------------------------------------------------
# Max pooling
# ----------------------------------------------------------------------------------------------

# (withheld from the student edition: exercise max_pool_forward of 02_pooling_batchnorm)
def max_pool_forward_naive(*args, **kwargs):
    """Withheld from the student edition: exercise ``max_pool_forward`` of 02_pooling_batchnorm."""
    raise NotImplementedError("max_pool_forward_naive is not in the student edition of cnnlab: it is exercise 'max_pool_forward' of assignment 02_pooling_batchnorm. Write it yourself in assignments/02_pooling_batchnorm/pooling_batchnorm.ipynb.")



# (withheld from the student edition: exercise max_pool_backward of 02_pooling_batchnorm)
def max_pool_backward_naive(*args, **kwargs):
    """Withheld from the student edition: exercise ``max_pool_backward`` of 02_pooling_batchnorm."""
    raise NotImplementedError("max_pool_backward_naive is not in the student edition of cnnlab: it is exercise 'max_pool_backward' of assignment 02_pooling_batchnorm. Write it yourself in assignments/02_pooling_batchnorm/pooling_batchnorm.ipynb.")



def max_pool_forward_fast(x, pool_param):
    """Fast forward pass of max pooling (the "reshape" or "strided" path, see the module docstring).

    Besides the maximum of every window it records which tap of the window holds the FIRST
    maximum in row-major order (like the indices PyTorch saves), so the backward pass is a
    cheap scatter.

    Args:
        x: float array of shape (N, C, H, W).
        pool_param: dict with ``pool_height``, ``pool_width``, ``stride`` and optional ``pad``.

    Returns:
        out: array of shape (N, C, H_out, W_out), dtype of ``x``; equal to
            :func:`max_pool_forward_naive`.
        cache: ``(path, x, argmax, pool_param)`` for :func:`max_pool_backward_fast`: ``path`` is
            ``"reshape"`` or ``"strided"``, ``argmax`` an unsigned integer array of shape
            (N, C, H_out, W_out) with the winning tap ``r * pool_width + c`` of every window.

    Raises:
        ValueError: as :func:`max_pool_forward_naive`.
    """
    N, C, H, W, ph, pw, s, pad, Ho, Wo = _geometry(x, pool_param, "max pool")
    path = "reshape" if _tiles(ph, pw, s, pad, H, W) else "strided"
    taps = _taps(_pad(x, pad, -np.inf), path, ph, pw, s, Ho, Wo)
    # One pass per window tap (e.g. 4 for 2x2) over arrays of the output's size: much faster
    # than a numpy reduction over the two strided window axes.
    out = next(taps).copy()
    argmax = np.zeros(out.shape, dtype=np.min_scalar_type(ph * pw - 1))
    better = np.empty(out.shape, dtype=bool)
    candidate = np.empty(out.shape, dtype=argmax.dtype)
    for k, view in enumerate(taps, start=1):
        np.greater(view, out, out=better)  # strictly greater: on a tie the earlier tap stays
        # argmax = k where better: k exceeds every earlier tap index, so a maximum does it
        # (much faster than np.copyto(..., where=better) or boolean indexing).
        np.multiply(better.view(np.uint8), argmax.dtype.type(k), out=candidate)
        np.maximum(argmax, candidate, out=argmax)
        np.maximum(out, view, out=out)
    return out, (path, x, argmax, pool_param)


def max_pool_backward_fast(dout, cache):
    """Fast backward pass of max pooling.

    Loops over the window taps; tap ``k`` receives ``dout`` where ``argmax == k``, so each
    output's gradient goes to the first maximum of its window (like PyTorch and
    :func:`max_pool_backward_naive`). Overlapping windows accumulate with a strided add into
    ``dx`` (no ``np.add.at``).

    Args:
        dout: upstream gradient of shape (N, C, H_out, W_out).
        cache: from :func:`max_pool_forward_fast`.

    Returns:
        dx: array of shape (N, C, H, W), dtype of ``x``.
    """
    path, x, argmax, pool_param = cache
    N, C, H, W, ph, pw, s, pad, Ho, Wo = _geometry(x, pool_param, "max pool")
    dout = check_dout(dout, (N, C, Ho, Wo), layout="(N, C, H_out, W_out)", dtype=x.dtype)
    hit = np.empty(argmax.shape, dtype=bool)
    if path == "reshape":
        # Tiling windows cover every input position exactly once. Build the ph rows of every
        # window one at a time in a contiguous (N, C, Ho, Wo, pw) buffer, then copy each into
        # dx viewed as (N, C, Ho, ph, Wo * pw): long inner loops, no zero fill, no scatter.
        dx = np.empty(x.shape, dtype=x.dtype)
        dx5 = dx.reshape(N, C, Ho, ph, Wo * pw)
        row = np.empty((N, C, Ho, Wo, pw), dtype=x.dtype)
        for r in range(ph):
            for c in range(pw):
                np.equal(argmax, r * pw + c, out=hit)
                np.multiply(dout, hit, out=row[..., c])
            dx5[:, :, :, r, :] = row.reshape(N, C, Ho, Wo * pw)
        return dx
    dxp = np.zeros((N, C, H + 2 * pad, W + 2 * pad), dtype=x.dtype)
    overlap = s < ph or s < pw  # otherwise an input position belongs to at most one window
    tmp = np.empty(argmax.shape, dtype=x.dtype) if overlap else None
    for k, dv in enumerate(_taps(dxp, path, ph, pw, s, Ho, Wo)):  # the "strided" path
        np.equal(argmax, k, out=hit)
        if overlap:
            np.multiply(dout, hit, out=tmp)
            dv += tmp
        else:
            np.multiply(dout, hit, out=dv)
    return dxp[:, :, pad:pad + H, pad:pad + W].copy() if pad else dxp


# ----------------------------------------------------------------------------------------------
# Average pooling
# ----------------------------------------------------------------------------------------------

# (withheld from the student edition: exercise avg_pool of 02_pooling_batchnorm)
def avg_pool_forward_naive(*args, **kwargs):
    """Withheld from the student edition: exercise ``avg_pool`` of 02_pooling_batchnorm."""
    raise NotImplementedError("avg_pool_forward_naive is not in the student edition of cnnlab: it is exercise 'avg_pool' of assignment 02_pooling_batchnorm. Write it yourself in assignments/02_pooling_batchnorm/pooling_batchnorm.ipynb.")



# (withheld from the student edition: exercise avg_pool of 02_pooling_batchnorm)
def avg_pool_backward_naive(*args, **kwargs):
    """Withheld from the student edition: exercise ``avg_pool`` of 02_pooling_batchnorm."""
    raise NotImplementedError("avg_pool_backward_naive is not in the student edition of cnnlab: it is exercise 'avg_pool' of assignment 02_pooling_batchnorm. Write it yourself in assignments/02_pooling_batchnorm/pooling_batchnorm.ipynb.")



def avg_pool_forward_fast(x, pool_param):
    """Fast forward pass of average pooling (the "reshape" or "strided" path).

    Args:
        x: float array of shape (N, C, H, W).
        pool_param: dict with ``pool_height``, ``pool_width``, ``stride`` and optional ``pad``
            (zero padding, counted in the average).

    Returns:
        out: array of shape (N, C, H_out, W_out), dtype of ``x``.
        cache: ``(path, x, pool_param)`` for :func:`avg_pool_backward_fast`.

    Raises:
        ValueError: as :func:`max_pool_forward_naive`.
    """
    N, C, H, W, ph, pw, s, pad, Ho, Wo = _geometry(x, pool_param, "average pool")
    path = "reshape" if _tiles(ph, pw, s, pad, H, W) else "strided"
    taps = _taps(_pad(x, pad, 0), path, ph, pw, s, Ho, Wo)
    out = next(taps).copy()
    for view in taps:
        out += view
    out /= x.dtype.type(ph * pw)
    return out, (path, x, pool_param)


def avg_pool_backward_fast(dout, cache):
    """Fast backward pass of average pooling: every tap of a window receives ``dout / (ph * pw)``.

    Args:
        dout: upstream gradient of shape (N, C, H_out, W_out).
        cache: from :func:`avg_pool_forward_fast`.

    Returns:
        dx: array of shape (N, C, H, W), dtype of ``x``.
    """
    path, x, pool_param = cache
    N, C, H, W, ph, pw, s, pad, Ho, Wo = _geometry(x, pool_param, "average pool")
    dout = check_dout(dout, (N, C, Ho, Wo), layout="(N, C, H_out, W_out)", dtype=x.dtype)
    share = dout / x.dtype.type(ph * pw)
    if path == "reshape":  # every input position is in exactly one window: copies only
        row = np.repeat(share, pw, axis=3)  # (N, C, Ho, Wo * pw): one row of every window
        dx = np.empty(x.shape, dtype=x.dtype)
        dx5 = dx.reshape(N, C, Ho, ph, Wo * pw)
        for r in range(ph):
            dx5[:, :, :, r, :] = row
        return dx
    dxp = np.zeros((N, C, H + 2 * pad, W + 2 * pad), dtype=x.dtype)
    for dv in _taps(dxp, path, ph, pw, s, Ho, Wo):
        dv += share
    return dxp[:, :, pad:pad + H, pad:pad + W].copy() if pad else dxp
