"""Training curves: loss and train/validation accuracy, for one run or several runs compared.

:func:`plot_training_curves` accepts every history format of the course:

- a :class:`cnnlab.solver.Solver` (its ``loss_history``, ``train_acc_history``,
  ``val_acc_history``), or the same keys in a dict;
- a dict of per-epoch lists, as the PyTorch trainer records them:
  ``{"train_loss": [...], "train_acc": [...], "val_acc": [...], "val_loss": [...]}``;
- a list of per-epoch dicts: ``[{"epoch": 1, "train_loss": ..., "val_acc": ...}, ...]``;
- an object with a ``history`` attribute (:class:`cnnlab.train.Trainer`) or a result dict with a
  ``"history"`` entry (:func:`cnnlab.train.experiments.digits_run`);
- several runs to compare: a dict ``{label: history}`` whose values are any of the above,
  e.g. ``{"no BN": solver1, "batchnorm": solver2}`` or the output of
  :func:`cnnlab.train.experiments.bn_comparison`.

Recognised keys (the first present is used): loss ``loss_history``, ``train_loss``, ``loss``;
validation loss ``val_loss``; training accuracy ``train_acc_history``, ``train_acc``,
``train_accuracy``; validation accuracy ``val_acc_history``, ``val_acc``, ``val_accuracy``.
At least one of them must be present. Values may be lists, numpy arrays or tensors of numbers.

The x axis of the loss is "iteration" for Solver histories (one loss per minibatch) and
"epoch" for the per-epoch formats; accuracies are plotted against their index (the Solver
measures them after the first iteration and after every epoch) or the ``epoch`` entries.
"""
from __future__ import annotations

import numbers

import numpy as np

__all__ = ["plot_training_curves", "normalize_history"]

_ALIASES = {
    "loss": ("loss_history", "train_loss", "loss"),
    "val_loss": ("val_loss", "val_loss_history"),
    "train_acc": ("train_acc_history", "train_acc", "train_accuracy"),
    "val_acc": ("val_acc_history", "val_acc", "val_accuracy"),
}
_ALL_KEYS = {k for keys in _ALIASES.values() for k in keys}


