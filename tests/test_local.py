"""Locally-connected layer: numpy naive/vectorised against a per-position conv2d oracle, numeric
gradients, the PyTorch module against the oracle and autograd, parameter counts, bad input."""
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from cnnlab.gradcheck import check_layer_gradients, rel_error
from cnnlab.layers.local import (
    local_backward,
    local_backward_naive,
    local_forward,
    local_forward_naive,
    local_params,
    local_vs_conv_params,
)
from cnnlab.models.local import LocallyConnected2d





IMPLS = [(local_forward_naive, local_backward_naive), (local_forward, local_backward)]


def oracle(x, w, b, stride, pad):
    """Independent reference: for every output position (h, w), an ordinary conv2d with that
    position's filter bank over the whole input, of which only output pixel (h, w) is kept."""
    x, w, b = (torch.as_tensor(np.asarray(a, dtype=np.float64)) for a in (x, w, b))
    Hout, Wout = w.shape[:2]
    out = torch.zeros(x.shape[0], w.shape[2], Hout, Wout, dtype=torch.float64)
    for h in range(Hout):
        for v in range(Wout):
            y = F.conv2d(x, w[h, v], b[:, h, v], stride=stride, padding=pad)
            out[:, :, h, v] = y[:, :, h, v]
    return out.numpy()


@st.composite
def geometries(draw):
    HH, WW = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride, pad = draw(st.integers(1, 2)), draw(st.integers(0, 1))
    H = draw(st.integers(max(1, HH - 2 * pad), HH + 4))
    W = draw(st.integers(max(1, WW - 2 * pad), WW + 4))
    N, C, Fn = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    Hout, Wout = (H + 2 * pad - HH) // stride + 1, (W + 2 * pad - WW) // stride + 1
    return (N, C, H, W), (Hout, Wout, Fn, C, HH, WW), dict(stride=stride, pad=pad)


