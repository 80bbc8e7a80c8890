"""Procedurally generated, labelled images: shapes, oriented bars and edges, colour blobs.

Useful for teaching what first-layer filters learn: a network trained on ``task="bars"`` grows
oriented edge detectors, on ``task="colors"`` colour-opponent filters. Every image is drawn from
one seeded numpy Generator, so a call is deterministic given its arguments; classes are balanced
(class counts differ by at most one).

Tasks and their classes:

- ``"shapes"``: square, circle, triangle (random centre, size and colours)
- ``"bars"``:   a bright bar through the image at 0, 45, 90 or 135 degrees (+- 10 degrees jitter)
- ``"edges"``:  a step edge whose bright side faces right, down, left or up (+- 10 degrees)
- ``"colors"``: a Gaussian blob that is red, green, blue or yellow on a gray background
"""
from __future__ import annotations

import numpy as np

from ..shapes import check_int

__all__ = ["SYNTHETIC_TASKS", "make_shapes", "get_shapes_data", "SyntheticImages"]

SYNTHETIC_TASKS = {
    "shapes": ("square", "circle", "triangle"),
    "bars": ("bar_0", "bar_45", "bar_90", "bar_135"),
    "edges": ("edge_right", "edge_down", "edge_left", "edge_up"),
    "colors": ("red", "green", "blue", "yellow"),
}

_COLORS = {"red": (1.0, 0.1, 0.1), "green": (0.1, 0.9, 0.1), "blue": (0.15, 0.2, 1.0), "yellow": (1.0, 0.9, 0.1)}


def _contrasting_colors(rng, channels):
    """A background and a foreground colour whose mean brightness differs by at least 0.35."""
    bg = rng.uniform(0.0, 0.4, size=channels)
    fg = rng.uniform(0.6, 1.0, size=channels)
    if rng.random() < 0.5:  # light background, dark shape half of the time
        bg, fg = 1.0 - bg, 1.0 - fg
    return bg, fg


def _draw(task, label, size, channels, rng):
    """One image (channels, size, size) float64 before noise."""
    coords = (np.arange(size) + 0.5) / size  # pixel centres in (0, 1)
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    name = SYNTHETIC_TASKS[task][label]
    if task == "colors":
        bg = np.full(3, rng.uniform(0.35, 0.65))
        cx, cy = rng.uniform(0.3, 0.7, size=2)
        sigma = rng.uniform(0.1, 0.2)
        weight = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma ** 2))
        color = np.clip(np.array(_COLORS[name]) + rng.normal(0, 0.05, size=3), 0, 1)
        return bg[:, None, None] * (1 - weight) + color[:, None, None] * weight
    bg, fg = _contrasting_colors(rng, channels)
    if task == "shapes":
        cx, cy = rng.uniform(0.35, 0.65, size=2)
        r = rng.uniform(0.18, 0.3)
        dx, dy = xx - cx, yy - cy
        if name == "square":
            mask = (np.abs(dx) <= r * 0.85) & (np.abs(dy) <= r * 0.85)
        elif name == "circle":
            mask = dx ** 2 + dy ** 2 <= r ** 2
        else:  # triangle pointing up: below the two slanted sides, above the base
            h = 1.6 * r
            mask = (dy <= h / 2) & (dy >= -h / 2) & (np.abs(dx) <= (dy + h / 2) * (r / h) * 1.2)
    elif task == "bars":
        theta = np.deg2rad(45.0 * label + rng.uniform(-10, 10))
        offset = rng.uniform(-0.15, 0.15)
        dist = -(xx - 0.5) * np.sin(theta) + (yy - 0.5) * np.cos(theta) - offset
        mask = np.abs(dist) <= rng.uniform(0.06, 0.1)
    elif task == "edges":
        theta = np.deg2rad(90.0 * label + rng.uniform(-10, 10))
        offset = rng.uniform(-0.2, 0.2)
        mask = (xx - 0.5) * np.cos(theta) + (yy - 0.5) * np.sin(theta) > offset
        bg, fg = np.minimum(bg, fg), np.maximum(bg, fg)  # the bright side defines the class
    else:  # pragma: no cover - task validated by the caller
        raise AssertionError(task)
    return np.where(mask[None], fg[:, None, None], bg[:, None, None])


def make_shapes(n: int = 600, size: int = 32, task: str = "shapes", *, seed: int = 0, channels: int = 3,
                noise: float = 0.05):
    """Generate ``n`` labelled images.

    Args:
        n: number of images (>= number of classes).
        size: height = width in pixels (>= 8).
        task: one of :data:`SYNTHETIC_TASKS` (``"shapes"``, ``"bars"``, ``"edges"``, ``"colors"``).
        seed: seed of the numpy Generator; same arguments give the same arrays.
        channels: 3 (RGB) or 1 (gray; not for ``"colors"``).
        noise: standard deviation of added Gaussian pixel noise.

    Returns:
        (X, y): X float32 (n, channels, size, size) in [0, 1]; y int64 (n,) in
        ``0..len(SYNTHETIC_TASKS[task])-1``, balanced, in shuffled order.
    """
    if task not in SYNTHETIC_TASKS:
        raise ValueError(f"task must be one of {sorted(SYNTHETIC_TASKS)}, got {task!r}")
    k = len(SYNTHETIC_TASKS[task])
    n = check_int("n", n, k)
    size = check_int("size", size, 8)
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    if task == "colors" and channels != 3:
        raise ValueError("task='colors' needs channels=3")
    if not noise >= 0:
        raise ValueError(f"noise must be >= 0, got {noise!r}")
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % k).astype(np.int64)
    X = np.empty((n, channels, size, size), dtype=np.float32)
    for i, label in enumerate(y):
        img = _draw(task, int(label), size, channels, rng)
        if noise:
            img = img + rng.normal(0.0, noise, size=img.shape)
        X[i] = np.clip(img, 0.0, 1.0)
    return X, y


def get_shapes_data(n: int = 600, size: int = 32, task: str = "shapes", *, seed: int = 0, val: float = 0.2,
                    test: float = 0.2, normalize: bool = True, **options) -> dict:
    """Synthetic images split into the CS231n-style dict (see :func:`cnnlab.data.get_digits_data`)."""
    from .splits import make_splits, normalize_splits

    X, y = make_shapes(n, size, task, seed=seed, **options)
    data = make_splits(X, y, val=val, test=test, seed=seed)
    if normalize:
        data = normalize_splits(data)
    data["classes"] = list(SYNTHETIC_TASKS[task])
    return data


class SyntheticImages:
    """A torch-style Dataset over :func:`make_shapes` images (generated once, in memory).

    ``ds[i]`` returns ``(image, label)``: a float32 tensor (C, size, size) and an int64 scalar
    tensor; ``ds.classes`` names the labels, ``ds.images``/``ds.labels`` are the numpy arrays.
    """

    def __init__(self, n: int = 600, size: int = 32, task: str = "shapes", *, seed: int = 0, channels: int = 3,
                 noise: float = 0.05, transform=None):
        self.images, self.labels = make_shapes(n, size, task, seed=seed, channels=channels, noise=noise)
        self.classes = list(SYNTHETIC_TASKS[task])
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index):
        import torch

        x = torch.from_numpy(self.images[index])
        if self.transform is not None:
            x = self.transform(x)
        return x, torch.tensor(self.labels[index], dtype=torch.int64)
