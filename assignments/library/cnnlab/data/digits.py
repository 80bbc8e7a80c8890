"""scikit-learn's bundled handwritten digits: 1,797 gray 8x8 images of the digits 0-9, no network.

The original pixel values are integers 0..16; :func:`load_digits` scales them to [0, 1] and can
upsample the images bilinearly to 16x16 or 32x32 (the size LeNet-5 expects), so the same small
data set feeds the numpy layers, the CPU-sized CNNs and the transfer-learning demo.
"""
from __future__ import annotations

import numpy as np

from ..shapes import check_int
from .splits import make_splits, normalize_splits, select_classes

__all__ = ["DIGITS_SIZES", "load_digits", "get_digits_data", "resize_images"]

DIGITS_SIZES = (8, 16, 32)


def resize_images(X: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of (N, C, H, W) images to (N, C, size, size).

    Uses ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)`` (pixel
    centres aligned, the convention of image libraries). Bilinear weights are a convex
    combination, so values stay inside the input's range.

    Returns:
        float32 array (N, C, size, size).
    """
    import torch
    import torch.nn.functional as F

    size = check_int("size", size, 1)
    if X.shape[-2:] == (size, size):
        return X.astype(np.float32, copy=True)
    with torch.no_grad():
        out = F.interpolate(torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)), size=(size, size),
                            mode="bilinear", align_corners=False)
    return out.numpy()


def load_digits(size: int = 8, split: str = "all", *, classes=None, val: float = 0.2, test: float = 0.2,
                seed: int = 0, stratify: bool = True):
    """The scikit-learn digits as NCHW float arrays.

    Args:
        size: 8 (original), 16 or 32 (bilinear upsampling).
        split: ``"all"`` (1,797 images) or one of ``"train"``, ``"val"``, ``"test"`` of a seeded
            (stratified) split with fractions ``val`` and ``test``.
        classes: keep only these digits, relabelled ``0..k-1`` in the given order (e.g.
            ``(5, 6, 7, 8, 9)`` -> labels 0..4); ``None`` keeps all ten.
        val, test, seed, stratify: the split, as :func:`cnnlab.data.make_splits`.

    Returns:
        (X, y): X float32 (N, 1, size, size) in [0, 1]; y int64 (N,).
    """
    from sklearn.datasets import load_digits as _sk_load_digits

    if size not in DIGITS_SIZES:
        raise ValueError(f"size must be one of {DIGITS_SIZES}, got {size!r}")
    if split not in ("all", "train", "val", "test"):
        raise ValueError(f"split must be 'all', 'train', 'val' or 'test', got {split!r}")
    bunch = _sk_load_digits()
    X = (bunch.images.astype(np.float32) / 16.0)[:, None, :, :]
    y = bunch.target.astype(np.int64)
    if classes is not None:
        X, y = select_classes(X, y, classes)
    if size != 8:
        X = resize_images(X, size)
    X = np.clip(X, 0.0, 1.0)  # guards against float rounding only
    if split == "all":
        return X, y
    parts = make_splits(X, y, val=val, test=test, seed=seed, stratify=stratify)
    return parts[f"X_{split}"], parts[f"y_{split}"]


def get_digits_data(size: int = 16, *, classes=None, val: float = 0.2, test: float = 0.2, seed: int = 0,
                    normalize: bool = True) -> dict:
    """Digits split into the CS231n-style dict (like ``get_CIFAR10_data``).

    Returns:
        dict with ``X_train, y_train, X_val, y_val, X_test, y_test`` (X float32 (n, 1, size, size),
        y int64 (n,)); with ``normalize=True`` the images are standardized with the training
        split's per-channel ``mean``/``std``, which are included (float32, shape (1,)).
        ``classes`` holds the digit of each label.
    """
    X, y = load_digits(size, "all", classes=classes)
    data = make_splits(X, y, val=val, test=test, seed=seed, stratify=True)
    if normalize:
        data = normalize_splits(data)
    data["classes"] = [str(c) for c in (classes if classes is not None else range(10))]
    return data
