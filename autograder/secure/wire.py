"""The TRUSTED side of the pipe to a student's process: framing, strict decoding, proxies.

Everything read from the student's process is validated here and turned into plain data —
``None``/bool/int/float/complex/str/bytes, numpy arrays and scalars of numeric, bool or string
dtypes (``np.load(allow_pickle=False)``), torch tensors (rebuilt from such arrays), and tuples,
lists, dicts and slices of those — or into a :class:`RemoteObject` handle that forwards calls,
attribute access, indexing, ``len`` and iteration. Nothing is ever unpickled, and a handle
never lends its truth value, equality or hash to the trusted side: a student object whose
``__eq__`` always returns True compares equal only to itself here.
"""
from __future__ import annotations

import builtins
import io
import json
import os
import select
import struct
import time

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


def decode(v, blobs, conn: "AgentConnection", depth: int = 0):
    """Turn a reply value into trusted data (see module docstring); raise ProtocolError if bad."""
    if depth > MAX_DEPTH:
        raise ProtocolError("value nested too deeply")
    if v is None or type(v) in (bool, int, float, str):
        return v
    if type(v) is not dict or type(v.get("t")) is not str:
        raise ProtocolError(f"bad value of type {type(v).__name__}")
    t = v["t"]
    sub = lambda x: decode(x, blobs, conn, depth + 1)  # noqa: E731
    try:
        if t in ("tuple", "list"):
            seq = [sub(x) for x in v["v"]]
            return tuple(seq) if t == "tuple" else seq
        if t == "dict":
            out = {}
            for k, x in v["v"]:
                k = sub(k)
                if isinstance(k, (list, dict, np.ndarray, RemoteObject)):
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
        if t in ("nd", "npscalar", "torch"):
            i = v["i"]
            if type(i) is not int or not 0 <= i < len(blobs):
                raise ProtocolError("bad blob index")
            arr = _load_npy(blobs[i])
            if t == "npscalar":
                return arr[()]
            if t == "torch":
                import torch
                out = torch.from_numpy(arr.copy())
                return out.requires_grad_(True) if v.get("grad") is True and out.is_floating_point() else out
            return arr
        if t == "h":
            if type(v.get("id")) is not int:
                raise ProtocolError("bad handle")
            return RemoteObject(conn, v["id"], str(v.get("repr", ""))[:200], str(v.get("type", ""))[:80],
                                bool(v.get("callable") is True))
    except ProtocolError:
        raise
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ProtocolError(f"malformed {t!r} value: {exc}") from None
    raise ProtocolError(f"unknown value tag {t!r}")


def encode(obj, blobs: list, conn: "AgentConnection", depth: int = 0):
    """Encode a trusted value as an argument for student code (data and handles only)."""
    if depth > MAX_DEPTH:
        raise TypeError("argument nested too deeply for student code")
    t = type(obj)
    if obj is None or t in (bool, int, str):
        return obj
    if t is float:
        return obj if obj == obj and abs(obj) != float("inf") else {"t": "float", "v": repr(obj)}
    if t is complex:
        return {"t": "complex", "re": obj.real, "im": obj.imag}
    if t in (tuple, list):
        return {"t": t.__name__, "v": [encode(x, blobs, conn, depth + 1) for x in obj]}
    if t is dict:
        return {"t": "dict", "v": [[encode(k, blobs, conn, depth + 1), encode(x, blobs, conn, depth + 1)]
                                   for k, x in obj.items()]}
    if t is bytes:
        blobs.append(obj)
        return {"t": "bytes", "i": len(blobs) - 1}
    if t is slice:
        return {"t": "slice", "v": [encode(x, blobs, conn, depth + 1) for x in (obj.start, obj.stop, obj.step)]}
    if obj is Ellipsis:
        return {"t": "ellipsis"}
    if isinstance(obj, RemoteObject):
        if obj._conn is not conn:
            raise TypeError("handle of another student's process")
        return {"t": "h", "id": obj._id}
    if isinstance(obj, np.dtype):
        return {"t": "dtype", "v": obj.str}
    if isinstance(obj, (np.ndarray, np.generic)) and not np.asarray(obj).dtype.hasobject:
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(obj), allow_pickle=False)
        blobs.append(buf.getvalue())
        return {"t": "nd" if isinstance(obj, np.ndarray) else "npscalar", "i": len(blobs) - 1}
    torch = __import__("sys").modules.get("torch")
    if torch is not None and isinstance(obj, torch.Tensor):
        buf = io.BytesIO()
        np.save(buf, obj.detach().cpu().numpy(), allow_pickle=False)
        blobs.append(buf.getvalue())
        return {"t": "torch", "i": len(blobs) - 1, "grad": bool(obj.requires_grad)}
    raise TypeError(f"cannot pass a {t.__name__} to student code (only data: numbers, strings, "
                    "arrays, tensors, tuples/lists/dicts of those)")


class AgentConnection:
    """Requests to one student's process; each waits at most until ``deadline()``."""

    def __init__(self, rfd: int, wfd: int, deadline_fn, on_dead=None):
        self.rfd, self.wfd = rfd, wfd
        self.deadline = deadline_fn
        self.on_dead = on_dead  # called once when the process times out or dies
        self.dead: str | None = None

    def request(self, head: dict, blobs: list | None = None):
        """Send one request; return (reply header, decoded value or None)."""
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
        if reply.get("ok") is True:
            value = decode(reply["value"], rblobs, self) if "value" in reply else None
            return reply, value
        if head.get("op") == "exec":
            return reply, None
        etype = str(reply.get("etype", "Exception"))[:80]
        msg = str(reply.get("msg", ""))[:2000]
        if etype == "StopIteration" and head.get("op") == "next":
            raise StopIteration
        cls = _exc_class(etype)
        raise cls(msg if cls is not StudentError else f"{etype}: {msg}")

    def value(self, head: dict, blobs: list | None = None):
        return self.request(head, blobs)[1]


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
        blobs: list = []
        a = [encode(x, blobs, self._conn) for x in args]
        kw = [[k, encode(x, blobs, self._conn)] for k, x in kwargs.items()]
        return self._conn.value({"op": "call", "h": self._id, "args": a, "kw": kw}, blobs)

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return self._conn.value({"op": "getattr", "h": self._id, "name": name})

    def __setattr__(self, name, value):
        raise TypeError("student objects cannot be modified from the tests")

    def __getitem__(self, key):
        blobs: list = []
        return self._conn.value({"op": "getitem", "h": self._id, "key": encode(key, blobs, self._conn)}, blobs)

    def __len__(self):
        n = self._conn.value({"op": "len", "h": self._id})
        if type(n) is not int or n < 0:
            raise TypeError("len() of a student object did not return a non-negative int")
        return n

    def __iter__(self):
        it = self._conn.value({"op": "iter", "h": self._id})
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
