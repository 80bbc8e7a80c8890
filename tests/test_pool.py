"""Max and average pooling: naive and fast against torch.nn.functional, autograd, each other
and numerical gradients; tie routing; input validation."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from cnnlab.gradcheck import check_layer_gradients
from cnnlab.layers import (
    avg_pool_backward_fast,
    avg_pool_backward_naive,
    avg_pool_forward_fast,
    avg_pool_forward_naive,
    max_pool_backward_fast,
    max_pool_backward_naive,
    max_pool_forward_fast,
    max_pool_forward_naive,
)



MAX = [(max_pool_forward_naive, max_pool_backward_naive), (max_pool_forward_fast, max_pool_backward_fast)]
AVG = [(avg_pool_forward_naive, avg_pool_backward_naive), (avg_pool_forward_fast, avg_pool_backward_fast)]


@st.composite
def geometries(draw):
    """A valid pooling geometry: window, stride, pad <= half window, input at least the window."""
    ph, pw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = draw(st.integers(1, 3))
    pad = draw(st.integers(0, min(ph, pw) // 2))
    H = draw(st.integers(max(1, ph - 2 * pad), ph + 6))
    W = draw(st.integers(max(1, pw - 2 * pad), pw + 6))
    N, C = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return (N, C, H, W), dict(pool_height=ph, pool_width=pw, stride=stride, pad=pad)


@st.composite
def tiling_geometries(draw):
    """Windows that tile the input: the fast layers' "reshape" path."""
    k = draw(st.integers(1, 4))
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), k * draw(st.integers(1, 4)), k * draw(st.integers(1, 4)))
    return shape, dict(pool_height=k, pool_width=k, stride=k)


def _data(rng, shape, dtype, ties):
    if ties:  # few distinct values: many windows hold their maximum more than once
        return rng.integers(-2, 3, size=shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def _torch_pool(kind, x, p, dout):
    xt = torch.tensor(x, requires_grad=True)
    kw = dict(kernel_size=(p["pool_height"], p["pool_width"]), stride=p["stride"], padding=p.get("pad", 0))
    out = F.max_pool2d(xt, **kw) if kind == "max" else F.avg_pool2d(xt, **kw)  # count_include_pad=True
    out.backward(torch.tensor(dout))
    return out.detach().numpy(), xt.grad.numpy()


def _check_against_torch(kind, pairs, shape, p, dtype, seed, ties):
    rng = np.random.default_rng(seed)
    x = _data(rng, shape, dtype, ties)
    outs = {}
    for fwd, bwd in pairs:
        out, cache = fwd(x, p)
        outs[fwd.__name__] = (out, cache, bwd)
    ref_shape = next(iter(outs.values()))[0].shape
    dout = rng.standard_normal(ref_shape).astype(dtype)
    out_t, dx_t = _torch_pool(kind, x, p, dout)
    t = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
    for name, (out, cache, bwd) in outs.items():
        dx = bwd(dout, cache)
        assert out.dtype == dx.dtype == dtype, name
        assert dx.shape == x.shape, name
        np.testing.assert_allclose(out, out_t, **t, err_msg=name)
        np.testing.assert_allclose(dx, dx_t, **t, err_msg=name)
    return x, dout, outs


@given(geom=geometries(), dtype=st.sampled_from([np.float32, np.float64]), ties=st.booleans(),
       seed=st.integers(0, 2**16))
def test_max_pool_matches_torch(geom, dtype, ties, seed):
    shape, p = geom
    _check_against_torch("max", MAX, shape, p, dtype, seed, ties)


@given(geom=tiling_geometries(), dtype=st.sampled_from([np.float32, np.float64]), ties=st.booleans(),
       seed=st.integers(0, 2**16))
def test_max_pool_reshape_path_matches_torch(geom, dtype, ties, seed):
    shape, p = geom
    _, _, outs = _check_against_torch("max", MAX, shape, p, dtype, seed, ties)
    assert outs["max_pool_forward_fast"][1][0] == "reshape"


@given(geom=geometries(), dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16))
def test_avg_pool_matches_torch(geom, dtype, seed):
    shape, p = geom
    _check_against_torch("avg", AVG, shape, p, dtype, seed, ties=False)


