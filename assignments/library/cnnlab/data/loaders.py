"""torch ``Dataset``/``DataLoader`` helpers over numpy arrays."""
from __future__ import annotations

import numpy as np

from .splits import SPLITS, check_images_labels
from .transforms import Compose, RandomCrop, RandomHorizontalFlip

__all__ = ["ArrayDataset", "make_loaders"]


class ArrayDataset:
    """A map-style Dataset over images ``X`` (N, C, H, W) and labels ``y`` (N,).

    ``ds[i]`` is ``(x, y)``: x a float32 tensor (C, H, W) (after ``transform``), y an int64
    scalar tensor. The arrays are shared, not copied.
    """

    def __init__(self, X: np.ndarray, y: np.ndarray, transform=None):
        check_images_labels(X, y)
        self.X = np.ascontiguousarray(X, dtype=np.float32)
        self.y = np.asarray(y, dtype=np.int64)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index):
        import torch

        x = torch.from_numpy(self.X[index])
        if self.transform is not None:
            x = self.transform(x)
        return x, torch.tensor(self.y[index])


def make_loaders(data: dict, batch_size: int = 64, *, augment: bool = False, padding: int = 4,
                 flip: bool = True, seed: int = 0, eval_batch_size: int | None = None, num_workers: int = 0,
                 drop_last: bool = False) -> dict:
    """DataLoaders for a split dict such as :func:`cnnlab.data.get_digits_data` returns.

    The training loader shuffles with its own ``torch.Generator`` seeded by ``seed`` (saved and
    restored by :mod:`cnnlab.train` checkpoints); with ``augment=True`` its images are randomly
    shifted (:class:`RandomCrop` with ``padding``) and, if ``flip``, mirrored (do not flip
    digits). Validation and test loaders are neither shuffled nor augmented.

    Args:
        data: dict with ``X_train``/``y_train`` and optionally ``X_val``/``y_val``,
            ``X_test``/``y_test`` (numpy, NCHW float32 / int64).
        batch_size: training batch size; ``eval_batch_size`` (default 4x) for the others.

    Returns:
        dict ``{"train": DataLoader, "val": ..., "test": ...}`` with a key for each split present.
    """
    import torch
    from torch.utils.data import DataLoader

    if "X_train" not in data:
        raise ValueError(f"data must contain X_train and y_train, got keys {sorted(data)}")
    transform = None
    if augment:
        ops = [RandomCrop(padding=padding)] + ([RandomHorizontalFlip()] if flip else [])
        transform = Compose(ops)
    gen = torch.Generator()
    gen.manual_seed(seed)
    eval_batch_size = eval_batch_size or 4 * batch_size
    loaders = {}
    for split in SPLITS:
        if f"X_{split}" not in data or len(data[f"y_{split}"]) == 0:
            continue
        train = split == "train"
        ds = ArrayDataset(data[f"X_{split}"], data[f"y_{split}"], transform if train else None)
        loaders[split] = DataLoader(ds, batch_size=batch_size if train else eval_batch_size, shuffle=train,
                                    generator=gen if train else None, num_workers=num_workers,
                                    drop_last=drop_last and train)
    return loaders
