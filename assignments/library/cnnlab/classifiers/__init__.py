"""Numpy convolutional classifiers trained with :class:`cnnlab.solver.Solver`.

Every classifier has ``params`` (a dict of numpy arrays) and ``loss(X, y=None)``: scores
(N, num_classes) without labels (test mode), ``(loss, grads)`` with labels (train mode).

- :class:`.cnn.ThreeLayerConvNet`: conv - relu - 2x2 max pool - affine - relu - affine - softmax
- :class:`.convnet.ConvNet`: ``[conv-(bn)-relu-(pool)] x N - [affine-(bn)-relu] x M - affine - softmax``
"""
from . import cnn, convnet
from .cnn import *  # noqa: F401,F403
from .convnet import *  # noqa: F401,F403

__all__ = cnn.__all__ + convnet.__all__
