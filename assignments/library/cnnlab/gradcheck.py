"""Numerical gradients and relative errors: how to check a backward pass.

The centered difference ``(f(x + h) - f(x - h)) / (2h)`` approximates a derivative with an error
of order ``h**2``; comparing it with an analytic gradient through :func:`rel_error` tells
whether a backward pass is right. Rules of thumb from CS231n (in float64):
``rel_error > 1e-2`` means the gradient is probably wrong, ``1e-4 .. 1e-2`` is suspicious
(unless there are kinks such as ReLU or max), ``< 1e-7`` is what smooth layers give.

Always check in float64: in float32 the rounding error of f is about 1e-7 * |f|, which after
dividing by 2h = 2e-5 swamps the result. Kinks (ReLU at 0, ties in max pooling) make
numerical and analytic gradients legitimately differ; use random continuous inputs.

:func:`check_layer_gradients` runs the whole check for any CS231n forward/backward pair::

    >>> from cnnlab.layers import affine_forward, affine_backward
    >>> rng = np.random.default_rng(0)
    >>> res = check_layer_gradients(affine_forward, affine_backward,
    ...     {"x": rng.standard_normal((4, 5)), "w": rng.standard_normal((5, 3)),
    ...      "b": rng.standard_normal(3)})
    >>> res.max_error < 1e-8
    True
"""
from __future__ import annotations

from typing import Callable, Mapping

import numpy as np

__all__ = [
    "eval_numerical_gradient",
    "eval_numerical_gradient_array",
    "rel_error",
    "check_layer_gradients",
    "GradCheckResult",
]


def _float_array(name: str, x) -> np.ndarray:
    if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.floating):
        what = f"dtype {x.dtype}" if isinstance(x, np.ndarray) else type(x).__name__
        raise ValueError(f"{name} must be a floating-point numpy array (float64 recommended), got {what}")
    return x


def _check_h(h) -> float:
    if not (isinstance(h, (int, float, np.floating)) and not isinstance(h, bool) and h > 0):
        raise ValueError(f"h must be a positive number (the finite-difference step), got {h!r}")
    return float(h)


def eval_numerical_gradient(f: Callable, x: np.ndarray, verbose: bool = False, h: float = 1e-5) -> np.ndarray:
    """Numerical gradient of a scalar function by centered differences.

    For every element ``x[i]``: ``grad[i] = (f(x + h e_i) - f(x - h e_i)) / (2h)``. ``x`` is
    modified in place during the evaluation and restored exactly afterwards; ``f`` is called
    ``2 * x.size`` times.

    Args:
        f: callable taking the array ``x`` and returning a scalar (float or 0-d array).
        x: float array of any shape, the point at which to differentiate (use float64).
        verbose: print every index and its numerical gradient.
        h: the step, > 0.

    Returns:
        grad: float64 array of the shape of ``x``.

    Raises:
        ValueError: if ``x`` is not a float array, ``h <= 0``, or ``f`` does not return a scalar.
    """
    _float_array("x", x)
    h = _check_h(h)
    grad = np.zeros(x.shape, dtype=np.float64)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    while not it.finished:
        ix = it.multi_index
        old = x[ix]
        x[ix] = old + h
        fxph = _scalar(f(x))
        x[ix] = old - h
        fxmh = _scalar(f(x))
        x[ix] = old
        grad[ix] = (fxph - fxmh) / (2 * h)
        if verbose:
            print(ix, grad[ix])
        it.iternext()
    return grad


def _scalar(value) -> float:
    arr = np.asarray(value)
    if arr.size != 1:
        raise ValueError(f"f must return a scalar, got an array of shape {arr.shape}")
    return float(arr.reshape(()))


