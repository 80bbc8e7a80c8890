"""The TRUSTED side of the pipe to a student's process: framing, strict decoding, proxies.

The crossing rule (autograder/README.md, "Crossing the boundary"):

- trusted -> student: call arguments travel as ONE pickle made here (:func:`encode_call`), so
  library objects (torch/cnnlab models, optimizers, dicts of arrays...) arrive by value; the
  student's own objects go back as handles (persistent ids).
- student -> trusted: nothing is ever unpickled. Every reply value is parsed by :func:`decode`
  into plain data — ``None``/bool/int/float/complex/str/bytes, numpy arrays and scalars of
  numeric, bool or string dtypes (``np.load(allow_pickle=False)``), torch tensors of any dtype
  and exact shape, ``torch.Size``/``dtype``/``device``, tuples, lists, dicts, OrderedDicts and
  slices of those — into a library ``nn.Module`` rebuilt from its description
  (:func:`build_module`; the class must already be imported here, :func:`library_class`), into
  a ``ref`` to an object the trusted side passed in this call, or into a :class:`RemoteObject`
  handle that forwards calls, attribute access, indexing, ``len`` and iteration.
- in-place changes: after a call the agent sends the new state of each mutable argument that
  changed; :func:`_apply_state` re-applies it to the caller's own objects (identity preserved).

A handle never lends its truth value, equality or hash to the trusted side: a student object
whose ``__eq__`` always returns True compares equal only to itself here.
"""
from __future__ import annotations

import builtins
import collections
import inspect
import io
import json
import os
import pickle
import select
import struct
import sys
import time
import types

import numpy as np

__all__ = ["ProtocolError", "StudentTimeout", "StudentProcessDied", "StudentError",
           "AgentConnection", "RemoteObject", "decode", "encode"]

MAX_HEADER = 64 << 20
MAX_BLOB = 1 << 30
MAX_DEPTH = 32
_ND_KINDS = set("biufcUSmM")


class ProtocolError(Exception):
    """The student's process sent something that is not a valid reply."""


class StudentTimeout(Exception):
    """Student code ran past its time limit (the student's process was stopped)."""


class StudentProcessDied(Exception):
    """The student's process ended (os._exit, a crash, a memory or process limit)."""


class StudentError(Exception):
    """An exception raised by student code whose type is not a built-in exception."""


def _exc_class(name: str):
    """Map a reported exception type name to a *trusted* class: built-in Exceptions only."""
    cls = getattr(builtins, name, None) if isinstance(name, str) else None
    if isinstance(cls, type) and issubclass(cls, Exception) and cls is not StopIteration:
        return cls
    return StudentError


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes:
    chunks, got = [], 0
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise StudentTimeout("time limit reached")
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                raise StudentTimeout("time limit reached")
        b = os.read(fd, min(n - got, 1 << 20))
        if not b:
            raise StudentProcessDied("the student's process ended")
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def recv(fd: int, deadline: float | None):
    (n,) = struct.unpack(">I", _read_exact(fd, 4, deadline))
    if n > MAX_HEADER:
        raise ProtocolError(f"reply header of {n} bytes is too large")
    try:
        head = json.loads(_read_exact(fd, n, deadline).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"reply is not JSON: {exc}") from None
    if not isinstance(head, dict):
        raise ProtocolError("reply is not a JSON object")
    nb = head.get("nblobs", 0)
    if type(nb) is not int or not 0 <= nb <= 100_000:
        raise ProtocolError("bad blob count")
    blobs = []
    for _ in range(nb):
        (m,) = struct.unpack(">Q", _read_exact(fd, 8, deadline))
        if m > MAX_BLOB:
            raise ProtocolError("blob too large")
        blobs.append(_read_exact(fd, m, deadline))
    return head, blobs


def send(fd: int, head: dict, blobs: list) -> None:
    head = dict(head, nblobs=len(blobs))
    data = json.dumps(head).encode("utf-8")
    parts = [struct.pack(">I", len(data)), data]
    for b in blobs:
        parts += [struct.pack(">Q", len(b)), b]
    buf = memoryview(b"".join(parts))
    try:
        while buf:
            buf = buf[os.write(fd, buf):]
    except (BrokenPipeError, OSError):
        raise StudentProcessDied("the student's process ended") from None


