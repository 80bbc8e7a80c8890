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

``expect_value`` is its counterpart for a number, a tuple or a dict of numbers (a count, a size,
a receptive field, a cost table row)::

    expect_value("rf_stride1(3, 3)", rf_stride1(3, 3), 7, oracle="the footprint of one unit",
                 hint="each stride-1 layer adds K - 1 pixels")

raises ``AssertionError`` with ``rf_stride1(3, 3) = 5, expected 7 (the footprint of one unit)`` and the hint.

Only the visible tests use them: a hidden test's message must not tell the student its inputs.
"""
from __future__ import annotations

import numpy as np

__all__ = ["expect_array", "expect_value"]


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


def _show(v) -> str:
    if isinstance(v, bool) or v is None:
        return repr(v)
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}" if abs(int(v)) >= 10_000 else str(int(v))
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.6g}"
    if isinstance(v, (tuple, list)):
        inner = ", ".join(_show(x) for x in v)
        return f"({inner}{',' if len(v) == 1 else ''})" if isinstance(v, tuple) else f"[{inner}]"
    return repr(v)


def _kind(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "bool"
    if isinstance(v, (int, np.integer)):
        return "int"
    if isinstance(v, (float, np.floating)):
        return "float"
    if isinstance(v, (tuple, list)):
        return "sequence"
    if isinstance(v, dict):
        return "dict"
    return type(v).__name__


def _differs(got, want, rel: float | None) -> bool:
    if _kind(want) == "sequence":
        return len(got) != len(want) or any(_differs(g, w, rel) for g, w in zip(got, want))
    if _kind(want) == "float" or (rel is not None and _kind(want) == "int"):
        try:
            return not np.isclose(float(got), float(want), rtol=rel or 1e-9, atol=0.0)
        except (TypeError, ValueError):
            return True
    return not (got == want)


def expect_value(case: str, got, expected, *, oracle: str | None = None, hint: str | None = None,
                 rel: float | None = None) -> None:
    """Assert that ``got`` equals ``expected``: a number, a tuple/list of numbers, or a dict of them.

    Args:
        case: the call as shown to the student (str), e.g. ``"stack_params(64, 3, 3)"``.
        got: the student's value (any type, or None).
        expected: the reference: int (compared exactly), float (relative tolerance ``rel``, default
            1e-9), a tuple/list (element by element; a list is accepted for a tuple) or a dict
            (the keys of ``expected`` must be present in ``got`` with equal values).
        oracle: where ``expected`` comes from (``"nn.Conv2d's weights"``), str; shown in brackets.
        hint: the likely mistake when the value differs (str), shown on its own line.
        rel: the relative tolerance for floats (and for ints when given).

    Raises:
        AssertionError: ``<case> = <got>, expected <expected> (<oracle>)`` and the hint; for a
        missing value or a wrong type, what came back and what was expected.
    """
    src = f" ({oracle})" if oracle else ""
    tail = f"\n  hint: {hint}" if hint else ""
    kind = _kind(expected)
    if got is None:
        raise AssertionError(f"{case} returned None, expected {_show(expected) if kind != 'dict' else 'a dict'}"
                             f"\n  hint: finish the function with return")
    if kind == "dict":
        if not isinstance(got, dict):
            raise AssertionError(f"{case} returned a {type(got).__name__}, expected a dict with the keys "
                                 f"{', '.join(map(str, expected))}{tail}")
        missing = [k for k in expected if k not in got]
        if missing:
            raise AssertionError(f"{case}: the dict has no key {', '.join(map(repr, missing))}{tail}")
        wrong = [k for k in expected if _differs(got[k], expected[k], rel)]
        if wrong:
            parts = "; ".join(f"{k} = {_show(got[k])}, expected {_show(expected[k])}" for k in wrong)
            raise AssertionError(f"{case}: {parts}{src}{tail}")
        return
    if kind == "int" and _kind(got) == "float":
        if not float(got).is_integer():
            raise AssertionError(f"{case} = {_show(got)} (a float), expected the int {_show(expected)}{src}"
                                 f"\n  hint: sizes and counts are whole numbers: use // and int, not /")
        got = int(got)
    if kind == "sequence":
        if isinstance(got, np.ndarray):
            got = got.tolist()
        if _kind(got) != "sequence":
            raise AssertionError(f"{case} = {_show(got)} (a {type(got).__name__}), expected the tuple "
                                 f"{_show(tuple(expected))}{src}{tail}")
        if len(got) != len(expected):
            raise AssertionError(f"{case} has {len(got)} values, expected {len(expected)}: "
                                 f"{_show(tuple(expected))}{src}{tail}")
        got = tuple(got)
    elif kind in ("int", "float") and _kind(got) not in ("int", "float"):
        raise AssertionError(f"{case} = {_show(got)} (a {type(got).__name__}), expected the {kind} "
                             f"{_show(expected)}{src}{tail}")
    if _differs(got, expected, rel):
        raise AssertionError(f"{case} = {_show(got)}, expected {_show(expected)}{src}{tail}")
