"""The cost of sliding-window evaluation against one pass of a convolutionalized network.

Evaluating a classifier on every crop of a large image repeats the convolutional features of the
overlapping crops; :func:`cnnlab.models.convolutionalize` turns the head into convolutions and
computes them once. :func:`sliding_window_cost` counts both ways with :func:`summarize`.
"""
from __future__ import annotations

import torch.nn as nn

from ..models.convolutionalize import head_window, window_grid
from ..shapes import check_pair
from .summary import summarize

__all__ = ["sliding_window_cost"]


def sliding_window_cost(model: nn.Module, image_size, window=224, stride: int = 32,
                        in_channels: int = 3) -> dict:
    """Multiply-adds of evaluating every window separately vs one convolutionalized pass.

    Counted with :func:`cnnlab.analysis.summarize` on the meta device (shapes only, instant;
    1 multiply-add = 1 FLOP, conv and linear layers only). The convolutionalized pass costs the
    features of the whole image once plus the head at every score-map position:
    ``head = sum(in_features * out_features)`` of the Linear layers, as 1x1-equivalent work per
    position (the k x k convolution does ``C*k*k*out`` per position, the same as the Linear).

    Args:
        model: the original network (cnnlab VGG/AlexNet layout, see :func:`convolutionalize`).
        image_size: H = W (int) or (H, W) of the large image.
        window: the training size (int or pair); stride: pixels between windows (int >= 1).
        in_channels: channels of the image.

    Returns:
        dict with ``windows`` (nh, nw), ``num_windows``, ``per_window`` (MACs of one window),
        ``sliding`` (``num_windows * per_window``), ``features`` (MACs of the features on the
        large image), ``score_map`` (its (h, w)), ``head`` (MACs of the head per position),
        ``convolutional`` (``features + h*w*head``), ``speedup`` (``sliding / convolutional``).

    Example (vgg16 on a 384x384 image: 36 windows, about 11x cheaper in one pass)::

        >>> from cnnlab.models import create
        >>> with torch.device("meta"):
        ...     c = sliding_window_cost(create("vgg16"), 384)
        >>> c["windows"], round(c["speedup"], 1)
        ((6, 6), 11.2)
    """
    kh, kw = head_window(model)
    H, W = check_pair("image_size", image_size)
    wh, ww, s, nh, nw = window_grid(H, W, window, stride)
    per_window = summarize(model, (in_channels, wh, ww)).total_flops
    feats = summarize(model.features, (in_channels, H, W))
    Hf, Wf = feats.rows[-1].output_shape[2:] if feats.rows else (H, W)
    if Hf < kh or Wf < kw:
        raise ValueError(f"image {H}x{W} gives a {Hf}x{Wf} feature map, smaller than the {kh}x{kw} "
                         f"the first fully connected layer needs")
    positions = (Hf - kh + 1, Wf - kw + 1)
    head = sum(m.in_features * m.out_features for m in model.classifier if isinstance(m, nn.Linear))
    conv = feats.total_flops + positions[0] * positions[1] * head
    sliding = nh * nw * per_window
    return {"windows": (nh, nw), "num_windows": nh * nw, "per_window": per_window,
            "sliding": sliding, "features": feats.total_flops, "score_map": positions,
            "head": head, "convolutional": conv, "speedup": sliding / conv}
