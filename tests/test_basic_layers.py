"""Affine, ReLU and softmax loss against torch.nn.functional, autograd and numerical gradients."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from cnnlab.gradcheck import check_layer_gradients
from cnnlab.layers import (
    affine_backward,
    affine_forward,
    relu_backward,
    relu_forward,
    softmax_loss,
)



DTYPES = st.sampled_from([np.float32, np.float64])


def tol(dtype):
    return dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)


@given(n=st.integers(1, 5), dims=st.lists(st.integers(1, 4), min_size=1, max_size=3),
       m=st.integers(1, 5), dtype=DTYPES, seed=st.integers(0, 2**16))
def test_affine_matches_torch_linear(n, dims, m, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, *dims)).astype(dtype)
    d = int(np.prod(dims))
    w = rng.standard_normal((d, m)).astype(dtype)
    b = rng.standard_normal(m).astype(dtype)
    dout = rng.standard_normal((n, m)).astype(dtype)
    out, cache = affine_forward(x, w, b)
    dx, dw, db = affine_backward(dout, cache)

    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ot = F.linear(xt.reshape(n, d), wt.T, bt)
    ot.backward(torch.tensor(dout))
    assert out.dtype == dx.dtype == dw.dtype == db.dtype == dtype
    assert out.shape == (n, m) and dx.shape == x.shape
    np.testing.assert_allclose(out, ot.detach().numpy(), **tol(dtype))
    np.testing.assert_allclose(dx, xt.grad.numpy(), **tol(dtype))
    np.testing.assert_allclose(dw, wt.grad.numpy(), **tol(dtype))
    np.testing.assert_allclose(db, bt.grad.numpy(), **tol(dtype))


@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=4), dtype=DTYPES, seed=st.integers(0, 2**16))
def test_relu_matches_torch(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    x.flat[0] = 0.0  # the kink: gradient 0 at x == 0, like torch
    dout = rng.standard_normal(shape).astype(dtype)
    out, cache = relu_forward(x)
    dx = relu_backward(dout, cache)
    xt = torch.tensor(x, requires_grad=True)
    ot = F.relu(xt)
    ot.backward(torch.tensor(dout))
    assert out.dtype == dx.dtype == dtype
    np.testing.assert_array_equal(out, ot.detach().numpy())
    np.testing.assert_array_equal(dx, xt.grad.numpy())


@given(n=st.integers(1, 6), c=st.integers(1, 6), scale=st.sampled_from([1.0, 30.0, 1e4]),
       dtype=DTYPES, seed=st.integers(0, 2**16))
def test_softmax_loss_matches_torch_cross_entropy(n, c, scale, dtype, seed):
    rng = np.random.default_rng(seed)
    scores = (rng.standard_normal((n, c)) * scale).astype(dtype)
    y = rng.integers(0, c, size=n)
    loss, dscores = softmax_loss(scores, y)
    st_ = torch.tensor(scores, requires_grad=True)
    lt = F.cross_entropy(st_, torch.tensor(y))
    lt.backward()
    assert np.isfinite(loss) and np.all(np.isfinite(dscores))  # stable for huge scores
    assert np.asarray(loss).dtype == dtype and dscores.dtype == dtype
    t = tol(dtype)
    np.testing.assert_allclose(loss, lt.item(), rtol=t["rtol"], atol=t["atol"] * max(1.0, scale))
    np.testing.assert_allclose(dscores, st_.grad.numpy(), **t)


def test_softmax_loss_of_uniform_scores_is_log_c():
    loss, _ = softmax_loss(np.zeros((4, 10)), np.arange(4))
    assert loss == pytest.approx(np.log(10))  # the lecture's sanity check at initialization


def test_numeric_gradients_basic_layers(rng):
    x = rng.standard_normal((3, 2, 4))
    w = rng.standard_normal((8, 5))
    b = rng.standard_normal(5)
    check_layer_gradients(affine_forward, affine_backward, {"x": x, "w": w, "b": b}).assert_below(1e-9)
    xr = rng.standard_normal((4, 5))
    xr[np.abs(xr) < 1e-2] = 0.5  # keep away from the kink
    check_layer_gradients(relu_forward, relu_backward, {"x": xr}).assert_below(1e-9)
    scores = rng.standard_normal((5, 4))
    res = check_layer_gradients(softmax_loss, None, {"scores": scores}, params={"y": rng.integers(0, 4, 5)})
    assert res["scores"] < 1e-8


def test_affine_errors(rng):
    x = rng.standard_normal((2, 3, 4))
    with pytest.raises(ValueError, match=r"w must have shape \(D, M\) with D = prod\(x.shape\[1:\]\) = 12.*\(2, 3, 4\).*\(10, 5\)"):
        affine_forward(x, np.zeros((10, 5)), np.zeros(5))
    with pytest.raises(ValueError, match=r"b must have shape \(M,\) = \(5,\).*got b of shape \(4,\)"):
        affine_forward(x, np.zeros((12, 5)), np.zeros(4))
    with pytest.raises(ValueError, match=r"at least 2 dimensions, got shape \(3,\)"):
        affine_forward(np.zeros(3), np.zeros((3, 5)), np.zeros(5))
    with pytest.raises(ValueError, match="x must be a floating-point array"):
        affine_forward(np.zeros((2, 3), dtype=int), np.zeros((3, 5)), np.zeros(5))
    _, cache = affine_forward(x, np.zeros((12, 5)), np.zeros(5))
    with pytest.raises(ValueError, match=r"dout must have shape \(N, M\) = \(2, 5\), got \(2, 4\)"):
        affine_backward(np.zeros((2, 4)), cache)


def test_relu_errors():
    _, cache = relu_forward(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"dout must have the shape of x \(2, 3\), got \(3, 2\)"):
        relu_backward(np.zeros((3, 2)), cache)
    with pytest.raises(ValueError, match="x must be a numpy array"):
        relu_forward([1.0, -1.0])


def test_softmax_loss_errors():
    scores = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"0 <= y\[i\] < C = 4.*got values in \[0, 4\]"):
        softmax_loss(scores, np.array([0, 1, 4]))
    with pytest.raises(ValueError, match=r"got values in \[-1, 1\]"):
        softmax_loss(scores, np.array([0, 1, -1]))
    with pytest.raises(ValueError, match=r"y must have shape \(N,\) = \(3,\).*got \(2,\)"):
        softmax_loss(scores, np.array([0, 1]))
    with pytest.raises(ValueError, match="y must be an integer array of labels, got dtype float64"):
        softmax_loss(scores, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"scores must have shape \(N, C\).*got shape \(4,\)"):
        softmax_loss(np.zeros(4), np.array([0]))