def eval_numerical_gradient_array(f: Callable, x: np.ndarray, df: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Numerical gradient of ``sum(f(x) * df)`` for an array-valued ``f`` (a layer's forward pass).

    This is what a backward pass computes: the gradient with respect to ``x`` given the
    upstream gradient ``df`` of the output. For every element ``x[i]``:
    ``grad[i] = sum((f(x + h e_i) - f(x - h e_i)) * df) / (2h)``. ``x`` is modified in place
    during the evaluation and restored exactly afterwards.

    Args:
        f: callable taking ``x`` and returning an array of the shape of ``df`` (its output is
            copied, so ``f`` may return a view or reuse a buffer).
        x: float array of any shape (use float64).
        df: upstream gradient, float array of the shape of ``f(x)``.
        h: the step, > 0.

    Returns:
        grad: float64 array of the shape of ``x``.

    Raises:
        ValueError: if ``x`` or ``df`` is not a float array, ``h <= 0``, or ``f(x)`` does not
            have the shape of ``df``.
    """
    _float_array("x", x)
    _float_array("df", df)
    h = _check_h(h)
    grad = np.zeros(x.shape, dtype=np.float64)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    while not it.finished:
        ix = it.multi_index
        old = x[ix]
        x[ix] = old + h
        pos = np.array(f(x), dtype=np.float64, copy=True)
        x[ix] = old - h
        neg = np.array(f(x), dtype=np.float64, copy=True)
        x[ix] = old
        if pos.shape != df.shape:
            raise ValueError(f"f(x) has shape {pos.shape} but df has shape {df.shape}; they must match")
        grad[ix] = np.sum((pos - neg) * df) / (2 * h)
        it.iternext()
    return grad


def rel_error(x, y) -> float:
    """Maximum elementwise relative error, CS231n's definition:

    ``max(|x - y| / max(1e-8, |x| + |y|))``

    Args:
        x, y: arrays (or scalars) of the same shape.

    Returns:
        float, 0 for identical arrays; around 1e-7 or less for a correct smooth gradient in
        float64.

    Raises:
        ValueError: if the shapes differ.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"rel_error needs arrays of the same shape, got {x.shape} and {y.shape}")
    if x.size == 0:
        return 0.0
    return float(np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y))))


class GradCheckResult(dict):
    """Result of :func:`check_layer_gradients`: a dict ``input name -> max relative error``.

    Attributes:
        analytic: dict name -> gradient from the backward pass.
        numeric: dict name -> numerical gradient.
        max_error: the worst relative error over all inputs (property).

    Its ``repr`` is a small table::

        input  shape         max rel error
        x      (4, 5)        2.1e-10
        w      (5, 3)        8.3e-11
    """

    def __init__(self, errors, analytic, numeric):
        super().__init__(errors)
        self.analytic = analytic
        self.numeric = numeric

    @property
    def max_error(self) -> float:
        return max(self.values(), default=0.0)

    def assert_below(self, tol: float) -> "GradCheckResult":
        """Raise ``AssertionError`` (showing the table) unless every error is below ``tol``."""
        if not self.max_error < tol:
            raise AssertionError(f"gradient check failed: max relative error {self.max_error:.3g} >= {tol:g}\n{self!r}")
        return self

    def __repr__(self) -> str:
        rows = [(name, str(self.analytic[name].shape), f"{err:.3g}") for name, err in self.items()]
        w0 = max([len("input")] + [len(r[0]) for r in rows])
        w1 = max([len("shape")] + [len(r[1]) for r in rows])
        lines = [f"{'input':<{w0}}  {'shape':<{w1}}  max rel error"]
        lines += [f"{a:<{w0}}  {b:<{w1}}  {c}" for a, b, c in rows]
        return "\n".join(lines)

    __str__ = __repr__


