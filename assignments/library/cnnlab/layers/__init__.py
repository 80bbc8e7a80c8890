"""Numpy CNN layers as CS231n-style forward/backward pairs.

Every layer is a pair ``out, cache = <layer>_forward(...)`` and
``grads = <layer>_backward(dout, cache)``; arrays are NCHW, convolution weights (F, C, HH, WW);
float32 and float64 both work and the output dtype follows the input.

Modules: :mod:`.basic` (affine, ReLU, softmax loss), :mod:`.conv` (naive and im2col
convolution), :mod:`.pool` (max / average pooling, naive and fast), :mod:`.batchnorm`
(batch and spatial batch normalization), :mod:`.fused` (conv-relu, conv-relu-pool,
conv-bn-relu sandwiches), :mod:`.local` (locally-connected layer), :mod:`.lp_pool` (L2-norm
pooling), :mod:`.norm` (layer and group normalization).
"""
from ..shapes import conv_output_size
from .basic import *  # noqa: F401,F403
from .batchnorm import *  # noqa: F401,F403
from .conv import *  # noqa: F401,F403
from .fused import *  # noqa: F401,F403
from .local import *  # noqa: F401,F403
from .lp_pool import *  # noqa: F401,F403
from .norm import *  # noqa: F401,F403
from .pool import *  # noqa: F401,F403
from . import basic, batchnorm, conv, fused, local, lp_pool, norm, pool

__all__ = (["conv_output_size"] + basic.__all__ + conv.__all__ + pool.__all__ + batchnorm.__all__
           + fused.__all__ + local.__all__ + lp_pool.__all__ + norm.__all__)
