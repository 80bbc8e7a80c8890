"""Offline data sets and the plumbing around them.

- :mod:`.digits`     scikit-learn's handwritten digits at 8x8, 16x16 or 32x32
- :mod:`.synthetic`  generated shapes, oriented bars/edges and colour blobs
- :mod:`.challenge`  the open challenge's scattered, noisy digits (train/val and the held-out set)
- :mod:`.cifar10`    CIFAR-10 from a local ``cifar-10-batches-py`` folder (never downloaded)
- :mod:`.splits`     seeded (stratified) splits, per-channel normalization from the train split
- :mod:`.transforms` random flip / random crop, numpy (batch) and torch (per image)
- :mod:`.loaders`    ``ArrayDataset`` and ``make_loaders``
- :mod:`.paths`      ``data_root``: ``root`` argument, ``$CNNLAB_DATA`` or ``~/.cnnlab/data``

Every loader returns NCHW float32 images and int64 labels, either as a CS231n-style dict
(``X_train, y_train, X_val, y_val, X_test, y_test``) for the numpy solver or as DataLoaders.
"""
from . import challenge, cifar10, digits, loaders, paths, splits, synthetic, transforms
from .challenge import *  # noqa: F401,F403
from .cifar10 import *  # noqa: F401,F403
from .digits import *  # noqa: F401,F403
from .loaders import *  # noqa: F401,F403
from .paths import *  # noqa: F401,F403
from .splits import *  # noqa: F401,F403
from .synthetic import *  # noqa: F401,F403
from .transforms import *  # noqa: F401,F403

__all__ = (challenge.__all__ + cifar10.__all__ + digits.__all__ + loaders.__all__ + paths.__all__ + splits.__all__
           + synthetic.__all__ + transforms.__all__)