def _load_npy(blob) -> np.ndarray:
    if not isinstance(blob, bytes):
        raise ProtocolError("bad array blob")
    try:
        arr = np.load(io.BytesIO(blob), allow_pickle=False)
    except Exception as exc:  # noqa: BLE001
        raise ProtocolError(f"bad array: {exc}") from None
    if type(arr) is not np.ndarray or arr.dtype.hasobject or arr.dtype.kind not in _ND_KINDS \
            or arr.dtype.fields is not None:
        raise ProtocolError("array of a forbidden dtype")
    return arr


_TORCH_NUMPY = {"bool": "|b1", "uint8": "|u1", "int8": "|i1", "int16": "<i2", "int32": "<i4", "int64": "<i8",
                "float16": "<f2", "float32": "<f4", "float64": "<f8", "complex64": "<c8", "complex128": "<c16"}
#: Module attributes that are nn.Module's own machinery: restored by the rules below, never set from data.
_MODULE_INTERNAL = frozenset(("_parameters", "_buffers", "_modules", "_non_persistent_buffers_set", "training",
                              "_backward_hooks", "_backward_pre_hooks", "_forward_hooks", "_forward_pre_hooks",
                              "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
                              "_forward_pre_hooks_with_kwargs", "_is_full_backward_hook", "_state_dict_hooks",
                              "_state_dict_pre_hooks", "_load_state_dict_pre_hooks",
                              "_load_state_dict_post_hooks"))
_LIBRARY = ("torch", "cnnlab")

#: ``module:qualname`` of the library classes withheld from the student edition (an exercise's
#: answer, see autograder/edition.py), set by the runner. The student's process only has stubs of
#: them, so a description naming one is never rebuilt here as the real class: that would hand
#: the library's answer to student code.
WITHHELD: frozenset = frozenset()


def _torch():
    import torch
    return torch


def library_class(path: str, base=None):
    """The class named ``module:qualname`` if it is defined in torch or cnnlab, its module is
    ALREADY imported here (data never triggers an import) and it is a subclass of ``base``;
    else ProtocolError. This is the only way data from the student's side names a class."""
    if type(path) is not str or path.count(":") != 1:
        raise ProtocolError(f"bad class path {str(path)[:80]!r}")
    mod_name, qual = path.split(":")
    if mod_name.split(".")[0] not in _LIBRARY or "<" in qual or any(
            p.startswith("__") or not p.isidentifier() for p in qual.split(".")):
        raise ProtocolError(f"class {path!r} is not from the course library (torch, cnnlab)")
    mod = sys.modules.get(mod_name)
    if mod is None:
        raise ProtocolError(f"class {path!r}: module {mod_name} is not loaded on the grading side")
    obj = mod
    for part in qual.split("."):
        obj = vars(obj).get(part) if isinstance(obj, (type, types.ModuleType)) else None
    if not isinstance(obj, type) or obj.__module__ != mod_name or obj.__qualname__ != qual:
        raise ProtocolError(f"class {path!r} not found")
    if base is not None and not issubclass(obj, base):
        raise ProtocolError(f"class {path!r} is not a {base.__name__}")
    if path in WITHHELD:
        raise ProtocolError(f"class {path!r} is withheld from the student edition (an exercise's answer): "
                            f"an object of it made by student code is not graded as the library's class")
    return obj


