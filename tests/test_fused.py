"""Sandwich layers against the same sequence in torch.nn.functional (autograd for the gradients)
and numerical gradients."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from cnnlab.gradcheck import check_layer_gradients
from cnnlab.layers import (
    affine_bn_relu_backward,
    affine_bn_relu_forward,
    affine_relu_backward,
    affine_relu_forward,
    conv_bn_relu_backward,
    conv_bn_relu_forward,
    conv_relu_backward,
    conv_relu_forward,
    conv_relu_pool_backward,
    conv_relu_pool_forward,
)




DTYPES = st.sampled_from([np.float32, np.float64])


def _tol(dtype):
    return dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-11)


def _compare(forward, backward, torch_fn, arrays, params, dtype, seed, zero_grad=None):
    """Run the numpy pair and ``torch_fn(*tensors)``; compare output and every gradient.

    ``zero_grad``: index of a gradient that is mathematically zero (a bias followed by
    batchnorm, which subtracts the mean): both sides are rounding noise, so it is only checked
    to be ~0, in float64."""
    out, cache = forward(*arrays, *params)
    dout = np.random.default_rng(seed + 1).standard_normal(out.shape).astype(dtype)
    grads = backward(dout, cache)
    tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
    out_t = torch_fn(*tensors)
    out_t.backward(torch.tensor(dout))
    t = _tol(dtype)
    assert out.dtype == dtype
    np.testing.assert_allclose(out, out_t.detach().numpy(), **t)
    assert len(grads) == len(arrays)
    for i, (g, tensor) in enumerate(zip(grads, tensors)):
        assert g.dtype == dtype
        if i == zero_grad:
            if dtype == np.float64:
                np.testing.assert_allclose(g, 0, atol=1e-8)
        else:
            np.testing.assert_allclose(g, tensor.grad.numpy(), **t)


@given(n=st.integers(2, 4), c=st.integers(1, 3), f=st.integers(1, 4), size=st.integers(4, 7),
       k=st.sampled_from([1, 3]), dtype=DTYPES, seed=st.integers(0, 2**16))
def test_conv_sandwiches_match_torch(n, c, f, size, k, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, size, size)).astype(dtype)
    w = rng.standard_normal((f, c, k, k)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    gamma, beta = rng.standard_normal(f).astype(dtype), rng.standard_normal(f).astype(dtype)
    conv_param = {"stride": 1, "pad": k // 2}
    pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}

    def conv(xt, wt, bt):
        return F.conv2d(xt, wt, bt, stride=1, padding=k // 2)

    _compare(conv_relu_forward, conv_relu_backward, lambda *t: F.relu(conv(*t)),
             (x, w, b), (conv_param,), dtype, seed)
    _compare(conv_relu_pool_forward, conv_relu_pool_backward,
             lambda *t: F.max_pool2d(F.relu(conv(*t)), 2, 2), (x, w, b), (conv_param, pool_param), dtype, seed)
    _compare(conv_bn_relu_forward, conv_bn_relu_backward,
             lambda xt, wt, bt, gt, bet: F.relu(F.batch_norm(conv(xt, wt, bt), None, None, gt, bet, training=True)),
             (x, w, b, gamma, beta), (conv_param, {"mode": "train"}), dtype, seed, zero_grad=2)


@given(n=st.integers(2, 5), d=st.integers(1, 6), m=st.integers(1, 5), dtype=DTYPES, seed=st.integers(0, 2**16))
def test_affine_sandwiches_match_torch(n, d, m, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 2, d)).astype(dtype)
    w = rng.standard_normal((2 * d, m)).astype(dtype)
    b = rng.standard_normal(m).astype(dtype)
    gamma, beta = rng.standard_normal(m).astype(dtype), rng.standard_normal(m).astype(dtype)

    def linear(xt, wt, bt):
        return F.linear(xt.reshape(n, -1), wt.T, bt)

    _compare(affine_relu_forward, affine_relu_backward, lambda *t: F.relu(linear(*t)), (x, w, b), (), dtype, seed)
    _compare(affine_bn_relu_forward, affine_bn_relu_backward,
             lambda xt, wt, bt, gt, bet: F.relu(F.batch_norm(linear(xt, wt, bt), None, None, gt, bet, training=True)),
             (x, w, b, gamma, beta), ({"mode": "train"},), dtype, seed, zero_grad=2)


def _assert_bn_gradcheck(res):
    # Behind batchnorm the gradient of w is a difference of large terms in places (batchnorm's
    # dx sums to zero), so its elementwise relative error is noisy: measure it against the
    # largest gradient instead. gamma and beta get CS231n's elementwise check.
    assert res["gamma"] < 1e-9 and res["beta"] < 1e-9, res
    dw, num = res.analytic["w"], res.numeric["w"]
    assert np.abs(dw - num).max() / np.abs(num).max() < 1e-8, res


def test_numeric_gradients():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 6, 6))
    w = rng.standard_normal((4, 3, 3, 3))
    b = rng.standard_normal(4)
    conv_param = {"stride": 1, "pad": 1}
    res = check_layer_gradients(conv_relu_pool_forward, conv_relu_pool_backward, {"x": x, "w": w, "b": b},
                                params={"conv_param": conv_param,
                                        "pool_param": {"pool_height": 2, "pool_width": 2, "stride": 2}})
    assert res.max_error < 1e-7, res
    res = check_layer_gradients(conv_bn_relu_forward, conv_bn_relu_backward,
                                {"x": x, "w": w, "b": b, "gamma": rng.standard_normal(4), "beta": rng.standard_normal(4)},
                                params={"conv_param": conv_param, "bn_param": {"mode": "train"}}, wrt=["w", "gamma", "beta"])
    _assert_bn_gradcheck(res)
    res = check_layer_gradients(affine_bn_relu_forward, affine_bn_relu_backward,
                                {"x": rng.standard_normal((5, 4)), "w": rng.standard_normal((4, 3)), "b": rng.standard_normal(3),
                                 "gamma": rng.standard_normal(3), "beta": rng.standard_normal(3)},
                                params={"bn_param": {"mode": "train"}}, wrt=["w", "gamma", "beta"])
    _assert_bn_gradcheck(res)


def test_bn_sandwich_updates_running_statistics(rng):
    bn_param = {"mode": "train"}
    x = rng.standard_normal((3, 2, 4, 4)) + 5
    conv_bn_relu_forward(x, np.ones((2, 2, 1, 1)) / 2, np.zeros(2), np.ones(2), np.zeros(2),
                         {"stride": 1, "pad": 0}, bn_param)
    # a 1x1 conv averaging the two channels: the batch mean of both outputs is mean(x)
    np.testing.assert_allclose(bn_param["running_mean"], 0.1 * x.mean() * np.ones(2))
