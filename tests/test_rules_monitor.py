"""The run-time monitor of cnnlab.rules tells the answer's own calls from a library's internals.

A Python function called by a C function has the C function's caller as its parent frame, so a
Python helper that compiled library code calls on its own (numpy's Cython ``default_rng`` calling
``threading.RLock``) used to be charged to the answer: an answer that seeded
``np.random.default_rng`` lost its points for "using threading". The monitor now reads the
answer's CALL instruction: a Python function is charged to the answer when the answer's call names
it (by any alias, a class whose ``__init__`` it is) or names a builtin that calls what it is handed
(``sorted(key=...)``, ``list(map(...))``), or when the call cannot be read. Everything the answer
reaches itself is still caught.
"""
from __future__ import annotations

import functools
import sys
import threading

import numpy as np
import pytest
import torch

import cnnlab.layers as L
from cnnlab.rules import Monitor

FORBID = ["torch", "cnnlab.layers.fused", "numpy.linalg", "cnnlab.layers.conv_relu_pool_forward"]
X = np.random.default_rng(0).standard_normal((2, 3, 6, 6))
W = np.random.default_rng(1).standard_normal((4, 3, 3, 3))
B = np.zeros(4)
P = ({"stride": 1, "pad": 1}, {"pool_height": 2, "pool_width": 2, "stride": 2})


def run(src: str, **ns) -> dict:
    """Run ``src`` as answer cell ``a`` under the monitor; returns its violations."""
    m = Monitor({"a": FORBID})
    code = compile(src, Monitor.filename("a"), "exec")
    sys.setprofile(m.profile)
    try:
        exec(code, {"np": np, "L": L, "x": X, "w": W, "b": B, "P": P, **ns})
    finally:
        sys.setprofile(None)
    return m.violations


@pytest.mark.parametrize("src", [
    "rng = np.random.default_rng(0)\nz = rng.standard_normal(3)\norder = rng.permutation(5)\n",
    "rng = np.random.default_rng(seed=1)\nidx = rng.choice(10, size=3, replace=False)\n",
    "a1, c1 = L.conv_forward_im2col(x, w, b, P[0])\nh, c2 = L.max_pool_forward_fast(a1, P[1])\n"
    "d1 = L.max_pool_backward_fast(np.ones_like(h), c2)\n",
])
def test_library_internals_are_not_the_answers_calls(src):
    assert run(src) == {}


@pytest.mark.parametrize("src, ns, what", [
    ("y = [torch.relu(t) for t in ts]\n", {"torch": torch, "ts": [torch.ones(2)]}, "torch"),
    ("y = list(map(L.conv_relu_pool_forward, [x], [w], [b], [P[0]], [P[1]]))\n", {}, "conv_relu_pool_forward"),
    ("y = sorted([np.eye(2)], key=np.linalg.det)\n", {}, "numpy.linalg"),
    ("y = f(x, w, b, *P)\n", {"f": L.conv_relu_pool_forward}, "conv_relu_pool_forward"),
    ("out = [L.conv_relu_pool_forward(x, w, b, *P)]\n", {}, "conv_relu_pool_forward"),
    ("y = list(map(lambda a: f(a, w, b, *P), [x]))\n", {"f": L.conv_relu_pool_forward}, "conv_relu_pool_forward"),
    ("lock = R()\n", {"R": threading.RLock}, "threading"),
    ("y = p(x, w, b, *P)\n", {"p": functools.partial(L.conv_relu_pool_forward)}, "conv_relu_pool_forward"),
])
def test_what_the_answer_calls_itself_is_still_caught(src, ns, what):
    found = run(src, **ns)
    assert "a" in found and what in found["a"] and "called at run time" in found["a"], found
