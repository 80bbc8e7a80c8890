"""The output-size formula of convolution and pooling, and the input checks built on it.

For an input of spatial size ``W``, a window of size ``F``, stride ``S``, zero-padding ``P`` and
dilation ``D`` (the notes' notation), the number of window positions along that axis is

    W_out = floor((W + 2P - D(F - 1) - 1) / S + 1)

which for ``D = 1`` is the familiar ``(W - F + 2P) / S + 1``. Every layer in :mod:`cnnlab.layers`
uses :func:`conv_output_size` so that a bad geometry raises one clear ``ValueError`` with the
numbers filled in instead of a silent wrong answer.
"""
from __future__ import annotations

import numbers

import numpy as np

__all__ = ["conv_output_size", "check_4d", "check_int", "check_pair", "check_probability", "check_dout"]


def check_int(name: str, value, minimum: int) -> int:
    """Return ``value`` as an int, or raise ``ValueError`` naming ``name`` if it is not an
    integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def check_probability(name: str, value, *, include_one: bool = True) -> float:
    """Return ``value`` as a float, or raise ``ValueError`` naming ``name`` unless it is a number in
    ``[0, 1]`` (``[0, 1)`` with ``include_one=False``, for rates where 1 would drop everything)."""
    upper = "]" if include_one else ")"
    ok = not isinstance(value, bool) and isinstance(value, (numbers.Real, np.floating)) and (
        0 <= value <= 1 if include_one else 0 <= value < 1)
    if not ok:
        raise ValueError(f"{name} must be a probability in [0, 1{upper}, got {value!r}")
    return float(value)


def check_pair(name: str, value, minimum: int = 1) -> tuple[int, int]:
    """Return ``value`` as a ``(height, width)`` pair of ints >= ``minimum``: an int ``k`` means
    ``(k, k)``; a tuple/list must have two entries. Raises ``ValueError`` naming ``name``."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair (height, width), got {value!r}")
        return check_int(f"{name}[0]", value[0], minimum), check_int(f"{name}[1]", value[1], minimum)
    v = check_int(name, value, minimum)
    return v, v


def check_dout(dout, shape, of: str = "the forward output", layout: str | None = None, dtype=None):
    """Return the upstream gradient ``dout`` (cast to ``dtype`` when given) if it is a numpy array of
    shape ``shape``; else ``ValueError``: ``dout must have the shape of <of> [<layout> =] <shape>,
    got <its shape>`` -- the one check every backward pass of the layers uses."""
    shape = tuple(shape)
    if not isinstance(dout, np.ndarray) or dout.shape != shape:
        got = dout.shape if isinstance(dout, np.ndarray) else type(dout).__name__
        where = f"{of} {layout} = {shape}" if layout else f"{of} {shape}"
        raise ValueError(f"dout must have the shape of {where}, got {got}")
    return dout if dtype is None else dout.astype(dtype, copy=False)


def check_4d(name: str, x, layout: str = "(N, C, H, W)") -> None:
    """Raise ``ValueError`` unless ``x`` is a 4-D numpy array (NCHW)."""
    if not isinstance(x, np.ndarray):
        raise ValueError(f"{name} must be a numpy array of shape {layout}, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{name} must be 4-D with shape {layout}, got shape {x.shape} ({x.ndim}-D)")


def conv_output_size(W: int, F: int, stride: int = 1, pad: int = 0, dilation: int = 1,
                     *, axis: str = "W") -> int:
    """Spatial output size of a convolution or pooling window along one axis.

    ``floor((W + 2*pad - dilation*(F - 1) - 1) / stride + 1)``

    Args:
        W: input size along the axis (int >= 1).
        F: window (filter) size along the axis (int >= 1).
        stride: step between windows (int >= 1).
        pad: zero-padding added on both sides (int >= 0).
        dilation: spacing between window taps (int >= 1); the window spans ``dilation*(F-1)+1``.
        axis: name of the axis, used only in error messages ("H" or "W").

    Returns:
        int >= 1, the number of window positions.

    Raises:
        ValueError: for a negative pad, a non-positive size/stride/dilation, or when the
            (dilated) window is larger than the padded input, i.e. the output would be < 1.
            The message shows the formula with the numbers filled in.

    Example:
        >>> conv_output_size(227, 11, stride=4, pad=0)   # AlexNet conv1
        55
        >>> conv_output_size(7, 3, stride=1, pad=1)
        7
    """
    W = check_int(f"input size {axis}", W, 1)
    F = check_int(f"filter size along {axis}", F, 1)
    stride = check_int("stride", stride, 1)
    pad = check_int("pad", pad, 0)
    dilation = check_int("dilation", dilation, 1)
    span = dilation * (F - 1) + 1
    numerator = W + 2 * pad - dilation * (F - 1) - 1
    if numerator < 0:
        raise ValueError(
            f"window does not fit along {axis}: the (dilated) window spans {span} but the padded "
            f"input is only {W + 2 * pad} wide; output size "
            f"floor(({axis} + 2P - D(F-1) - 1)/S + 1) = floor(({W} + 2*{pad} - {dilation}*({F}-1) - 1)/{stride} + 1)"
            f" = floor({numerator / stride + 1:g}) < 1"
        )
    return numerator // stride + 1
