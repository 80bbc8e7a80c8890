"""The Solver: minibatch training of a numpy classifier, CS231n style.

A *model* is any object with

- ``model.params``: a dict ``name -> numpy array`` of learnable parameters;
- ``model.loss(X, y=None)``: with ``y=None`` (test mode) return class scores of shape
  ``(N, num_classes)``; with labels ``y`` of shape ``(N,)`` (train mode) return
  ``(loss, grads)`` where ``grads`` has the keys and shapes of ``model.params``.

The *data* is a dict with ``X_train`` (N_train, ...), ``y_train`` (N_train,) int,
``X_val`` (N_val, ...), ``y_val`` (N_val,) int.

Example::

    model = ThreeLayerConvNet(input_dim=(1, 16, 16), seed=0)
    solver = Solver(model, data, update_rule="adam", optim_config={"learning_rate": 1e-3},
                    num_epochs=5, batch_size=50, seed=0)
    solver.train()
    solver.loss_history, solver.train_acc_history, solver.val_acc_history
    solver.best_val_acc            # model.params now hold the best parameters seen

Determinism: all randomness of the Solver (which samples go into a minibatch, which samples
are used to estimate accuracies) comes from its own ``numpy.random.Generator`` seeded by
``seed``; global numpy state is never used. The same model initialisation, data and seed give
the same histories and parameters.

Checkpoints: with ``checkpoint_name`` set, the Solver pickles its state after every epoch
to ``"{checkpoint_name}_epoch_{epoch}.pkl"``. :meth:`Solver.from_checkpoint` rebuilds a Solver
from such a file (model, optimizer states, histories, best parameters, the generator state),
and :meth:`Solver.train` then continues exactly where the checkpointed run was.
"""
from __future__ import annotations

import copy
import pickle

import numpy as np

from . import optim

__all__ = ["Solver", "load_checkpoint"]

_DATA_KEYS = ("X_train", "y_train", "X_val", "y_val")


def _check_data(data) -> None:
    if not isinstance(data, dict):
        raise ValueError(f"data must be a dict with keys {_DATA_KEYS}, got {type(data).__name__}")
    missing = [k for k in _DATA_KEYS if k not in data]
    if missing:
        raise ValueError(f"data is missing the keys {missing}; it needs {_DATA_KEYS}")
    for split in ("train", "val"):
        X, y = np.asarray(data[f"X_{split}"]), np.asarray(data[f"y_{split}"])
        if y.ndim != 1 or X.ndim < 2 or X.shape[0] != y.shape[0]:
            raise ValueError(
                f"data['X_{split}'] must be (N, ...) and data['y_{split}'] (N,) with the same N; "
                f"got X_{split} {X.shape}, y_{split} {y.shape}"
            )
        if X.shape[0] == 0:
            raise ValueError(f"data['X_{split}'] is empty")