def _decode_tensor(v, blobs):
    torch = _torch()
    name = v.get("dtype")
    dtype = getattr(torch, name, None) if type(name) is str and name.isidentifier() else None
    if not isinstance(dtype, torch.dtype):
        raise ProtocolError(f"unknown tensor dtype {str(name)[:40]!r}")
    shape = v.get("shape")
    if type(shape) is not list or len(shape) > 32 or any(type(s) is not int or s < 0 for s in shape):
        raise ProtocolError("bad tensor shape")
    dev = v.get("dev")
    if dev == "meta":
        t = torch.empty(shape, dtype=dtype, device="meta")
    else:
        i = v.get("i")
        if type(i) is not int or not 0 <= i < len(blobs):
            raise ProtocolError("bad blob index")
        arr = _load_npy(blobs[i])
        numel = int(np.prod(shape, dtype=np.int64))
        if v.get("raw") is True:
            if arr.dtype != np.uint8 or arr.ndim != 1 or arr.size != numel * dtype.itemsize:
                raise ProtocolError("bad raw tensor data")
            t = torch.from_numpy(arr.copy()).view(dtype).reshape(shape)
        else:
            if _TORCH_NUMPY.get(name) != arr.dtype.str or list(arr.shape) != shape:
                raise ProtocolError(f"tensor data does not match its dtype {name} and shape {shape}")
            t = torch.from_numpy(np.array(arr, copy=True))
        if type(dev) is str and dev not in ("cpu", "meta"):
            try:
                t = t.to(dev)
            except Exception:  # noqa: BLE001  (no such device here: keep it on the CPU)
                pass
    if v.get("param") is True:
        return torch.nn.Parameter(t, requires_grad=v.get("rg") is True and (t.is_floating_point() or t.is_complex()))
    if v.get("rg") is True and (t.is_floating_point() or t.is_complex()):
        t.requires_grad_(True)
    return t


def decode(v, blobs, conn: "AgentConnection", depth: int = 0, registry: list | None = None):
    """Turn a reply value into trusted data (see module docstring); raise ProtocolError if bad.

    ``registry``: the caller's objects of the current call; ``ref`` values resolve to them."""
    if depth > MAX_DEPTH:
        raise ProtocolError("value nested too deeply")
    if v is None or type(v) in (bool, int, float, str):
        return v
    if type(v) is not dict or type(v.get("t")) is not str:
        raise ProtocolError(f"bad value of type {type(v).__name__}")
    t = v["t"]
    sub = lambda x: decode(x, blobs, conn, depth + 1, registry)  # noqa: E731
    try:
        if t in ("tuple", "list"):
            seq = [sub(x) for x in v["v"]]
            return tuple(seq) if t == "tuple" else seq
        if t in ("dict", "odict"):
            out = {} if t == "dict" else collections.OrderedDict()
            for k, x in v["v"]:
                k = sub(k)
                if isinstance(k, (list, dict, np.ndarray, RemoteObject)) or type(k).__module__.startswith("torch"):
                    raise ProtocolError("unhashable dict key")
                out[k] = sub(x)
            return out
        if t == "float":
            if v["v"] not in ("nan", "inf", "-inf"):
                raise ProtocolError("bad float")
            return float(v["v"])
        if t == "complex":
            return complex(float(v["re"]), float(v["im"]))
        if t == "bytes":
            b = blobs[v["i"]]
            return bytes(b)
        if t == "slice":
            a, b, c = (sub(x) for x in v["v"])
            return slice(a, b, c)
        if t == "ellipsis":
            return Ellipsis
        if t == "dtype":
            dt = np.dtype(str(v["v"]))
            if dt.hasobject or dt.kind not in _ND_KINDS:
                raise ProtocolError("forbidden dtype")
            return dt
        if t in ("nd", "npscalar"):
            i = v["i"]
            if type(i) is not int or not 0 <= i < len(blobs):
                raise ProtocolError("bad blob index")
            arr = _load_npy(blobs[i])
            return arr[()] if t == "npscalar" else arr
        if t == "tensor":
            return _decode_tensor(v, blobs)
        if t == "size":
            return _torch().Size([int(x) for x in v["v"] if type(x) is int])
        if t == "device":
            return _torch().device(str(v["v"])[:40])
        if t == "tdtype":
            dt = getattr(_torch(), str(v["v"]), None) if str(v["v"]).isidentifier() else None
            if not isinstance(dt, _torch().dtype):
                raise ProtocolError("unknown torch dtype")
            return dt
        if t == "ref":
            k = v.get("tok")
            if registry is None or type(k) is not int or not 0 <= k < len(registry):
                raise ProtocolError("reference to an object the grader did not pass")
            return registry[k]
        if t == "module":
            return build_module(v, blobs, conn, depth, registry)
        if t == "h":
            if type(v.get("id")) is not int:
                raise ProtocolError("bad handle")
            return _remote(conn, v["id"], str(v.get("repr", ""))[:200], str(v.get("type", ""))[:80],
                           bool(v.get("callable") is True))
    except ProtocolError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as exc:
        raise ProtocolError(f"malformed {t!r} value: {exc}") from None
    raise ProtocolError(f"unknown value tag {t!r}")