def _to_floats(name, values) -> np.ndarray:
    """A 1-D float array from a list of numbers (or 0-d tensors), an array or a tensor."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    if isinstance(values, np.ndarray):
        return values.astype(float).ravel()
    try:
        return np.asarray([float(v) for v in values], dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"history[{name!r}] must be a list of numbers, got {values!r:.80}") from None


def _is_number(v) -> bool:
    return isinstance(v, numbers.Number) or (hasattr(v, "item") and getattr(v, "ndim", 1) == 0)


def _is_number_list(value) -> bool:
    if hasattr(value, "detach") or isinstance(value, np.ndarray):
        return True
    return isinstance(value, (list, tuple)) and all(_is_number(v) for v in value)


def _unwrap(h):
    """A trainer object (``.history``) or a result dict (``{"history": ..., ...}``) -> its history."""
    if not (hasattr(h, "loss_history") and hasattr(h, "val_acc_history")):
        inner = getattr(h, "history", None) if not isinstance(h, (dict, list, tuple)) else None
        if inner is None and isinstance(h, dict) and "history" in h:
            inner = h["history"]
        if inner is not None:
            return inner
    return h


def _is_single_history(h) -> bool:
    h = _unwrap(h)
    if hasattr(h, "loss_history") and hasattr(h, "val_acc_history"):
        return True
    if isinstance(h, dict):
        return any(k in h and _is_number_list(h[k]) for k in _ALL_KEYS)
    if isinstance(h, (list, tuple)) and h and all(isinstance(e, dict) for e in h):
        return any(k in h[0] for k in _ALL_KEYS)
    return False


def normalize_history(history) -> dict:
    """Convert one run's history to a dict of numpy arrays.

    Args:
        history: a Solver, a dict of lists, or a list of per-epoch dicts (see module doc).

    Returns:
        dict with the keys that are present among ``loss``, ``val_loss``, ``train_acc``,
        ``val_acc`` (1-D float arrays), plus ``loss_x``, ``acc_x`` (the x coordinates) and
        ``loss_xlabel`` (``"iteration"`` or ``"epoch"``).

    Raises:
        ValueError: if no recognised key is present.
    """
    history = _unwrap(history)
    per_iteration = False
    epochs = None
    if hasattr(history, "loss_history") and hasattr(history, "val_acc_history"):
        raw = {"loss_history": history.loss_history,
               "train_acc_history": history.train_acc_history,
               "val_acc_history": history.val_acc_history}
    elif isinstance(history, dict):
        raw = history
    elif isinstance(history, (list, tuple)) and history and all(isinstance(e, dict) for e in history):
        keys = [k for k in history[0] if k in _ALL_KEYS or k == "epoch"]
        raw = {k: [e[k] for e in history] for k in keys if all(k in e for e in history)}
    else:
        raise ValueError(
            "history must be a Solver, a dict of lists or a list of per-epoch dicts; got "
            f"{type(history).__name__}"
        )
    out = {}
    for name, aliases in _ALIASES.items():
        for key in aliases:
            if key in raw and raw[key] is not None:
                out[name] = _to_floats(key, raw[key])
                if key == "loss_history":
                    per_iteration = True
                break
    if not out:
        raise ValueError(
            f"history has none of the recognised keys {sorted(_ALL_KEYS)}; its keys are "
            f"{sorted(map(str, raw))}"
        )
    if "epoch" in raw:
        epochs = _to_floats("epoch", raw["epoch"])
    n_acc = max(len(out.get("train_acc", [])), len(out.get("val_acc", [])))
    if per_iteration:
        out["loss_x"] = np.arange(1, len(out.get("loss", [])) + 1, dtype=float)
        out["loss_xlabel"] = "iteration"
        out["acc_x"] = np.arange(n_acc, dtype=float)
    else:
        n_loss = max(len(out.get("loss", [])), len(out.get("val_loss", [])))
        base = epochs if epochs is not None else np.arange(1, max(n_loss, n_acc) + 1, dtype=float)
        out["loss_x"] = base[:n_loss]
        out["loss_xlabel"] = "epoch"
        out["acc_x"] = base[:n_acc]
    return out


def plot_training_curves(history, title=None, figsize=(11, 4)):
    """Plot the loss (left) and the training/validation accuracy (right).

    Args:
        history: one run (Solver, dict of lists, list of per-epoch dicts) or several runs as
            ``{label: history}``; see the module docstring for the accepted keys.
        title: optional figure title.
        figsize: matplotlib figure size in inches.

    Returns:
        matplotlib.figure.Figure with two axes: ``axes[0]`` the loss (training loss as a line,
        validation loss dashed when present), ``axes[1]`` the accuracies (training dashed,
        validation solid). Lines are labelled ``"<run> train loss"``, ``"<run> val acc"`` and so
        on (without the ``"<run> "`` prefix for a single run). Each run has one colour.

    Raises:
        ValueError: if ``history`` is in no recognised format.
    """
    import matplotlib.pyplot as plt

    if _is_single_history(history):
        runs = {"": history}
    elif isinstance(history, dict) and history and all(_is_single_history(h) for h in history.values()):
        runs = history
    else:
        kind = type(history).__name__
        keys = f" with keys {sorted(map(str, history))}" if isinstance(history, dict) else ""
        raise ValueError(
            f"history must be a Solver, a dict of lists (keys like {sorted(_ALL_KEYS)}), a list of "
            f"per-epoch dicts, or a dict {{label: history}} of those; got a {kind}{keys}"
        )

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=figsize)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    xlabels = set()
    for r, (label, h) in enumerate(runs.items()):
        data = normalize_history(h)
        color = colors[r % len(colors)]
        prefix = f"{label} " if label else ""
        xlabels.add(data["loss_xlabel"])
        if "loss" in data:
            ax_loss.plot(data["loss_x"][:len(data["loss"])], data["loss"], color=color,
                         label=f"{prefix}train loss", marker="." if data["loss_xlabel"] == "epoch" else None)
        if "val_loss" in data:
            ax_loss.plot(data["loss_x"][:len(data["val_loss"])], data["val_loss"], color=color,
                         linestyle="--", label=f"{prefix}val loss")
        if "train_acc" in data:
            ax_acc.plot(data["acc_x"][:len(data["train_acc"])], data["train_acc"], color=color,
                        linestyle="--", marker="o", markersize=3, label=f"{prefix}train acc")
        if "val_acc" in data:
            ax_acc.plot(data["acc_x"][:len(data["val_acc"])], data["val_acc"], color=color,
                        marker="o", markersize=3, label=f"{prefix}val acc")
    ax_loss.set_xlabel(" / ".join(sorted(xlabels)))
    ax_loss.set_ylabel("loss")
    ax_loss.set_title("Training loss")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy")
    ax_acc.set_title("Accuracy")
    for ax in (ax_loss, ax_acc):
        if ax.lines:
            ax.legend(fontsize="small")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
