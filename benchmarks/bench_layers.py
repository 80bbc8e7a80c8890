"""Layer benchmarks: cnnlab's numpy layers against PyTorch CPU, measured in the same run.

Every (layer, shape, dtype, implementation) is measured in its own fresh subprocess, so that
PyTorch's OpenMP threads never spin next to numpy's OpenBLAS threads, and peak memory is that of
one implementation only. Both sides get the same thread count (``--threads``, default: all
cores) through OMP/OpenBLAS/MKL environment variables (and ``torch.set_num_threads``).

In each subprocess:

1. the inputs are built and the operation is run once (warm-up);
2. peak memory: ``VmHWM`` is reset by writing ``5`` to ``/proc/self/clear_refs``, the baseline
   ``VmRSS`` is read, the forward pass (row "fwd") or forward + backward pass (row "bwd") is run,
   and ``VmHWM - baseline`` is the peak *extra* memory (outputs, caches, gradients, temporaries).
   ``MALLOC_MMAP_THRESHOLD_`` is fixed so that freed large buffers go back to the OS in both
   implementations;
3. timing: the median over several passes of the time of one call (a pass repeats the call
   until it lasts at least ``min_pass_s``). The "bwd" time is the backward pass alone
   (``conv_backward_im2col`` / ``torch.autograd.grad``), given a forward cache.

Run through ``benchmarks/run.py`` (``python3 run.py bench``).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["CASES", "main", "run_case"]

HERE = Path(__file__).resolve().parent

# (kind, name, params). conv params: x shape, w shape, stride, pad.
CASES = [
    ("conv", "conv 3x3 s2 p1", dict(x=(100, 3, 31, 31), w=(25, 3, 3, 3), stride=2, pad=1)),
    ("conv", "conv 3x3 s1 p1", dict(x=(64, 64, 32, 32), w=(64, 64, 3, 3), stride=1, pad=1)),
    ("conv", "AlexNet conv1", dict(x=(16, 3, 227, 227), w=(96, 3, 11, 11), stride=4, pad=0)),
    ("pool", "max pool 2x2 s2", dict(x=(64, 64, 32, 32), op="max", size=2, stride=2)),
    ("pool", "avg pool 2x2 s2", dict(x=(64, 64, 32, 32), op="avg", size=2, stride=2)),
    ("bn", "batchnorm", dict(x=(512, 1024), spatial=False)),
    ("bn", "spatial batchnorm", dict(x=(64, 64, 32, 32), spatial=True)),
]
DTYPES = ("float64", "float32")


# ------------------------------------------------------------------------------------------
# Worker side (runs in a fresh subprocess)
# ------------------------------------------------------------------------------------------

def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _peak_extra_mib(fn) -> float | None:
    """Peak resident memory (MiB) that ``fn()`` adds on top of what is resident now."""
    import gc

    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return None
    base = _status_kib("VmRSS")
    keep = fn()
    peak = _status_kib("VmHWM")
    del keep
    return (peak - base) / 1024


def _time(fn, repeats: int, min_pass_s: float) -> tuple[float, float]:
    """Median wall-clock and median process CPU seconds (all threads) per call over ``repeats``
    passes."""
    fn()
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-7)
    number = max(1, int(min_pass_s / one))
    walls, cpus = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        for _ in range(number):
            fn()
        walls.append((time.perf_counter() - t0) / number)
        cpus.append((time.process_time() - c0) / number)
    walls.sort()
    cpus.sort()
    return walls[len(walls) // 2], cpus[len(cpus) // 2]


def _release_freed_memory() -> None:
    """From now on, return every large freed buffer to the OS (so that VmRSS baselines are
    exact), and give back what the heap holds now."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 128 * 1024)     # M_MMAP_THRESHOLD: fixed, no dynamic growth
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _numpy_ops(kind, p, dtype, conv_param_extra):
    """Return (fwd, fwd_bwd, bwd) callables for cnnlab's layers."""
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.standard_normal(p["x"]).astype(dtype)
    if kind == "conv":
        from cnnlab.layers.conv import conv_backward_im2col, conv_forward_im2col

        w = (rng.standard_normal(p["w"]) * 0.1).astype(dtype)
        b = rng.standard_normal(p["w"][0]).astype(dtype)
        cp = dict(stride=p["stride"], pad=p["pad"], **conv_param_extra)
        out, cache = conv_forward_im2col(x, w, b, cp)
        dout = rng.standard_normal(out.shape).astype(dtype)
        del out, cache
        fwd = lambda: conv_forward_im2col(x, w, b, cp)  # noqa: E731
        bwd_fn = conv_backward_im2col
    elif kind == "pool":
        import cnnlab.layers as L

        f, bwd_fn = ((L.max_pool_forward_fast, L.max_pool_backward_fast) if p["op"] == "max"
                     else (L.avg_pool_forward_fast, L.avg_pool_backward_fast))
        pp = dict(pool_height=p["size"], pool_width=p["size"], stride=p["stride"])
        out, _ = f(x, pp)
        dout = rng.standard_normal(out.shape).astype(dtype)
        fwd = lambda: f(x, pp)  # noqa: E731
    else:
        import cnnlab.layers as L

        C = p["x"][1]
        gamma = rng.standard_normal(C).astype(dtype)
        beta = rng.standard_normal(C).astype(dtype)
        f, bwd_fn = ((L.spatial_batchnorm_forward, L.spatial_batchnorm_backward) if p["spatial"]
                     else (L.batchnorm_forward, L.batchnorm_backward_alt))
        fwd = lambda: f(x, gamma, beta, {"mode": "train"})  # noqa: E731
        dout = rng.standard_normal(p["x"]).astype(dtype)

    def fwd_bwd():
        _, cache = fwd()
        return bwd_fn(dout, cache)

    state = {}

    def bwd():
        return bwd_fn(dout, state["cache"])

    def prepare_bwd(clear=False):
        state.clear()
        if not clear:
            state["cache"] = fwd()[1]

    return fwd, fwd_bwd, bwd, prepare_bwd