@given(geom=tiling_geometries(), dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16))
def test_avg_pool_reshape_path_matches_torch(geom, dtype, seed):
    shape, p = geom
    _, _, outs = _check_against_torch("avg", AVG, shape, p, dtype, seed, ties=False)
    assert outs["avg_pool_forward_fast"][1][0] == "reshape"


@pytest.mark.parametrize("shape, p, path", [
    ((2, 3, 8, 8), dict(pool_height=2, pool_width=2, stride=2), "reshape"),
    ((2, 3, 9, 9), dict(pool_height=3, pool_width=3, stride=2), "strided"),          # overlapping
    ((2, 3, 9, 7), dict(pool_height=3, pool_width=3, stride=2, pad=1), "strided"),   # padding
    ((2, 2, 7, 8), dict(pool_height=2, pool_width=3, stride=3, pad=1), "strided"),   # gaps
    ((1, 2, 6, 6), dict(pool_height=2, pool_width=2, stride=1), "strided"),
])
@pytest.mark.parametrize("ties", [False, True])
def test_naive_equals_fast(shape, p, path, ties):
    rng = np.random.default_rng(1)
    x = _data(rng, shape, np.float64, ties)
    for pairs in (MAX, AVG):
        (fn, bn), (ff, bf) = pairs
        out_n, cache_n = fn(x, p)
        out_f, cache_f = ff(x, p)
        assert cache_f[0] == path
        np.testing.assert_allclose(out_f, out_n, rtol=1e-14, atol=1e-15)
        dout = rng.standard_normal(out_n.shape)
        np.testing.assert_allclose(bf(dout, cache_f), bn(dout, cache_n), rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("p", [dict(pool_height=2, pool_width=2, stride=2),                # reshape path
                               dict(pool_height=3, pool_width=3, stride=1),                # overlapping
                               dict(pool_height=2, pool_width=2, stride=2, pad=1)])        # -inf padding
def test_tie_gradient_goes_to_first_maximum(p):
    x = np.ones((1, 1, 4, 4))
    out_t, dx_t = _torch_pool("max", x, p, np.ones((1, 1, *_out_hw(x, p))))
    for fwd, bwd in MAX:
        out, cache = fwd(x, p)
        dx = bwd(np.ones_like(out), cache)
        np.testing.assert_array_equal(dx, dx_t)
        # every window sends its gradient to exactly one position: the first (top-left) real one
        assert dx.sum() == out.size
    if p.get("pad", 0) == 0:
        expected = np.zeros((4, 4))
        s = p["stride"]
        for i in range(out.shape[2]):
            for j in range(out.shape[3]):
                expected[i * s, j * s] += 1
        np.testing.assert_array_equal(dx[0, 0], expected)


def _out_hw(x, p):
    pad = p.get("pad", 0)
    return ((x.shape[2] + 2 * pad - p["pool_height"]) // p["stride"] + 1,
            (x.shape[3] + 2 * pad - p["pool_width"]) // p["stride"] + 1)


def test_tie_in_second_row_of_window():
    # window [[0, 5], [5, 1]]: the first maximum in row-major order is (0, 1), not (1, 0)
    x = np.array([[[[0.0, 5.0], [5.0, 1.0]]]])
    for fwd, bwd in MAX:
        out, cache = fwd(x, dict(pool_height=2, pool_width=2, stride=2))
        np.testing.assert_array_equal(bwd(np.ones_like(out), cache)[0, 0], [[0, 1], [0, 0]])


def test_avg_pool_padding_counts_zeros():
    x = np.ones((1, 1, 2, 2))
    for fwd, _ in AVG:
        out, _ = fwd(x, dict(pool_height=2, pool_width=2, stride=2, pad=1))
        np.testing.assert_array_equal(out, np.full((1, 1, 2, 2), 0.25))  # one real 1 of four values


@pytest.mark.parametrize("pairs", [MAX, AVG], ids=["max", "avg"])
@pytest.mark.parametrize("p", [dict(pool_height=2, pool_width=2, stride=2),
                               dict(pool_height=3, pool_width=3, stride=2, pad=1),
                               dict(pool_height=2, pool_width=3, stride=1)])
def test_numeric_gradient(pairs, p):
    x = np.random.default_rng(2).standard_normal((2, 2, 6, 5))  # continuous values: no ties
    # max pooling routes dout unchanged (CS231n expects ~1e-12); overlapping average windows sum
    # several shares of dout that can partly cancel, which costs a few digits
    tol = 1e-11 if pairs is MAX or p["stride"] == p["pool_height"] == p["pool_width"] else 1e-8
    for fwd, bwd in pairs:
        res = check_layer_gradients(fwd, bwd, {"x": x}, params={"pool_param": p})
        assert res["x"] < tol, res


BAD = [
    ((1, 1, 3, 3), dict(pool_height=4, pool_width=2, stride=1), r"too small for a 4x2 window.*window does not fit along H"),
    ((1, 1, 5, 2), dict(pool_height=2, pool_width=3, stride=1), r"\(1, 1, 5, 2\).*window does not fit along W"),
    ((1, 1, 4, 4), dict(pool_height=2, pool_width=2, stride=2, pad=-1), r"pool_param\['pad'\] must be an integer >= 0, got -1"),
    ((1, 1, 4, 4), dict(pool_height=3, pool_width=2, stride=1, pad=2), r"pad'\] = 2 is more than half the window \(3x2\).*pad <= pool_height // 2 = 1"),
    ((1, 1, 4, 4), dict(pool_height=2, pool_width=2, stride=0), r"pool_param\['stride'\] must be an integer >= 1, got 0"),
    ((1, 1, 4, 4), dict(pool_height=2.0, pool_width=2, stride=2), r"pool_param\['pool_height'\] must be an integer"),
    ((1, 1, 4, 4), dict(pool_height=2, pool_width=2, stride=2, padding=1), r"unknown pool_param keys \['padding'\]; allowed keys are"),
    ((1, 1, 4, 4), dict(pool_height=2, pool_width=2), r"missing the required keys \['stride'\]"),
    ((4, 4, 4), dict(pool_height=2, pool_width=2, stride=2), r"x must be 4-D with shape \(N, C, H, W\), got shape \(4, 4, 4\)"),
]


@pytest.mark.parametrize("shape, p, msg", BAD)
@pytest.mark.parametrize("fwd", [max_pool_forward_naive, max_pool_forward_fast, avg_pool_forward_naive, avg_pool_forward_fast])
def test_bad_input_raises(fwd, shape, p, msg):
    with pytest.raises(ValueError, match=msg):
        fwd(np.zeros(shape), p)


def test_other_errors():
    p = dict(pool_height=2, pool_width=2, stride=2)
    with pytest.raises(ValueError, match="x must be a floating-point array.*int64"):
        max_pool_forward_fast(np.zeros((1, 1, 4, 4), dtype=np.int64), p)
    with pytest.raises(ValueError, match="pool_param must be a dict"):
        avg_pool_forward_fast(np.zeros((1, 1, 4, 4)), [2, 2, 2])
    for fwd, bwd in MAX + AVG:
        _, cache = fwd(np.zeros((1, 1, 4, 4)), p)
        with pytest.raises(ValueError, match=r"dout must have the shape of the forward output .* = \(1, 1, 2, 2\), got \(1, 1, 4, 4\)"):
            bwd(np.zeros((1, 1, 4, 4)), cache)
