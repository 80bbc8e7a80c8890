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

__all__ = ["ReceptiveField"]


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
