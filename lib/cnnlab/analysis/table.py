"""The table :func:`cnnlab.analysis.summarize` returns: one :class:`LayerRow` per layer call, the
:class:`ModelSummary` with its totals, and how it prints (text, HTML in Jupyter, dicts).
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass, field

import torch

from .receptive import ReceptiveField

__all__ = ["LayerRow", "ModelSummary", "format_bytes", "format_count"]


@dataclass
class LayerRow:
    """One row of a :class:`ModelSummary`: one call of a leaf layer (or a functional op).

    Attributes:
        name: qualified module name (``features.0``), ``#2`` appended on a repeated call,
            ``<module>.<op>`` for a functional op.
        type: class name (``Conv2d``) or ``F.<op>`` for a functional op.
        output_shape: shape of the output tensor, batch included.
        memory: bytes of the output tensor (``numel x element size``).
        params: number of parameters (0 on a repeated call of the same module).
        flops: FLOPs of this call in the summary's convention.
        receptive_field: :class:`ReceptiveField` of the output units, ``None`` when unknown.
        inplace: the output reuses the input's storage -- an in-place op (``ReLU(inplace=True)``,
            dropout in eval mode) or a view (flatten, reshape) -- so it costs no new memory.
    """

    name: str
    type: str
    output_shape: tuple
    memory: int
    params: int
    flops: int
    receptive_field: ReceptiveField | None
    inplace: bool = False

    @property
    def rf(self):
        """Receptive-field size (one number for square fields), ``None`` when unknown."""
        return None if self.receptive_field is None else self.receptive_field.rf

    @property
    def jump(self):
        """Jump (cumulative stride) in input pixels, ``None`` when unknown, 0 when global."""
        return None if self.receptive_field is None else self.receptive_field.stride

    @property
    def start(self):
        """Input coordinate of the centre of unit 0's window, ``None`` when unknown."""
        return None if self.receptive_field is None else self.receptive_field.offset

    def to_dict(self) -> dict:
        """Plain dict: name, type, output_shape, memory, params, flops, rf, jump, start, inplace."""
        return {"name": self.name, "type": self.type, "output_shape": tuple(self.output_shape),
                "memory": self.memory, "params": self.params, "flops": self.flops,
                "rf": self.rf, "jump": self.jump, "start": self.start, "inplace": self.inplace}


def format_bytes(n: float) -> str:
    """``1536 -> '1.5 KiB'`` (binary units)."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def format_count(n: float) -> str:
    """``138357544 -> '138.36M'`` (decimal units K, M, G)."""
    n = float(n)
    for unit, div in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f}{unit}"
    return f"{n:.0f}"


def _fmt_rf(v):
    if v is None:
        return "?"
    if isinstance(v, tuple):
        return "x".join(_fmt_rf(x) for x in v)
    return f"{v:g}" if isinstance(v, float) else str(v)


@dataclass
class ModelSummary:
    """Per-layer table returned by :func:`summarize`.

    Supports ``len(s)``, iteration over :class:`LayerRow`, ``s[i]`` / ``s["features.0"]``,
    ``str(s)`` (text table), ``_repr_html_`` (notebooks) and :meth:`to_dicts`.

    Attributes:
        rows: list of :class:`LayerRow` in execution order.
        input_size: ``(N, C, H, W)`` used.
        dtype: dtype of activations and parameters.
        flops_convention: ``"mac"`` (1 multiply-add = 1 FLOP) or ``"flop"`` (= 2).
        count_all: whether non-conv/linear ops were counted.
        total_params: unique parameters of the model (shared ones once).
        trainable_params: those with ``requires_grad``.
        total_flops: sum of the rows' FLOPs.
        total_memory: bytes of all layer outputs that need new storage (in-place rows excluded),
            the activations of one forward pass.
        input_memory: bytes of the input batch.
        param_memory: bytes of the parameters in ``dtype``.
    """

    rows: list
    input_size: tuple
    dtype: torch.dtype
    flops_convention: str
    count_all: bool
    total_params: int
    trainable_params: int
    param_memory: int
    notes: list = field(default_factory=list)

    @property
    def total_flops(self) -> int:
        return sum(r.flops for r in self.rows)

    @property
    def total_memory(self) -> int:
        return sum(r.memory for r in self.rows if not r.inplace)

    @property
    def input_memory(self) -> int:
        return int(math.prod(self.input_size)) * torch.empty((), dtype=self.dtype).element_size()

    @property
    def convention(self) -> str:
        """One sentence stating how FLOPs were counted."""
        what = ("conv/linear multiply-adds plus norm, activation, add and pooling ops"
                if self.count_all else "conv and linear layers only, biases not counted")
        unit = ("1 FLOP = 1 multiply-add (MAC)" if self.flops_convention == "mac"
                else "1 multiply-add = 2 FLOPs")
        return f"FLOPs: {unit}; {what}; for a batch of {self.input_size[0]}."

    def __len__(self):
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __getitem__(self, key):
        if isinstance(key, str):
            for r in self.rows:
                if r.name == key:
                    return r
            raise KeyError(f"no layer named {key!r} in the summary")
        return self.rows[key]

    def to_dicts(self) -> list:
        """List of :meth:`LayerRow.to_dict` dicts, one per row."""
        return [r.to_dict() for r in self.rows]

    def _cells(self):
        head = ["layer", "type", "output shape", "memory", "params", "FLOPs", "RF", "jump", "start"]
        body = []
        for r in self.rows:
            body.append([r.name, r.type, "x".join(str(d) for d in r.output_shape),
                         ("(shared)" if r.inplace else format_bytes(r.memory)),
                         f"{r.params:,}", f"{r.flops:,}", _fmt_rf(r.rf),
                         "-" if r.receptive_field is not None and r.receptive_field.is_global
                         else _fmt_rf(r.jump), _fmt_rf(r.start)])
        return head, body

    def _footer(self):
        return [
            f"input {tuple(self.input_size)} {str(self.dtype).replace('torch.', '')}: "
            f"{format_bytes(self.input_memory)}",
            f"parameters: {self.total_params:,} ({self.trainable_params:,} trainable), "
            f"{format_bytes(self.param_memory)}",
            f"activations (layer outputs; in-place ops and views share storage): "
            f"{format_bytes(self.total_memory)}",
            f"total FLOPs: {self.total_flops:,} ({format_count(self.total_flops)})",
            self.convention,
            "RF/jump/start: receptive-field size, stride between units and centre of unit 0, "
            "in input pixels.",
        ] + list(self.notes)

    def __str__(self):
        head, body = self._cells()
        widths = [max(len(str(c)) for c in col) for col in zip(head, *body)]
        right = {3, 4, 5, 6, 7, 8}

        def line(cells):
            return "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w)
                             for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

        sep = "-" * (sum(widths) + 2 * (len(widths) - 1))
        return "\n".join([line(head), sep] + [line(b) for b in body] + [sep] + self._footer())

    def __repr__(self):
        return (f"ModelSummary({len(self.rows)} rows, params={self.total_params:,}, "
                f"flops={self.total_flops:,} [{self.flops_convention}], "
                f"activations={format_bytes(self.total_memory)})")

    def _repr_html_(self):
        head, body = self._cells()
        h = ["<table>", "<thead><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in head)
             + "</tr></thead>", "<tbody>"]
        for b in body:
            h.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in b) + "</tr>")
        h.append("</tbody></table>")
        h.append("<p>" + "<br>".join(html.escape(s) for s in self._footer()) + "</p>")
        return "\n".join(h)
