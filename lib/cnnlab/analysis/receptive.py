"""Receptive-field bookkeeping: the size ``r``, jump ``j`` and start of a unit's window in input pixels.

For one axis, a layer with kernel ``k``, stride ``s``, padding ``p`` and dilation ``d`` maps the
receptive field of its input units to that of its output units by the standard recurrence

    r_out     = r_in + (k - 1) * d * j_in          (size: how many input pixels one unit sees)
    j_out     = j_in * s                           (jump: input pixels between neighbouring units)
    start_out = start_in + ((k - 1) / 2 * d - p) * j_in   (centre of the first unit's window)

starting from the input image itself: ``r = 1, j = 1, start = 0`` (pixel ``i`` has its centre at
coordinate ``i``). Output unit ``i`` then sees the input pixels
``start + i*j - (r-1)/2 ... start + i*j + (r-1)/2``. Sizes are the theoretical extent: they are not
clipped to the image, so they can exceed it (the window runs into the zero padding).

A *global* receptive field (after flattening or global pooling, every unit depends on every pixel
the last spatial map saw) is stored with ``jump = 0`` and no spatial shape.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from ..shapes import check_int, check_pair

__all__ = ["Window", "layer_window", "StackReceptiveField", "receptive_field", "ReceptiveField"]


class Window(NamedTuple):
    """One convolution or pooling window in the order of ``nn.Conv2d``'s arguments; each field an
    ``(H, W)`` pair of ints."""
    kernel: tuple
    stride: tuple
    padding: tuple
    dilation: tuple


_KEYS = {"kernel": ("kernel", "kernel_size", "k", "K", "F"), "stride": ("stride", "s", "S"),
         "padding": ("padding", "pad", "p", "P"), "dilation": ("dilation", "d", "D")}


def layer_window(layer, index: int = 0) -> Window:
    """The window of one layer, however it is described -- the one description every
    receptive-field path of the course reads (:func:`receptive_field`, the per-layer table of
    :func:`cnnlab.analysis.summarize` uses the modules themselves, and the pictures of
    :mod:`cnnlab.plots.pictures`).

    Args:
        layer: an int ``K``; a tuple ``(kernel[, stride[, padding[, dilation]]])`` in the order of
            ``nn.Conv2d``'s arguments, each an int or an ``(h, w)`` pair; a dict with ``kernel``
            (or ``kernel_size``) and optional ``stride``, ``padding`` (or ``pad``), ``dilation``;
            or an ``nn.Conv2d`` / ``nn.MaxPool2d`` / ``nn.AvgPool2d`` module. Defaults: stride 1,
            padding 0, dilation 1 (a pooling module's stride defaults to its kernel).
        index: the layer's position in its stack, for messages (``layers[3] stride ...``).

    Returns:
        :class:`Window` of ``(H, W)`` pairs.

    Raises:
        ValueError: naming ``layers[index]``, the entry and the rule (kernel, stride, dilation
        >= 1, padding >= 0; known dict keys; at most four tuple entries).
    """
    where = f"layers[{index}]"
    if hasattr(layer, "kernel_size") and not isinstance(layer, (dict, tuple, list)):
        k = layer.kernel_size
        s = layer.stride if layer.stride not in (None, ()) else k
        d = getattr(layer, "dilation", 1)
        p = getattr(layer, "padding", 0)
        if isinstance(p, str):  # "valid" or "same"
            kp, dp = check_pair(f"{where} kernel", k, 1), check_pair(f"{where} dilation", d, 1)
            p = (0, 0) if p == "valid" else tuple(dd * (kk - 1) // 2 for kk, dd in zip(kp, dp))
        values = (k, s, p, d)
    elif isinstance(layer, dict):
        got = {}
        for key, aliases in _KEYS.items():
            found = [a for a in aliases if a in layer]
            got[key] = layer[found[0]] if found else None
        unknown = set(layer) - {a for al in _KEYS.values() for a in al}
        if unknown or got["kernel"] is None:
            raise ValueError(f"{where}: a dict needs 'kernel' (or 'kernel_size') and may have 'stride', "
                             f"'padding' (or 'pad'), 'dilation'; got keys {sorted(layer)}")
        values = (got["kernel"], 1 if got["stride"] is None else got["stride"],
                  0 if got["padding"] is None else got["padding"], 1 if got["dilation"] is None else got["dilation"])
    elif isinstance(layer, (tuple, list)):
        if not 1 <= len(layer) <= 4:
            raise ValueError(f"{where} must be (kernel[, stride[, padding[, dilation]]]), the order of "
                             f"nn.Conv2d's arguments; got {layer!r}")
        values = (tuple(layer) + (1, 0, 1)[len(layer) - 1:])[:4]
    elif hasattr(layer, "__index__"):
        values = (layer, 1, 0, 1)
    else:
        raise ValueError(f"{where} must be an int, a tuple (kernel, stride, padding, dilation), a dict or a "
                         f"convolution / pooling module; got {type(layer).__name__}")
    names, minima = Window._fields, (1, 1, 0, 1)
    return Window(*(check_pair(f"{where} {n}", v, m) for n, v, m in zip(names, values, minima)))


def _one_axis(window: Window, index: int) -> tuple:
    """(k, s, p, d) of a square window, or ValueError naming the layer and the entry."""
    out = []
    for name, pair in zip(Window._fields, window):
        if pair[0] != pair[1]:
            raise ValueError(f"layers[{index}]: {name} {tuple(pair)} is not square; receptive_field "
                             "works on one axis, pass that axis' value")
        out.append(pair[0])
    return tuple(out)


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


def receptive_field(layers) -> StackReceptiveField:
    """Receptive field of a stack of convolution / pooling windows along one axis.

    Uses ``r_out = r_in + (K-1)*D*j_in``, ``j_out = j_in*S``,
    ``start_out = start_in + ((K-1)/2*D - P)*j_in`` from ``r = 1, j = 1, start = 0``; for ``L``
    stride-1 layers of size ``K`` this is the lectures' ``1 + L(K-1)``.

    Args:
        layers: sequence of layer specs, each one of
            - an int ``K`` (stride 1),
            - a tuple ``(K, S)``, ``(K, S, P)`` or ``(K, S, P, D)`` -- the order of ``nn.Conv2d``'s
              arguments (kernel, stride, padding, dilation),
            - a dict with ``kernel`` and optional ``stride``, ``padding``, ``dilation``,
            - an ``nn.Conv2d`` / ``nn.MaxPool2d`` / ``nn.AvgPool2d`` (square windows);
            see :func:`layer_window`.

    Returns:
        :class:`StackReceptiveField` with ``size``, ``jump``, ``start`` and the sizes after
        each layer; ``int(result)`` is the size.

    Example:
        >>> receptive_field([3, 3, 3]).size          # three stacked 3x3 convs
        7
        >>> receptive_field([(11, 4), (3, 2)]).size   # AlexNet conv1 + pool1
        19
    """
    if isinstance(layers, dict) or hasattr(layers, "kernel_size") or not hasattr(layers, "__iter__"):
        raise ValueError(f"layers must be a sequence of layer specs, got {type(layers).__name__}")
    r, j, start, sizes = 1, 1, 0.0, []
    for i, layer in enumerate(layers):
        k, s, p, d = _one_axis(layer_window(layer, i), i)
        r, start, j = r + (k - 1) * d * j, start + ((k - 1) / 2 * d - p) * j, j * s
        sizes.append(r)
    start = int(start) if float(start).is_integer() else start
    return StackReceptiveField(r, j, start, tuple(sizes))


def _clean(x):
    """Return ``x`` as an int when it is integral (7.0 -> 7), else as a float."""
    x = float(x)
    return int(x) if x.is_integer() else x


@dataclass(frozen=True)
class ReceptiveField:
    """Receptive field of the units of one activation map, per spatial axis ``(H, W)``.

    Attributes:
        size: ``(r_H, r_W)`` input pixels seen by one unit (int, or float after a non-divisible
            adaptive pooling).
        jump: ``(j_H, j_W)`` input pixels between neighbouring units (the product of the strides);
            ``0`` for a global field (every unit sees the same region).
        start: ``(start_H, start_W)`` input coordinate of the centre of unit 0's window (may be
            negative or a half pixel).
        spatial: ``(H, W)`` of the map this describes, ``None`` for flattened / global features.
        exact: ``False`` when the value is an upper bound (branches with different jumps were
            merged, or an adaptive pooling with uneven windows was crossed).
    """

    size: tuple
    jump: tuple
    start: tuple
    spatial: tuple | None
    exact: bool = True

    @classmethod
    def identity(cls, H: int, W: int) -> "ReceptiveField":
        """The input image itself: each pixel sees itself (r = 1, j = 1, start = 0)."""
        return cls((1, 1), (1, 1), (0, 0), (int(H), int(W)))

    # -- scalar views (square kernels give equal values on both axes) -------------------------
    @staticmethod
    def _scalar(pair):
        return pair[0] if pair[0] == pair[1] else tuple(pair)

    @property
    def rf(self):
        """Size as one number when ``r_H == r_W``, else the pair."""
        return self._scalar(self.size)

    @property
    def stride(self):
        """Jump as one number when equal on both axes, else the pair."""
        return self._scalar(self.jump)

    @property
    def offset(self):
        """Start as one number when equal on both axes, else the pair."""
        return self._scalar(self.start)

    @property
    def is_global(self) -> bool:
        """True for flattened / globally pooled features."""
        return self.spatial is None

    # -- transforms ----------------------------------------------------------------------------
    def window(self, kernel, stride, padding, dilation, out_spatial) -> "ReceptiveField":
        """Apply a sliding window (convolution or pooling); arguments are ``(H, W)`` pairs."""
        size, jump, start = [], [], []
        for a in range(2):
            r, j, s = self.size[a], self.jump[a], self.start[a]
            k, st, p, d = kernel[a], stride[a], padding[a], dilation[a]
            size.append(_clean(r + (k - 1) * d * j))
            jump.append(_clean(j * st))
            start.append(_clean(s + ((k - 1) / 2 * d - p) * j))
        return ReceptiveField(tuple(size), tuple(jump), tuple(start), tuple(out_spatial), self.exact)

    def adaptive(self, out_spatial) -> "ReceptiveField":
        """Adaptive pooling from ``self.spatial`` to ``out_spatial``.

        Window ``i`` covers input indices ``floor(i*In/Out) .. ceil((i+1)*In/Out) - 1``. When
        ``In`` is a multiple of ``Out`` this is an ordinary window (kernel = stride = In/Out) and
        exact; otherwise the largest window and the mean jump ``In/Out`` give an upper bound.
        """
        if self.spatial is None:
            return ReceptiveField(self.size, self.jump, self.start, tuple(out_spatial), self.exact)
        size, jump, start, exact = [], [], [], self.exact
        for a in range(2):
            n_in, n_out = self.spatial[a], out_spatial[a]
            r, j, s = self.size[a], self.jump[a], self.start[a]
            widths = [math.ceil((i + 1) * n_in / n_out) - (i * n_in) // n_out for i in range(n_out)]
            k = max(widths)
            end0 = math.ceil(n_in / n_out) - 1  # last input index of window 0
            if n_in % n_out:
                exact = False
            size.append(_clean(r + (k - 1) * j))
            jump.append(_clean(j * n_in / n_out))
            start.append(_clean(s + end0 / 2 * j))
        return ReceptiveField(tuple(size), tuple(jump), tuple(start), tuple(out_spatial), exact)

    def shifted(self, pad_top: int, pad_left: int, out_spatial) -> "ReceptiveField":
        """Explicit padding (``F.pad``): index 0 moves ``pad`` units up/left."""
        start = (_clean(self.start[0] - pad_top * self.jump[0]),
                 _clean(self.start[1] - pad_left * self.jump[1]))
        return ReceptiveField(self.size, self.jump, start, tuple(out_spatial), self.exact)

    def globalized(self) -> "ReceptiveField":
        """The union over all positions of the map: what a unit depending on all of them sees."""
        if self.spatial is None:
            return self
        size, start = [], []
        for a in range(2):
            n, r, j, s = self.spatial[a], self.size[a], self.jump[a], self.start[a]
            size.append(_clean(r + (n - 1) * j))
            start.append(_clean(s + (n - 1) / 2 * j))
        return ReceptiveField(tuple(size), (0, 0), tuple(start), None, self.exact)

    @staticmethod
    def union(fields, out_spatial) -> "ReceptiveField":
        """Merge branches (residual add, concatenation, any element-wise op of several maps).

        For each axis, unit ``i`` of the result sees the union of the branches' windows at ``i``.
        With equal jumps this is exact: the interval from the leftmost left edge to the rightmost
        right edge. With different jumps the size is the largest union over the first and last
        position (an upper bound) and ``exact`` is False.
        """
        fields = list(fields)
        if out_spatial is None:
            fields = [f.globalized() for f in fields]
        if len(fields) == 1:
            f = fields[0]
            return ReceptiveField(f.size, f.jump, f.start,
                                  None if out_spatial is None else tuple(out_spatial), f.exact)
        size, jump, start = [], [], []
        exact = all(f.exact for f in fields)
        for a in range(2):
            n = 1 if out_spatial is None else out_spatial[a]
            jumps = {f.jump[a] for f in fields}
            if len(jumps) > 1:
                exact = False

            def bounds(i):
                left = min(f.start[a] + i * f.jump[a] - (f.size[a] - 1) / 2 for f in fields)
                right = max(f.start[a] + i * f.jump[a] + (f.size[a] - 1) / 2 for f in fields)
                return left, right

            l0, r0 = bounds(0)
            lN, rN = bounds(n - 1)
            size.append(_clean(max(r0 - l0, rN - lN) + 1))
            jump.append(_clean(max(jumps)))
            start.append(_clean((l0 + r0) / 2))
        return ReceptiveField(tuple(size), tuple(jump), tuple(start),
                              None if out_spatial is None else tuple(out_spatial), exact)
