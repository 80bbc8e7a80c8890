"""Convolution layers (naive and im2col) against torch.nn.functional.conv2d + autograd,
numerical gradients, each other, and their input checks."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from cnnlab.gradcheck import eval_numerical_gradient_array, rel_error
from cnnlab.layers.conv import (conv_backward_im2col, conv_backward_naive, conv_forward_im2col,
                                conv_forward_naive)

IMPLS = {
    "naive": (conv_forward_naive, conv_backward_naive),
    "im2col": (conv_forward_im2col, conv_backward_im2col),
}


@st.composite
def convs(draw, max_n=2, max_size=7):
    """Random valid geometry: (x_shape, w_shape, conv_param)."""
    G = draw(st.integers(1, 3))
    C, Fo = G * draw(st.integers(1, 2)), G * draw(st.integers(1, 2))
    HH, WW = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride, pad, dil = draw(st.integers(1, 3)), draw(st.integers(0, 2)), draw(st.integers(1, 2))
    H = draw(st.integers(max(1, dil * (HH - 1) + 1 - 2 * pad), max_size))
    W = draw(st.integers(max(1, dil * (WW - 1) + 1 - 2 * pad), max_size))
    N = draw(st.integers(1, max_n))
    cp = dict(stride=stride, pad=pad)
    if dil > 1 or draw(st.booleans()):
        cp["dilation"] = dil
    if G > 1 or draw(st.booleans()):
        cp["groups"] = G
    return (N, C, H, W), (Fo, C // G, HH, WW), cp


def make_inputs(x_shape, w_shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    return x, w, b


def torch_reference(x, w, b, cp, dout):
    """out, dx, dw, db from torch.nn.functional.conv2d and autograd."""
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    out = F.conv2d(xt, wt, bt, stride=cp["stride"], padding=cp["pad"],
                   dilation=cp.get("dilation", 1), groups=cp.get("groups", 1))
    out.backward(torch.from_numpy(dout))
    return out.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()


def close(a, ref, tol):
    """Norm-wise relative error max|a - ref| / max|ref| <= tol (robust to near-zero entries)."""
    assert a.shape == ref.shape
    scale = max(np.abs(ref).max(), 1e-30)
    err = np.abs(a.astype(np.float64) - ref.astype(np.float64)).max() / scale
    assert err <= tol, f"relative error {err:.3g} > {tol:.0e}"


def check_against_torch(impl, geom, dtype, extra=None):
    x_shape, w_shape, cp = geom
    cp = dict(cp, **(extra or {}))
    fwd, bwd = IMPLS[impl]
    x, w, b = make_inputs(x_shape, w_shape, dtype)
    out, cache = fwd(x, w, b, cp)
    dout = np.random.default_rng(1).standard_normal(out.shape).astype(dtype)
    dx, dw, db = bwd(dout, cache)
    ref = torch_reference(x, w, b, cp, dout)
    tol = 1e-12 if dtype == np.float64 else 2e-5
    for got, want in zip((out, dx, dw, db), ref):
        assert got.dtype == dtype
        close(got, want, tol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@given(geom=convs(max_n=2, max_size=6))
def test_naive_matches_torch(geom, dtype):
    check_against_torch("naive", geom, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@given(geom=convs(max_n=3, max_size=9), chunk=st.sampled_from([None, 1, 2000]))
def test_im2col_matches_torch(geom, dtype, chunk):
    # chunk: max_cols_bytes (None = unbounded, 1 = one image per chunk, 2000 = a few images).
    check_against_torch("im2col", geom, dtype, {"max_cols_bytes": chunk})


@given(geom=convs(max_n=3, max_size=7))
def test_naive_equals_im2col_float64(geom):
    x_shape, w_shape, cp = geom
    x, w, b = make_inputs(x_shape, w_shape, np.float64, seed=3)
    out_n, cache_n = conv_forward_naive(x, w, b, cp)
    out_f, cache_f = conv_forward_im2col(x, w, b, dict(cp, max_cols_bytes=1000))
    close(out_f, out_n, 1e-10)
    dout = np.random.default_rng(4).standard_normal(out_n.shape)
    for g_f, g_n in zip(conv_backward_im2col(dout, cache_f), conv_backward_naive(dout, cache_n)):
        close(g_f, g_n, 1e-10)


@pytest.mark.parametrize("impl", ["naive", "im2col"])
@pytest.mark.parametrize("cp", [
    dict(stride=1, pad=1),
    dict(stride=2, pad=1, dilation=2),
    dict(stride=1, pad=0, groups=2),
])
def test_numerical_gradients(impl, cp):
    """CS231n-style gradient check in float64: relative error below 1e-8."""
    fwd, bwd = IMPLS[impl]
    G = cp.get("groups", 1)
    size = 4 if impl == "naive" else 5      # the loops are slow; keep the naive check small
    x, w, b = make_inputs((2, 2 * G, size, size), (2 * G, 2, 3, 3), np.float64, seed=5)
    out, cache = fwd(x, w, b, cp)
    dout = np.random.default_rng(6).standard_normal(out.shape)
    dx, dw, db = bwd(dout, cache)
    dx_num = eval_numerical_gradient_array(lambda v: fwd(v, w, b, cp)[0], x, dout)
    dw_num = eval_numerical_gradient_array(lambda v: fwd(x, v, b, cp)[0], w, dout)
    db_num = eval_numerical_gradient_array(lambda v: fwd(x, w, v, cp)[0], b, dout)
    assert rel_error(dx, dx_num) < 1e-8
    assert rel_error(dw, dw_num) < 1e-8
    assert rel_error(db, db_num) < 1e-8


def test_cs231n_toy_example():
    """The CS231n assignment's hand-checkable case: a 1-channel 4x4 input, one 3x3 filter of
    ones, pad 1 -- each output is the sum of the 3x3 neighbourhood (zeros outside)."""
    x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    w = np.ones((1, 1, 3, 3))
    b = np.array([0.5])
    expected = np.array([[10, 18, 24, 18], [27, 45, 54, 39], [51, 81, 90, 63], [42, 66, 72, 50]]) + 0.5
    for fwd, _ in IMPLS.values():
        out, _ = fwd(x, w, b, {"stride": 1, "pad": 1})
        np.testing.assert_array_equal(out[0, 0], expected)


def test_chunking_knob_bounds_cache_and_keeps_results():
    x, w, b = make_inputs((5, 3, 8, 8), (4, 3, 3, 3), np.float64, seed=7)
    cp = {"stride": 1, "pad": 1}
    out_full, cache_full = conv_forward_im2col(x, w, b, dict(cp, max_cols_bytes=None))
    assert cache_full[-1].size == 3 * 9 * 5 * 64            # X_col kept for the backward pass
    per_image = 3 * 9 * 64 * 8
    out_chunk, cache_chunk = conv_forward_im2col(x, w, b, dict(cp, max_cols_bytes=2 * per_image))
    assert cache_chunk[-1] is None                          # did not fit: recomputed in backward
    np.testing.assert_array_equal(out_chunk, out_full)
    dout = np.random.default_rng(8).standard_normal(out_full.shape)
    for a, c in zip(conv_backward_im2col(dout, cache_full), conv_backward_im2col(dout, cache_chunk)):
        np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-12)


def test_dtypes_follow_input():
    x, w, b = make_inputs((2, 3, 6, 6), (4, 3, 3, 3), np.float32)
    for fwd, bwd in IMPLS.values():
        out, cache = fwd(x, w.astype(np.float64), b, {"stride": 1, "pad": 0})
        assert out.dtype == np.float32                    # not silently upcast
        dx, dw, db = bwd(np.ones_like(out), cache)
        assert dx.dtype == np.float32 and dw.dtype == np.float64 and db.dtype == np.float32


GOOD = dict(x=(2, 4, 6, 6), w=(6, 4, 3, 3), b=(6,))


@pytest.mark.parametrize("impl", ["naive", "im2col"])
@pytest.mark.parametrize("change, match", [
    (dict(x=(4, 6, 6)), r"x must be 4-D with shape \(N, C, H, W\), got shape \(4, 6, 6\)"),
    (dict(w=(6, 4, 3)), r"w must be 4-D with shape \(F, C/groups, HH, WW\)"),
    (dict(w=(6, 3, 3, 3)), r"channel mismatch: x.shape=\(2, 4, 6, 6\) has C=4 channels but "
                           r"w.shape=\(6, 3, 3, 3\) expects w.shape\[1\]\*groups = 3\*1 = 3"),
    (dict(cp=dict(stride=1, pad=0, groups=3), w=(6, 1, 3, 3)),
     r"groups=3 must divide the input channels C=4"),
    (dict(cp=dict(stride=1, pad=0, groups=2), w=(5, 2, 3, 3), b=(5,)),
     r"groups=2 must divide the number of filters F=5"),
    (dict(w=(6, 4, 7, 3)), r"window does not fit along H.*floor\(\(6 \+ 2\*0 - 1\*\(7-1\) - 1\)/1 \+ 1\)"),
    (dict(cp=dict(stride=1, pad=0, dilation=3)), r"window does not fit along H.*spans 7"),
    (dict(cp=dict(stride=1, pad=-1)), r"conv_param\['pad'\] must be an integer >= 0, got -1"),
    (dict(cp=dict(stride=0, pad=0)), r"conv_param\['stride'\] must be an integer >= 1, got 0"),
    (dict(b=(5,)), r"b must be a numpy array of shape \(F,\) = \(6,\) to match w.shape=\(6, 4, 3, 3\), "
                   r"got \(5,\)"),
    (dict(b=(6, 1)), r"b must be a numpy array of shape \(F,\)"),
    (dict(cp=dict(pad=1)), r"missing the required key 'stride'"),
    (dict(cp=dict(stride=1)), r"missing the required key 'pad'"),
    (dict(cp=dict(stride=1, pad=0, padding=1)),
     r"unknown key\(s\) \['padding'\]; allowed keys are 'stride', 'pad' \(required\), 'dilation'"),
    (dict(cp=[1, 0]), r"conv_param must be a dict"),
])
def test_bad_input_raises(impl, change, match):
    spec = {**GOOD, "cp": dict(stride=1, pad=0), **change}
    x, w, b = (np.zeros(spec[k]) for k in ("x", "w", "b"))
    with pytest.raises(ValueError, match=match):
        IMPLS[impl][0](x, w, b, spec["cp"])


@pytest.mark.parametrize("impl", ["naive", "im2col"])
def test_backward_checks_dout_shape(impl):
    fwd, bwd = IMPLS[impl]
    x, w, b = make_inputs((1, 2, 5, 5), (3, 2, 3, 3), np.float64)
    out, cache = fwd(x, w, b, {"stride": 1, "pad": 0})
    with pytest.raises(ValueError, match=r"dout must have the shape of the forward output "
                                         r"\(N, F, Hout, Wout\) = \(1, 3, 3, 3\), got \(1, 3, 3, 4\)"):
        bwd(np.zeros((1, 3, 3, 4)), cache)


@pytest.mark.parametrize("n_threads", [1, 3])
def test_thread_count_does_not_change_results(monkeypatch, n_threads):
    """The fast layer splits the batch over threads; any split gives the same numbers."""
    import cnnlab.layers.conv as conv

    x, w, b = make_inputs((7, 4, 9, 9), (6, 2, 3, 3), np.float64, seed=9)
    cp = {"stride": 2, "pad": 1, "groups": 2, "max_cols_bytes": 4000}
    out, cache = conv_forward_naive(x, w, b, cp)
    dout = np.random.default_rng(10).standard_normal(out.shape)
    grads = conv_backward_naive(dout, cache)
    monkeypatch.setattr(conv, "NUM_THREADS", n_threads)
    out_t, cache_t = conv_forward_im2col(x, w, b, cp)
    close(out_t, out, 1e-10)
    for got, want in zip(conv_backward_im2col(dout, cache_t), grads):
        close(got, want, 1e-10)
