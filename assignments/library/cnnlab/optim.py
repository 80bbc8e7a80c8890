"""First-order update rules, CS231n style.

Every rule has the signature ``next_w, config = rule(w, dw, config=None)``:

- ``w``: a numpy array, the current weights (any shape, float32 or float64);
- ``dw``: the gradient of the loss with respect to ``w`` (same shape);
- ``config``: a dict of hyperparameters *and* the rule's state (velocity, moving averages,
  step count). ``None`` means "use the defaults"; missing keys are filled in with the defaults.

The returned ``config`` carries the updated state and must be passed to the next call for
the same weights (:class:`cnnlab.solver.Solver` keeps one config per parameter).
``next_w`` has the shape and dtype of ``w``; ``w`` itself is not modified.

Defaults are CS231n's:

==============  =====================================================================
rule            defaults
==============  =====================================================================
``sgd``         learning_rate=1e-2
``sgd_momentum`` learning_rate=1e-2, momentum=0.9
``rmsprop``     learning_rate=1e-2, decay_rate=0.99, epsilon=1e-8
``adam``        learning_rate=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8
==============  =====================================================================

Relation to ``torch.optim`` (checked in ``tests/test_optim.py``):

- ``sgd_momentum`` keeps the velocity ``v = momentum * v - learning_rate * dw`` and steps
  ``w += v``; PyTorch keeps ``buf = momentum * buf + dw`` and steps ``w -= lr * buf``. With a
  constant learning rate ``v == -lr * buf`` at every step, so the trajectories are identical.
  They differ when the learning rate changes during training (learning-rate decay): here the
  old velocity keeps the old learning rate, in PyTorch the whole buffer is rescaled by the new one.
- ``rmsprop`` equals ``torch.optim.RMSprop(alpha=decay_rate, eps=epsilon)`` (no momentum,
  not centered): ``cache = decay*cache + (1-decay)*dw**2``, ``w -= lr*dw/(sqrt(cache)+eps)``.
- ``adam`` equals ``torch.optim.Adam(betas=(beta1, beta2), eps=epsilon)`` with bias
  correction: ``w -= lr * m_hat / (sqrt(v_hat) + eps)``.
"""
from __future__ import annotations

import numpy as np

__all__ = ["sgd", "sgd_momentum", "rmsprop", "adam", "UPDATE_RULES"]


def _prepare(name: str, w, dw, config, defaults: dict) -> dict:
    """Validate ``w``/``dw`` and return ``config`` with the defaults filled in."""
    if not isinstance(w, np.ndarray) or not isinstance(dw, np.ndarray):
        raise ValueError(
            f"{name}: w and dw must be numpy arrays, got {type(w).__name__} and {type(dw).__name__}"
        )
    if w.shape != dw.shape:
        raise ValueError(f"{name}: dw must have the shape of w; got w {w.shape}, dw {dw.shape}")
    if config is None:
        config = {}
    elif not isinstance(config, dict):
        raise ValueError(f"{name}: config must be a dict or None, got {type(config).__name__}")
    for key, value in defaults.items():
        config.setdefault(key, value)
    lr = config["learning_rate"]
    if not np.isscalar(lr) or not lr >= 0:
        raise ValueError(f"{name}: config['learning_rate'] must be a number >= 0, got {lr!r}")
    return config


def _state(config: dict, key: str, w: np.ndarray) -> np.ndarray:
    """The state array ``config[key]`` (zeros like ``w`` on the first call)."""
    value = config.get(key)
    if value is None:
        value = np.zeros_like(w)
    elif np.shape(value) != w.shape:
        raise ValueError(f"config[{key!r}] has shape {np.shape(value)} but w has shape {w.shape}")
    return value


def sgd(w, dw, config=None):
    """Vanilla stochastic gradient descent: ``w -= learning_rate * dw``.

    config:
        learning_rate: scalar step size (default 1e-2).

    Returns:
        (next_w, config): next_w of the shape and dtype of ``w``.
    """
    config = _prepare("sgd", w, dw, config, {"learning_rate": 1e-2})
    next_w = w - config["learning_rate"] * dw
    return next_w.astype(w.dtype, copy=False), config


