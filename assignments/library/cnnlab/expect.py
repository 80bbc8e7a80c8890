"""Assertions for the notebooks' test cells, with the messages a student can act on.

A failing check says which function, on which input, what was expected against what came back
(shape, dtype), the largest error and where against the tolerance, and one hint tied to the
likely mistake::

    expect_array("out", out, expected, case="conv_forward_naive(x (2, 3, 7, 7), w (4, 3, 3, 3), pad 1)",
                 oracle="PyTorch's conv2d", rtol=1e-9, atol=1e-9,
                 hint="the filter is not flipped: a CNN's convolution is a cross-correlation")

raises ``AssertionError`` with, e.g.::

    conv_forward_naive(x (2, 3, 7, 7), w (4, 3, 3, 3), pad 1): out has shape (2, 4, 5, 5), expected (2, 4, 7, 7)
      hint: the padded input is H + 2*pad wide: pad before sliding the window

Only the visible tests use it: a hidden test's message must not tell the student its inputs.
"""
from __future__ import annotations

import numpy as np

__all__ = ["expect_array"]


def _shape_hint(got: tuple, want: tuple) -> str | None:
    if len(got) != len(want):
        return f"{len(got)} axes instead of {len(want)}: keep the layout of the docstring"
    if sorted(got) == sorted(want):
        return "the right sizes in another order: the course's layout is NCHW (N, C, H, W)"
    if len(want) == 4 and got[:2] == want[:2]:
        return "the spatial size is off: the output size is (H + 2*pad - HH) // stride + 1"
    return None


def expect_array(name: str, got, expected, *, case: str, oracle: str = "the reference",
                 rtol: float = 1e-9, atol: float = 1e-9, exact: bool = False, hint: str | None = None) -> None:
    """Assert that the array ``got`` matches ``expected`` in shape, dtype kind and values.

    Args:
        name: what ``got`` is called in the exercise (``"out"``, ``"dx"``), str.
        got: the student's value: an array (any shape, any dtype) or None.
        expected: the reference array, shape S, dtype float or int.
        case: the call and the input, as shown to the student (str), e.g.
            ``"conv_forward_naive(x (2, 3, 7, 7), w (4, 3, 3, 3), pad 1)"``.
        oracle: where ``expected`` comes from (``"PyTorch's conv2d"``, ``"autograd"``), str.
        rtol, atol: the tolerance of ``np.allclose`` (floats); ignored when ``exact``.
        exact: compare with ``np.array_equal`` (integer results, index arrays).
        hint: the likely mistake when the values differ (str), shown on one line.

    Raises:
        AssertionError: the message names the case, expected vs got, the error and the hint.
    """
    expected = np.asarray(expected)
    if got is None:
        raise AssertionError(f"{case}: {name} is None, expected an array of shape {expected.shape} "
                             f"({expected.dtype})\n  hint: fill in {name} and return it")
    got = np.asarray(got)
    if got.shape != expected.shape:
        more = _shape_hint(got.shape, expected.shape)
        raise AssertionError(f"{case}: {name} has shape {got.shape}, expected {expected.shape}"
                             + (f"\n  hint: {more}" if more else ""))
    if expected.dtype.kind == "f" and got.dtype.kind != "f":
        raise AssertionError(f"{case}: {name} has dtype {got.dtype}, expected {expected.dtype}\n"
                             f"  hint: an integer array truncates every value written into it: create "
                             f"{name} with a float dtype (np.zeros(shape, dtype=x.dtype))")
    if exact:
        if not np.array_equal(got, expected):
            where = tuple(int(i) for i in np.argwhere(got != expected)[0])
            raise AssertionError(f"{case}: {name} differs from {oracle} at {int((got != expected).sum())} of "
                                 f"{got.size} entries, first at index {where}: got {got[where].item()!r}, "
                                 f"expected {expected[where].item()!r}" + (f"\n  hint: {hint}" if hint else ""))
        return
    if not np.all(np.isfinite(got)):
        raise AssertionError(f"{case}: {name} holds nan or inf\n"
                             "  hint: a division by zero or the square root of a negative number")
    if np.allclose(got, expected, rtol=rtol, atol=atol):
        return
    err = np.abs(got.astype(np.float64) - expected)
    where = tuple(int(i) for i in np.unravel_index(int(np.argmax(err)), err.shape))
    if not np.any(got) and np.any(expected):
        hint = f"{name} is all zeros: it is created but never filled in"
    raise AssertionError(f"{case}: {name} differs from {oracle} by up to {err.max():.3g} at index {where} "
                         f"(got {got[where]:.6g}, expected {expected[where]:.6g}; tolerance "
                         f"rtol={rtol:g}, atol={atol:g})" + (f"\n  hint: {hint}" if hint else ""))