def _torch_ops(kind, p, dtype):
    import torch
    import torch.nn.functional as F

    dt = getattr(torch, dtype)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(p["x"], generator=g, dtype=dt, requires_grad=True)
    if kind == "conv":
        w = (torch.randn(p["w"], generator=g, dtype=dt) * 0.1).requires_grad_()
        b = torch.randn(p["w"][0], generator=g, dtype=dt, requires_grad=True)
        params = (x, w, b)
        f = lambda: F.conv2d(x, w, b, stride=p["stride"], padding=p["pad"])  # noqa: E731
    elif kind == "pool":
        params = (x,)
        if p["op"] == "max":
            f = lambda: F.max_pool2d(x, p["size"], p["stride"])  # noqa: E731
        else:
            f = lambda: F.avg_pool2d(x, p["size"], p["stride"])  # noqa: E731
    else:
        C = p["x"][1]
        gamma = torch.randn(C, generator=g, dtype=dt, requires_grad=True)
        beta = torch.randn(C, generator=g, dtype=dt, requires_grad=True)
        params = (x, gamma, beta)
        f = lambda: F.batch_norm(x, None, None, gamma, beta, training=True)  # noqa: E731
    with torch.no_grad():
        dout = torch.randn(f().shape, generator=g, dtype=dt)

    def fwd():
        with torch.no_grad():
            return f()

    def fwd_bwd():
        return torch.autograd.grad(f(), params, dout)

    state = {}

    def prepare_bwd(clear=False):
        state.clear()
        if not clear:
            state["y"] = f()

    def bwd():
        return torch.autograd.grad(state["y"], params, dout, retain_graph=True)

    return fwd, fwd_bwd, bwd, prepare_bwd


def _worker(spec: dict) -> dict:
    kind, p, dtype, impl = spec["kind"], spec["params"], spec["dtype"], spec["impl"]
    if impl == "torch":
        import torch

        torch.set_num_threads(spec["threads"])
        fwd, fwd_bwd, bwd, prepare_bwd = _torch_ops(kind, p, dtype)
    else:
        fwd, fwd_bwd, bwd, prepare_bwd = _numpy_ops(kind, p, dtype, spec.get("conv_extra", {}))
    res = {}
    fwd_bwd()                                    # warm-up (imports, thread pools, caches)
    res["t_fwd"], res["cpu_fwd"] = _time(fwd, spec["repeats"], spec["min_pass_s"])
    prepare_bwd()
    res["t_bwd"], res["cpu_bwd"] = _time(bwd, spec["repeats"], spec["min_pass_s"])
    prepare_bwd(clear=True)                      # drop the cache held for the bwd timing
    _release_freed_memory()
    res["mem_fwd"] = _peak_extra_mib(fwd)
    res["mem_fwd_bwd"] = _peak_extra_mib(fwd_bwd)
    return res


def _naive_worker(spec: dict) -> dict:
    """Time conv_forward_naive / conv_backward_naive once (they are slow) on ``n`` images."""
    import numpy as np

    from cnnlab.layers.conv import conv_backward_naive, conv_forward_naive

    p = spec["params"]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((spec["n"],) + tuple(p["x"][1:]))
    w = rng.standard_normal(p["w"]) * 0.1
    b = rng.standard_normal(p["w"][0])
    cp = dict(stride=p["stride"], pad=p["pad"])
    t0 = time.perf_counter()
    out, cache = conv_forward_naive(x, w, b, cp)
    t1 = time.perf_counter()
    conv_backward_naive(np.ones_like(out), cache)
    t2 = time.perf_counter()
    scale = p["x"][0] / spec["n"]
    return {"t_fwd": (t1 - t0) * scale, "t_bwd": (t2 - t1) * scale}