def check_layer_gradients(forward: Callable, backward: Callable | None, inputs: Mapping[str, np.ndarray], *,
                          params: Mapping | None = None, wrt=None, dout: np.ndarray | None = None,
                          h: float = 1e-5, seed: int = 0) -> GradCheckResult:
    """Compare a layer's backward pass with numerical gradients, input by input.

    The forward pass is called with keyword arguments, ``forward(**inputs, **params)``, so the
    keys of ``inputs`` and ``params`` must be the parameter names of ``forward``
    (``{"x": ..., "w": ..., "b": ...}`` and ``params={"conv_param": {...}}`` for
    ``conv_forward_naive(x, w, b, conv_param)``).

    Two kinds of ``forward`` are accepted:

    - a layer, ``backward`` given: ``out, cache = forward(...)`` and
      ``grads = backward(dout, cache)``, where ``grads`` is one array or a tuple with one
      gradient per entry of ``inputs``, in the order of ``inputs``. ``dout`` defaults to a
      standard normal array of the output's shape drawn with ``seed``.
    - a loss, ``backward=None``: ``loss, grads = forward(...)`` with a scalar ``loss`` and
      ``grads`` as above (e.g. ``softmax_loss(scores, y)`` with ``inputs={"scores": ...}``
      and ``params={"y": y}``).

    Args:
        forward: the forward pass (or loss function), see above.
        backward: the backward pass, or None for a loss function.
        inputs: ordered dict name -> float64 array, the differentiable inputs, in the order
            ``backward`` returns their gradients. Arrays are not modified (copies are perturbed).
        params: dict name -> value of non-differentiable arguments (``conv_param``,
            ``pool_param``, ``bn_param``, labels ``y``), passed unchanged.
        wrt: names of the inputs to check (default: all of them).
        dout: upstream gradient for a layer (default: random, see above).
        h: finite-difference step, > 0.
        seed: seed of the random ``dout``.

    Returns:
        :class:`GradCheckResult`, a dict name -> max relative error (:func:`rel_error`) between
        analytic and numerical gradient, with a table as repr, ``.max_error``,
        ``.assert_below(tol)`` and the gradients in ``.analytic`` / ``.numeric``.

    Raises:
        ValueError: if an input is not a float array, ``wrt`` names an unknown input, the number
            or shapes of the returned gradients do not match ``inputs``, or ``dout`` has the
            wrong shape.
    """
    if not isinstance(inputs, Mapping) or not inputs:
        raise ValueError("inputs must be a non-empty dict name -> float array")
    inputs = {name: _float_array(f"inputs[{name!r}]", value).copy() for name, value in inputs.items()}
    params = dict(params or {})
    names = list(inputs)
    wrt = names if wrt is None else [wrt] if isinstance(wrt, str) else list(wrt)
    unknown = [n for n in wrt if n not in inputs]
    if unknown:
        raise ValueError(f"wrt names unknown inputs {unknown}; inputs are {names}")

    def call(values):
        return forward(**values, **params)

    def as_tuple(grads):
        grads = (grads,) if isinstance(grads, np.ndarray) else tuple(grads)
        if len(grads) != len(names):
            raise ValueError(
                f"the backward pass returned {len(grads)} gradient(s) but inputs has {len(names)} "
                f"entries {names}; list exactly the inputs whose gradients it returns, in order"
            )
        return grads

    if backward is None:
        loss, grads = call(inputs)
        _scalar(loss)
        analytic = as_tuple(grads)
    else:
        out, cache = call(inputs)
        if dout is None:
            dout = np.random.default_rng(seed).standard_normal(np.shape(out))
        dout = np.asarray(dout, dtype=np.float64)
        if dout.shape != np.shape(out):
            raise ValueError(f"dout must have the output's shape {np.shape(out)}, got {dout.shape}")
        analytic = as_tuple(backward(dout.astype(np.asarray(out).dtype, copy=False), cache))
    analytic = dict(zip(names, analytic))
    for name in names:
        if np.shape(analytic[name]) != inputs[name].shape:
            raise ValueError(
                f"the gradient returned for {name!r} has shape {np.shape(analytic[name])}, "
                f"but inputs[{name!r}] has shape {inputs[name].shape}"
            )

    errors, numeric = {}, {}
    for name in wrt:
        def f(v, name=name):
            result = call({**inputs, name: v})
            return result[0]

        x = inputs[name].copy()
        if backward is None:
            numeric[name] = eval_numerical_gradient(f, x, h=h)
        else:
            numeric[name] = eval_numerical_gradient_array(f, x, dout, h=h)
        errors[name] = rel_error(analytic[name], numeric[name])
    return GradCheckResult(errors, {n: np.asarray(analytic[n]) for n in wrt}, numeric)