def _decode_attr(v, depth=0):
    """A module attribute: plain data, torch dtype/device/Size, or a library module class."""
    if depth > 8:
        raise ProtocolError("module attribute nested too deeply")
    if v is None or type(v) in (bool, int, float, str):
        return v
    if type(v) is not dict:
        raise ProtocolError("bad module attribute")
    t = v.get("t")
    if t in ("tuple", "list"):
        seq = [_decode_attr(x, depth + 1) for x in v["v"]]
        return tuple(seq) if t == "tuple" else seq
    if t == "dict":
        out = {}
        for k, x in v["v"]:
            k = _decode_attr(k, depth + 1)
            if isinstance(k, (list, dict)):
                raise ProtocolError("unhashable dict key")
            out[k] = _decode_attr(x, depth + 1)
        return out
    if t == "cls":
        return library_class(v["v"], _torch().nn.Module)
    if t in ("float", "size", "device", "tdtype"):
        return decode(v, [], None)
    raise ProtocolError(f"module attribute of kind {str(t)[:20]!r} is not data")


def _check_attr_name(cls, name):
    if type(name) is not str or not name.isidentifier() or name.startswith("__") or name in _MODULE_INTERNAL:
        raise ProtocolError(f"bad module attribute name {str(name)[:40]!r}")
    static = inspect.getattr_static(cls, name, None)
    if static is not None and (callable(static) or hasattr(static, "__get__")):
        raise ProtocolError(f"module attribute {name!r} would hide the method or property {cls.__name__}.{name}")


def build_module(desc, blobs, conn, depth=0, registry=None, target=None):
    """A module from its description: a new one of a library class, or (``target``) the
    caller's own module brought up to the student's changes, children and tensors that the
    student kept resolving to the caller's objects (identity preserved)."""
    torch = _torch()
    nn = torch.nn
    if depth > MAX_DEPTH:
        raise ProtocolError("module nested too deeply")
    if target is None:
        cls = library_class(desc["cls"], nn.Module)
        m = cls.__new__(cls)
        nn.Module.__init__(m)
    else:
        cls, m = type(target), target
        if desc.get("cls") != f"{cls.__module__}:{cls.__qualname__}":
            raise ProtocolError("the student's process changed the class of a module it was given")
    sub = lambda x: decode(x, blobs, conn, depth + 1, registry)  # noqa: E731
    attrs, keep = {}, set()
    for k, v in desc["attrs"]:
        if type(v) is dict and v.get("t") == "keep":
            if target is None:
                raise ProtocolError("'keep' in a new module")
            keep.add(k)
            continue
        _check_attr_name(cls, k)
        attrs[k] = _decode_attr(v)

    def tensors(pairs, params):
        out = collections.OrderedDict()
        for k, v in pairs:
            if type(k) is not str or not k.isidentifier():
                raise ProtocolError("bad parameter name")
            val = None if v is None else sub(v)
            if val is not None and not isinstance(val, torch.Tensor):
                raise ProtocolError(f"{k!r} is not a tensor")
            if params and val is not None and not isinstance(val, nn.Parameter):
                val = nn.Parameter(val, requires_grad=val.requires_grad)
            out[k] = val
        return out

    params, buffers = tensors(desc["params"], True), tensors(desc["buffers"], False)
    children = collections.OrderedDict()
    for k, v in desc["children"]:
        if type(k) is not str or not k:
            raise ProtocolError("bad child module name")
        if v is None:
            children[k] = None
            continue
        child = registry[v["tok"]] if type(v) is dict and v.get("t") == "ref" and registry is not None \
            and type(v.get("tok")) is int and 0 <= v["tok"] < len(registry) else None
        if child is None:
            if type(v) is not dict or v.get("t") != "module":
                raise ProtocolError(f"child {k!r} is not a module")
            child = build_module(v, blobs, conn, depth + 1, registry)
        if not isinstance(child, nn.Module):
            raise ProtocolError(f"child {k!r} is not a module")
        children[k] = child
    nonpersistent = {str(x) for x in desc.get("np", [])}
    if not nonpersistent <= set(buffers):
        raise ProtocolError("non-persistent buffer that does not exist")
    d = m.__dict__
    for k in [k for k in d if k not in _MODULE_INTERNAL and k not in keep and k not in attrs]:
        del d[k]
    d.update(attrs)
    for table, new in ((d["_parameters"], params), (d["_buffers"], buffers), (d["_modules"], children)):
        table.clear()
        table.update(new)
    d["_non_persistent_buffers_set"] = nonpersistent
    d["training"] = desc.get("training") is True
    return m


