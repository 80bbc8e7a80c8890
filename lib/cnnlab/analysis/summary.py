"""``summarize(model, input_size)``: one row per layer with output shape, memory, parameters,
FLOPs and receptive field -- the table the lectures build by hand for AlexNet and VGG.

How the network is walked
-------------------------
One forward pass of a zero input runs with

* forward pre-/post-hooks on every module, which give the layer names and the rows: one row per
  *call* of a leaf module (a module without children), so a module used twice (torchvision's
  ``BasicBlock`` calls ``self.relu`` twice) gives two rows, ``layer1.0.relu`` and
  ``layer1.0.relu #2``; its parameters are counted on the first call only;
* a :class:`torch.overrides.TorchFunctionMode` that sees every torch function call, including the
  ones written directly in a ``forward`` (``out += identity``, ``torch.flatten(x, 1)``,
  ``torch.cat(branches, 1)``, ``F.adaptive_avg_pool2d``). It keeps, for every activation tensor
  (keyed by the tensor object), its :class:`~cnnlab.analysis.receptive.ReceptiveField`, and
  computes the output's field from the inputs' fields: sliding windows (conv, max/avg pooling)
  apply the recurrence, ``F.pad`` shifts the start, adaptive pooling uses its windows, and any
  other op whose output keeps the spatial size (ReLU, batch norm, add, cat along channels, ...)
  takes the *union* of its inputs' fields -- so a residual add or an Inception concatenation gets
  the widest branch. Flattening / global pooling (output with fewer than 4 dimensions) makes the
  field global: the union over all positions. In-place ops update the same tensor's entry.
  FLOPs are counted per function call too, so a ``F.conv2d`` written in a ``forward`` is counted;
  such calls outside leaf modules (and the adds / cats / flattens between layers) get their own
  rows named ``<enclosing module>.<op>`` with type ``F.<op>``.

Strided slicing ``x[:, :, ::2, ::2]`` (the CIFAR ResNet's option-A shortcut) is a 1x1 window
with that stride. Limits: ops that move pixels without a window (interpolate, pixel shuffle,
spatial concatenation, transposed convolution, advanced indexing) give an unknown field (``None``, shown ``?``) from there
on; only 2-D (image) networks are supported; ops computed on parameters (not activations) are
not counted.

The default ``device="meta"`` runs the forward on PyTorch's meta device: shapes propagate without
any arithmetic, so summarizing VGG-16 takes milliseconds. The model itself is not modified (its
parameters are substituted with :func:`torch.func.functional_call`).

The rows and the table they form (:class:`LayerRow`, :class:`ModelSummary`, its text and HTML
rendering) are in :mod:`cnnlab.analysis.table`; this module walks the network.

FLOP convention (the lectures'): one multiply-add = one FLOP, counted for convolution and linear
layers only -- ``(output elements) x (C_in/groups x K_H x K_W)`` for a convolution, which is the
notes' ``(C_out x H' x W') x (C_in x K x K)``; biases are not counted. This is the convention of
torchvision's published GFLOPS. ``flops="flop"`` doubles it (a multiply and an add).
``count_all=True`` also counts normalisation (1 multiply-add per element), activations and
element-wise add/mul (1 op per element), pooling (kernel area per output element) and adaptive
pooling (1 op per input element).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode

from ..shapes import check_int
from .receptive import ReceptiveField
from .table import LayerRow, ModelSummary, format_bytes, format_count

__all__ = ["summarize", "ModelSummary", "LayerRow", "format_bytes", "format_count"]

_MISSING = object()

# ---- argument layouts of the functions whose arguments we read -------------------------------
_SIGNATURES = {
    "conv1d": ("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
    "conv2d": ("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
    "conv3d": ("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
    "conv_transpose2d": ("input", "weight", "bias", "stride", "padding", "output_padding",
                         "groups", "dilation"),
    "max_pool2d": ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode",
                   "return_indices"),
    "max_pool2d_with_indices": ("input", "kernel_size", "stride", "padding", "dilation",
                                "ceil_mode", "return_indices"),
    "avg_pool2d": ("input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
                   "divisor_override"),
    "lp_pool2d": ("input", "norm_type", "kernel_size", "stride", "ceil_mode"),
    "pad": ("input", "pad", "mode", "value"),
    "linear": ("input", "weight", "bias"),
}
_CONV = {"conv1d", "conv2d", "conv3d"}
_POOL = {"max_pool2d", "max_pool2d_with_indices", "avg_pool2d", "lp_pool2d"}
_ADAPTIVE = {"adaptive_avg_pool2d", "adaptive_max_pool2d"}
_MATMUL = {"matmul", "mm", "bmm", "addmm", "baddbmm", "__matmul__"}
_NORM = {"batch_norm", "layer_norm", "group_norm", "instance_norm", "local_response_norm"}
_ACT = {"relu", "relu_", "relu6", "hardtanh", "hardtanh_", "leaky_relu", "leaky_relu_", "gelu",
        "silu", "sigmoid", "sigmoid_", "tanh", "tanh_", "hardswish", "hardsigmoid", "elu", "selu",
        "softplus", "mish"}
_ELEMENTWISE = {"add", "add_", "__add__", "__iadd__", "__radd__", "sub", "sub_", "__sub__",
                "mul", "mul_", "__mul__", "__imul__", "__rmul__"}
# functional calls outside leaf modules that get their own row
_ROW_OPS = (_CONV | _POOL | _ADAPTIVE | _MATMUL | _NORM | _ACT | _ELEMENTWISE
            | {"linear", "conv_transpose2d", "cat", "concat", "flatten", "view", "reshape", "mean",
               "pad", "interpolate", "dropout", "softmax", "log_softmax"})


def _bind(name, args, kwargs):
    names = _SIGNATURES[name]
    bound = dict(zip(names, args))
    bound.update(kwargs)
    return bound


def _pair(v, default=None):
    if v is None or (isinstance(v, (tuple, list)) and len(v) == 0):
        v = default
    if isinstance(v, (tuple, list)):
        return (int(v[0]), int(v[-1])) if len(v) in (1, 2) else (int(v[-2]), int(v[-1]))
    return (int(v), int(v))


def _tensors(obj):
    """Tensors in args/kwargs, one level into lists/tuples (``torch.cat([a, b])``)."""
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            if isinstance(o, torch.Tensor):
                yield o
            elif isinstance(o, (list, tuple)):
                yield from (t for t in o if isinstance(t, torch.Tensor))
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _tensors(o)


def _first_tensor(out):
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)):
        for o in out:
            if isinstance(o, torch.Tensor):
                return o
    return None


def _shares(y, inputs) -> bool:
    """True when ``y`` is one of ``inputs`` (an in-place op) or a view of one (flatten, reshape)."""
    base = y._base if y._base is not None else y
    for t in inputs:
        if y is t or base is t or (t._base is not None and base is t._base):
            return True
    return False


def _spatial_slices(index, shape):
    """For ``x[..., a::s, b::t]`` on a 4-D tensor: ((a, s), (b, t)); None for other indexing."""
    index = index if isinstance(index, tuple) else (index,)
    if any(not isinstance(i, slice) and i is not Ellipsis for i in index) or \
            sum(i is Ellipsis for i in index) > 1:
        return None
    if Ellipsis in index:
        k = index.index(Ellipsis)
        index = index[:k] + (slice(None),) * (4 - len(index) + 1) + index[k + 1:]
    index = index + (slice(None),) * (4 - len(index))
    if len(index) != 4:
        return None
    out = []
    for a in (2, 3):
        start, _, step = index[a].indices(int(shape[a]))
        out.append((start, step))
    return tuple(out)


def _numel(shape):
    return int(math.prod(shape))


class _Frame:
    __slots__ = ("module", "name", "leaf", "inputs", "flops")

    def __init__(self, module, name, leaf, inputs):
        self.module, self.name, self.leaf, self.inputs, self.flops = module, name, leaf, inputs, 0


class _Tracker(TorchFunctionMode):
    """Propagates receptive fields and counts FLOPs for every torch call (see module docstring)."""

    def __init__(self, factor: int, count_all: bool):
        super().__init__()
        self.factor, self.count_all = factor, count_all
        self.fields: dict = {}  # id(tensor) -> (tensor, ReceptiveField | None); keeps tensors alive
        self.stack: list = []
        self.rows: list = []
        self.name_counts: dict = {}
        self.notes: set = set()

    # -- tensor -> receptive field ----------------------------------------------------------------
    def get(self, t):
        entry = self.fields.get(id(t))
        return entry[1] if entry is not None and entry[0] is t else _MISSING

    def set(self, t, rf):
        self.fields[id(t)] = (t, rf)

    def unique_name(self, name):
        n = self.name_counts.get(name, 0) + 1
        self.name_counts[name] = n
        return name if n == 1 else f"{name} #{n}"

    # -- the mode -----------------------------------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        y = _first_tensor(out)
        if y is None:
            return out
        ins = [t for t in _tensors(args) if self.get(t) is not _MISSING]
        ins += [t for t in _tensors(kwargs) if self.get(t) is not _MISSING]
        if not ins:
            return out
        name = getattr(func, "__name__", str(func))
        self.set(y, self._field(name, args, kwargs, ins, y))
        flops = self._flops(name, args, kwargs, ins, y)
        top = self.stack[-1] if self.stack else None
        if top is not None and top.leaf:
            top.flops += flops
        elif name in _ROW_OPS or flops:
            prefix = f"{top.name}." if top is not None and top.name else ""
            inplace = _shares(y, ins)
            self.rows.append(LayerRow(self.unique_name(prefix + name.strip("_")),
                                      "F." + name.strip("_"), tuple(y.shape),
                                      y.numel() * y.element_size(), 0, flops, self.get(y), inplace))
        return out

    def _field(self, name, args, kwargs, ins, y):
        fields = [self.get(t) for t in ins]
        if any(f is None for f in fields):
            return None
        out_sp = tuple(y.shape[-2:]) if y.dim() == 4 else None
        x = ins[0]
        fx = fields[0]
        try:
            if name == "conv2d" and out_sp and fx.spatial is not None:
                b = _bind(name, args, kwargs)
                k = tuple(b["weight"].shape[-2:])
                d = _pair(b.get("dilation", 1))
                p = b.get("padding", 0)
                if p == "valid":
                    p = (0, 0)
                elif p == "same":
                    p = tuple((d[a] * (k[a] - 1)) // 2 for a in range(2))
                return fx.window(k, _pair(b.get("stride", 1)), _pair(p), d, out_sp)
            if name in _POOL and out_sp and fx.spatial is not None:
                b = _bind(name, args, kwargs)
                k = _pair(b["kernel_size"])
                return fx.window(k, _pair(b.get("stride"), k), _pair(b.get("padding", 0)),
                                 _pair(b.get("dilation", 1)), out_sp)
            if name in _ADAPTIVE and out_sp:
                return fx.adaptive(out_sp)
            if name == "__getitem__" and out_sp and fx.spatial is not None and x.dim() == 4:
                steps = _spatial_slices(args[1], x.shape)
                if steps is not None:
                    (s0, t0), (s1, t1) = steps
                    return fx.window((1, 1), (t0, t1), (-s0, -s1), (1, 1), out_sp)
            if name == "pad" and out_sp and fx.spatial is not None:
                pads = list(_bind(name, args, kwargs)["pad"]) + [0, 0, 0, 0]
                return fx.shifted(pads[2], pads[0], out_sp)
        except (KeyError, TypeError, ValueError):
            self.notes.add(f"could not read the window of {name}; its receptive field is unknown")
            return None
        if out_sp is None:
            return ReceptiveField.union(fields, None)
        if all(f.spatial is None or tuple(f.spatial) == out_sp for f in fields):
            return ReceptiveField.union(fields, out_sp)
        self.notes.add(f"{name} changes the spatial size without a window; receptive fields "
                       "after it are unknown (?)")
        return None

    def _flops(self, name, args, kwargs, ins, y):
        f = self.factor
        if name in _CONV:
            w = _bind(name, args, kwargs)["weight"]
            return f * y.numel() * _numel(w.shape[1:])
        if name == "conv_transpose2d":
            b = _bind(name, args, kwargs)
            return f * b["input"].numel() * _numel(b["weight"].shape[1:])
        if name == "linear":
            w = _bind(name, args, kwargs)["weight"]
            return f * y.numel() * int(w.shape[-1])
        if name in _MATMUL:
            a = args[1] if name in ("addmm", "baddbmm") else args[0]
            return f * y.numel() * int(a.shape[-1])
        if not self.count_all:
            return 0
        if name in _NORM:
            return f * y.numel()
        if name in _ACT or name in _ELEMENTWISE:
            return y.numel()
        if name in _POOL:
            return y.numel() * _numel(_pair(_bind(name, args, kwargs)["kernel_size"]))
        if name in _ADAPTIVE:
            return ins[0].numel()
        return 0


def _check_input_size(input_size):
    if not isinstance(input_size, (tuple, list, torch.Size)):
        raise ValueError(f"input_size must be a tuple (C, H, W) or (N, C, H, W), got {input_size!r}")
    if len(input_size) not in (3, 4):
        raise ValueError(f"input_size must have 3 entries (C, H, W) or 4 (N, C, H, W), got "
                         f"{tuple(input_size)} with {len(input_size)}")
    size = tuple(check_int(f"input_size[{i}]", v, 1) for i, v in enumerate(input_size))
    return size if len(size) == 4 else (1,) + size


def summarize(model: nn.Module, input_size, dtype: torch.dtype = torch.float32, device=None,
              flops: str = "mac", count_all: bool = False) -> ModelSummary:
    """Per-layer table of a network: output shape, memory, parameters, FLOPs, receptive field.

    Args:
        model: a ``torch.nn.Module`` taking one image batch ``(N, C, H, W)``. It is run once in
            eval mode (its train/eval flags are restored afterwards) and not modified.
        input_size: ``(C, H, W)`` (batch of 1) or ``(N, C, H, W)``, positive ints.
        dtype: floating dtype of the input and of floating parameters (sets the byte counts).
        device: where the forward runs. ``None`` or ``"meta"`` (default): the meta device, shapes
            only, no arithmetic -- instant even for VGG. ``"cpu"``/``"cuda"``: a real forward
            (for models whose forward depends on values).
        flops: ``"mac"`` (1 multiply-add = 1 FLOP, the lectures' and torchvision's convention) or
            ``"flop"`` (1 multiply-add = 2 FLOPs).
        count_all: also count normalisation, activations, element-wise ops and pooling (see the
            module docstring); default: conv and linear only.

    Returns:
        :class:`ModelSummary`, one :class:`LayerRow` per call of a leaf module or functional op,
        with totals; ``print(summary)`` shows the table and the conventions.

    Raises:
        ValueError: for a bad ``input_size`` / ``flops`` / ``dtype``, or when the forward fails on
            that input (the message includes the original error).

    Example:
        >>> import torch.nn as nn
        >>> s = summarize(nn.Conv2d(3, 96, 11, stride=4), (3, 227, 227))   # AlexNet conv1
        >>> s[0].output_shape, s[0].params, s[0].flops, s[0].rf
        ((1, 96, 55, 55), 34944, 105415200, 11)
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    size = _check_input_size(input_size)
    if flops not in ("mac", "flop"):
        raise ValueError(f"flops must be 'mac' (1 multiply-add = 1 FLOP) or 'flop' (= 2), got {flops!r}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    device = torch.device("meta" if device is None else device)

    state = {}
    for n, t in list(model.named_parameters()) + list(model.named_buffers()):
        if t.device.type == "meta" and device.type != "meta":
            raise ValueError(f"model has meta tensors ({n}); summarize it with device='meta'")
        state[n] = t.detach().to(device=device, dtype=dtype if t.is_floating_point() else t.dtype)

    names = {}
    for n, m in model.named_modules():
        names.setdefault(id(m), n)
    seen_modules: set = set()
    tracker = _Tracker(2 if flops == "flop" else 1, count_all)

    def pre_hook(module, inputs):
        leaf = next(iter(module.children()), None) is None
        tracker.stack.append(_Frame(module, names.get(id(module), type(module).__name__), leaf,
                                    tuple(_tensors(inputs))))

    def post_hook(module, inputs, output):
        frame = tracker.stack.pop()
        if not frame.leaf:
            return
        y = _first_tensor(output)
        params = 0
        if id(module) not in seen_modules:  # a module called again: parameters counted once
            seen_modules.add(id(module))
            params = sum(p.numel() for p in module.parameters(recurse=False))
        if y is None:
            return
        rf = tracker.get(y)
        tracker.rows.append(LayerRow(
            tracker.unique_name(frame.name or type(module).__name__), type(module).__name__,
            tuple(y.shape), y.numel() * y.element_size(), params, frame.flops,
            None if rf is _MISSING else rf, _shares(y, frame.inputs)))

    modules = list(model.modules())
    training = [m.training for m in modules]
    handles = []
    try:
        model.eval()
        for m in modules:
            handles.append(m.register_forward_pre_hook(pre_hook))
            handles.append(m.register_forward_hook(post_hook))
        x = torch.zeros(size, dtype=dtype, device=device)
        tracker.set(x, ReceptiveField.identity(size[2], size[3]))
        with torch.no_grad(), tracker:
            try:
                torch.func.functional_call(model, state, (x,), strict=False)
            except Exception as e:  # report which input broke the model
                hint = (" (on the meta device a forward that reads tensor values fails; "
                        "try device='cpu')" if device.type == "meta" else "")
                raise ValueError(f"forward of {type(model).__name__} failed for input_size "
                                 f"{size}{hint}: {type(e).__name__}: {e}") from e
    finally:
        for h in handles:
            h.remove()
        for m, t in zip(modules, training):
            m.training = t

    params = list(model.parameters())  # unique (shared parameters once)
    itemsize = torch.empty((), dtype=dtype).element_size()
    return ModelSummary(
        rows=tracker.rows, input_size=size, dtype=dtype, flops_convention=flops,
        count_all=count_all, total_params=sum(p.numel() for p in params),
        trainable_params=sum(p.numel() for p in params if p.requires_grad),
        param_memory=sum(p.numel() * (itemsize if p.is_floating_point() else p.element_size())
                         for p in params),
        notes=sorted(tracker.notes))
