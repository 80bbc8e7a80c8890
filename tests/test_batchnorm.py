"""Batch normalization against torch.nn.functional.batch_norm (training and eval mode, running
statistics over several steps), autograd and numerical gradients; input validation."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from cnnlab.gradcheck import check_layer_gradients
from cnnlab.layers import (
    batchnorm_backward,
    batchnorm_backward_alt,
    batchnorm_forward,
    spatial_batchnorm_backward,
    spatial_batchnorm_forward,
)

DTYPES = st.sampled_from([np.float32, np.float64])




def _tol(dtype):
    return dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-11)


def _run_against_torch(shape, dtype, seed, momentum, eps, steps, spatial):
    """Train for ``steps`` minibatches, then evaluate; compare everything with torch."""
    rng = np.random.default_rng(seed)
    D = shape[1]
    forward = spatial_batchnorm_forward if spatial else batchnorm_forward
    backwards = [spatial_batchnorm_backward] if spatial else [batchnorm_backward, batchnorm_backward_alt]
    gamma = rng.standard_normal(D).astype(dtype)
    beta = rng.standard_normal(D).astype(dtype)
    bn_param = {"mode": "train"}
    kwargs = {}
    if momentum is not None:
        bn_param["momentum"] = kwargs["momentum"] = momentum
    if eps is not None:
        bn_param["eps"] = kwargs["eps"] = eps
    tdt = torch.float32 if dtype == np.float32 else torch.float64
    running_mean, running_var = torch.zeros(D, dtype=tdt), torch.ones(D, dtype=tdt)  # BatchNorm's init
    t = _tol(dtype)
    for mode in ["train"] * steps + ["test"]:
        bn_param["mode"] = mode
        x = (rng.standard_normal(shape) * rng.uniform(0.5, 3) + rng.uniform(-2, 2)).astype(dtype)
        dout = rng.standard_normal(shape).astype(dtype)
        out, cache = forward(x, gamma, beta, bn_param)
        xt, gt, bt = (torch.tensor(a, requires_grad=True) for a in (x, gamma, beta))
        out_t = F.batch_norm(xt, running_mean, running_var, gt, bt, training=(mode == "train"), **kwargs)
        out_t.backward(torch.tensor(dout))
        assert out.dtype == dtype and out.shape == x.shape
        np.testing.assert_allclose(out, out_t.detach().numpy(), **t)
        np.testing.assert_allclose(bn_param["running_mean"], running_mean.numpy(), **t)
        np.testing.assert_allclose(bn_param["running_var"], running_var.numpy(), **t)
        for backward in backwards:
            dx, dgamma, dbeta = backward(dout, cache)
            assert dx.dtype == dgamma.dtype == dbeta.dtype == dtype
            np.testing.assert_allclose(dx, xt.grad.numpy(), **t, err_msg=backward.__name__)
            np.testing.assert_allclose(dgamma, gt.grad.numpy(), **t, err_msg=backward.__name__)
            np.testing.assert_allclose(dbeta, bt.grad.numpy(), **t, err_msg=backward.__name__)
    assert bn_param["running_mean"].dtype == bn_param["running_var"].dtype == dtype


@given(n=st.integers(2, 8), d=st.integers(1, 6), dtype=DTYPES, seed=st.integers(0, 2**16),
       momentum=st.sampled_from([None, 0.0, 0.3, 1.0]), eps=st.sampled_from([None, 1e-3]))
def test_batchnorm_matches_torch(n, d, dtype, seed, momentum, eps):
    _run_against_torch((n, d), dtype, seed, momentum, eps, steps=3, spatial=False)


@given(n=st.integers(1, 4), c=st.integers(1, 4), h=st.integers(1, 4), w=st.integers(1, 4), dtype=DTYPES,
       seed=st.integers(0, 2**16), momentum=st.sampled_from([None, 0.3]))
def test_spatial_batchnorm_matches_torch(n, c, h, w, dtype, seed, momentum):
    if n * h * w < 2:
        n = 2  # training needs more than one value per channel
    _run_against_torch((n, c, h, w), dtype, seed, momentum, None, steps=3, spatial=True)


def test_running_statistics_by_hand():
    # PyTorch's convention: momentum weighs the new batch, running_var starts at 1 and averages
    # the UNBIASED batch variance, while the output uses the biased one.
    x = np.array([[1.0], [2.0], [6.0]])  # mean 3, biased var 14/3, unbiased var 7
    bn_param = {"mode": "train", "momentum": 0.1, "eps": 0.0 + 1e-12}
    out, _ = batchnorm_forward(x, np.ones(1), np.zeros(1), bn_param)
    np.testing.assert_allclose(bn_param["running_mean"], [0.9 * 0 + 0.1 * 3])
    np.testing.assert_allclose(bn_param["running_var"], [0.9 * 1 + 0.1 * 7])
    np.testing.assert_allclose(out[:, 0], (x[:, 0] - 3) / np.sqrt(14 / 3), rtol=1e-10)


def test_fresh_layer_in_test_mode_uses_initial_statistics(rng):
    x = rng.standard_normal((4, 3))
    bn_param = {"mode": "test"}
    out, _ = batchnorm_forward(x, np.full(3, 2.0), np.full(3, 0.5), bn_param)
    np.testing.assert_allclose(out, 2.0 * x / np.sqrt(1 + 1e-5) + 0.5)
    np.testing.assert_array_equal(bn_param["running_mean"], np.zeros(3))
    np.testing.assert_array_equal(bn_param["running_var"], np.ones(3))


def test_graph_and_closed_form_backward_agree(rng):
    x = rng.standard_normal((10, 7)) * 3 + 2
    gamma, beta = rng.standard_normal(7), rng.standard_normal(7)
    _, cache = batchnorm_forward(x, gamma, beta, {"mode": "train"})
    dout = rng.standard_normal((10, 7))
    for a, b in zip(batchnorm_backward(dout, cache), batchnorm_backward_alt(dout, cache)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


def _assert_gradcheck(res):
    # CS231n's elementwise relative error for gamma and beta; dx of batchnorm sums to zero over
    # the batch, so some of its elements are tiny differences of large terms whose elementwise
    # relative error is noise: for dx the error is taken relative to the largest gradient.
    assert res["gamma"] < 1e-9 and res["beta"] < 1e-9, res
    dx, num = res.analytic["x"], res.numeric["x"]
    assert np.abs(dx - num).max() / np.abs(num).max() < 1e-8, res


@pytest.mark.parametrize("mode", ["train", "test"])
@pytest.mark.parametrize("seed", [0, 1])
def test_numeric_gradients(mode, seed):
    rng = np.random.default_rng(seed)
    # a non-trivial running state for test mode
    stats = {"running_mean": rng.standard_normal(4), "running_var": rng.uniform(0.5, 2, 4)}
    inputs = {"x": 5 * rng.standard_normal((6, 4)) + 12, "gamma": rng.standard_normal(4), "beta": rng.standard_normal(4)}
    for backward in (batchnorm_backward, batchnorm_backward_alt):
        _assert_gradcheck(check_layer_gradients(batchnorm_forward, backward, inputs,
                                                params={"bn_param": {"mode": mode, **stats}}))
    inputs = {"x": 4 * rng.standard_normal((2, 3, 3, 4)) + 10, "gamma": rng.standard_normal(3),
              "beta": rng.standard_normal(3)}
    stats = {k: v[:3] for k, v in stats.items()}
    _assert_gradcheck(check_layer_gradients(spatial_batchnorm_forward, spatial_batchnorm_backward, inputs,
                                            params={"bn_param": {"mode": mode, **stats}}))


def test_running_statistics_replaced_in_dict():
    bn_param = {"mode": "train"}
    batchnorm_forward(np.arange(6.0).reshape(3, 2), np.ones(2), np.zeros(2), bn_param)
    assert set(bn_param) == {"mode", "running_mean", "running_var"}
    first = bn_param["running_mean"].copy()
    batchnorm_forward(np.arange(6.0).reshape(3, 2), np.ones(2), np.zeros(2), bn_param)
    assert np.all(bn_param["running_mean"] > first)  # a second step moves further toward the mean


@pytest.mark.parametrize("bn_param, msg", [
    ({"mode": "eval"}, r"bn_param\['mode'\] must be 'train' or 'test', got 'eval'"),
    ({}, r"bn_param\['mode'\] must be 'train' or 'test', got None"),
    ({"mode": "train", "momentun": 0.1}, r"unknown bn_param keys \['momentun'\]; allowed keys are"),
    ({"mode": "train", "momentum": 1.5}, r"bn_param\['momentum'\] must be a number in \[0, 1\].*CS231n's 0.9"),
    ({"mode": "train", "eps": 0}, r"bn_param\['eps'\] must be a number > 0, got 0"),
    ({"mode": "train", "running_mean": np.zeros(3)}, r"running_mean'\] must be an array of shape \(D,\) = \(4,\), got \(3,\)"),
    ({"mode": "test", "running_var": [1.0] * 4}, r"running_var'\] must be an array of shape \(D,\) = \(4,\), got list"),
])
def test_bad_bn_param(bn_param, msg):
    with pytest.raises(ValueError, match=msg):
        batchnorm_forward(np.zeros((5, 4)), np.ones(4), np.zeros(4), bn_param)


def test_bad_shapes():
    with pytest.raises(ValueError, match=r"gamma must be an array of shape \(D,\) = \(4,\) for x of shape \(5, 4\), got \(3,\)"):
        batchnorm_forward(np.zeros((5, 4)), np.ones(3), np.zeros(4), {"mode": "train"})
    with pytest.raises(ValueError, match=r"beta must be an array of shape \(C,\) = \(2,\)"):
        spatial_batchnorm_forward(np.zeros((2, 2, 3, 3)), np.ones(2), np.zeros(4), {"mode": "train"})
    with pytest.raises(ValueError, match=r"x must be a 2-D array of shape \(N, D\), got \(2, 2, 3, 3\).*spatial_batchnorm"):
        batchnorm_forward(np.zeros((2, 2, 3, 3)), np.ones(2), np.zeros(2), {"mode": "train"})
    with pytest.raises(ValueError, match=r"x must be 4-D with shape \(N, C, H, W\), got shape \(5, 4\)"):
        spatial_batchnorm_forward(np.zeros((5, 4)), np.ones(4), np.zeros(4), {"mode": "train"})
    with pytest.raises(ValueError, match=r"more than 1 value per feature.*\(1, 4\) gives 1"):
        batchnorm_forward(np.zeros((1, 4)), np.ones(4), np.zeros(4), {"mode": "train"})
    with pytest.raises(ValueError, match=r"more than 1 value per feature.*\(1, 2, 1, 1\) gives 1"):
        spatial_batchnorm_forward(np.zeros((1, 2, 1, 1)), np.ones(2), np.zeros(2), {"mode": "train"})
    with pytest.raises(ValueError, match="x must be a floating-point array"):
        batchnorm_forward(np.zeros((5, 4), dtype=int), np.ones(4), np.zeros(4), {"mode": "train"})
    _, cache = batchnorm_forward(np.arange(8.0).reshape(2, 4), np.ones(4), np.zeros(4), {"mode": "train"})
    for backward in (batchnorm_backward, batchnorm_backward_alt):
        with pytest.raises(ValueError, match=r"dout must have the shape of x \(2, 4\), got \(4, 2\)"):
            backward(np.zeros((4, 2)), cache)
