"""PyTorch reference architectures of the course, with torchvision-compatible parameter names.

    >>> from cnnlab import models
    >>> net = models.create("resnet18", num_classes=10)
    >>> "vgg16" in models.list_models()
    True

Families, one module each: :mod:`.lenet`, :mod:`.alexnet`, :mod:`.zfnet`, :mod:`.vgg`,
:mod:`.googlenet`, :mod:`.resnet` (ResNet and ResNeXt), :mod:`.mobilenet` (v1 and v2),
:mod:`.densenet`, :mod:`.cifar` (small-input variants for 32x32 images); :mod:`.weights` loads
torchvision-format weight files from a local path; :mod:`.local` is the locally-connected layer
as a module and :mod:`.convolutionalize` turns a fully connected head into convolutions.
"""
from . import (alexnet, cifar, convolutionalize, densenet, googlenet, lenet, local, mobilenet, resnet, vgg,
               weights, zfnet)
from .alexnet import *  # noqa: F401,F403
from .cifar import *  # noqa: F401,F403
from .convolutionalize import *  # noqa: F401,F403
from .densenet import *  # noqa: F401,F403
from .googlenet import *  # noqa: F401,F403
from .lenet import *  # noqa: F401,F403
from .local import *  # noqa: F401,F403
from .mobilenet import *  # noqa: F401,F403
from .registry import create, list_models, register_model
from .resnet import *  # noqa: F401,F403
from .vgg import *  # noqa: F401,F403
from .weights import *  # noqa: F401,F403
from .zfnet import *  # noqa: F401,F403

import importlib as _importlib

_FAMILIES = ("lenet", "alexnet", "zfnet", "vgg", "googlenet", "resnet", "mobilenet", "densenet",
             "cifar", "weights", "local", "convolutionalize")
# Builders such as ``alexnet`` share their module's name and shadow it after the star import,
# so the family modules are looked up in sys.modules.
__all__ = ["create", "list_models", "register_model"] + [
    n for _f in _FAMILIES for n in _importlib.import_module(f"{__name__}.{_f}").__all__]
