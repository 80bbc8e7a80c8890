"""The PyTorch training loop: :class:`Trainer`, :func:`fit` and :func:`evaluate`.

One epoch = one pass over the training loader (forward, cross-entropy loss, backward, optimizer
step) followed by an evaluation on the validation loader and one scheduler step. The history
records per epoch the learning rate, training loss/accuracy, validation loss and top-1/top-5
accuracy and the wall time.

Checkpoints hold everything needed to continue exactly where a run stopped: model, optimizer,
learning-rate scheduler, AMP grad scaler, epoch, history, and the states of the Python, numpy,
torch (and CUDA) random generators plus the training loader's own generator. Resuming from the
checkpoint of epoch k therefore gives the same weights as the uninterrupted run (bit-identical on
the CPU; on a GPU only with ``seed_everything(..., deterministic=True)``).

On a GPU, mixed precision (``amp``: ``torch.autocast`` in float16 with a ``GradScaler``) is on by
default; on the CPU it is off. ``channels_last=True`` stores weights and inputs in NHWC memory
order, which tensor cores prefer.
"""
from __future__ import annotations

import importlib.util
import math
import os
import sys
import time
import warnings
from pathlib import Path

from .metrics import topk_correct
from .seed import get_rng_state, set_rng_state

__all__ = ["Trainer", "fit", "evaluate", "progress_enabled", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "cnnlab-checkpoint-1"


def progress_enabled(progress: bool | None = None) -> bool:
    """Whether to show tqdm progress bars.

    ``progress`` wins when given; else ``$CNNLAB_PROGRESS`` (``0``/``1``); else off under CI
    (``$CI`` set), on in a Jupyter kernel, and on only for an interactive terminal otherwise.
    """
    if progress is not None:
        return bool(progress)
    env = os.environ.get("CNNLAB_PROGRESS", "").strip().lower()
    if env:
        return env not in ("0", "false", "no", "off")
    if os.environ.get("CI"):
        return False
    ipython = sys.modules.get("IPython")
    if ipython is not None:
        shell = ipython.get_ipython() if hasattr(ipython, "get_ipython") else None
        if shell is not None and "IPKernelApp" in getattr(shell, "config", {}):
            return True
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def _tqdm():
    if importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.auto import tqdm
    else:  # tqdm.notebook needs ipywidgets; the text bar works everywhere
        from tqdm.std import tqdm
    return tqdm


def _logits(out):
    """The main output of models that also return auxiliary outputs (GoogLeNet in training)."""
    return out[0] if isinstance(out, (tuple, list)) else out


def _to_device(x, y, device, channels_last):
    import torch

    x = x.to(device, non_blocking=True)
    if channels_last and x.ndim == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y.to(device, non_blocking=True)


def evaluate(model, loader, *, device=None, loss_fn=None, topk=(1, 5), amp: bool = False,
             channels_last: bool = False) -> dict:
    """Average loss and top-k accuracy of ``model`` over ``loader``, in eval mode, without gradients.

    Args:
        model: a classifier mapping (N, C, H, W) float32 to (N, num_classes) scores.
        loader: iterable of ``(x, y)`` batches, y int64 class indices.
        device: where to run (default: the device of the model's parameters).
        loss_fn: default ``nn.CrossEntropyLoss()`` (mean over the batch).
        topk: accuracies to report (top-1 always); values larger than ``num_classes`` are skipped.

    Returns:
        dict ``{"loss": float, "acc": float (top-1 fraction), "top1": ..., "top5": ..., "n": int}``.
        The model's train/eval mode is restored afterwards.
    """
    import torch
    import torch.nn as nn

    if device is None:
        p = next(model.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
    device = torch.device(device)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    was_training = model.training
    model.eval()
    total_loss, n, correct = 0.0, 0, None
    ks = tuple(topk)
    try:
        with torch.no_grad():
            for x, y in loader:
                x, y = _to_device(x, y, device, channels_last)
                with torch.autocast(device_type=device.type, enabled=amp):
                    out = _logits(model(x))
                    loss = loss_fn(out, y)
                if correct is None:
                    ks = tuple(sorted({1, *(k for k in ks if k <= out.shape[1])}))
                    correct = [0] * len(ks)
                total_loss += float(loss) * y.shape[0]
                n += y.shape[0]
                correct = [c + h for c, h in zip(correct, topk_correct(out.float(), y, ks))]
    finally:
        model.train(was_training)
    if n == 0:
        raise ValueError("evaluate: the loader yielded no samples")
    result = {"loss": total_loss / n, "n": n}
    for k, c in zip(ks, correct):
        result[f"top{k}"] = c / n
    result["acc"] = result["top1"]
    return result


class Trainer:
    """Train a classifier with SGD/Adam, an optional LR schedule, AMP, checkpoints and a history.

    Args:
        model: ``nn.Module`` producing (N, num_classes) logits.
        optimizer: ``"sgd"`` (with ``momentum``), ``"adam"``, ``"adamw"``, a
            ``torch.optim.Optimizer``, or a callable ``params -> Optimizer``.
        lr, momentum, weight_decay: optimizer settings (ignored for an Optimizer instance).
        params: parameter groups for the optimizer, e.g. from
            :func:`cnnlab.train.param_groups`; default all parameters with ``requires_grad``.
        scheduler: ``None``, ``"cosine"`` (to 0 over ``fit``'s epochs), ``"step"`` (x0.1 every
            third of the epochs), ``"plateau"`` (on validation loss), an LR scheduler instance,
            or a callable ``optimizer -> scheduler``. Stepped once per epoch.
        loss_fn: default ``nn.CrossEntropyLoss()``.
        device: default :func:`cnnlab.device` (CUDA if available).
        amp: mixed precision; ``None`` = on for CUDA, off otherwise (requested on a CPU it is
            switched off with a warning).
        channels_last: NHWC memory format for model and inputs.
        grad_clip: clip the global gradient norm to this value.
        progress: tqdm bars; ``None`` = automatic (:func:`progress_enabled`).
        frozen_bn_eval: keep BatchNorm layers whose parameters are all frozen in eval mode while
            training (fixed running statistics, as Keras does for frozen layers).
        topk: validation accuracies recorded in the history.
    """

    def __init__(self, model, *, optimizer="sgd", lr: float = 0.01, momentum: float = 0.9,
                 weight_decay: float = 0.0, params=None, scheduler=None, loss_fn=None, device=None, amp=None,
                 channels_last: bool = False, grad_clip: float | None = None, progress: bool | None = None,
                 frozen_bn_eval: bool = True, topk=(1, 5)):
        import torch
        import torch.nn as nn

        from .. import device as default_device

        self.device = torch.device(device) if device is not None else default_device()
        if amp is None:
            amp = self.device.type == "cuda"
        elif amp and self.device.type != "cuda":
            warnings.warn(f"amp=True needs a CUDA device; running in float32 on {self.device}", stacklevel=2)
            amp = False
        self.amp = bool(amp)
        self.channels_last = bool(channels_last)
        self.model = model.to(self.device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.loss_fn = loss_fn or nn.CrossEntropyLoss()
        self.optimizer = self._build_optimizer(optimizer, lr, momentum, weight_decay, params)
        self._scheduler_spec = scheduler
        self.scheduler = None
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.grad_clip = grad_clip
        self.progress = progress
        self.frozen_bn_eval = frozen_bn_eval
        self.topk = tuple(topk)
        self.epoch = 0
        self.history: dict[str, list] = {}
        self._train_loader = None

    # ----------------------------------------------------------------- construction
    def _build_optimizer(self, optimizer, lr, momentum, weight_decay, params):
        import torch

        if isinstance(optimizer, torch.optim.Optimizer):
            return optimizer
        if params is None:
            params = [p for p in self.model.parameters() if p.requires_grad]
            if not params:
                raise ValueError("the model has no trainable parameters (all frozen?)")
        if callable(optimizer):
            return optimizer(params)
        name = str(optimizer).lower()
        if name == "sgd":
            return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
        if name == "adam":
            return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
        if name == "adamw":
            return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        raise ValueError(f"optimizer must be 'sgd', 'adam', 'adamw', an Optimizer or a callable, got {optimizer!r}")

    def _build_scheduler(self, epochs: int):
        import torch.optim.lr_scheduler as sched

        spec = self._scheduler_spec
        if spec is None or self.scheduler is not None:
            return
        if isinstance(spec, str):
            name = spec.lower()
            if name == "cosine":
                self.scheduler = sched.CosineAnnealingLR(self.optimizer, T_max=max(1, epochs))
            elif name == "step":
                self.scheduler = sched.StepLR(self.optimizer, step_size=max(1, epochs // 3), gamma=0.1)
            elif name == "plateau":
                self.scheduler = sched.ReduceLROnPlateau(self.optimizer, factor=0.1, patience=2)
            else:
                raise ValueError(f"scheduler must be None, 'cosine', 'step', 'plateau', a scheduler or a callable, "
                                 f"got {spec!r}")
        elif hasattr(spec, "step") and hasattr(spec, "state_dict"):
            self.scheduler = spec
        elif callable(spec):
            self.scheduler = spec(self.optimizer)
        else:
            raise ValueError(f"scheduler must be None, a name, a scheduler or a callable, got {spec!r}")

    # ----------------------------------------------------------------- one epoch
    def _set_train_mode(self):
        import torch.nn as nn

        self.model.train()
        if self.frozen_bn_eval:
            for m in self.model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    ps = list(m.parameters(recurse=False))
                    if ps and not any(p.requires_grad for p in ps):
                        m.eval()

    def train_epoch(self, loader, bar=None) -> dict:
        """One pass over ``loader`` with parameter updates.

        Returns:
            ``{"loss": mean training loss, "acc": running top-1 accuracy}`` (fractions).
        """
        import torch

        self._set_train_mode()
        total_loss, correct, n = 0.0, 0, 0
        for x, y in loader:
            x, y = _to_device(x, y, self.device, self.channels_last)
            with torch.autocast(device_type=self.device.type, enabled=self.amp):
                out = _logits(self.model(x))
                loss = self.loss_fn(out, y)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if self.grad_clip is not None:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            b = y.shape[0]
            total_loss += float(loss.detach()) * b
            correct += topk_correct(out.detach().float(), y, (1,))[0]
            n += b
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{total_loss / n:.4f}", acc=f"{correct / n:.3f}", refresh=False)
        if n == 0:
            raise ValueError("train_epoch: the loader yielded no samples")
        return {"loss": total_loss / n, "acc": correct / n}

    def evaluate(self, loader) -> dict:
        """:func:`evaluate` with this trainer's model, device, loss and AMP settings."""
        return evaluate(self.model, loader, device=self.device, loss_fn=self.loss_fn, topk=self.topk,
                        amp=self.amp, channels_last=self.channels_last)

    # ----------------------------------------------------------------- the loop
    def fit(self, train_loader, val_loader=None, epochs: int = 10, *, checkpoint=None, resume=None,
            callback=None, verbose: bool = False) -> dict:
        """Train until ``epochs`` epochs are done in total (counting resumed ones).

        Args:
            train_loader: DataLoader of (x, y) training batches.
            val_loader: optional DataLoader evaluated after every epoch.
            epochs: total number of epochs.
            checkpoint: path; a checkpoint is written there (atomically) after every epoch.
            resume: path of a checkpoint to continue from (model, optimizer, scheduler, RNGs, history).
            callback: ``callback(trainer, row)`` after every epoch (after the checkpoint is
                written), ``row`` the epoch's history entries; returning True stops training
                (early stopping, or an interruption to resume from later).
            verbose: print one line per epoch.

        Returns:
            the history: dict of per-epoch lists ``epoch, lr, train_loss, train_acc`` and, with a
            validation loader, ``val_loss, val_acc, val_top5`` (when num_classes >= 5), plus ``time``.
        """
        from ..shapes import check_int

        epochs = check_int("epochs", epochs, 0)
        self._train_loader = train_loader
        self._build_scheduler(epochs)
        if resume is not None:
            self.load_checkpoint(resume)
        show = progress_enabled(self.progress)
        tqdm = _tqdm() if show else None
        epoch_bar = tqdm(total=epochs, initial=self.epoch, desc="epochs", unit="epoch") if show else None
        try:
            while self.epoch < epochs:
                t0 = time.perf_counter()
                lr = self.optimizer.param_groups[0]["lr"]
                bar = None
                if show:
                    total = len(train_loader) if hasattr(train_loader, "__len__") else None
                    bar = tqdm(total=total, desc=f"epoch {self.epoch + 1}", leave=False, unit="batch")
                try:
                    train = self.train_epoch(train_loader, bar)
                finally:
                    if bar is not None:
                        bar.close()
                row = {"epoch": self.epoch + 1, "lr": lr, "train_loss": train["loss"], "train_acc": train["acc"]}
                if val_loader is not None:
                    val = self.evaluate(val_loader)
                    row.update(val_loss=val["loss"], val_acc=val["acc"])
                    if "top5" in val:
                        row["val_top5"] = val["top5"]
                if self.scheduler is not None:
                    if self.scheduler.__class__.__name__ == "ReduceLROnPlateau":
                        self.scheduler.step(row.get("val_loss", train["loss"]))
                    else:
                        self.scheduler.step()
                row["time"] = time.perf_counter() - t0
                for key, value in row.items():
                    self.history.setdefault(key, []).append(value)
                self.epoch += 1
                if not math.isfinite(train["loss"]):
                    warnings.warn(f"training loss is {train['loss']} in epoch {self.epoch}: diverged "
                                  f"(learning rate {lr} too high?)", stacklevel=2)
                if checkpoint is not None:
                    self.save_checkpoint(checkpoint)
                if epoch_bar is not None:
                    epoch_bar.update(1)
                    epoch_bar.set_postfix({k: f"{v:.4f}" for k, v in row.items() if k.endswith(("loss", "acc"))})
                if verbose:
                    print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
                          flush=True)
                if callback is not None and callback(self, row):
                    break
        finally:
            if epoch_bar is not None:
                epoch_bar.close()
        return self.history

    # ----------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict:
        """Everything a checkpoint stores (see the module docstring)."""
        gen = getattr(self._train_loader, "generator", None)
        return {
            "format": CHECKPOINT_FORMAT,
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict() if self.amp else None,
            "history": {k: list(v) for k, v in self.history.items()},
            "rng": get_rng_state(),
            "loader_rng": gen.get_state() if gen is not None else None,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore from :meth:`state_dict` (the training loader's generator only during :meth:`fit`)."""
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"not a CNN Lab checkpoint (format {state.get('format')!r}, expected {CHECKPOINT_FORMAT!r})")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if state["scheduler"] is not None:
            if self.scheduler is None:
                raise ValueError("the checkpoint has a scheduler state but this Trainer has no scheduler")
            self.scheduler.load_state_dict(state["scheduler"])
        if state["scaler"] is not None and self.amp:
            self.scaler.load_state_dict(state["scaler"])
        self.epoch = int(state["epoch"])
        self.history = {k: list(v) for k, v in state["history"].items()}
        set_rng_state(state["rng"])
        gen = getattr(self._train_loader, "generator", None)
        if gen is not None and state.get("loader_rng") is not None:
            gen.set_state(state["loader_rng"])

    def save_checkpoint(self, path) -> Path:
        """Write :meth:`state_dict` to ``path`` (via a temporary file, so a crash leaves the old one)."""
        import torch

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        torch.save(self.state_dict(), tmp)
        os.replace(tmp, path)
        return path

    def load_checkpoint(self, path) -> None:
        """Read a checkpoint written by :meth:`save_checkpoint` (``weights_only`` safe loading)."""
        import torch

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {path} does not exist")
        self.load_state_dict(torch.load(path, map_location=self.device, weights_only=True))


def fit(model, train_loader, val_loader=None, epochs: int = 10, *, optimizer="sgd", lr: float = 0.01,
        scheduler=None, device=None, amp=None, channels_last: bool = False, checkpoint=None, resume=None,
        progress: bool | None = None, callback=None, verbose: bool = False, **trainer_options) -> dict:
    """Train ``model`` in place and return its history; shorthand for
    ``Trainer(model, ...).fit(train_loader, val_loader, epochs, ...)``.

    See :class:`Trainer` for ``optimizer``, ``lr``, ``scheduler``, ``device``, ``amp``,
    ``channels_last``, ``progress`` and the other options (``momentum``, ``weight_decay``,
    ``params``, ``loss_fn``, ``grad_clip``, ``frozen_bn_eval``, ``topk``), and
    :meth:`Trainer.fit` for ``checkpoint``/``resume``/``callback`` and the history's keys.
    """
    trainer = Trainer(model, optimizer=optimizer, lr=lr, scheduler=scheduler, device=device, amp=amp,
                      channels_last=channels_last, progress=progress, **trainer_options)
    return trainer.fit(train_loader, val_loader, epochs, checkpoint=checkpoint, resume=resume, callback=callback,
                       verbose=verbose)
