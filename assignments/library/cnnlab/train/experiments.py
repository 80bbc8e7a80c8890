"""Small, CPU-sized experiments the notebooks and tests run: a tiny CNN on the digits, with
and without BatchNorm.

Numbers measured on the development machine (shared 2-core CPU) are in the project README.
"""
from __future__ import annotations

import time
from collections import OrderedDict

__all__ = ["small_cnn", "digits_run", "bn_comparison"]


def small_cnn(in_channels: int = 1, num_classes: int = 10, *, width: int = 16, batchnorm: bool = True):
    """A two-stage conv net for small images (8x8 and up): ``[conv3x3 - (BN) - ReLU - maxpool2] x 2``,
    global average pooling, linear classifier ``fc``.

    Input (N, in_channels, H, W) float32 with H, W >= 4; output (N, num_classes) logits.
    Parameter names: ``features.*`` (the body) and ``fc.*`` (the head), so
    ``freeze(model, except_=("fc",))`` works.
    """
    import torch.nn as nn

    def stage(cin, cout):
        layers = [nn.Conv2d(cin, cout, 3, padding=1, bias=not batchnorm)]
        if batchnorm:
            layers.append(nn.BatchNorm2d(cout))
        layers += [nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        return layers

    features = nn.Sequential(*stage(in_channels, width), *stage(width, 2 * width))
    return nn.Sequential(OrderedDict([
        ("features", features),
        ("pool", nn.AdaptiveAvgPool2d(1)),
        ("flatten", nn.Flatten()),
        ("fc", nn.Linear(2 * width, num_classes)),
    ]))


def digits_run(size: int = 16, epochs: int = 10, *, batchnorm: bool = True, seed: int = 0, lr: float = 0.05,
               optimizer: str = "sgd", width: int = 16, batch_size: int = 64, threads: int | None = None) -> dict:
    """Train :func:`small_cnn` on the digits (60/20/20 split) on the CPU and time it.

    Args:
        size: image size (8, 16 or 32). threads: ``torch.set_num_threads`` for the run
            (restored afterwards).

    Returns:
        dict ``{"history": ..., "val_acc": final validation accuracy, "test_acc": ..., "seconds":
        wall time of the training loop, "epochs": ...}``.
    """
    import torch

    from ..data.digits import get_digits_data
    from ..data.loaders import make_loaders
    from .seed import seed_everything
    from .trainer import Trainer

    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        data = get_digits_data(size, seed=seed)
        seed_everything(seed)
        model = small_cnn(1, 10, width=width, batchnorm=batchnorm)
        loaders = make_loaders(data, batch_size=batch_size, seed=seed)
        trainer = Trainer(model, optimizer=optimizer, lr=lr, device="cpu", progress=False)
        t0 = time.perf_counter()
        history = trainer.fit(loaders["train"], loaders["val"], epochs)
        seconds = time.perf_counter() - t0
        test_acc = trainer.evaluate(loaders["test"])["acc"]
    finally:
        torch.set_num_threads(old_threads)
    return {"history": history, "val_acc": history["val_acc"][-1], "test_acc": test_acc, "seconds": seconds,
            "epochs": epochs}


def bn_comparison(size: int = 16, epochs: int = 10, *, seed: int = 0, lr: float = 0.05, **options) -> dict:
    """The same :func:`small_cnn` trained with and without BatchNorm (same data, seed, optimizer).

    Returns:
        ``{"bn": digits_run(...), "no_bn": digits_run(...)}``; compare e.g.
        ``result["bn"]["history"]["train_loss"]`` with ``result["no_bn"]["history"]["train_loss"]``.
    """
    return {"bn": digits_run(size, epochs, batchnorm=True, seed=seed, lr=lr, **options),
            "no_bn": digits_run(size, epochs, batchnorm=False, seed=seed, lr=lr, **options)}