def _data(seed, xs, ws, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal((ws[2], ws[0], ws[1])).astype(dtype)
    return x, w, b


@given(geometries(), st.integers(0, 2**16))
def test_forward_matches_per_position_conv(geom, seed):
    xs, ws, p = geom
    x, w, b = _data(seed, xs, ws)
    expected = oracle(x, w, b, p["stride"], p["pad"])
    for fwd, _ in IMPLS:
        out, _ = fwd(x, w, b, p)
        assert out.shape == expected.shape
        assert rel_error(out, expected) < 1e-10


@given(geometries(), st.integers(0, 2**16))
def test_naive_and_vectorised_backward_agree(geom, seed):
    xs, ws, p = geom
    x, w, b = _data(seed, xs, ws)
    dout = np.random.default_rng(seed + 1).standard_normal(local_forward(x, w, b, p)[0].shape)
    g1 = local_backward_naive(dout, local_forward_naive(x, w, b, p)[1])
    g2 = local_backward(dout, local_forward(x, w, b, p)[1])
    for a, c in zip(g1, g2):
        assert a.shape == c.shape
        assert np.allclose(a, c, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("fwd,bwd", IMPLS)
def test_numeric_gradients(fwd, bwd, rng):
    x = rng.standard_normal((2, 2, 5, 4))
    w = rng.standard_normal((3, 2, 3, 2, 2, 3))   # 2x3 window, stride 2, pad 1 -> 3x2 output
    b = rng.standard_normal((3, 3, 2))
    res = check_layer_gradients(fwd, bwd, {"x": x, "w": w, "b": b},
                                params={"local_param": {"stride": 2, "pad": 1}})
    res.assert_below(1e-8)


def test_float32_dtype_follows_input(rng):
    x, w, b = _data(0, (2, 3, 6, 6), (4, 4, 2, 3, 3, 3), np.float32)
    p = {"stride": 1, "pad": 0}
    for fwd, bwd in IMPLS:
        out, cache = fwd(x, w, b, p)
        assert out.dtype == np.float32
        assert rel_error(out, oracle(x, w, b, 1, 0)) < 1e-4
        dx, dw, db = bwd(np.ones_like(out), cache)
        assert dx.dtype == dw.dtype == db.dtype == np.float32
        assert (dx.shape, dw.shape, db.shape) == (x.shape, w.shape, b.shape)


def test_shared_weights_reduce_to_convolution(rng):
    """Weight sharing is the special case: the same bank at every position gives conv2d."""
    x = rng.standard_normal((2, 3, 7, 7))
    wc, bc = rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    w = np.broadcast_to(wc, (4, 4, 4, 3, 3, 3)).copy()   # stride 2, pad 1: 7 -> 4
    b = np.broadcast_to(bc[:, None, None], (4, 4, 4)).copy()
    out, _ = local_forward(x, w, b, {"stride": 2, "pad": 1})
    ref = F.conv2d(torch.tensor(x), torch.tensor(wc), torch.tensor(bc), stride=2, padding=1).numpy()
    assert rel_error(out, ref) < 1e-10


def test_param_counts():
    # conv: F*C*HH*WW + F, computed independently by torch's Conv2d
    conv = nn.Conv2d(16, 16, 9)
    n_conv = sum(p.numel() for p in conv.parameters())
    r = local_vs_conv_params(16, 16, 63, 9)
    assert r["output_size"] == (55, 55)
    assert r["conv"] == n_conv == 20752
    assert r["local"] == 55 * 55 * n_conv
    assert r["ratio"] == 55 * 55
    with torch.device("meta"):   # 62.8M parameters: shapes only, no memory
        lc = LocallyConnected2d(16, 16, 63, 9)
    assert sum(p.numel() for p in lc.parameters()) == r["local"]
    # rectangular, strided, no bias
    r = local_vs_conv_params(3, 5, (10, 8), (3, 2), stride=2, pad=1, bias=False)
    assert r["output_size"] == (5, 5)
    assert r["local"] == local_params(3, 5, (3, 2), (5, 5), bias=False) == 25 * 5 * 3 * 3 * 2
    lc = LocallyConnected2d(3, 5, (10, 8), (3, 2), stride=2, padding=1, bias=False)
    assert sum(p.numel() for p in lc.parameters()) == r["local"]


def test_bad_input_raises(rng):
    x, w, b = _data(0, (1, 2, 5, 5), (3, 3, 4, 2, 3, 3))
    p = {"stride": 1, "pad": 0}
    for fwd, _ in IMPLS:
        with pytest.raises(ValueError, match=r"w.shape\[:2\] == \(Hout, Wout\)"):
            fwd(x, w[:2], b[:, :2], p)
        with pytest.raises(ValueError, match=r"w.shape\[3\] == C"):
            fwd(x[:, :1], w, b, p)
        with pytest.raises(ValueError, match=r"b must be .*\(F, Hout, Wout\)"):
            fwd(x, w, b[0], p)
        with pytest.raises(ValueError, match="6-D"):
            fwd(x, w[0], b, p)
        with pytest.raises(ValueError, match="missing"):
            fwd(x, w, b, {"stride": 1})
        with pytest.raises(ValueError, match="unknown"):
            fwd(x, w, b, {"stride": 1, "pad": 0, "groups": 2})
        with pytest.raises(ValueError, match="floating"):
            fwd(x.astype(int), w, b, p)
    out, cache = local_forward(x, w, b, p)
    with pytest.raises(ValueError, match="dout"):
        local_backward(out[:, :1], cache)
    with pytest.raises(ValueError, match="in_channels"):
        local_params(0, 1, 3, 3)


# ---------------------------------------------------------------------------------------------
# PyTorch module
# ---------------------------------------------------------------------------------------------

def test_module_matches_oracle_numpy_and_autograd():
    torch.manual_seed(0)
    m = LocallyConnected2d(3, 4, (7, 6), (3, 2), stride=2, padding=1).double()
    assert m.weight.shape == (4, 4, 4, 3, 3, 2) and m.bias.shape == (4, 4, 4)
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64, requires_grad=True)
    y = m(x)
    w, b = m.weight.detach().numpy(), m.bias.detach().numpy()
    ref = oracle(x.detach().numpy(), w, b, 2, 1)
    assert rel_error(y.detach().numpy(), ref) < 1e-10
    # same parameter layout as the numpy layer: no conversion
    out, cache = local_forward(x.detach().numpy(), w, b, {"stride": 2, "pad": 1})
    assert rel_error(out, ref) < 1e-10
    dout = torch.randn_like(y)
    y.backward(dout)
    dx, dw, db = local_backward(dout.numpy(), cache)
    assert rel_error(dx, x.grad.numpy()) < 1e-10
    assert rel_error(dw, m.weight.grad.numpy()) < 1e-10
    assert rel_error(db, m.bias.grad.numpy()) < 1e-10
    assert torch.autograd.gradcheck(lambda t: m(t), (x[:1].detach().requires_grad_(),))


def test_module_from_conv_equals_conv():
    torch.manual_seed(1)
    conv = nn.Conv2d(3, 5, 3, stride=2, padding=1)
    lc = LocallyConnected2d.from_conv(conv, 9)
    x = torch.randn(2, 3, 9, 9)
    torch.testing.assert_close(lc(x), conv(x), rtol=1e-5, atol=1e-5)
    lc.weight.data[0, 0] += 1.0   # untie one position: only that output pixel changes
    diff = (lc(x) - conv(x)).abs().amax(dim=(0, 1))
    assert diff[0, 0] > 1e-3 and diff.flatten()[1:].max() < 1e-5


def test_module_bad_input():
    m = LocallyConnected2d(3, 4, 8, 3)
    with pytest.raises(ValueError, match=r"\(N, 3, 8, 8\)"):
        m(torch.zeros(1, 3, 9, 9))
    with pytest.raises(ValueError, match="window does not fit"):
        LocallyConnected2d(3, 4, 2, 3)
    with pytest.raises(ValueError, match="groups=1"):
        LocallyConnected2d.from_conv(nn.Conv2d(4, 4, 3, groups=2), 8)
    assert "output_size=(6, 6)" in repr(m)
