"""Load torchvision-format weight files from a local path (nothing is downloaded).

torchvision's pretrained files (e.g. ``resnet50-0676ba61.pth``) are bare state_dicts: a dict
from parameter/buffer name to tensor. Training scripts often save a checkpoint dict instead,
holding the state_dict under ``"state_dict"``, ``"model"`` or ``"model_state_dict"``, with a
``module.`` prefix when the model was wrapped in ``DataParallel``/``DistributedDataParallel``
(or ``_orig_mod.`` after ``torch.compile``). :func:`load_weights` accepts all of these.

    >>> from cnnlab.models import create, load_weights
    >>> net = create("resnet18")
    >>> load_weights(net, "/data/weights/resnet18-f37072fd.pth")      # doctest: +SKIP

Fine-tuning on a different number of classes: the file's classifier no longer fits, so build
the model with the new ``num_classes`` and skip the head,
``load_weights(net, path, exclude=["fc."])`` (or use :func:`load_torchvision_weights`, which
does this automatically).
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence

import torch
import torch.nn as nn

from .registry import create

__all__ = ["load_state_dict_file", "load_weights", "load_torchvision_weights"]

_CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model")
_PREFIXES = ("module.", "_orig_mod.")
# Old torchvision DenseNet files name "denselayer1.norm.1.weight" what is now "denselayer1.norm1.weight".
_DENSENET_LEGACY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\."
    r"((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$")
_SHOW = 5  # how many keys an error message lists


def _first(keys: Sequence[str], n: int = _SHOW) -> str:
    keys = list(keys)
    shown = ", ".join(keys[:n])
    return shown + (f", ... ({len(keys) - n} more)" if len(keys) > n else "")


def load_state_dict_file(path: str | os.PathLike, map_location="cpu",
                         weights_only: bool = True) -> dict[str, torch.Tensor]:
    """Read a weight file and return a plain state_dict ``{name: tensor}``.

    Accepts a bare state_dict or a checkpoint dict with the state_dict under ``"state_dict"``,
    ``"model_state_dict"`` or ``"model"``; strips a ``module.`` (DataParallel) or ``_orig_mod.``
    (torch.compile) prefix shared by all keys.

    Args:
        path: a ``.pth``/``.pt`` file written by ``torch.save``.
        map_location: where tensors are loaded (``"cpu"``; a ``torch.device`` works too).
        weights_only: passed to ``torch.load``: ``True`` refuses to unpickle arbitrary objects.

    Returns:
        dict str -> torch.Tensor (dtypes as stored, usually float32 plus int64 BN counters).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file holds no recognizable state_dict.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weight file not found: {path!r} (nothing is downloaded; "
                                "put the torchvision .pth file there first)")
    obj = torch.load(path, map_location=map_location, weights_only=weights_only)
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path!r} holds a {type(obj).__name__}, not a state_dict or checkpoint dict")
    if not all(isinstance(v, torch.Tensor) for v in obj.values()):
        for key in _CHECKPOINT_KEYS:
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
        else:
            raise ValueError(f"{path!r} is a dict but neither a state_dict (name -> tensor) nor a "
                             f"checkpoint with one of the keys {list(_CHECKPOINT_KEYS)}; its keys: "
                             f"{_first([str(k) for k in obj])}")
    state = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise ValueError(f"{path!r} holds no tensors")
    for prefix in _PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def _head_name(model: nn.Module) -> str:
    """Name of the model's classifier: its last ``nn.Linear`` (``"fc"``, ``"classifier"``,
    ``"classifier.1"``, ...). Raises ``ValueError`` if it has none."""
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise ValueError(f"{type(model).__name__} has no nn.Linear classifier")
    return names[-1]


