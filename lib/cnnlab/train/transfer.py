"""Transfer learning: freeze a pretrained body, replace the classifier head, smaller LR for the body.

The lecture's recipe ("Transfer learning with CNNs", CS231n): train (or download) a network on a
big data set, then reuse its features for a new, smaller one. Which layers to retrain depends on
how much data there is and how similar it is to the pretraining data -- :data:`TRANSFER_STRATEGIES`.

:func:`transfer_demo` runs the whole story offline on scikit-learn's digits: pretrain a small CNN
on the digits 0-4, then learn the digits 5-9 from only a few labelled images per class, once by
fine-tuning the pretrained network and once from scratch.
"""
from __future__ import annotations

import numpy as np

__all__ = ["TRANSFER_STRATEGIES", "transfer_strategy", "head_name", "freeze", "unfreeze", "replace_head",
           "param_groups", "transfer_demo"]

TRANSFER_STRATEGIES = {
    ("very little data", "very similar dataset"):
        "Use a linear classifier on the top layer (freeze everything else).",
    ("very little data", "very different dataset"):
        "You're in trouble... Try a linear classifier on features from different stages.",
    ("quite a lot of data", "very similar dataset"):
        "Finetune a few layers.",
    ("quite a lot of data", "very different dataset"):
        "Finetune a larger number of layers.",
}
"""The lecture's 2x2 table: (amount of data, similarity to the pretraining data set) -> strategy.

===================  ==================================  =====================================
                     very similar dataset                very different dataset
===================  ==================================  =====================================
very little data     linear classifier on top layer      you're in trouble: try a linear
                                                         classifier from different stages
quite a lot of data  finetune a few layers               finetune a larger number of layers
===================  ==================================  =====================================
"""


def transfer_strategy(little_data: bool, similar: bool) -> str:
    """The entry of :data:`TRANSFER_STRATEGIES` for a situation."""
    key = ("very little data" if little_data else "quite a lot of data",
           "very similar dataset" if similar else "very different dataset")
    return TRANSFER_STRATEGIES[key]


def _linear_names(model):
    import torch.nn as nn

    return [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]


def head_name(model) -> str:
    """Dotted name of the final classifier layer (an ``nn.Linear``).

    Known layouts: ResNet/GoogLeNet/Inception ``fc``; VGG/AlexNet/MobileNet ``classifier[-1]``
    (e.g. ``"classifier.6"``); DenseNet ``classifier``. Otherwise the last ``nn.Linear`` in
    ``model.named_modules()`` order.

    Raises:
        ValueError: if the model has no ``nn.Linear`` layer.
    """
    import torch.nn as nn

    fc = getattr(model, "fc", None)
    if isinstance(fc, nn.Linear):
        return "fc"
    clf = getattr(model, "classifier", None)
    if isinstance(clf, nn.Linear):
        return "classifier"
    if isinstance(clf, nn.Sequential) and len(clf) and isinstance(clf[-1], nn.Linear):
        return f"classifier.{len(clf) - 1}"
    names = _linear_names(model)
    if not names:
        raise ValueError(f"cannot find a classifier head: {type(model).__name__} has no nn.Linear layer")
    return names[-1]