# ------------------------------------------------------------------------------------------
# Driver side
# ------------------------------------------------------------------------------------------

def _env(threads: int) -> dict:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env


def run_case(spec: dict, threads: int) -> dict:
    """Run one measurement in a fresh subprocess and return its result dict."""
    proc = subprocess.run([sys.executable, str(Path(__file__)), "--worker", json.dumps(spec)],
                          capture_output=True, text=True, env=_env(threads))
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
        return {"error": tail[0]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _flops(kind, p, direction):
    """Nominal FLOPs (conv only): 2*N*F*Hout*Wout*C*HH*WW forward, twice that backward."""
    if kind != "conv":
        return None
    N, C, H, W = p["x"]
    F, _, HH, WW = p["w"]
    Ho = (H + 2 * p["pad"] - HH) // p["stride"] + 1
    Wo = (W + 2 * p["pad"] - WW) // p["stride"] + 1
    f = 2 * N * F * Ho * Wo * C * HH * WW
    return f if direction == "fwd" else 2 * f


def _fmt_t(t):
    if t is None:
        return "-"
    return f"{t * 1e3:.2f}" if t < 10 else f"{t * 1e3:.0f}"


def _fmt(v, spec="{:.1f}"):
    return "-" if v is None else spec.format(v)


TARGETS = {
    # (kind, dtype, direction): max ratio to torch; conv float32 only on the two larger shapes.
    ("conv", "float64", "fwd"): 1.0, ("conv", "float64", "bwd"): 1.0,
    ("conv", "float32", "fwd"): 1.5, ("conv", "float32", "bwd"): 2.0,
    ("pool", "fwd"): 2.0, ("pool", "bwd"): 3.0,
    ("bn", "fwd"): 3.0, ("bn", "bwd"): 3.0,
}


def _target(kind, name, dtype, direction):
    if kind == "conv":
        if dtype == "float32" and name == CASES[0][1]:
            return None
        return TARGETS[(kind, dtype, direction)]
    return TARGETS[(kind, direction)]


def main(argv: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="run.py bench layers", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats (noisier)")
    ap.add_argument("--only", choices=["conv", "pool", "bn"], help="one family of layers")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="threads for numpy (OpenBLAS) and torch (default: all cores)")
    ap.add_argument("--max-cols-mib", type=float, default=None,
                    help="conv_param['max_cols_bytes'] for cnnlab's conv, in MiB "
                         "(default: the library's DEFAULT_MAX_COLS_BYTES)")
    ap.add_argument("--no-naive", action="store_true", help="skip the naive conv timing")
    args = ap.parse_args(argv)

    repeats, min_pass = (3, 0.02) if args.quick else (7, 0.1)
    conv_extra = {} if args.max_cols_mib is None else {"max_cols_bytes": int(args.max_cols_mib * 2**20)}
    from cnnlab.layers.conv import DEFAULT_MAX_COLS_BYTES

    mcb = (f"{DEFAULT_MAX_COLS_BYTES / 2**20:g} (default)" if args.max_cols_mib is None
           else f"{args.max_cols_mib:g}")
    rows = []
    header = ["layer", "shape", "dtype", "dir", "cnnlab ms", "torch ms", "ratio", "target",
              "CPU-time ratio", "cnnlab GFLOP/s", "torch GFLOP/s", "cnnlab MiB", "torch MiB"]
    print(f"threads={args.threads}  repeats={repeats}  conv max_cols_bytes={mcb} MiB"
          f"  (MiB: peak extra memory; fwd row: forward, bwd row: forward+backward)", flush=True)
    print(" | ".join(header), flush=True)
    for kind, name, p in CASES:
        if args.only and kind != args.only:
            continue
        shape = " x ".join(str(tuple(p[k])) for k in ("x", "w") if k in p)
        if kind == "conv":
            shape += f" s{p['stride']} p{p['pad']}"
        for dtype in DTYPES:
            base = dict(kind=kind, params=p, dtype=dtype, threads=args.threads,
                        repeats=repeats, min_pass_s=min_pass)
            ours = run_case(dict(base, impl="cnnlab", conv_extra=conv_extra), args.threads)
            ref = run_case(dict(base, impl="torch"), args.threads)
            for direction in ("fwd", "bwd"):
                t_o, t_r = ours.get(f"t_{direction}"), ref.get(f"t_{direction}")
                mem_key = "mem_fwd" if direction == "fwd" else "mem_fwd_bwd"
                fl = _flops(kind, p, direction)
                ratio = t_o / t_r if (t_o and t_r) else None
                c_o, c_r = ours.get(f"cpu_{direction}"), ref.get(f"cpu_{direction}")
                cpu_ratio = c_o / c_r if (c_o and c_r) else None
                tgt = _target(kind, name, dtype, direction)
                row = dict(layer=name, shape=shape, dtype=dtype, dir=direction, cnnlab_s=t_o,
                           torch_s=t_r, ratio=ratio, target=tgt, cnnlab_cpu_s=c_o,
                           torch_cpu_s=c_r, cpu_ratio=cpu_ratio,
                           cnnlab_gflops=fl / t_o / 1e9 if (fl and t_o) else None,
                           torch_gflops=fl / t_r / 1e9 if (fl and t_r) else None,
                           cnnlab_mib=ours.get(mem_key), torch_mib=ref.get(mem_key),
                           error=ours.get("error") or ref.get("error"))
                rows.append(row)
                ok = "" if tgt is None or ratio is None else (" ok" if ratio <= tgt else " MISSED")
                cells = [name, shape, dtype, direction, _fmt_t(t_o), _fmt_t(t_r),
                         _fmt(ratio, "{:.2f}x"), (_fmt(tgt, "<={:.1f}x") + ok) if tgt else "-",
                         _fmt(cpu_ratio, "{:.2f}x"),
                         _fmt(row["cnnlab_gflops"]), _fmt(row["torch_gflops"]),
                         _fmt(row["cnnlab_mib"], "{:.0f}"), _fmt(row["torch_mib"], "{:.0f}")]
                if row["error"]:
                    cells.append(f"ERROR: {row['error']}")
                print(" | ".join(cells), flush=True)
                row["cells"] = cells

    naive = None
    if (args.only in (None, "conv")) and not args.no_naive:
        kind, name, p = CASES[0]
        n = 10 if args.quick else p["x"][0]
        naive = run_case(dict(params=p, n=n, naive=True), args.threads)
        fast = next((r for r in rows if r["layer"] == name and r["dtype"] == "float64"), None)
        if "error" not in naive:
            fast_f = next(r["cnnlab_s"] for r in rows if r["layer"] == name
                          and r["dtype"] == "float64" and r["dir"] == "fwd") if fast else None
            fast_b = next(r["cnnlab_s"] for r in rows if r["layer"] == name
                          and r["dtype"] == "float64" and r["dir"] == "bwd") if fast else None
            naive["speedup_fwd"] = naive["t_fwd"] / fast_f if fast_f else None
            naive["speedup_bwd"] = naive["t_bwd"] / fast_b if fast_b else None
            extra = f" (timed on {n} images, scaled to {p['x'][0]})" if n != p["x"][0] else ""
            print(f"naive conv on {name} float64{extra}: fwd {naive['t_fwd']:.2f} s, "
                  f"bwd {naive['t_bwd']:.2f} s; im2col speedup fwd "
                  f"{_fmt(naive['speedup_fwd'], '{:.0f}x')}, bwd {_fmt(naive['speedup_bwd'], '{:.0f}x')}")
        else:
            print(f"naive conv: ERROR {naive['error']}")

    _save(rows, naive, header, args, mcb)
    return 0 if not any(r["error"] for r in rows) else 1


def _save(rows, naive, header, args, mcb):
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    meta = dict(threads=args.threads, quick=args.quick, only=args.only,
                max_cols_mib=args.max_cols_mib, cpu_count=os.cpu_count(), time=stamp)
    data = dict(meta=meta, rows=[{k: v for k, v in r.items() if k != "cells"} for r in rows],
                naive=naive)
    (out_dir / f"layers-{stamp}.json").write_text(json.dumps(data, indent=1))
    lines = [f"Layer benchmarks, {stamp}, threads={args.threads}, quick={args.quick}, "
             f"conv max_cols_bytes={mcb} MiB", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r["cells"][:len(header)]) + " |" for r in rows]
    if naive and "error" not in naive:
        lines += ["", f"Naive conv ({CASES[0][1]}, float64): fwd {naive['t_fwd']:.2f} s, "
                      f"bwd {naive['t_bwd']:.2f} s; im2col speedup fwd "
                      f"{_fmt(naive.get('speedup_fwd'), '{:.0f}x')}, "
                      f"bwd {_fmt(naive.get('speedup_bwd'), '{:.0f}x')}"]
    md = "\n".join(lines) + "\n"
    (out_dir / f"layers-{stamp}.md").write_text(md)
    (out_dir / "layers-latest.md").write_text(md)
    print(f"saved {out_dir / f'layers-{stamp}.json'} and layers-latest.md")


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--worker":
        spec = json.loads(sys.argv[2])
        result = _naive_worker(spec) if spec.get("naive") else _worker(spec)
        print(json.dumps(result))
    else:
        sys.exit(main(sys.argv[1:]))
