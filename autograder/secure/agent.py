"""The UNTRUSTED side: runs a student's cells and answers requests over two pipes.

This file is self-contained (stdlib + numpy; torch only if the student uses it) because it runs
as ``python -I -c <this source> RFD WFD`` inside the sandbox, where the course directory is hidden.
Nothing here is trusted: the student's code runs in this process and may replace any of it.
The trusted side (:mod:`autograder.secure.wire`) therefore validates every byte it reads back and
never unpickles anything. Requests and replies are frames: a 4-byte big-endian length, a UTF-8
JSON header, then ``header["nblobs"]`` binary blobs (8-byte length + bytes, ``.npy`` format).
"""
import builtins
import io
import json
import re
import os
import struct
import sys
import traceback

_MAGIC = re.compile(r"^\s*[%!]|\?\s*$", re.M)
__all__ = ["main"]

_NP = None
_PLAIN = (bool, int, float, str, type(None))


def _read_exact(fd, n):
    chunks, got = [], 0
    while got < n:
        b = os.read(fd, min(n - got, 1 << 20))
        if not b:
            raise EOFError
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def _recv(fd):
    (n,) = struct.unpack(">I", _read_exact(fd, 4))
    head = json.loads(_read_exact(fd, n).decode("utf-8"))
    blobs = []
    for _ in range(head.get("nblobs", 0)):
        (m,) = struct.unpack(">Q", _read_exact(fd, 8))
        blobs.append(_read_exact(fd, m))
    return head, blobs


def _send(fd, head, blobs):
    head["nblobs"] = len(blobs)
    data = json.dumps(head).encode("utf-8")
    parts = [struct.pack(">I", len(data)), data]
    for b in blobs:
        parts += [struct.pack(">Q", len(b)), b]
    buf = memoryview(b"".join(parts))
    while buf:
        k = os.write(fd, buf)
        buf = buf[k:]


class _IPythonShim:
    """``get_ipython()`` for transformed magics: ``%matplotlib`` selects Agg; shell escapes do
    nothing; other magics go to a real (non-kernel) IPython shell."""

    def __init__(self, ns):
        self.ns, self._shell = ns, None

    def _real(self):
        if self._shell is None:
            from IPython.core.interactiveshell import InteractiveShell
            self._shell = InteractiveShell.instance(user_ns=self.ns)
        return self._shell

    def run_line_magic(self, name, line, _stack_depth=1):
        if name in ("matplotlib", "pylab"):
            import matplotlib
            matplotlib.use("Agg")
            return None
        return self._real().run_line_magic(name, line)

    def run_cell_magic(self, name, line, cell):
        return self._real().run_cell_magic(name, line, cell)

    def system(self, cmd):
        return None

    def getoutput(self, cmd, *a, **k):
        return []

    def __getattr__(self, name):
        return getattr(self._real(), name)


def _transform(src):
    from IPython.core.inputtransformer2 import TransformerManager
    return TransformerManager().transform_cell(src)


