"""The train/test gap of batch, layer and group normalization, for tiny and larger batches.

A numpy experiment on the course's normalization layers (:mod:`cnnlab.layers.batchnorm`,
:mod:`cnnlab.layers.norm`) or on the student's own (``normalize=``): assignment 2 prints its table.
"""
from __future__ import annotations

import numpy as np

from ..layers.batchnorm import spatial_batchnorm_forward
from ..layers.norm import groupnorm_forward, layernorm_forward
from ..shapes import check_int

__all__ = ["norm_train_test_gap"]


def norm_train_test_gap(batch_sizes=(1, 2, 4, 8, 32), channels=16, spatial=(1, 1), groups=4,
                        trials=20, seed=0, eps=1e-5, normalize=None) -> dict:
    """How much a sample's output changes between training and deployment, per normalization.

    Data: ``x[n, c] = mu[c] + sigma[c] * z`` with z ~ N(0, 1) and fixed random per-channel
    ``mu`` (spread 2) and ``sigma`` (around 1); gamma = 1, beta = 0. For every batch size, each of
    ``trials`` batches is normalized

    - in **training mode** as a batch (batch norm: statistics of this batch; layer/group norm:
      each sample's own), and
    - in **test mode** one sample at a time, as at deployment (batch norm: the running
      statistics, set here to the exact population mean and variance they converge to;
      layer/group norm: the same computation as in training).

    ``train_test_gap`` is the mean absolute difference of the two outputs. It is 0 (up to
    rounding) for layer and group norm at every batch size; for batch norm it shrinks as the
    batch grows (the batch statistics approach the population's) and is largest for batch 1.
    With ``spatial=(1, 1)`` and batch size 1 each channel holds a single value, ``x - mean = 0``
    and batch norm's training output is ``beta`` whatever the input (its ``train_output_std``
    is 0: all information lost). cnnlab's and PyTorch's batch norm layers refuse this case with
    an error; the value here is the formula's. Group norm still works (here with
    ``channels/groups`` values per group; with 1 value per group it degenerates the same way).

    Args:
        batch_sizes: iterable of ints >= 1.
        channels: C (int >= 1), divisible by ``groups``.
        spatial: (H, W) of the feature maps.
        groups: G for group norm.
        trials: batches per batch size (int >= 1).
        seed: seed of the data.
        eps: the normalizations' eps.
        normalize: the normalizations to measure, ``None`` for this module's layers. A callable
            ``normalize(name, x, training, running_mean, running_var, eps, groups) -> out`` with
            ``name`` one of ``"batchnorm"``, ``"layernorm"``, ``"groupnorm"``, ``x`` float64 of
            shape (n, C, H, W), gamma = 1 and beta = 0, ``training`` a bool and the running
            statistics float64 arrays of shape (C,) (batch norm's test mode); returns an array of
            the shape of ``x``. The course's notebook passes the student's own layers.

    Returns:
        dict with
        ``batch_sizes`` (list of ints), ``channels``, ``groups``, ``spatial`` (H, W),
        ``train_test_gap``: dict ``"batchnorm"/"layernorm"/"groupnorm"`` -> list of floats (one
        per batch size),
        ``train_output_std``: same keys, the standard deviation of the training-mode outputs
        (about 1 when the normalization keeps the signal, 0 when it destroys it).

    Example:
        >>> r = norm_train_test_gap(batch_sizes=(1, 32))
        >>> max(r["train_test_gap"]["groupnorm"]) < 1e-12, r["train_output_std"]["batchnorm"][0]
        (True, 0.0)
        >>> r["train_test_gap"]["batchnorm"][0] > r["train_test_gap"]["batchnorm"][1]
        True
    """
    sizes = [check_int("batch_sizes[i]", n, 1) for n in batch_sizes]
    C = check_int("channels", channels, 1)
    G = check_int("groups", groups, 1)
    if C % G:
        raise ValueError(f"groups={G} must divide channels={C}")
    if not isinstance(spatial, (tuple, list)) or len(spatial) != 2:
        raise ValueError(f"spatial must be a pair (H, W), got {spatial!r}")
    H, W = check_int("spatial[0]", spatial[0], 1), check_int("spatial[1]", spatial[1], 1)
    trials = check_int("trials", trials, 1)
    rng = np.random.default_rng(seed)
    mu = rng.normal(0.0, 2.0, C)
    sigma = np.exp(rng.normal(0.0, 0.5, C))
    gamma, beta = np.ones(C), np.zeros(C)
    bshape = (1, C, 1, 1)
    names = ("batchnorm", "layernorm", "groupnorm")
    gap = {k: [] for k in names}
    std = {k: [] for k in names}

    def library(name, x, training, running_mean, running_var, eps, groups):
        mode = "train" if training else "test"
        if name == "batchnorm":
            bn = {"mode": mode, "eps": eps, "running_mean": running_mean.copy(), "running_var": running_var.copy()}
            return spatial_batchnorm_forward(x, gamma, beta, bn)[0]
        if name == "layernorm":
            return layernorm_forward(x, gamma, beta, {"mode": mode, "eps": eps})[0]
        return groupnorm_forward(x, gamma, beta, groups, {"mode": mode, "eps": eps})[0]

    run = library if normalize is None else normalize
    if not callable(run):
        raise TypeError(f"normalize must be None or a callable, got {type(normalize).__name__}")
    mean, var = mu.copy(), sigma ** 2   # batch norm's running statistics: the population's

    def train(name, x):
        if name == "batchnorm" and x.shape[0] * H * W == 1:   # one value per channel: x - mean == 0
            return np.broadcast_to(beta.reshape(bshape), x.shape).copy()
        return _checked(name, x, run(name, x, True, mean, var, eps, G))

    def test(name, x1):
        return _checked(name, x1, run(name, x1, False, mean, var, eps, G))

    for n in sizes:
        diffs = {k: [] for k in names}
        outs = {k: [] for k in names}
        for _ in range(trials):
            x = mu.reshape(bshape) + sigma.reshape(bshape) * rng.standard_normal((n, C, H, W))
            for k in names:
                y = train(k, x)
                y_test = np.concatenate([test(k, x[i:i + 1]) for i in range(n)])
                diffs[k].append(np.abs(y - y_test).mean())
                outs[k].append(y.ravel())
        for k in names:
            gap[k].append(float(np.mean(diffs[k])))
            std[k].append(float(np.concatenate(outs[k]).std()))
    return {"batch_sizes": sizes, "channels": C, "groups": G, "spatial": (H, W),
            "train_test_gap": gap, "train_output_std": std}


def _checked(name: str, x: np.ndarray, out) -> np.ndarray:
    out = np.asarray(out, dtype=np.float64)
    if out.shape != x.shape:
        raise ValueError(f"normalize({name!r}, x of shape {x.shape}, ...) returned shape {out.shape}, "
                         f"expected the shape of x")
    return out