# (withheld from the student edition: exercise sgd_momentum of 06_convnet)
def sgd_momentum(*args, **kwargs):
    """Withheld from the student edition: exercise ``sgd_momentum`` of 06_convnet."""
    raise NotImplementedError("sgd_momentum is not in the student edition of cnnlab: it is exercise 'sgd_momentum' of assignment 06_convnet. Write it yourself in assignments/06_convnet/convnet.ipynb.")



def rmsprop(w, dw, config=None):
    """RMSProp: a per-parameter step size from a moving average of squared gradients.

    ``cache = decay_rate * cache + (1 - decay_rate) * dw**2``;
    ``w = w - learning_rate * dw / (sqrt(cache) + epsilon)``.

    config:
        learning_rate: scalar step size (default 1e-2).
        decay_rate: scalar in [0, 1), decay of the squared-gradient cache (default 0.99).
        epsilon: small scalar avoiding division by zero (default 1e-8).
        cache: array like ``w``, the moving average of ``dw**2`` (state; starts at zeros).

    Returns:
        (next_w, config): next_w of the shape and dtype of ``w``.
    """
    config = _prepare("rmsprop", w, dw, config,
                      {"learning_rate": 1e-2, "decay_rate": 0.99, "epsilon": 1e-8})
    rho = config["decay_rate"]
    if not 0 <= rho < 1:
        raise ValueError(f"rmsprop: config['decay_rate'] must be in [0, 1), got {rho!r}")
    cache = _state(config, "cache", w)
    cache = rho * cache + (1 - rho) * dw * dw
    next_w = w - config["learning_rate"] * dw / (np.sqrt(cache) + config["epsilon"])
    config["cache"] = cache
    return next_w.astype(w.dtype, copy=False), config


def adam(w, dw, config=None):
    """Adam: momentum on the gradient and RMSProp scaling, both with bias correction.

    ``t += 1``; ``m = beta1*m + (1-beta1)*dw``; ``v = beta2*v + (1-beta2)*dw**2``;
    ``m_hat = m / (1 - beta1**t)``; ``v_hat = v / (1 - beta2**t)``;
    ``w = w - learning_rate * m_hat / (sqrt(v_hat) + epsilon)``.

    config:
        learning_rate: scalar step size (default 1e-3).
        beta1: decay of the first moment (default 0.9).
        beta2: decay of the second moment (default 0.999).
        epsilon: small scalar avoiding division by zero (default 1e-8).
        m, v: arrays like ``w``, the first and second moments (state; start at zeros).
        t: int, the number of steps taken (state; starts at 0).

    Returns:
        (next_w, config): next_w of the shape and dtype of ``w``.
    """
    config = _prepare("adam", w, dw, config,
                      {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8})
    b1, b2 = config["beta1"], config["beta2"]
    for key, beta in (("beta1", b1), ("beta2", b2)):
        if not 0 <= beta < 1:
            raise ValueError(f"adam: config[{key!r}] must be in [0, 1), got {beta!r}")
    m = _state(config, "m", w)
    v = _state(config, "v", w)
    t = int(config.get("t", 0)) + 1
    m = b1 * m + (1 - b1) * dw
    v = b2 * v + (1 - b2) * dw * dw
    m_hat = m / (1 - b1 ** t)
    v_hat = v / (1 - b2 ** t)
    next_w = w - config["learning_rate"] * m_hat / (np.sqrt(v_hat) + config["epsilon"])
    config.update(m=m, v=v, t=t)
    return next_w.astype(w.dtype, copy=False), config


#: The update rules by name, as :class:`cnnlab.solver.Solver` looks them up.
UPDATE_RULES = {"sgd": sgd, "sgd_momentum": sgd_momentum, "rmsprop": rmsprop, "adam": adam}
