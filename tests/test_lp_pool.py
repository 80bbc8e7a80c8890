"""L2-norm pooling against torch.nn.functional.lp_pool2d (forward and autograd), numerical
gradients, a hand-computed example, the zero-window gradient and input validation."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from cnnlab.gradcheck import check_layer_gradients, rel_error
from cnnlab.layers.lp_pool import l2_pool_backward, l2_pool_forward




@st.composite
def geometries(draw):
    ph, pw, stride = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 3))
    H, W = draw(st.integers(ph, ph + 6)), draw(st.integers(pw, pw + 6))
    N, C = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return (N, C, H, W), dict(pool_height=ph, pool_width=pw, stride=stride)


def _torch(x, p, dout):
    t = torch.tensor(x, requires_grad=True)
    y = F.lp_pool2d(t, 2, (p["pool_height"], p["pool_width"]), p["stride"])
    y.backward(torch.tensor(dout))
    return y.detach().numpy(), t.grad.numpy()


@given(geometries(), st.integers(0, 2**16), st.sampled_from([np.float32, np.float64]))
def test_matches_torch_forward_and_autograd(geom, seed, dtype):
    shape, p = geom
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    out, cache = l2_pool_forward(x, p)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx = l2_pool_backward(dout, cache)
    ref_out, ref_dx = _torch(x, p, dout)
    assert out.dtype == dx.dtype == dtype
    assert out.shape == ref_out.shape and dx.shape == x.shape
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, ref_out, rtol=tol, atol=tol)
    np.testing.assert_allclose(dx, ref_dx, rtol=10 * tol, atol=10 * tol)


def test_hand_computed():
    x = np.array([[[[3., 4., 0., 1.],
                    [0., 0., 2., 2.]]]])
    out, _ = l2_pool_forward(x, dict(pool_height=2, pool_width=2, stride=2))
    assert np.array_equal(out, [[[[5., 3.]]]])   # sqrt(9+16), sqrt(1+4+4)
    out, cache = l2_pool_forward(x, dict(pool_height=1, pool_width=2, stride=1))
    assert np.allclose(out[0, 0], [[5, 4, 1], [0, 2, 2 * np.sqrt(2)]])


def test_numeric_gradients_overlapping_windows(rng):
    x = rng.standard_normal((2, 2, 5, 6))
    res = check_layer_gradients(l2_pool_forward, l2_pool_backward, {"x": x},
                                params={"pool_param": dict(pool_height=3, pool_width=2, stride=1)})
    res.assert_below(1e-7)


def test_zero_window_gradient_is_zero_like_torch():
    x = np.zeros((1, 2, 4, 4))
    x[0, 0, 0, 0] = -2.0           # one non-zero window; every other window is all zeros
    x[0, 1, 3, 3] = 1.5
    p = dict(pool_height=2, pool_width=2, stride=2)
    out, cache = l2_pool_forward(x, p)
    dout = np.ones_like(out)
    dx = l2_pool_backward(dout, cache)
    ref_out, ref_dx = _torch(x, p, dout)
    assert np.all(np.isfinite(dx))
    np.testing.assert_array_equal(dx, ref_dx)
    expected = np.zeros_like(x)
    expected[0, 0, 0, 0] = -1.0    # x / out = -2 / 2
    expected[0, 1, 3, 3] = 1.0
    np.testing.assert_array_equal(dx, expected)


def test_bad_input():
    x = np.zeros((1, 1, 4, 4))
    p = dict(pool_height=2, pool_width=2, stride=2)
    with pytest.raises(ValueError, match="4-D"):
        l2_pool_forward(x[0], p)
    with pytest.raises(ValueError, match="floating"):
        l2_pool_forward(x.astype(int), p)
    with pytest.raises(ValueError, match=r"unknown pool_param keys \['pad'\]"):
        l2_pool_forward(x, dict(p, pad=1))
    with pytest.raises(ValueError, match="missing"):
        l2_pool_forward(x, dict(pool_height=2, pool_width=2))
    with pytest.raises(ValueError, match="too small"):
        l2_pool_forward(x, dict(pool_height=5, pool_width=2, stride=1))
    with pytest.raises(ValueError, match="stride"):
        l2_pool_forward(x, dict(pool_height=2, pool_width=2, stride=0))
    out, cache = l2_pool_forward(x, p)
    with pytest.raises(ValueError, match="dout"):
        l2_pool_backward(out[:, :, :1], cache)
    assert rel_error(out, np.zeros((1, 1, 2, 2))) == 0
