"""Model analysis: per-layer shapes, memory, parameters, FLOPs and receptive fields.

    >>> import torch.nn as nn
    >>> from cnnlab import analysis
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
    >>> s = analysis.summarize(net, (3, 32, 32))
    >>> [r.rf for r in s]
    [3, 3, 4]
    >>> analysis.receptive_field([3, 3, 3]).size
    7

Modules: :mod:`.summary` (:func:`summarize`: walks the network), :mod:`.table` (the per-layer
table it returns and how it prints), :mod:`.receptive` (the
receptive-field recurrence), :mod:`.formulas` (closed-form costs of single layers),
:mod:`.memory` (:func:`training_memory`), :mod:`.zoo` (cached costs of registered models),
:mod:`.sliding` (:func:`sliding_window_cost`: sliding windows vs a convolutionalized pass).
"""
from . import formulas, memory, receptive, sliding, summary, table, zoo
from .formulas import *  # noqa: F401,F403
from .memory import *  # noqa: F401,F403
from .receptive import *  # noqa: F401,F403
from .sliding import *  # noqa: F401,F403
from .summary import *  # noqa: F401,F403
from .zoo import *  # noqa: F401,F403

__all__ = (summary.__all__ + receptive.__all__ + formulas.__all__ + memory.__all__ + zoo.__all__
           + sliding.__all__)