def _apply_state(orig, st, blobs, conn, registry):
    """Re-apply the new state of a registry object (sent after a call) to the caller's object."""
    torch = sys.modules.get("torch")
    t = st.get("t") if type(st) is dict else None
    if t == "unsynced":
        raise TypeError(f"student code changed the {type(orig).__name__} it was given so that the change "
                        f"cannot be handed back: {str(st.get('why'))[:300]}")
    if type(orig) is np.ndarray:
        new = decode(st, blobs, conn, 0, registry)
        if isinstance(new, np.ndarray) and new.shape == orig.shape and orig.flags.writeable:
            orig[...] = new
        return
    if type(orig) in (dict, collections.OrderedDict) and t in ("dict", "odict"):
        new = decode(st, blobs, conn, 0, registry)
        orig.clear()
        orig.update(new)
        return
    if type(orig) is list and t == "list":
        orig[:] = decode(st, blobs, conn, 0, registry)
        return
    if torch is None:
        raise ProtocolError("torch state for a non-torch object")
    if isinstance(orig, torch.Tensor) and t == "tstate":
        data = _decode_tensor(st["data"], blobs)
        with torch.no_grad():
            if data.shape == orig.shape and data.dtype == orig.dtype and data.device == orig.device:
                orig.copy_(data)
            else:
                orig.data = data.detach()
        if orig.is_leaf and (orig.is_floating_point() or orig.is_complex()):
            orig.requires_grad_(st.get("rg") is True)
            g = st.get("grad")
            try:
                orig.grad = None if g is None else _decode_tensor(g, blobs).detach()
            except RuntimeError:
                orig.grad = None
        return
    if isinstance(orig, torch.nn.Module) and t == "mstate":
        build_module(st, blobs, conn, 0, registry, target=orig)
        return
    if isinstance(orig, torch.optim.Optimizer) and t == "optstate":
        sd = decode(st["v"], blobs, conn, 0, registry)
        if type(sd) is not dict or set(sd) != {"state", "param_groups"}:
            raise ProtocolError("bad optimizer state")
        orig.load_state_dict(sd)
        return
    if isinstance(orig, torch.Generator) and t == "genstate":
        arr = _load_npy(blobs[st["i"]])
        if arr.dtype != np.uint8 or arr.ndim != 1:
            raise ProtocolError("bad generator state")
        orig.set_state(torch.from_numpy(arr.copy()))
        return
    raise ProtocolError(f"state {t!r} does not fit a {type(orig).__name__}")


