"""Train/validation/test splits, class selection and per-channel mean/std normalization.

All functions work on numpy arrays in NCHW layout: images ``X`` of shape ``(N, C, H, W)``
(float32) and integer labels ``y`` of shape ``(N,)`` (int64). The normalization statistics are
computed on the training split only, as the lectures insist: the validation and test images must
not leak into the preprocessing.
"""
from __future__ import annotations

import numbers

import numpy as np

from ..shapes import check_4d

__all__ = ["check_images_labels", "select_classes", "split_indices", "make_splits", "subsample_per_class",
           "channel_stats", "normalize", "normalize_splits"]

SPLITS = ("train", "val", "test")


def check_images_labels(X, y, name: str = "X") -> None:
    """Raise ``ValueError`` unless ``X`` is a 4-D array (N, C, H, W) and ``y`` a 1-D integer
    array of length N."""
    check_4d(name, X)
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise ValueError(f"labels must be 1-D with one entry per image: {name} has shape {X.shape} "
                         f"but y has shape {y.shape}")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {y.dtype}")


def select_classes(X: np.ndarray, y: np.ndarray, classes, relabel: bool = True):
    """Keep only the images whose label is in ``classes``.

    Args:
        X: (N, C, H, W) images.
        y: (N,) int labels.
        classes: the labels to keep, e.g. ``(5, 6, 7, 8, 9)``.
        relabel: map the kept labels to ``0..len(classes)-1`` in the order given
            (``5 -> 0, 6 -> 1, ...``); otherwise keep the original labels.

    Returns:
        (X_sel, y_sel): a copy of the selected images and their int64 labels, original order.
    """
    check_images_labels(X, y)
    classes = [int(c) for c in classes]
    if len(set(classes)) != len(classes) or not classes:
        raise ValueError(f"classes must be a non-empty list of distinct labels, got {classes}")
    missing = sorted(set(classes) - set(np.unique(y).tolist()))
    if missing:
        raise ValueError(f"classes {missing} do not occur in y (labels present: {np.unique(y).tolist()})")
    keep = np.isin(y, classes)
    y_sel = np.asarray(y)[keep].astype(np.int64)
    if relabel:
        lookup = {c: i for i, c in enumerate(classes)}
        y_sel = np.array([lookup[int(v)] for v in y_sel], dtype=np.int64)
    return X[keep].copy(), y_sel


def _check_fraction(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise ValueError(f"{name} must be a fraction in [0, 1), got {value!r}")
    return float(value)


def split_indices(y, val: float = 0.1, test: float = 0.1, seed: int = 0, stratify: bool = True):
    """Seeded index split into train/val/test.

    With ``stratify=True`` each class is split separately, so every split has (up to rounding)
    the class proportions of ``y``; the per-class counts are ``round(n_c * val)`` and
    ``round(n_c * test)``. Without it the whole index set is shuffled once and cut.

    Args:
        y: (N,) int labels.
        val, test: fractions in [0, 1) with ``val + test < 1``.
        seed: seed of the numpy Generator that shuffles.
        stratify: split per class.

    Returns:
        dict ``{"train": idx, "val": idx, "test": idx}`` of sorted int64 index arrays that
        partition ``range(N)``.
    """
    y = np.asarray(y)
    val = _check_fraction("val", val)
    test = _check_fraction("test", test)
    if val + test >= 1:
        raise ValueError(f"val + test must be < 1 to leave training data, got val={val}, test={test}")
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(y == c) for c in np.unique(y)] if stratify else [np.arange(len(y))]
    parts = {s: [] for s in SPLITS}
    for idx in groups:
        idx = rng.permutation(idx)
        n_val, n_test = int(round(len(idx) * val)), int(round(len(idx) * test))
        parts["val"].append(idx[:n_val])
        parts["test"].append(idx[n_val:n_val + n_test])
        parts["train"].append(idx[n_val + n_test:])
    return {s: np.sort(np.concatenate(p)).astype(np.int64) for s, p in parts.items()}


def make_splits(X, y, val: float = 0.1, test: float = 0.1, seed: int = 0, stratify: bool = True) -> dict:
    """Split arrays into the CS231n-style dict ``X_train, y_train, X_val, y_val, X_test, y_test``.

    Args:
        X: (N, C, H, W) images; y: (N,) int labels. Other arguments as :func:`split_indices`.

    Returns:
        dict of numpy arrays (copies): ``X_<split>`` (n, C, H, W) with ``X``'s dtype and
        ``y_<split>`` (n,) int64.
    """
    check_images_labels(X, y)
    idx = split_indices(y, val=val, test=test, seed=seed, stratify=stratify)
    out = {}
    for s in SPLITS:
        out[f"X_{s}"] = X[idx[s]]
        out[f"y_{s}"] = np.asarray(y)[idx[s]].astype(np.int64)
    return out


def subsample_per_class(X, y, n_per_class: int, seed: int = 0):
    """Seeded subset with exactly ``n_per_class`` images of every class (the "little data" regime).

    Returns:
        (X_sub, y_sub) in the original order; ``ValueError`` if a class has fewer images.
    """
    check_images_labels(X, y)
    rng = np.random.default_rng(seed)
    picked = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        if len(idx) < n_per_class:
            raise ValueError(f"class {c} has only {len(idx)} images, fewer than n_per_class={n_per_class}")
        picked.append(rng.choice(idx, size=n_per_class, replace=False))
    keep = np.sort(np.concatenate(picked))
    return X[keep], np.asarray(y)[keep].astype(np.int64)


def channel_stats(X: np.ndarray, eps: float = 1e-8):
    """Per-channel mean and standard deviation over images and pixels.

    Args:
        X: (N, C, H, W) images (the training split).

    Returns:
        (mean, std): float32 arrays of shape (C,); ``std`` is at least ``eps``.
    """
    check_4d("X", X)
    x = X.astype(np.float64)
    mean = x.mean(axis=(0, 2, 3))
    std = np.maximum(x.std(axis=(0, 2, 3)), eps)
    return mean.astype(np.float32), std.astype(np.float32)


def normalize(X: np.ndarray, mean, std) -> np.ndarray:
    """``(X - mean[c]) / std[c]`` per channel.

    Args:
        X: (N, C, H, W); mean, std: (C,).

    Returns:
        float32 array of X's shape.
    """
    check_4d("X", X)
    mean = np.asarray(mean, dtype=np.float32)
    std = np.asarray(std, dtype=np.float32)
    if mean.shape != (X.shape[1],) or std.shape != (X.shape[1],):
        raise ValueError(f"mean and std must have shape (C,) = ({X.shape[1]},) for X of shape {X.shape}, "
                         f"got {mean.shape} and {std.shape}")
    return ((X.astype(np.float32) - mean[:, None, None]) / std[:, None, None]).astype(np.float32)


def normalize_splits(data: dict) -> dict:
    """Normalize every ``X_<split>`` of a split dict with the statistics of ``X_train``.

    Returns:
        a new dict with normalized float32 ``X_*`` arrays, the ``y_*`` arrays unchanged, and
        ``mean``/``std`` (float32, shape (C,)) so that images can be un-normalized for display.
    """
    if "X_train" not in data:
        raise ValueError(f"data must contain 'X_train' to compute the statistics, got keys {sorted(data)}")
    mean, std = channel_stats(data["X_train"])
    out = dict(data)
    for key, value in data.items():
        if key.startswith("X_"):
            out[key] = normalize(value, mean, std)
    out["mean"], out["std"] = mean, std
    return out
