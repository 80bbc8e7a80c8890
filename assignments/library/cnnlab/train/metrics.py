"""Classification metrics: top-k accuracy."""
from __future__ import annotations

__all__ = ["topk_correct", "accuracy"]


def topk_correct(output, target, topk=(1,)) -> list[int]:
    """Number of samples whose true class is among the ``k`` highest scores, for each ``k``.

    Args:
        output: (N, num_classes) float tensor of scores (logits or probabilities).
        target: (N,) int64 tensor of class indices.
        topk: the k values, each 1 <= k <= num_classes.

    Returns:
        list of ints, one per k. Ties are broken by ``torch.topk``'s order.
    """
    import torch

    if output.ndim != 2:
        raise ValueError(f"output must be 2-D (N, num_classes), got shape {tuple(output.shape)}")
    if target.ndim != 1 or target.shape[0] != output.shape[0]:
        raise ValueError(f"target must be 1-D with N={output.shape[0]} entries, got shape {tuple(target.shape)}")
    ks = [int(k) for k in topk]
    num_classes = output.shape[1]
    for k in ks:
        if not 1 <= k <= num_classes:
            raise ValueError(f"topk values must be in 1..num_classes={num_classes}, got {k}")
    with torch.no_grad():
        pred = output.topk(max(ks), dim=1).indices  # (N, maxk)
        hit = pred.eq(target.reshape(-1, 1))
        return [int(hit[:, :k].any(dim=1).sum()) for k in ks]


def accuracy(output, target, topk=(1,)):
    """Top-k accuracy as fractions in [0, 1].

    Args:
        output: (N, num_classes) scores; target: (N,) int64 labels; topk: an int or a tuple of ints.

    Returns:
        a float for an int ``topk``, else a tuple of floats (one per k), e.g.
        ``top1, top5 = accuracy(logits, y, topk=(1, 5))``.
    """
    single = isinstance(topk, int)
    ks = (topk,) if single else tuple(topk)
    n = max(int(target.shape[0]), 1)
    values = tuple(c / n for c in topk_correct(output, target, ks))
    return values[0] if single else values