class Solver:
    """Train a classification model with minibatch gradient descent.

    Args:
        model: an object with ``params`` (dict of arrays) and ``loss(X, y=None)`` (see module doc).
        data: dict with ``X_train``, ``y_train``, ``X_val``, ``y_val`` (numpy arrays).
        update_rule: the name of a rule in :mod:`cnnlab.optim` (``"sgd"``, ``"sgd_momentum"``,
            ``"rmsprop"``, ``"adam"``) or a callable ``(w, dw, config) -> (next_w, config)``.
        optim_config: hyperparameters passed to the update rule (e.g. ``{"learning_rate": 1e-3}``);
            every parameter gets its own deep copy, which then also holds that parameter's state.
        lr_decay: after each epoch every ``learning_rate`` is multiplied by this (default 1.0).
        batch_size: samples per minibatch (int >= 1; capped at the training-set size).
        num_epochs: epochs to train (int >= 1); an epoch is ``max(N_train // batch_size, 1)``
            iterations, each on a minibatch drawn without replacement.
        num_train_samples: training samples (a random subset) used to estimate the training
            accuracy after each epoch; ``None`` uses all.
        num_val_samples: the same for validation; ``None`` (default) uses all.
        checkpoint_name: if not ``None``, pickle a checkpoint after every epoch to
            ``f"{checkpoint_name}_epoch_{epoch}.pkl"``.
        print_every: print the loss every this many iterations when ``verbose``.
        verbose: print progress.
        seed: seed of the Solver's own ``numpy.random.Generator``.

    Attributes (after :meth:`train`):
        loss_history: list of float, the minibatch loss of every iteration.
        train_acc_history, val_acc_history: list of float, accuracies measured after the first
            iteration and at the end of every epoch.
        best_val_acc: float; best_params: dict, copies of the parameters with that accuracy
            (copied into ``model.params`` when training ends).
        epoch: int, the number of completed epochs.
    """

    def __init__(self, model, data, update_rule="sgd", optim_config=None, lr_decay=1.0,
                 batch_size=100, num_epochs=10, num_train_samples=1000, num_val_samples=None,
                 checkpoint_name=None, print_every=10, verbose=True, seed=0):
        if not hasattr(model, "params") or not callable(getattr(model, "loss", None)):
            raise ValueError("model must have a `params` dict and a `loss(X, y=None)` method")
        _check_data(data)
        self.model = model
        self.X_train, self.y_train = data["X_train"], np.asarray(data["y_train"])
        self.X_val, self.y_val = data["X_val"], np.asarray(data["y_val"])

        if isinstance(update_rule, str):
            if update_rule not in optim.UPDATE_RULES:
                raise ValueError(
                    f"update_rule {update_rule!r} is unknown; choose one of {sorted(optim.UPDATE_RULES)} "
                    "or pass a callable"
                )
            self.update_rule = optim.UPDATE_RULES[update_rule]
        elif callable(update_rule):
            self.update_rule = update_rule
        else:
            raise ValueError(f"update_rule must be a name or a callable, got {update_rule!r}")
        self.update_rule_name = update_rule if isinstance(update_rule, str) else None
        if optim_config is not None and not isinstance(optim_config, dict):
            raise ValueError(f"optim_config must be a dict or None, got {type(optim_config).__name__}")
        self.optim_config = dict(optim_config or {})
        if not np.isscalar(lr_decay) or not lr_decay > 0:
            raise ValueError(f"lr_decay must be a number > 0, got {lr_decay!r}")
        self.lr_decay = float(lr_decay)
        for name, value in (("batch_size", batch_size), ("num_epochs", num_epochs),
                            ("print_every", print_every)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        for name, value in (("num_train_samples", num_train_samples),
                            ("num_val_samples", num_val_samples)):
            if value is not None and (not isinstance(value, (int, np.integer)) or value < 1):
                raise ValueError(f"{name} must be None or an integer >= 1, got {value!r}")
        self.batch_size = int(batch_size)
        self.num_epochs = int(num_epochs)
        self.num_train_samples = num_train_samples
        self.num_val_samples = num_val_samples
        self.checkpoint_name = checkpoint_name
        self.print_every = int(print_every)
        self.verbose = bool(verbose)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self._reset()

    # ------------------------------------------------------------------ state
    def _reset(self) -> None:
        """Fresh bookkeeping: histories, best parameters, one optimizer config per parameter."""
        self.epoch = 0
        self.iteration = 0
        self.best_val_acc = 0.0
        self.best_params = {}
        self.loss_history: list[float] = []
        self.train_acc_history: list[float] = []
        self.val_acc_history: list[float] = []
        self.optim_configs = {p: copy.deepcopy(self.optim_config) for p in self.model.params}

    @property
    def iterations_per_epoch(self) -> int:
        """``max(N_train // batch_size, 1)``."""
        return max(len(self.y_train) // self.batch_size, 1)

    def _step(self) -> None:
        """One gradient update on a random minibatch (sampled without replacement)."""
        num_train = len(self.y_train)
        batch = min(self.batch_size, num_train)
        idx = self.rng.choice(num_train, batch, replace=False)
        loss, grads = self.model.loss(self.X_train[idx], self.y_train[idx])
        self.loss_history.append(float(loss))
        for p, w in self.model.params.items():
            if p not in grads:
                raise ValueError(f"model.loss returned no gradient for parameter {p!r}")
            next_w, self.optim_configs[p] = self.update_rule(w, grads[p], self.optim_configs[p])
            self.model.params[p] = next_w

    def check_accuracy(self, X, y, num_samples=None, batch_size=100) -> float:
        """Fraction of correctly classified samples.

        Args:
            X: (N, ...) inputs; y: (N,) int labels.
            num_samples: if not ``None`` and < N, use a random subset of this size (drawn from
                the Solver's generator).
            batch_size: samples per forward pass (memory only; the result does not depend on it).

        Returns:
            float in [0, 1].
        """
        y = np.asarray(y)
        N = X.shape[0]
        if num_samples is not None and N > num_samples:
            idx = self.rng.choice(N, num_samples, replace=False)
            X, y = X[idx], y[idx]
            N = num_samples
        preds = []
        for start in range(0, N, batch_size):
            scores = self.model.loss(X[start:start + batch_size])
            preds.append(np.argmax(scores, axis=1))
        return float(np.mean(np.concatenate(preds) == y))

    def train(self) -> "Solver":
        """Run the optimisation until ``num_epochs`` epochs are complete.

        Continues from ``self.epoch`` (non-zero after :meth:`from_checkpoint`). At the end the
        best parameters (by validation accuracy) are copied into ``model.params``.

        Returns:
            self
        """
        per_epoch = self.iterations_per_epoch
        num_iterations = self.num_epochs * per_epoch
        start = self.epoch * per_epoch
        for t in range(start, num_iterations):
            self._step()
            self.iteration = t + 1
            if self.verbose and t % self.print_every == 0:
                print(f"(Iteration {t + 1} / {num_iterations}) loss: {self.loss_history[-1]:f}")
            epoch_end = (t + 1) % per_epoch == 0
            if epoch_end:
                self.epoch += 1
                for config in self.optim_configs.values():
                    if "learning_rate" in config:
                        config["learning_rate"] *= self.lr_decay
            if t == 0 or t == num_iterations - 1 or epoch_end:
                train_acc = self.check_accuracy(self.X_train, self.y_train,
                                                num_samples=self.num_train_samples)
                val_acc = self.check_accuracy(self.X_val, self.y_val,
                                              num_samples=self.num_val_samples)
                self.train_acc_history.append(train_acc)
                self.val_acc_history.append(val_acc)
                if self.verbose:
                    print(f"(Epoch {self.epoch} / {self.num_epochs}) train acc: {train_acc:f}; "
                          f"val_acc: {val_acc:f}")
                if val_acc > self.best_val_acc or not self.best_params:
                    self.best_val_acc = val_acc
                    self.best_params = {k: v.copy() for k, v in self.model.params.items()}
                if epoch_end and self.checkpoint_name is not None:
                    self.save_checkpoint(f"{self.checkpoint_name}_epoch_{self.epoch}.pkl")
        if self.best_params:
            self.model.params = {k: v.copy() for k, v in self.best_params.items()}
        return self

    # ------------------------------------------------------------ checkpoints
    def checkpoint(self) -> dict:
        """The Solver's state as a dict of plain picklable objects (the model included)."""
        return {
            "model": self.model,
            "update_rule": self.update_rule_name or self.update_rule,
            "optim_config": self.optim_config,
            "optim_configs": self.optim_configs,
            "lr_decay": self.lr_decay,
            "batch_size": self.batch_size,
            "num_epochs": self.num_epochs,
            "num_train_samples": self.num_train_samples,
            "num_val_samples": self.num_val_samples,
            "print_every": self.print_every,
            "seed": self.seed,
            "rng_state": self.rng.bit_generator.state,
            "epoch": self.epoch,
            "iteration": self.iteration,
            "loss_history": self.loss_history,
            "train_acc_history": self.train_acc_history,
            "val_acc_history": self.val_acc_history,
            "best_val_acc": self.best_val_acc,
            "best_params": self.best_params,
        }

    def save_checkpoint(self, path) -> None:
        """Pickle :meth:`checkpoint` to ``path``."""
        with open(path, "wb") as f:
            pickle.dump(self.checkpoint(), f)
        if self.verbose:
            print(f'Saving checkpoint to "{path}"')

    @classmethod
    def from_checkpoint(cls, path, data, **overrides) -> "Solver":
        """Rebuild a Solver from a checkpoint file written by :meth:`save_checkpoint`.

        Args:
            path: the pickle file.
            data: the data dict (checkpoints do not store the data).
            **overrides: constructor arguments to change, e.g. ``num_epochs=20`` to train
                longer, ``checkpoint_name``, ``verbose``.

        Returns:
            a Solver whose model, optimizer states, histories, best parameters, epoch and
            random-generator state are those of the checkpoint; :meth:`train` continues the run.
        """
        ckpt = load_checkpoint(path)
        kwargs = {k: ckpt[k] for k in ("update_rule", "optim_config", "lr_decay", "batch_size",
                                        "num_epochs", "num_train_samples", "num_val_samples",
                                        "print_every", "seed")}
        kwargs.update(overrides)
        solver = cls(ckpt["model"], data, **kwargs)
        solver.optim_configs = ckpt["optim_configs"]
        solver.rng.bit_generator.state = ckpt["rng_state"]
        for key in ("epoch", "iteration", "loss_history", "train_acc_history", "val_acc_history",
                    "best_val_acc", "best_params"):
            setattr(solver, key, ckpt[key])
        return solver


def load_checkpoint(path) -> dict:
    """Read a checkpoint written by :meth:`Solver.save_checkpoint` (a pickled dict).

    Only load files you wrote yourself: unpickling runs code from the file.
    """
    with open(path, "rb") as f:
        ckpt = pickle.load(f)
    if not isinstance(ckpt, dict) or "model" not in ckpt or "rng_state" not in ckpt:
        raise ValueError(f"{path!r} is not a Solver checkpoint (a dict with 'model' and 'rng_state')")
    return ckpt
