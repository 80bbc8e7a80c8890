"""Matplotlib figures the course shows. Every function returns a ``matplotlib.figure.Figure``.

Modules: :mod:`.architecture` (per-layer memory/params/FLOPs bars, accuracy-vs-operations
bubble chart), :mod:`.training` (loss and accuracy curves), :mod:`.filters` (first-layer
filter grids, feature-map grids), :mod:`.pictures` (receptive field, im2col).
"""
from . import architecture, filters, pictures, training
from .architecture import *  # noqa: F401,F403
from .filters import *  # noqa: F401,F403
from .pictures import *  # noqa: F401,F403
from .training import *  # noqa: F401,F403

__all__ = architecture.__all__ + training.__all__ + filters.__all__ + pictures.__all__
