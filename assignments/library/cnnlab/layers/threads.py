"""A thread pool for numpy work split into chunks, with numpy's BLAS single-threaded meanwhile.

The fast convolution (:mod:`cnnlab.layers.conv`) splits a batch into chunks of images and runs
one im2col + matrix multiply per chunk. On several cores that is faster with the chunks on
threads of our own and BLAS single-threaded (small matrices do not use BLAS's threads well) than
with one chunk at a time on BLAS's threads. ``threadpoolctl`` limits numpy's own BLAS (not, say,
torch's MKL); without it everything runs on the calling thread.
"""
from __future__ import annotations

import os
import threading

__all__ = ["blas_threads", "parallel_map"]

_BLAS = None      # threadpoolctl controller of the BLAS libraries loaded by numpy (or False)
_POOL = None      # (process id, n_threads, ThreadPoolExecutor)
_LOCK = threading.Lock()   # one parallel conv at a time: the BLAS limit is process-wide


def _blas():
    """threadpoolctl's controller of numpy's BLAS, or False when there is none."""
    global _BLAS
    if _BLAS is None:
        try:
            from threadpoolctl import ThreadpoolController
            blas = ThreadpoolController().select(user_api="blas")
            # Only numpy's own BLAS (a wheel bundles it under numpy.libs), not e.g. torch's MKL.
            own = [lib["filepath"] for lib in blas.info() if "numpy" in lib["filepath"]]
            _BLAS = (blas.select(filepath=own) if own else blas) or False
        except Exception:  # threadpoolctl missing or failing: no threads of our own
            _BLAS = False
    return _BLAS


def blas_threads() -> int:
    """How many threads numpy's BLAS would use (1 without threadpoolctl)."""
    blas = _blas()
    if not blas:
        return 1
    return max([1] + [int(lib.get("num_threads") or 1) for lib in blas.info()])


def parallel_map(fn, items, n_threads):
    """``[fn(i) for i in items]``, on ``n_threads`` threads with single-threaded BLAS."""
    global _POOL
    if len(items) <= 1 or not _blas():      # one chunk: BLAS's own threads do the work
        return [fn(i) for i in items]
    if n_threads <= 1:                       # e.g. NUM_THREADS = 1: one thread in all
        with _LOCK, _blas().limit(limits=1):
            return [fn(i) for i in items]
    with _LOCK:
        # A pool inherited through fork() has no threads in the child: make a new one.
        if _POOL is None or _POOL[:2] != (os.getpid(), n_threads):
            from concurrent.futures import ThreadPoolExecutor
            if _POOL is not None and _POOL[0] == os.getpid():
                _POOL[2].shutdown(wait=False)
            _POOL = (os.getpid(), n_threads,
                     ThreadPoolExecutor(n_threads, thread_name_prefix="cnnlab-conv"))
        with _blas().limit(limits=1):
            return list(_POOL[2].map(fn, items))