def _matches(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def freeze(model, except_=("fc",)):
    """Stop gradients for every parameter except those under the module names in ``except_``.

    Args:
        model: an ``nn.Module``.
        except_: dotted module-name prefixes that stay trainable, e.g. ``("fc",)`` for a ResNet,
            ``("classifier.6",)`` for VGG16, ``(head_name(model),)`` for any model, ``()`` for none.

    Returns:
        the model (modified in place: ``requires_grad=False`` on the frozen parameters).

    Raises:
        ValueError: if a name in ``except_`` matches no parameter (a typo would otherwise freeze
            the whole network silently).
    """
    if isinstance(except_, str):
        except_ = (except_,)
    names = [n for n, _ in model.named_parameters()]
    for p in except_:
        if not any(_matches(n, (p,)) for n in names):
            top = sorted({n.split(".")[0] for n in names})
            raise ValueError(f"except_ entry {p!r} matches no parameter of {type(model).__name__}; "
                             f"top-level modules with parameters: {top}")
    for name, param in model.named_parameters():
        param.requires_grad_(_matches(name, except_))
    return model


def unfreeze(model, only=None):
    """Make parameters trainable again: all of them, or only those under the prefixes in ``only``.

    Returns:
        the model (modified in place).
    """
    if isinstance(only, str):
        only = (only,)
    for name, param in model.named_parameters():
        if only is None or _matches(name, only):
            param.requires_grad_(True)
    return model


def replace_head(model, num_classes: int, head: str | None = None):
    """Replace the final ``nn.Linear`` classifier by a freshly initialised one with ``num_classes`` outputs.

    Args:
        model: the network (modified in place).
        num_classes: outputs of the new head (int >= 1).
        head: dotted name of the layer to replace; default :func:`head_name`.

    Returns:
        the model. The new layer keeps ``in_features``, bias, dtype and device, and is trainable.
    """
    import torch.nn as nn

    from ..shapes import check_int

    num_classes = check_int("num_classes", num_classes, 1)
    head = head or head_name(model)
    old = model.get_submodule(head)
    if not isinstance(old, nn.Linear):
        raise ValueError(f"head {head!r} must be an nn.Linear, got {type(old).__name__}")
    new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None,
                    device=old.weight.device, dtype=old.weight.dtype)
    parent_name, _, attr = head.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, new)
    return model


def param_groups(model, head_lr: float, body_lr: float, head: str | None = None) -> list[dict]:
    """Optimizer parameter groups: the head with ``head_lr``, the (pretrained) body with a
    smaller ``body_lr``.

    Only parameters with ``requires_grad`` are included; a ``body_lr`` of 0 leaves the body out.
    The head group comes first. Use as ``torch.optim.SGD(param_groups(m, 1e-2, 1e-3), momentum=0.9)``
    or ``fit(..., params=param_groups(...))``.

    Returns:
        list of dicts ``{"params": [...], "lr": float, "name": "head" | "body"}``.
    """
    head = head or head_name(model)
    head_params, body_params = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (head_params if _matches(name, (head,)) else body_params).append(param)
    if not head_params:
        raise ValueError(f"no trainable parameters under head {head!r}")
    groups = [{"params": head_params, "lr": float(head_lr), "name": "head"}]
    if body_params and body_lr > 0:
        groups.append({"params": body_params, "lr": float(body_lr), "name": "body"})
    return groups