def _rename_legacy(state: dict[str, torch.Tensor], wanted: set[str]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in state.items():
        m = _DENSENET_LEGACY.match(k)
        if k not in wanted and m is not None and m.group(1) + m.group(2) in wanted:
            k = m.group(1) + m.group(2)
        out[k] = v
    return out


def load_weights(model: nn.Module, path_or_state: str | os.PathLike | Mapping[str, torch.Tensor],
                 strict: bool = True, map_location="cpu",
                 exclude: Sequence[str] = ()) -> nn.Module:
    """Copy the weights of a torchvision-format file into ``model`` (in place) and return it.

    Args:
        model: the network, e.g. ``create("resnet50")``; its parameters keep their device and dtype.
        path_or_state: path of a ``.pth`` file (see :func:`load_state_dict_file`), or a state_dict.
        strict: require the file's keys and the model's keys to match exactly. With
            ``strict=False`` missing and unexpected keys are ignored (shapes must still match).
        map_location: where the file's tensors are loaded before copying (``"cpu"``).
        exclude: key prefixes to drop from the file, e.g. ``["fc."]`` to keep a new head; the
            model's keys under these prefixes are then allowed to be missing even when strict.

    Returns:
        the same ``model``.

    Raises:
        ValueError: listing the first few missing keys, unexpected keys and shape mismatches;
            a mismatch of the classifier gets a hint on changing ``num_classes``.
    """
    if isinstance(path_or_state, Mapping):
        state = {str(k): v for k, v in path_or_state.items()}
        for prefix in _PREFIXES:
            if state and all(k.startswith(prefix) for k in state):
                state = {k[len(prefix):]: v for k, v in state.items()}
        source = "the state_dict"
    else:
        state = load_state_dict_file(path_or_state, map_location=map_location)
        source = repr(os.fspath(path_or_state))
    if isinstance(exclude, str):
        exclude = [exclude]
    exclude = tuple(exclude)

    own = model.state_dict()
    state = _rename_legacy(state, set(own))
    state = {k: v for k, v in state.items() if not k.startswith(exclude)}
    missing = [k for k in own if k not in state and not k.startswith(exclude)]
    unexpected = [k for k in state if k not in own]
    mismatched = [k for k in state if k in own and tuple(state[k].shape) != tuple(own[k].shape)]

    problems = []
    if mismatched:
        problems.append("shape mismatch (file vs model): " + _first(
            [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in mismatched]))
    if strict and missing:
        problems.append(f"missing keys (in the model, not in the file; {len(missing)}): {_first(missing)}")
    if strict and unexpected:
        problems.append(f"unexpected keys (in the file, not in the model; {len(unexpected)}): "
                        f"{_first(unexpected)}")
    if problems:
        msg = f"cannot load {source} into {type(model).__name__}: " + "; ".join(problems)
        try:
            head = _head_name(model)
        except ValueError:
            head = None
        if head is not None and any(k.startswith(head + ".") for k in mismatched):
            w = head + ".weight"
            classes = f" (file: {tuple(state[w].shape)[0]} classes, model: {tuple(own[w].shape)[0]})" \
                if w in state and w in own else ""
            msg += (f". Hint: the classifier '{head}' does not match{classes}: the model was built "
                    f"with a different num_classes. Replace the head, then load with strict=False "
                    f"or skip {head}.*: load_weights(model, path, exclude=['{head}.'])")
        raise ValueError(msg)

    model.load_state_dict(state, strict=False)
    return model


def load_torchvision_weights(name: str, path: str | os.PathLike, num_classes: int = 1000,
                             map_location="cpu", **options) -> nn.Module:
    """Build the registered model ``name`` and load a torchvision weight file into it.

    When ``num_classes`` differs from the file's classifier (fine-tuning), every weight except
    the classifier is loaded and the new head keeps its fresh initialization; everything else
    must match exactly (``strict``).

    Args:
        name: registry name, e.g. ``"resnet50"`` (see :func:`cnnlab.models.list_models`).
        path: local weight file, e.g. ``resnet50-0676ba61.pth`` from torchvision's model zoo.
        num_classes: classifier outputs of the new model.
        map_location: where the file's tensors are loaded before copying.
        **options: passed to the builder (e.g. ``zero_init_residual=True``).

    Returns:
        the model, in training mode, on the CPU.
    """
    model = create(name, num_classes=num_classes, **options)
    state = load_state_dict_file(path, map_location=map_location)
    head = _head_name(model)
    w = head + ".weight"
    exclude = ()
    if w in state and tuple(state[w].shape) != tuple(model.state_dict()[w].shape):
        exclude = (head + ".",)
    return load_weights(model, state, strict=True, exclude=exclude)
