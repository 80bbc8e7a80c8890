"""Layer and group normalization against torch.nn.functional (forward and autograd), numerical
gradients, batch independence, the train/test demonstration and input validation."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given
from hypothesis import strategies as st

from cnnlab.gradcheck import check_layer_gradients, rel_error
from cnnlab.layers.norm import (
    groupnorm_backward,
    groupnorm_forward,
    layernorm_backward,
    layernorm_forward,
)
from cnnlab.train import norm_train_test_gap




def _params(rng, C, dtype=np.float64):
    return (1 + 0.5 * rng.standard_normal(C)).astype(dtype), rng.standard_normal(C).astype(dtype)


def _autograd(fn, x, gamma, beta, dout):
    t = [torch.tensor(a, requires_grad=True) for a in (x, gamma, beta)]
    y = fn(*t)
    y.backward(torch.tensor(dout))
    return y.detach().numpy(), [a.grad.numpy() for a in t]


def _check(ours, ref, dtype):
    tol = 2e-4 if dtype == np.float32 else 1e-9
    (out, grads), (rout, rgrads) = ours, ref
    assert out.dtype == dtype and all(g.dtype == dtype for g in grads)
    np.testing.assert_allclose(out, rout, rtol=tol, atol=tol)
    for g, r in zip(grads, rgrads):
        assert g.shape == r.shape
        np.testing.assert_allclose(g, r, rtol=tol, atol=tol)


shapes4 = st.tuples(st.integers(1, 3), st.integers(1, 6), st.integers(1, 4), st.integers(1, 4))


@given(shapes4, st.integers(0, 2**16), st.sampled_from([np.float32, np.float64]))
def test_layernorm_4d_matches_torch(shape, seed, dtype):
    rng = np.random.default_rng(seed)
    N, C, H, W = shape
    x = (3 + 2 * rng.standard_normal(shape)).astype(dtype)
    gamma, beta = _params(rng, C, dtype)
    dout = rng.standard_normal(shape).astype(dtype)
    out, cache = layernorm_forward(x, gamma, beta, {"eps": 1e-5})
    ours = (out, layernorm_backward(dout, cache))

    def torch_ln(t, g, b):   # per-channel affine == (C, H, W) weight constant over H, W
        return F.layer_norm(t, (C, H, W), g[:, None, None].expand(C, H, W),
                            b[:, None, None].expand(C, H, W), eps=1e-5)

    _check(ours, _autograd(torch_ln, x, gamma, beta, dout), dtype)


@given(st.tuples(st.integers(1, 4), st.integers(1, 10)), st.integers(0, 2**16),
       st.sampled_from([np.float32, np.float64]))
def test_layernorm_2d_matches_torch(shape, seed, dtype):
    rng = np.random.default_rng(seed)
    x = (1 + 3 * rng.standard_normal(shape)).astype(dtype)
    gamma, beta = _params(rng, shape[1], dtype)
    dout = rng.standard_normal(shape).astype(dtype)
    out, cache = layernorm_forward(x, gamma, beta)
    ours = (out, layernorm_backward(dout, cache))
    ref = _autograd(lambda t, g, b: F.layer_norm(t, (shape[1],), g, b, eps=1e-5), x, gamma, beta, dout)
    _check(ours, ref, dtype)


@st.composite
def gn_cases(draw):
    G = draw(st.integers(1, 4))
    C = G * draw(st.integers(1, 3))
    return (draw(st.integers(1, 3)), C, draw(st.integers(1, 4)), draw(st.integers(1, 4))), G


@given(gn_cases(), st.integers(0, 2**16), st.sampled_from([np.float32, np.float64]))
def test_groupnorm_matches_torch(case, seed, dtype):
    shape, G = case
    assume(shape[1] // G * shape[2] * shape[3] > 1)   # torch refuses groups of 1 value
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape[1])[:, None, None] + rng.standard_normal(shape)).astype(dtype)
    gamma, beta = _params(rng, shape[1], dtype)
    dout = rng.standard_normal(shape).astype(dtype)
    out, cache = groupnorm_forward(x, gamma, beta, G, {"eps": 1e-3})
    ours = (out, groupnorm_backward(dout, cache))
    ref = _autograd(lambda t, g, b: F.group_norm(t, G, g, b, eps=1e-3), x, gamma, beta, dout)
    _check(ours, ref, dtype)


def test_one_value_per_group_gives_beta(rng):
    """Instance norm on 1x1 maps: x - mean = 0, the output is beta (torch raises instead)."""
    x = rng.standard_normal((3, 4, 1, 1))
    gamma, beta = _params(rng, 4)
    out, cache = groupnorm_forward(x, gamma, beta, 4)
    np.testing.assert_array_equal(out, np.broadcast_to(beta[None, :, None, None], x.shape))
    dx, _, _ = groupnorm_backward(np.ones_like(x), cache)
    np.testing.assert_array_equal(dx, 0)


def test_layernorm_is_groupnorm_with_one_group(rng):
    x = rng.standard_normal((2, 6, 3, 3))
    gamma, beta = _params(rng, 6)
    a, _ = layernorm_forward(x, gamma, beta)
    b, _ = groupnorm_forward(x, gamma, beta, 1)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("G", [1, 2, 6])
def test_groupnorm_numeric_gradients(G, rng):
    x = rng.standard_normal((2, 6, 2, 3))
    gamma, beta = _params(rng, 6)
    res = check_layer_gradients(groupnorm_forward, groupnorm_backward,
                                {"x": x, "gamma": gamma, "beta": beta}, params={"G": G, "gn_param": {}})
    # G = C (instance norm, 6 values per group): some dx entries are ~1e-7, where the relative
    # error of a centred difference is large; compare with an absolute floor instead
    for name in res:
        np.testing.assert_allclose(res.analytic[name], res.numeric[name], rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("shape", [(3, 5), (2, 3, 2, 2)])
def test_layernorm_numeric_gradients(shape, rng):
    x = rng.standard_normal(shape)
    gamma, beta = _params(rng, shape[1])
    check_layer_gradients(layernorm_forward, layernorm_backward, {"x": x, "gamma": gamma, "beta": beta},
                          params={"ln_param": {"mode": "train"}}).assert_below(1e-7)


def test_outputs_do_not_depend_on_batch_or_mode(rng):
    x = rng.standard_normal((5, 4, 3, 3))
    gamma, beta = _params(rng, 4)
    for fwd in (lambda a, m: layernorm_forward(a, gamma, beta, {"mode": m})[0],
                lambda a, m: groupnorm_forward(a, gamma, beta, 2, {"mode": m})[0]):
        full = fwd(x, "train")
        alone = np.concatenate([fwd(x[i:i + 1], "test") for i in range(5)])
        assert rel_error(full, alone) < 1e-12


def test_train_test_gap_demo():
    r = norm_train_test_gap(batch_sizes=(1, 2, 32), trials=10)
    assert r["batch_sizes"] == [1, 2, 32] and r["spatial"] == (1, 1)
    gap, std = r["train_test_gap"], r["train_output_std"]
    for k in ("layernorm", "groupnorm"):
        assert max(gap[k]) < 1e-12                       # identical in train and test
        assert min(std[k]) > 0.9                         # signal kept even at batch size 1
    bn = gap["batchnorm"]
    assert bn[0] > 0.5 and bn[0] > bn[1] > bn[2] and bn[2] < bn[0] / 3   # shrinks with the batch
    assert std["batchnorm"][0] == 0.0                    # batch 1, 1x1 maps: output is beta
    assert std["batchnorm"][2] > 0.9
    # with spatial extent, batch 1 is no longer degenerate but still differs from test mode
    r = norm_train_test_gap(batch_sizes=(1,), spatial=(3, 3), trials=5)
    assert r["train_output_std"]["batchnorm"][0] > 0.9 and r["train_test_gap"]["batchnorm"][0] > 0.05
    with pytest.raises(ValueError, match="divide"):
        norm_train_test_gap(channels=6, groups=4)


def test_bad_input(rng):
    x = rng.standard_normal((2, 4, 3, 3))
    g, b = np.ones(4), np.zeros(4)
    with pytest.raises(ValueError, match=r"gamma must be an array of shape \(C,\) = \(4,\)"):
        layernorm_forward(x, np.ones((4, 3, 3)), b)
    with pytest.raises(ValueError, match=r"beta .* \(D,\) = \(5,\)"):
        layernorm_forward(rng.standard_normal((2, 5)), np.ones(5), np.zeros(4))
    with pytest.raises(ValueError, match=r"\(N, D\) or \(N, C, H, W\)"):
        layernorm_forward(rng.standard_normal((2, 4, 3)), g, b)
    with pytest.raises(ValueError, match="G=3 must divide"):
        groupnorm_forward(x, g, b, 3)
    with pytest.raises(ValueError, match="G"):
        groupnorm_forward(x, g, b, 0)
    with pytest.raises(ValueError, match="eps"):
        groupnorm_forward(x, g, b, 2, {"eps": 0})
    with pytest.raises(ValueError, match="unknown"):
        layernorm_forward(x, g, b, {"momentum": 0.1})
    with pytest.raises(ValueError, match="floating"):
        groupnorm_forward(x.astype(int), g, b, 2)
    _, cache = groupnorm_forward(x, g, b, 2)
    with pytest.raises(ValueError, match="dout"):
        groupnorm_backward(x[:1], cache)


def test_train_test_gap_measures_the_normalizations_it_is_given():
    """``normalize=`` (the notebook passes the student's layers): PyTorch's functional layers as
    the measured normalizations reproduce the library's numbers; a wrong shape is refused."""
    def torch_normalize(name, x, training, running_mean, running_var, eps, groups):
        t = torch.from_numpy(x)
        if name == "batchnorm":
            rm, rv = torch.from_numpy(running_mean.copy()), torch.from_numpy(running_var.copy())
            return F.batch_norm(t, rm, rv, training=training, eps=eps).numpy()
        if name == "layernorm":
            return F.layer_norm(t, t.shape[1:], eps=eps).numpy()
        return F.group_norm(t, groups, eps=eps).numpy()

    ours = norm_train_test_gap(batch_sizes=(1, 2, 8), trials=4, spatial=(2, 2))
    theirs = norm_train_test_gap(batch_sizes=(1, 2, 8), trials=4, spatial=(2, 2), normalize=torch_normalize)
    for key in ("train_test_gap", "train_output_std"):
        for name in ("batchnorm", "layernorm", "groupnorm"):
            assert np.allclose(ours[key][name], theirs[key][name], rtol=1e-6, atol=1e-9), (key, name)
    with pytest.raises(ValueError, match=r"normalize\('batchnorm'.*returned shape"):
        norm_train_test_gap(batch_sizes=(2,), trials=1, normalize=lambda name, x, *a: x[0])
    with pytest.raises(TypeError, match="normalize must be"):
        norm_train_test_gap(batch_sizes=(2,), trials=1, normalize="batchnorm")
