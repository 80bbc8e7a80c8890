"""Affine (fully connected) layer, ReLU and the softmax cross-entropy loss.

CS231n conventions: ``out, cache = <layer>_forward(...)`` and ``grads = <layer>_backward(dout, cache)``.
Arrays are numpy floating arrays; float32 and float64 both work and every output (and ``dx``)
has the dtype of ``x``. Parameters of another float dtype are used in ``x``'s dtype and their
gradients are returned in the parameters' own dtype.
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "affine_forward",
    "affine_backward",
    "relu_forward",
    "relu_backward",
    "softmax_loss",
]


def _check_float_array(name: str, a) -> None:
    if not isinstance(a, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(a).__name__}")
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"{name} must be a floating-point array (float32 or float64), got dtype {a.dtype}")


def affine_forward(x, w, b):
    """Forward pass of an affine (fully connected) layer: ``out = x.reshape(N, D) @ w + b``.

    Args:
        x: float array of shape (N, d_1, ..., d_k); each example is flattened to a row of
            length ``D = d_1 * ... * d_k`` (a 2-D ``x`` of shape (N, D) is used as is).
        w: float array of shape (D, M), the weights.
        b: float array of shape (M,), the biases.

    Returns:
        out: array of shape (N, M), dtype of ``x``.
        cache: ``(x, w, b)`` for :func:`affine_backward`.

    Raises:
        ValueError: if ``x`` has fewer than 2 dimensions, ``w`` is not (D, M) with D matching
            the flattened ``x``, or ``b`` is not (M,).
    """
    _check_float_array("x", x)
    _check_float_array("w", w)
    _check_float_array("b", b)
    if x.ndim < 2:
        raise ValueError(f"x must have shape (N, d_1, ..., d_k) with at least 2 dimensions, got shape {x.shape}")
    N = x.shape[0]
    D = int(np.prod(x.shape[1:]))
    if w.ndim != 2 or w.shape[0] != D:
        raise ValueError(
            f"w must have shape (D, M) with D = prod(x.shape[1:]) = {D} for x of shape {x.shape}, "
            f"got w of shape {w.shape}"
        )
    M = w.shape[1]
    if b.shape != (M,):
        raise ValueError(f"b must have shape (M,) = ({M},) to match w of shape {w.shape}, got b of shape {b.shape}")
    out = x.reshape(N, D) @ w.astype(x.dtype, copy=False)
    out += b.astype(x.dtype, copy=False)
    return out, (x, w, b)


def affine_backward(dout, cache):
    """Backward pass of an affine layer.

    Args:
        dout: upstream gradient of shape (N, M).
        cache: ``(x, w, b)`` from :func:`affine_forward`.

    Returns:
        dx: gradient with respect to ``x``, shape (N, d_1, ..., d_k), dtype of ``x``.
        dw: gradient with respect to ``w``, shape (D, M), dtype of ``w``.
        db: gradient with respect to ``b``, shape (M,), dtype of ``b``.
    """
    x, w, b = cache
    N = x.shape[0]
    if dout.shape != (N, w.shape[1]):
        raise ValueError(f"dout must have shape (N, M) = {(N, w.shape[1])}, got {dout.shape}")
    dout = dout.astype(x.dtype, copy=False)
    dx = (dout @ w.astype(x.dtype, copy=False).T).reshape(x.shape)
    dw = (x.reshape(N, -1).T @ dout).astype(w.dtype, copy=False)
    db = dout.sum(axis=0).astype(b.dtype, copy=False)
    return dx, dw, db


def relu_forward(x):
    """Forward pass of the rectified linear unit, ``out = max(0, x)`` elementwise.

    Args:
        x: float array of any shape.

    Returns:
        out: array of the same shape and dtype as ``x``.
        cache: ``x`` for :func:`relu_backward`.
    """
    _check_float_array("x", x)
    return np.maximum(x, 0), x


def relu_backward(dout, cache):
    """Backward pass of ReLU: the gradient flows where ``x > 0`` (zero at ``x == 0``, like PyTorch).

    Args:
        dout: upstream gradient, same shape as ``x``.
        cache: ``x`` from :func:`relu_forward`.

    Returns:
        dx: array of the shape and dtype of ``x``.
    """
    x = cache
    if dout.shape != x.shape:
        raise ValueError(f"dout must have the shape of x {x.shape}, got {dout.shape}")
    return np.where(x > 0, dout, 0).astype(x.dtype, copy=False)


def softmax_loss(scores, y):
    """Softmax classifier loss (cross-entropy of the softmax), averaged over the minibatch.

    ``loss = mean_i [ -scores[i, y_i] + log sum_j exp(scores[i, j]) ]``, computed stably by
    subtracting each row's maximum before exponentiating; equals
    ``torch.nn.functional.cross_entropy(scores, y)``.

    Args:
        scores: float array of shape (N, C), class scores (logits) for N examples.
        y: integer array of shape (N,), labels with ``0 <= y[i] < C``.

    Returns:
        loss: scalar of the dtype of ``scores`` (a numpy scalar).
        dscores: gradient of the loss with respect to ``scores``, shape (N, C), dtype of
            ``scores``: ``(softmax(scores) - onehot(y)) / N``.

    Raises:
        ValueError: if ``scores`` is not 2-D with N >= 1, ``y`` is not an integer array of
            shape (N,), or a label is outside ``[0, C)``.
    """
    _check_float_array("scores", scores)
    if scores.ndim != 2 or scores.shape[0] < 1 or scores.shape[1] < 1:
        raise ValueError(f"scores must have shape (N, C) with N, C >= 1, got shape {scores.shape}")
    N, C = scores.shape
    y = np.asarray(y)
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y must be an integer array of labels, got dtype {y.dtype}")
    if y.shape != (N,):
        raise ValueError(f"y must have shape (N,) = ({N},) to match scores of shape {scores.shape}, got {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= C):
        raise ValueError(
            f"labels y must satisfy 0 <= y[i] < C = {C} (scores of shape {scores.shape}), "
            f"got values in [{y.min()}, {y.max()}]"
        )
    shifted = scores - scores.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    sums = exp.sum(axis=1, keepdims=True)
    log_probs = shifted - np.log(sums)
    rows = np.arange(N)
    loss = -log_probs[rows, y].mean()
    dscores = exp / sums
    dscores[rows, y] -= 1
    dscores /= N
    return scores.dtype.type(loss), dscores
