"""Simple data augmentation: random horizontal flip and random crop with zero padding.

Two flavours of the same operations:

- batch functions on numpy arrays (N, C, H, W) that take a seeded ``numpy.random.Generator``,
  for the numpy solver (:func:`random_flip`, :func:`random_crop`);
- per-image transform objects on torch tensors (C, H, W) for a ``Dataset``
  (:class:`RandomHorizontalFlip`, :class:`RandomCrop`, :class:`Normalize`, :class:`Compose`).
  They draw from torch's random generator (the global one, or ``generator=``), which DataLoader
  seeds per worker and :mod:`cnnlab.train` saves in checkpoints, so runs are reproducible.
"""
from __future__ import annotations

import numpy as np

from ..shapes import check_4d, check_int

__all__ = ["random_flip", "random_crop", "RandomHorizontalFlip", "RandomCrop", "Normalize", "Compose"]


def random_flip(X: np.ndarray, rng: np.random.Generator, p: float = 0.5) -> np.ndarray:
    """Mirror each image left-right with probability ``p``.

    Args:
        X: (N, C, H, W) array; rng: numpy Generator.

    Returns:
        new array of X's shape and dtype.
    """
    check_4d("X", X)
    flip = rng.random(X.shape[0]) < p
    out = X.copy()
    out[flip] = out[flip][..., ::-1]
    return out


def random_crop(X: np.ndarray, rng: np.random.Generator, padding: int = 4) -> np.ndarray:
    """Zero-pad each image by ``padding`` on every side and cut a random H x W window.

    Args:
        X: (N, C, H, W) array; rng: numpy Generator; padding: int >= 0.

    Returns:
        new array of X's shape and dtype (each image shifted by up to ``padding`` pixels).
    """
    check_4d("X", X)
    padding = check_int("padding", padding, 0)
    N, _, H, W = X.shape
    padded = np.pad(X, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    top = rng.integers(0, 2 * padding + 1, size=N)
    left = rng.integers(0, 2 * padding + 1, size=N)
    return np.stack([padded[i, :, t:t + H, l:l + W] for i, (t, l) in enumerate(zip(top, left))])


class RandomHorizontalFlip:
    """Flip a (C, H, W) tensor left-right with probability ``p``."""

    def __init__(self, p: float = 0.5, generator=None):
        self.p, self.generator = float(p), generator

    def __call__(self, x):
        import torch

        if torch.rand((), generator=self.generator).item() < self.p:
            return torch.flip(x, dims=(-1,))
        return x

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"


class RandomCrop:
    """Zero-pad a (C, H, W) tensor by ``padding`` and cut a random ``size`` x ``size`` window
    (``size`` defaults to the input size: a random shift of up to ``padding`` pixels)."""

    def __init__(self, size: int | None = None, padding: int = 4, generator=None):
        self.size = None if size is None else check_int("size", size, 1)
        self.padding = check_int("padding", padding, 0)
        self.generator = generator

    def __call__(self, x):
        import torch
        import torch.nn.functional as F

        H, W = x.shape[-2:]
        h = w = self.size
        if h is None:
            h, w = H, W
        p = self.padding
        if h > H + 2 * p or w > W + 2 * p:
            raise ValueError(f"crop size {h}x{w} is larger than the padded image {H + 2 * p}x{W + 2 * p}")
        padded = F.pad(x, (p, p, p, p)) if p else x
        top = int(torch.randint(0, H + 2 * p - h + 1, (), generator=self.generator))
        left = int(torch.randint(0, W + 2 * p - w + 1, (), generator=self.generator))
        return padded[..., top:top + h, left:left + w]

    def __repr__(self):
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class Normalize:
    """``(x - mean[c]) / std[c]`` for a (C, H, W) tensor; mean/std of shape (C,)."""

    def __init__(self, mean, std):
        import torch

        self.mean = torch.as_tensor(np.asarray(mean, dtype=np.float32)).reshape(-1, 1, 1)
        self.std = torch.as_tensor(np.asarray(std, dtype=np.float32)).reshape(-1, 1, 1)

    def __call__(self, x):
        return (x - self.mean) / self.std


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x

    def __repr__(self):
        return "Compose(" + ", ".join(map(repr, self.transforms)) + ")"
