"""How much memory does training take? ``training_memory(model, input_size, batch_size, optimizer)``.

The estimate the lectures make:

* activations: every layer's output is kept for the backward pass (plus the input batch); an
  in-place layer (``ReLU(inplace=True)``) reuses its input's storage and adds nothing. Each
  activation needs a gradient of the same size during backward, but those are freed layer by
  layer, so they are not added;
* parameters, and one gradient per trainable parameter;
* optimizer state per trainable parameter: SGD none, SGD+momentum one velocity (1x params),
  Adam two moments (2x params).

It is an estimate, not a measurement: frameworks keep some layers' inputs instead of outputs,
fuse ops, and need workspace memory.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from ..shapes import check_int
from .summary import format_bytes, summarize

__all__ = ["training_memory", "TrainingMemory", "OPTIMIZER_STATE"]

#: number of parameter-sized buffers each optimizer keeps
OPTIMIZER_STATE = {"sgd": 0, "momentum": 1, "adam": 2}


@dataclass(frozen=True)
class TrainingMemory:
    """Breakdown of training memory in bytes (see the module docstring).

    Attributes:
        activations: input batch + layer outputs kept for backward.
        parameters: all parameters.
        gradients: one per trainable parameter.
        optimizer_state: ``OPTIMIZER_STATE[optimizer]`` x trainable parameters.
        batch_size, optimizer, dtype: the settings used.
    """

    activations: int
    parameters: int
    gradients: int
    optimizer_state: int
    batch_size: int
    optimizer: str
    dtype: torch.dtype

    @property
    def total(self) -> int:
        """Sum of the four parts, bytes."""
        return self.activations + self.parameters + self.gradients + self.optimizer_state

    def as_dict(self) -> dict:
        """``{"activations", "parameters", "gradients", "optimizer_state", "total"}`` in bytes."""
        return {"activations": self.activations, "parameters": self.parameters,
                "gradients": self.gradients, "optimizer_state": self.optimizer_state,
                "total": self.total}

    def __str__(self):
        lines = [f"training memory, batch {self.batch_size}, {self.optimizer}, "
                 f"{str(self.dtype).replace('torch.', '')}:"]
        for k, v in self.as_dict().items():
            share = f"  ({100 * v / self.total:.0f}%)" if self.total and k != "total" else ""
            lines.append(f"  {k:<16}{format_bytes(v):>12}{share}")
        return "\n".join(lines)

    def __repr__(self):
        return (f"TrainingMemory(total={format_bytes(self.total)}, activations="
                f"{format_bytes(self.activations)}, parameters={format_bytes(self.parameters)}, "
                f"gradients={format_bytes(self.gradients)}, optimizer_state="
                f"{format_bytes(self.optimizer_state)}, batch_size={self.batch_size}, "
                f"optimizer={self.optimizer!r})")


def training_memory(model: nn.Module, input_size, batch_size: int | None = None,
                    optimizer: str = "sgd", dtype: torch.dtype = torch.float32) -> TrainingMemory:
    """Estimate the memory of one training step (activations + parameters + gradients + optimizer).

    Args:
        model: the network (not modified; analysed on the meta device, so instantly).
        input_size: ``(C, H, W)`` of one image, or ``(N, C, H, W)``.
        batch_size: images per step; default the ``N`` of ``input_size`` or 1. Must agree with a
            4-entry ``input_size``.
        optimizer: ``"sgd"`` (no state), ``"momentum"`` (1x params) or ``"adam"`` (2x params).
        dtype: floating dtype of activations, parameters and state (4 bytes for float32).

    Returns:
        :class:`TrainingMemory` with the parts in bytes; ``print()`` it for a readable table.
    """
    if optimizer not in OPTIMIZER_STATE:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZER_STATE)}, got {optimizer!r}")
    if isinstance(input_size, (tuple, list, torch.Size)) and len(input_size) == 4:
        n = check_int("input_size[0]", input_size[0], 1)
        if batch_size is not None and check_int("batch_size", batch_size, 1) != n:
            raise ValueError(f"batch_size={batch_size} disagrees with input_size "
                             f"{tuple(input_size)} (N={n}); give one of them")
        batch_size, chw = n, tuple(input_size[1:])
    else:
        batch_size = 1 if batch_size is None else check_int("batch_size", batch_size, 1)
        chw = input_size
        if isinstance(chw, (tuple, list, torch.Size)) and len(chw) != 3:
            raise ValueError(f"input_size must be (C, H, W) or (N, C, H, W), got {tuple(chw)}")
    s = summarize(model, (batch_size,) + tuple(chw) if isinstance(chw, (tuple, list, torch.Size))
                  else chw, dtype=dtype)
    itemsize = torch.empty((), dtype=dtype).element_size()
    trainable = s.trainable_params * itemsize
    return TrainingMemory(activations=s.input_memory + s.total_memory, parameters=s.param_memory,
                          gradients=trainable, optimizer_state=OPTIMIZER_STATE[optimizer] * trainable,
                          batch_size=batch_size, optimizer=optimizer, dtype=dtype)
