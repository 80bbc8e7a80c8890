"""Deterministic seeding and capture/restore of every random number generator."""
from __future__ import annotations

import os
import random

import numpy as np

__all__ = ["seed_everything", "get_rng_state", "set_rng_state"]


def seed_everything(seed: int = 0, deterministic: bool = False) -> int:
    """Seed Python's ``random``, numpy's global generator and torch (CPU and all GPUs).

    Args:
        seed: the seed (int).
        deterministic: also ask torch for deterministic algorithms (``warn_only``) and cuDNN
            for deterministic, non-benchmarked kernels: slower on a GPU, bit-reproducible.

    Returns:
        the seed.
    """
    import torch

    seed = int(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    return seed


def get_rng_state() -> dict:
    """Snapshot of the Python, numpy, torch and CUDA generators, storable with
    ``torch.save`` and loadable with ``torch.load(weights_only=True)`` (only tensors, ints,
    floats, strings, lists and tuples)."""
    import torch

    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore generators from :func:`get_rng_state`'s snapshot."""
    import torch

    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