def transfer_demo(n_per_class: int = 10, seeds=(0, 1, 2), *, size: int = 8, pretrain_epochs: int = 15,
                  finetune_epochs: int = 30, mode: str = "finetune", source=(0, 1, 2, 3, 4),
                  target=(5, 6, 7, 8, 9), width: int = 16, lr: float = 1e-2, body_lr: float = 1e-3,
                  make_model=None, train_epoch=None, freeze_body=None, new_head=None,
                  verbose: bool = False) -> dict:
    """Pretrain on some digits, transfer to other digits with little data, compare with scratch.

    1. Pretrain a network (by default :func:`cnnlab.train.experiments.small_cnn`) on all
       training images of the ``source`` digits (seed 0, Adam with learning rate 3e-3).
    2. For each seed: draw ``n_per_class`` training images of each ``target`` digit; train
       (a) a copy of the pretrained network with a new head -- ``mode="finetune"`` trains all
       layers, the body with the smaller ``body_lr``; ``mode="linear"`` only the new head -- and
       (b) the same architecture from a random init with ``lr``, both for ``finetune_epochs``
       full-batch Adam steps (head LR ``lr``); measure both on the held-out test images of the
       ``target`` digits.

    The four steps can be the student's own code (assignment 5 runs the demo on its answers);
    each hook replaces the library's version of that step:

    * ``make_model(num_classes) -> nn.Module``: the network, its classifier head named ``fc``
      (default ``small_cnn(1, num_classes, width=width)``);
    * ``train_epoch(model, loader, optimizer) -> float``: one epoch of training (default: the
      library's :class:`~cnnlab.train.trainer.Trainer`, which keeps frozen BatchNorm layers in
      eval mode; a plain loop that calls ``model.train()`` updates their running statistics);
    * ``freeze_body(model)``: ``requires_grad=False`` everywhere except ``fc`` (default
      :func:`freeze` with ``except_=("fc",)``);
    * ``new_head(model, num_classes)``: replace ``fc`` by a fresh ``nn.Linear`` (default
      :func:`replace_head`).

    Images are (N, 1, size, size) float32, labels int64 in ``range(len(source))`` /
    ``range(len(target))``; everything runs on the CPU.

    Returns:
        dict with ``"transfer"`` and ``"scratch"`` (lists of test accuracies, one per seed),
        their means ``"transfer_mean"``/``"scratch_mean"``, ``"pretrain_acc"`` (source-task test
        accuracy), ``"n_train"`` and ``"n_test"``.
    """
    import copy

    import torch

    from ..data.digits import load_digits
    from ..data.loaders import make_loaders
    from ..data.splits import make_splits, subsample_per_class
    from .experiments import small_cnn
    from .seed import seed_everything
    from .trainer import Trainer, evaluate

    if mode not in ("finetune", "linear"):
        raise ValueError(f"mode must be 'finetune' or 'linear', got {mode!r}")
    if make_model is None:
        def make_model(num_classes):
            return small_cnn(1, num_classes, width=width, batchnorm=True)
    if freeze_body is None:
        def freeze_body(model):
            return freeze(model, except_=("fc",))
    if new_head is None:
        new_head = replace_head

    def fit(model, epochs, loader, optimizer, params=None):
        """Train for ``epochs`` passes over ``loader``; return the model."""
        if train_epoch is None:
            Trainer(model, optimizer=optimizer, params=params, device="cpu", progress=False).fit(loader, None, epochs)
        else:
            opt = optimizer(params if params is not None else [p for p in model.parameters() if p.requires_grad])
            for _ in range(epochs):
                train_epoch(model, loader, opt)
        return model

    def test_acc(model, loader):
        return evaluate(model, loader, device="cpu")["acc"]

    # Source task.
    X, y = load_digits(size, classes=source)
    src = make_splits(X, y, val=0.0, test=0.2, seed=0)
    seed_everything(0)
    base = make_model(len(source))
    loaders = make_loaders(src, batch_size=64, seed=0)
    fit(base, pretrain_epochs, loaders["train"], lambda p: torch.optim.Adam(p, lr=3e-3))
    pretrain_acc = test_acc(base, loaders["test"])
    # Target task: a fixed test set, small training sets per seed.
    X, y = load_digits(size, classes=target)
    tgt = make_splits(X, y, val=0.0, test=0.4, seed=0)
    results = {"transfer": [], "scratch": []}
    for seed in seeds:
        X_small, y_small = subsample_per_class(tgt["X_train"], tgt["y_train"], n_per_class, seed=seed)
        data = {"X_train": X_small, "y_train": y_small, "X_test": tgt["X_test"], "y_test": tgt["y_test"]}
        for kind in ("transfer", "scratch"):
            seed_everything(seed)
            if kind == "transfer":
                model = new_head(copy.deepcopy(base), len(target))
                if mode == "linear":
                    freeze_body(model)
                    params = param_groups(model, head_lr=lr, body_lr=0.0, head="fc")
                else:
                    params = param_groups(model, head_lr=lr, body_lr=body_lr, head="fc")
            else:
                model = make_model(len(target))
                params = [{"params": list(model.parameters()), "lr": lr}]
            loaders = make_loaders(data, batch_size=len(y_small), seed=seed)
            fit(model, finetune_epochs, loaders["train"], lambda p: torch.optim.Adam(p), params)
            results[kind].append(test_acc(model, loaders["test"]))
            if verbose:
                print(f"seed {seed} {kind}: test acc {results[kind][-1]:.3f}", flush=True)
    results["transfer_mean"] = float(np.mean(results["transfer"]))
    results["scratch_mean"] = float(np.mean(results["scratch"]))
    results.update(pretrain_acc=pretrain_acc, n_train=n_per_class * len(target), n_test=len(tgt["y_test"]),
                   mode=mode, seeds=list(seeds))
    return results