def _collect(obj, out: list, seen: set, depth: int = 0) -> None:
    """The mutable objects inside call arguments whose changes are handed back (the registry)."""
    if depth > 64 or len(seen) > 200_000:
        return
    t = type(obj)
    if obj is None or t in (bool, int, float, complex, str, bytes, type) or isinstance(obj, RemoteObject):
        return
    if id(obj) in seen:
        return
    seen.add(id(obj))
    torch = sys.modules.get("torch")
    if t in (tuple, list) or t is dict or t is collections.OrderedDict:
        if t is not tuple:
            out.append(obj)
        for x in (obj.values() if isinstance(obj, dict) else obj):
            _collect(x, out, seen, depth + 1)
        return
    if t is np.ndarray:
        out.append(obj)
        return
    if torch is not None:
        if isinstance(obj, torch.Tensor):
            out.append(obj)
            return
        if isinstance(obj, torch.nn.Module):
            out.append(obj)
            d = obj.__dict__
            for table in ("_parameters", "_buffers", "_modules"):
                for x in d[table].values():
                    _collect(x, out, seen, depth + 1)
            for k, x in d.items():
                if k not in _MODULE_INTERNAL:
                    _collect(x, out, seen, depth + 1)
            return
        if isinstance(obj, torch.optim.Optimizer):
            out.append(obj)
            for group in obj.param_groups:
                for p in group["params"]:
                    _collect(p, out, seen, depth + 1)
            return
        if isinstance(obj, torch.Generator):
            out.append(obj)
            return
    d = getattr(obj, "__dict__", None)
    if isinstance(d, dict) and not isinstance(obj, (types.ModuleType, types.FunctionType, type)):
        for x in list(d.values()):
            _collect(x, out, seen, depth + 1)


class _Pickler(pickle.Pickler):
    """Pickles trusted arguments for the student's process; handles go by their id."""

    def __init__(self, buf, conn):
        super().__init__(buf, protocol=5)
        self._conn = conn

    def persistent_id(self, obj):
        if type(obj) is RemoteObject:
            if obj._conn is not self._conn:
                raise TypeError("handle of another student's process")
            return ("h", obj._id)
        return None


def encode_call(args: tuple, kwargs: dict, conn) -> tuple[bytes, list]:
    """Arguments for student code: ONE pickle of ``(args, kwargs, registry)`` (loaded only in the
    student's process) and the registry, the caller's mutable objects in it (see :func:`_collect`)."""
    registry: list = []
    _collect((args, kwargs), registry, set())
    buf = io.BytesIO()
    try:
        _Pickler(buf, conn).dump((tuple(args), dict(kwargs), registry))
    except (pickle.PicklingError, TypeError, AttributeError, RecursionError) as exc:
        what = ", ".join(sorted({type(a).__name__ for a in (*args, *kwargs.values())}))
        raise TypeError(f"cannot pass ({what}) to student code: {exc}") from None
    return buf.getvalue(), registry


def encode(obj, blobs: list, conn: "AgentConnection", depth: int = 0):
    """Compatibility wrapper: one value as a pickled argument blob (see :func:`encode_call`)."""
    data, _ = encode_call((obj,), {}, conn)
    blobs.append(data)
    return {"t": "pickle", "i": len(blobs) - 1}


