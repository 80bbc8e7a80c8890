"""The open challenge's data: scattered, noisy digits on a larger canvas (assignment 5, Part 7).

Each image is one of scikit-learn's 8x8 digits (pixel values in [0, 1]) pasted at a random
position of an empty ``CANVAS x CANVAS`` (12 x 12) canvas, plus Gaussian pixel noise of standard
deviation ``NOISE`` (0.2). The digit's position and the noise are drawn from a seeded numpy
Generator, so every call is deterministic given its arguments.

- :func:`get_challenge_data`: the training and validation sets a student designs with (the
  digits' seeded 60/20/20 split, its train and val parts, each placed once with a fixed seed);
- :func:`challenge_heldout`: the graded set: the split's *test* digits, each placed ``copies``
  times at positions and with noise drawn from ``seed`` — the grader's seed is not in the
  notebook, so no placement of the held-out images is ever seen in training.

Images are NCHW float32 ``(N, 1, 12, 12)``, not standardized (a model that wants standardized
inputs does it itself: the grader hands the held-out images to the model as they are); labels
int64 ``(N,)`` in ``0..9``.
"""
from __future__ import annotations

import numpy as np

from ..shapes import check_int
from .digits import load_digits

__all__ = ["CANVAS", "NOISE", "scatter_digits", "get_challenge_data", "challenge_heldout"]

CANVAS = 12
NOISE = 0.2
_TRAIN_SEED, _VAL_SEED = 101, 102


def scatter_digits(X: np.ndarray, seed: int, *, canvas: int = CANVAS, noise: float = NOISE) -> np.ndarray:
    """Paste each 8x8 image of ``X`` at a random position of a ``canvas x canvas`` image and add noise.

    Args:
        X: (N, 1, 8, 8) float images (the digits in [0, 1]).
        seed: seed of the numpy Generator that draws the positions (uniform over the
            ``(canvas - 7) ** 2`` positions where the digit fits) and then the noise.
        canvas: side of the output images, at least 8. noise: the noise's standard deviation, >= 0.

    Returns:
        (N, 1, canvas, canvas) float32.

    Raises:
        ValueError: naming ``X`` and its shape when it is not (N, 1, 8, 8), or the bad ``canvas``/``noise``.
    """
    X = np.asarray(X)
    if X.ndim != 4 or X.shape[1:] != (1, 8, 8):
        raise ValueError(f"X must have shape (N, 1, 8, 8), got {X.shape}")
    canvas = check_int("canvas", canvas, 8)
    seed = check_int("seed", seed, 0)
    if not noise >= 0:
        raise ValueError(f"noise must be >= 0, got {noise!r}")
    rng = np.random.default_rng(seed)
    n = len(X)
    positions = rng.integers(0, canvas - 8 + 1, size=(n, 2))
    out = np.zeros((n, 1, canvas, canvas), np.float32)
    for i, (dy, dx) in enumerate(positions):
        out[i, 0, dy:dy + 8, dx:dx + 8] = X[i, 0]
    if noise:
        out += rng.normal(0.0, noise, size=out.shape).astype(np.float32)
    return out


def get_challenge_data() -> dict:
    """The challenge's training and validation sets (deterministic).

    Returns:
        dict ``X_train`` (1079, 1, 12, 12) float32, ``y_train`` (1079,) int64, ``X_val`` (359, 1, 12, 12),
        ``y_val`` (359,): the train and val digits of the seed-0 60/20/20 split, scattered once each.
    """
    X_train, y_train = load_digits(8, "train", seed=0)
    X_val, y_val = load_digits(8, "val", seed=0)
    return {"X_train": scatter_digits(X_train, _TRAIN_SEED), "y_train": y_train,
            "X_val": scatter_digits(X_val, _VAL_SEED), "y_val": y_val}


def challenge_heldout(seed: int, copies: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """The held-out set: the split's 359 test digits, each scattered ``copies`` times.

    Args:
        seed: the placement and noise seed (the grader's is not published). copies: >= 1.

    Returns:
        (X, y): X (359 * copies, 1, 12, 12) float32, y (359 * copies,) int64.
    """
    copies = check_int("copies", copies, 1)
    X_test, y_test = load_digits(8, "test", seed=0)
    X = np.concatenate([X_test] * copies)
    return scatter_digits(X, seed), np.concatenate([y_test] * copies)