class Agent:
    def __init__(self):
        self.ns = {"__name__": "__main__", "__builtins__": builtins}
        self.handles = {}
        self.next_id = 1
        self.shell = None

    # -- values -> wire ---------------------------------------------------------------------
    def handle(self, obj):
        hid = self.next_id
        self.next_id += 1
        self.handles[hid] = obj
        try:
            r = repr(obj)[:200]
        except Exception:
            r = "<object>"
        return {"t": "h", "id": hid, "repr": r, "type": type(obj).__name__, "callable": callable(obj)}

    def enc(self, obj, blobs, depth=0):
        if depth > 20:
            return self.handle(obj)
        t = type(obj)
        if t in _PLAIN:
            if t is float and obj != obj or obj in (float("inf"), float("-inf")):
                return {"t": "float", "v": repr(obj)}
            return obj
        if t is complex:
            return {"t": "complex", "re": obj.real, "im": obj.imag}
        if t in (tuple, list):
            return {"t": t.__name__, "v": [self.enc(x, blobs, depth + 1) for x in obj]}
        if t is dict:
            return {"t": "dict", "v": [[self.enc(k, blobs, depth + 1), self.enc(v, blobs, depth + 1)]
                                       for k, v in obj.items()]}
        if t is bytes:
            blobs.append(obj)
            return {"t": "bytes", "i": len(blobs) - 1}
        if t is slice:
            return {"t": "slice", "v": [self.enc(x, blobs, depth + 1) for x in (obj.start, obj.stop, obj.step)]}
        if obj is Ellipsis:
            return {"t": "ellipsis"}
        np = _NP
        if np is not None:
            if isinstance(obj, np.ndarray) and not obj.dtype.hasobject:
                return {"t": "nd", "i": self._npy(np, np.asarray(obj), blobs)}
            if isinstance(obj, np.generic) and not isinstance(obj, np.object_):
                return {"t": "npscalar", "i": self._npy(np, np.asarray(obj), blobs)}
            if isinstance(obj, np.dtype):
                return {"t": "dtype", "v": obj.str}
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(obj, torch.Tensor) and np is not None:
            try:
                arr = obj.detach().cpu().numpy()
                return {"t": "torch", "i": self._npy(np, arr, blobs), "grad": bool(obj.requires_grad)}
            except Exception:
                pass
        return self.handle(obj)

    @staticmethod
    def _npy(np, arr, blobs):
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
        blobs.append(buf.getvalue())
        return len(blobs) - 1

    # -- wire -> values ---------------------------------------------------------------------
    def dec(self, v, blobs):
        if not isinstance(v, dict):
            return v
        t = v["t"]
        if t in ("tuple", "list"):
            seq = [self.dec(x, blobs) for x in v["v"]]
            return tuple(seq) if t == "tuple" else seq
        if t == "dict":
            return {self.dec(k, blobs): self.dec(x, blobs) for k, x in v["v"]}
        if t == "float":
            return float(v["v"])
        if t == "complex":
            return complex(v["re"], v["im"])
        if t == "bytes":
            return blobs[v["i"]]
        if t == "slice":
            return slice(*[self.dec(x, blobs) for x in v["v"]])
        if t == "ellipsis":
            return Ellipsis
        if t == "h":
            return self.handles[v["id"]]
        np = _NP
        if t == "dtype":
            return np.dtype(v["v"])
        arr = np.load(io.BytesIO(blobs[v["i"]]), allow_pickle=False)
        if t == "npscalar":
            return arr[()]
        if t == "torch":
            import torch
            out = torch.from_numpy(arr.copy())
            return out.requires_grad_(True) if v.get("grad") else out
        return arr

    # -- requests ---------------------------------------------------------------------------
    def run_cell(self, src):
        if _MAGIC.search(src):
            src = _transform(src)
            self.ns.setdefault("get_ipython", lambda shim=_IPythonShim(self.ns): shim)
        exec(compile(src, "<cell>", "exec"), self.ns)

    def serve(self, rfd, wfd):
        while True:
            try:
                req, blobs = _recv(rfd)
            except EOFError:
                return
            op = req.get("op")
            out_blobs = []
            try:
                if op == "exec":
                    before = {k: id(v) for k, v in self.ns.items()}
                    try:
                        self.run_cell(req["src"])
                        reply = {"ok": True}
                    finally:
                        changed = [k for k, v in self.ns.items() if before.get(k) != id(v)]
                    reply["names"] = changed
                elif op == "get":
                    reply = {"ok": True, "value": self.enc(self.ns[req["name"]], out_blobs)}
                else:
                    obj = self.handles[req["h"]] if "h" in req else None
                    if op == "call":
                        args = [self.dec(a, blobs) for a in req.get("args", [])]
                        kw = {k: self.dec(x, blobs) for k, x in req.get("kw", [])}
                        val = obj(*args, **kw)
                    elif op == "getattr":
                        val = getattr(obj, req["name"])
                    elif op == "getitem":
                        val = obj[self.dec(req["key"], blobs)]
                    elif op == "len":
                        val = len(obj)
                    elif op == "iter":
                        val = iter(obj)
                    elif op == "next":
                        val = next(obj)
                    elif op == "repr":
                        val = repr(obj)
                    elif op == "array":
                        val = _NP.asarray(obj)
                    elif op == "release":
                        self.handles.pop(req["h"], None)
                        val = None
                    else:
                        raise ValueError(f"unknown op {op!r}")
                    reply = {"ok": True, "value": self.enc(val, out_blobs)}
            except BaseException as exc:  # noqa: BLE001  (SystemExit of student code included)
                out_blobs = []
                reply = {"ok": False, "etype": type(exc).__name__, "msg": str(exc)[:2000],
                         "tb": "".join(traceback.format_exception(exc))[-4000:], "names": []}
                if op == "exec":
                    reply["names"] = [k for k, v in self.ns.items() if before.get(k) != id(v)]
            sys.stdout.flush()
            sys.stderr.flush()
            _send(wfd, reply, out_blobs)


def main():
    global _NP
    try:  # the agent keeps its own numpy: a student replacing sys.modules['numpy'] cannot break replies
        import numpy
        _NP = numpy
    except ImportError:
        pass
    rfd, wfd = int(sys.argv[1]), int(sys.argv[2])
    # Student code must not find our pipes on the usual streams, nor the working directory first
    # on sys.path (``python -I`` already leaves it out; make sure).
    sys.path[:] = [p for p in sys.path if p not in ("", ".", os.getcwd())]
    Agent().serve(rfd, wfd)
    os._exit(0)


if __name__ == "__main__":
    main()
