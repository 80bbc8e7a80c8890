"""Closed-form costs of single layers, for exercises without a network.

* output size: :func:`conv_output_size` (from :mod:`cnnlab.shapes`), ``(W - F + 2P)/S + 1``;
* parameters: ``C_out x (C_in/groups x K x K) + C_out`` (bias) for a convolution,
  ``out x in + out`` for a fully-connected layer;
* FLOPs, one multiply-add = one FLOP (the lectures' convention):
  ``(C_out x H' x W') x (C_in/groups x K x K)`` and ``in x out``; ``flops="flop"`` doubles them;
* receptive field of a stack of windows: ``1 + L(K - 1)`` for ``L`` stride-1 layers, in general
  the recurrence of :mod:`cnnlab.analysis.receptive`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from ..shapes import check_int, conv_output_size

__all__ = ["conv_output_size", "receptive_field", "StackReceptiveField", "conv_params",
           "conv_flops", "linear_params", "linear_flops", "activation_memory"]


def _factor(flops):
    if flops not in ("mac", "flop"):
        raise ValueError(f"flops must be 'mac' (1 multiply-add = 1 FLOP) or 'flop' (= 2), got {flops!r}")
    return 1 if flops == "mac" else 2


def _kernel(K, name="K"):
    if isinstance(K, (tuple, list)):
        if len(K) != 2:
            raise ValueError(f"{name} must be an int or a pair (K_H, K_W), got {K!r}")
        return check_int(f"{name}[0]", K[0], 1), check_int(f"{name}[1]", K[1], 1)
    k = check_int(name, K, 1)
    return k, k


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
    kh, kw = _kernel(K)
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
    kh, kw = _kernel(K)
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


@dataclass(frozen=True)
class StackReceptiveField:
    """Receptive field of the last layer of a stack, along one axis.

    Attributes:
        size: input pixels one output unit sees.
        jump: input pixels between neighbouring output units (product of strides).
        start: input coordinate of the centre of output unit 0 (pixel ``i`` is centred at ``i``).
        sizes: the size after each layer, in order.
    """

    size: int
    jump: int
    start: float
    sizes: tuple

    def __int__(self):
        return int(self.size)


_KEYS = {"kernel": ("kernel", "kernel_size", "k", "K", "F"), "stride": ("stride", "s", "S"),
         "dilation": ("dilation", "d", "D"), "padding": ("padding", "p", "P", "pad")}


def _scalar(value, what, i):
    if isinstance(value, (tuple, list)):
        if len(set(value)) != 1:
            raise ValueError(f"layers[{i}]: {what} {tuple(value)} is not square; receptive_field "
                             "works on one axis, pass that axis' value")
        value = value[0]
    return value


def _spec(layer, i):
    if isinstance(layer, nn.Module):
        if not hasattr(layer, "kernel_size"):
            raise ValueError(f"layers[{i}]: {type(layer).__name__} has no kernel_size; pass "
                             "convolution or pooling modules, tuples or dicts")
        k = _scalar(layer.kernel_size, "kernel_size", i)
        s = _scalar(layer.stride if layer.stride not in (None, ()) else k, "stride", i)
        d = _scalar(getattr(layer, "dilation", 1), "dilation", i)
        p = getattr(layer, "padding", 0)
        p = 0 if isinstance(p, str) and p == "valid" else p
        if isinstance(p, str):  # "same"
            p = d * (k - 1) // 2
        p = _scalar(p, "padding", i)
    elif isinstance(layer, dict):
        got = {}
        for key, aliases in _KEYS.items():
            found = [a for a in aliases if a in layer]
            got[key] = layer[found[0]] if found else None
        unknown = set(layer) - {a for al in _KEYS.values() for a in al}
        if unknown or got["kernel"] is None:
            raise ValueError(f"layers[{i}]: a dict needs 'kernel' and may have 'stride', "
                             f"'dilation', 'padding'; got keys {sorted(layer)}")
        k, s, d, p = got["kernel"], got["stride"], got["dilation"], got["padding"]
        s = 1 if s is None else s
        d = 1 if d is None else d
        p = 0 if p is None else p
    elif isinstance(layer, (tuple, list)):
        if not 1 <= len(layer) <= 4:
            raise ValueError(f"layers[{i}] must be (kernel[, stride[, dilation[, padding]]]), "
                             f"got {layer!r}")
        k, s, d, p = (tuple(layer) + (1, 1, 0)[len(layer) - 1:])[:4]
    else:
        k, s, d, p = layer, 1, 1, 0
    return (check_int(f"layers[{i}] kernel", k, 1), check_int(f"layers[{i}] stride", s, 1),
            check_int(f"layers[{i}] dilation", d, 1), check_int(f"layers[{i}] padding", p, 0))


def receptive_field(layers) -> StackReceptiveField:
    """Receptive field of a stack of convolution / pooling windows along one axis.

    Uses ``r_out = r_in + (K-1)*D*j_in``, ``j_out = j_in*S``,
    ``start_out = start_in + ((K-1)/2*D - P)*j_in`` from ``r = 1, j = 1, start = 0``; for ``L``
    stride-1 layers of size ``K`` this is the lectures' ``1 + L(K-1)``.

    Args:
        layers: sequence of layer specs, each one of
            - an int ``K`` (stride 1),
            - a tuple ``(K, S)``, ``(K, S, D)`` or ``(K, S, D, P)``,
            - a dict with ``kernel`` and optional ``stride``, ``dilation``, ``padding``,
            - an ``nn.Conv2d`` / ``nn.MaxPool2d`` / ``nn.AvgPool2d`` (square windows).

    Returns:
        :class:`StackReceptiveField` with ``size``, ``jump``, ``start`` and the sizes after
        each layer; ``int(result)`` is the size.

    Example:
        >>> receptive_field([3, 3, 3]).size          # three stacked 3x3 convs
        7
        >>> receptive_field([(11, 4), (3, 2)]).size   # AlexNet conv1 + pool1
        19
    """
    if isinstance(layers, (nn.Module, dict)) or not hasattr(layers, "__iter__"):
        raise ValueError(f"layers must be a sequence of layer specs, got {type(layers).__name__}")
    r, j, start, sizes = 1, 1, 0.0, []
    for i, layer in enumerate(layers):
        k, s, d, p = _spec(layer, i)
        r, start, j = r + (k - 1) * d * j, start + ((k - 1) / 2 * d - p) * j, j * s
        sizes.append(r)
    start = int(start) if float(start).is_integer() else start
    return StackReceptiveField(r, j, start, tuple(sizes))
