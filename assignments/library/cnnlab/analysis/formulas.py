"""Closed-form costs of single layers, for exercises without a network.

* output size: :func:`conv_output_size` (from :mod:`cnnlab.shapes`), ``(W - F + 2P)/S + 1``;
* parameters: ``C_out x (C_in/groups x K x K) + C_out`` (bias) for a convolution,
  ``out x in + out`` for a fully-connected layer;
* FLOPs, one multiply-add = one FLOP (the lectures' convention):
  ``(C_out x H' x W') x (C_in/groups x K x K)`` and ``in x out``; ``flops="flop"`` doubles them;
(the receptive field of a stack of windows is :func:`cnnlab.analysis.receptive.receptive_field`).
"""
from __future__ import annotations

import math

import torch

from ..shapes import check_int, check_pair, conv_output_size

__all__ = ["conv_output_size", "conv_params", "conv_flops", "linear_params", "linear_flops",
           "activation_memory"]


def _factor(flops):
    if flops not in ("mac", "flop"):
        raise ValueError(f"flops must be 'mac' (1 multiply-add = 1 FLOP) or 'flop' (= 2), got {flops!r}")
    return 1 if flops == "mac" else 2


def _groups(C_in, C_out, groups):
    C_in = check_int("C_in", C_in, 1)
    C_out = check_int("C_out", C_out, 1)
    groups = check_int("groups", groups, 1)
    if C_in % groups or C_out % groups:
        raise ValueError(f"groups={groups} must divide both C_in={C_in} and C_out={C_out}")
    return C_in, C_out, groups


def conv_params(C_in: int, C_out: int, K, groups: int = 1, bias: bool = True) -> int:
    """Learnable parameters of a convolution: ``C_out * (C_in/groups) * K_H * K_W (+ C_out)``.

    Args:
        C_in, C_out: input / output channels; ``groups`` must divide both.
        K: kernel size, int or ``(K_H, K_W)``.
        groups: 1 for an ordinary convolution, ``C_in`` for a depthwise one.
        bias: whether each filter has a bias.

    Returns:
        int. Example: AlexNet conv1 ``conv_params(3, 96, 11) == 34944``.
    """
    C_in, C_out, groups = _groups(C_in, C_out, groups)
    kh, kw = check_pair("K", K)
    return C_out * (C_in // groups) * kh * kw + (C_out if bias else 0)


def conv_flops(C_in: int, C_out: int, K, H_out: int, W_out: int, groups: int = 1,
               flops: str = "mac") -> int:
    """FLOPs of a convolution for one image: ``(C_out * H_out * W_out) * (C_in/groups * K_H * K_W)``.

    One multiply-add counts as one FLOP (``flops="mac"``, the lectures' convention) or two
    (``flops="flop"``); the bias is not counted.

    Returns:
        int. Example: AlexNet conv1 ``conv_flops(3, 96, 11, 55, 55) == 105_415_200``.
    """
    C_in, C_out, groups = _groups(C_in, C_out, groups)
    kh, kw = check_pair("K", K)
    H_out = check_int("H_out", H_out, 1)
    W_out = check_int("W_out", W_out, 1)
    return _factor(flops) * C_out * H_out * W_out * (C_in // groups) * kh * kw


def linear_params(in_features: int, out_features: int, bias: bool = True) -> int:
    """Parameters of a fully-connected layer: ``out * in (+ out)``."""
    i = check_int("in_features", in_features, 1)
    o = check_int("out_features", out_features, 1)
    return o * i + (o if bias else 0)


def linear_flops(in_features: int, out_features: int, flops: str = "mac") -> int:
    """FLOPs of a fully-connected layer for one input vector: ``in * out`` multiply-adds."""
    i = check_int("in_features", in_features, 1)
    o = check_int("out_features", out_features, 1)
    return _factor(flops) * i * o


def activation_memory(shape, dtype: torch.dtype = torch.float32) -> int:
    """Bytes of an activation tensor: ``prod(shape) * element size`` (4 for float32).

    Example: AlexNet conv1 output ``activation_memory((96, 55, 55)) == 1_161_600``.
    """
    if not isinstance(shape, (tuple, list, torch.Size)) or len(shape) == 0:
        raise ValueError(f"shape must be a non-empty tuple of ints, got {shape!r}")
    dims = [check_int(f"shape[{i}]", d, 1) for i, d in enumerate(shape)]
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"dtype must be a torch.dtype, got {dtype!r}")
    return math.prod(dims) * torch.empty((), dtype=dtype).element_size()