def torch_context() -> dict | None:
    """The caller's ambient torch state, applied in the student's process during a call:
    default device (``with torch.device("meta")``), grad mode, default dtype."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    return {"device": str(torch.get_default_device()), "grad": bool(torch.is_grad_enabled()),
            "dtype": str(torch.get_default_dtype()).replace("torch.", "")}


def _remote(conn, hid, rep, typ, is_callable):
    cache = getattr(conn, "remotes", None)
    if cache is not None and hid in cache:
        return cache[hid]
    obj = RemoteObject(conn, hid, rep, typ, is_callable)
    if cache is not None:
        cache[hid] = obj
    return obj


class AgentConnection:
    """Requests to one student's process; each waits at most until ``deadline()``."""

    def __init__(self, rfd: int, wfd: int, deadline_fn, on_dead=None):
        self.rfd, self.wfd = rfd, wfd
        self.deadline = deadline_fn
        self.on_dead = on_dead  # called once when the process times out or dies
        self.dead: str | None = None
        self.broke: dict[str, str] = {}   # answer id -> what it used that its rules forbid (agent reports)
        self.remotes: dict = {}  # handle id -> RemoteObject: one trusted object per student object

    def request(self, head: dict, blobs: list | None = None, registry: list | None = None):
        """Send one request; return (reply header, decoded value or None).

        ``registry``: the caller's mutable objects passed in this call (:func:`encode_call`);
        their new state in the reply is re-applied to them before the value is returned."""
        if self.dead:
            raise StudentProcessDied(f"student code cannot be run any more: {self.dead}")
        try:
            send(self.wfd, head, blobs or [])
            reply, rblobs = recv(self.rfd, self.deadline())
        except (StudentTimeout, StudentProcessDied, ProtocolError) as exc:
            self.dead = f"{type(exc).__name__}: {exc}"
            if self.on_dead:
                self.on_dead(exc)
            raise
        broke = reply.get("broke")
        if type(broke) is dict:
            for k, v in list(broke.items())[:1000]:
                if type(k) is str and type(v) is str:
                    self.broke.setdefault(k[:200], v[:500])
        if reply.get("ok") is True:
            if registry:
                sync = reply.get("sync")
                if type(sync) is not list or len(sync) != len(registry):
                    raise ProtocolError("the reply does not hand back the objects it was given")
                for orig, st in zip(registry, sync):
                    if st is not None:
                        _apply_state(orig, st, rblobs, self, registry)
            value = decode(reply["value"], rblobs, self, 0, registry) if "value" in reply else None
            return reply, value
        if head.get("op") == "exec":
            return reply, None
        etype = str(reply.get("etype", "Exception"))[:80]
        msg = str(reply.get("msg", ""))[:2000]
        if etype == "StopIteration" and head.get("op") == "next":
            raise StopIteration
        cls = _exc_class(etype)
        raise cls(msg if cls is not StudentError else f"{etype}: {msg}")

    def value(self, head: dict, blobs: list | None = None, registry: list | None = None):
        return self.request(head, blobs, registry)[1]

    def call(self, op: str, hid: int, args: tuple, kwargs: dict):
        """``op`` ("call" or "getitem") on handle ``hid`` with trusted arguments (by value)."""
        data, registry = encode_call(args, kwargs, self)
        head = {"op": op, "h": hid, "pickle": 0, "ctx": torch_context()}
        return self.value(head, [data], registry)


class RemoteObject:
    """A student object that stays in the student's process (a function, class, instance...)."""

    __slots__ = ("_conn", "_id", "_repr", "_type", "_callable", "__weakref__")

    def __init__(self, conn, hid, rep, typ, is_callable):
        object.__setattr__(self, "_conn", conn)
        object.__setattr__(self, "_id", hid)
        object.__setattr__(self, "_repr", rep)
        object.__setattr__(self, "_type", typ)
        object.__setattr__(self, "_callable", is_callable)

    def __call__(self, *args, **kwargs):
        return self._conn.call("call", self._id, args, kwargs)

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return self._conn.value({"op": "getattr", "h": self._id, "name": name, "ctx": torch_context()})

    def __setattr__(self, name, value):
        raise TypeError("student objects cannot be modified from the tests")

    def __getitem__(self, key):
        return self._conn.call("getitem", self._id, (key,), {})

    def __next__(self):
        return self._conn.value({"op": "next", "h": self._id})

    def __len__(self):
        n = self._conn.value({"op": "len", "h": self._id})
        if type(n) is not int or n < 0:
            raise TypeError("len() of a student object did not return a non-negative int")
        return n

    def __iter__(self):
        it = self._conn.value({"op": "iter", "h": self._id, "ctx": torch_context()})
        if not isinstance(it, RemoteObject):
            raise TypeError("iter() of a student object did not return an iterator")
        return _RemoteIterator(it)

    def __array__(self, dtype=None, copy=None):
        arr = self._conn.value({"op": "array", "h": self._id})
        if not isinstance(arr, np.ndarray):
            raise TypeError("student object is not array-like")
        return arr if dtype is None else arr.astype(dtype)

    # Truth value, equality and hashing are NOT forwarded: they would let student code decide.
    def __bool__(self):
        raise TypeError(f"the truth value of a student object ({self._type}) is not used in grading; "
                        "tests must compare data")

    def __eq__(self, other):
        return self is other

    def __ne__(self, other):
        return self is not other

    __hash__ = object.__hash__

    def __repr__(self):
        return f"<student {self._type}: {self._repr}>"


class _RemoteIterator:
    def __init__(self, it: RemoteObject):
        self._it = it

    def __iter__(self):
        return self

    def __next__(self):
        return self._it._conn.value({"op": "next", "h": self._it._id})
