"""The scale knob applied to training lengths and data-set sizes (see :func:`cnnlab.scale`).

``CNNLAB_SCALE=1`` (the default) is what CI runs on a CPU; ``CNNLAB_SCALE=10`` on a GPU trains
ten times longer on (up to) ten times more data.
"""
from __future__ import annotations

from .. import scale

__all__ = ["epochs_for", "size_for"]


def epochs_for(base: int, minimum: int = 1, maximum: int | None = None) -> int:
    """``round(base * cnnlab.scale())`` epochs, clipped to ``[minimum, maximum]``."""
    n = max(int(minimum), int(round(base * scale())))
    return n if maximum is None else min(n, int(maximum))


def size_for(base: int, available: int | None = None, minimum: int = 1) -> int:
    """``round(base * cnnlab.scale())`` examples, at least ``minimum``, at most ``available``."""
    n = max(int(minimum), int(round(base * scale())))
    return n if available is None else min(n, int(available))
