"""cnnlab.optim update rules against torch.optim on a convex quadratic."""
import numpy as np
import pytest
import torch

from cnnlab import optim


def _quadratic(seed=0, d=5):
    """f(w) = 0.5 w^T A w - b^T w with A symmetric positive definite; grad = A w - b."""
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((d, d))
    A = M @ M.T + d * np.eye(d)
    b = rng.standard_normal(d)
    w0 = rng.standard_normal(d)
    return A, b, w0


def _numpy_trajectory(rule, config, A, b, w0, steps):
    w, traj = w0.copy(), []
    for _ in range(steps):
        w, config = rule(w, A @ w - b, config)
        traj.append(w.copy())
    return np.array(traj), config


def _torch_trajectory(make_opt, A, b, w0, steps):
    w = torch.tensor(w0, dtype=torch.float64, requires_grad=True)
    At, bt = torch.tensor(A), torch.tensor(b)
    opt = make_opt([w])
    traj = []
    for _ in range(steps):
        opt.zero_grad()
        loss = 0.5 * w @ At @ w - bt @ w
        loss.backward()
        opt.step()
        traj.append(w.detach().numpy().copy())
    return np.array(traj)


@pytest.mark.parametrize("lr", [1e-2, 5e-2])
def test_sgd_matches_torch(lr):
    A, b, w0 = _quadratic()
    ours, _ = _numpy_trajectory(optim.sgd, {"learning_rate": lr}, A, b, w0, 30)
    ref = _torch_trajectory(lambda p: torch.optim.SGD(p, lr=lr), A, b, w0, 30)
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mu", [0.5, 0.9])
def test_sgd_momentum_matches_torch(mu):
    # CS231n: v = mu*v - lr*dw, w += v.  torch: buf = mu*buf + dw, w -= lr*buf.
    # With a constant lr, v == -lr*buf at every step, so the trajectories coincide.
    A, b, w0 = _quadratic(1)
    ours, config = _numpy_trajectory(optim.sgd_momentum, {"learning_rate": 1e-2, "momentum": mu},
                                     A, b, w0, 40)
    ref = _torch_trajectory(lambda p: torch.optim.SGD(p, lr=1e-2, momentum=mu), A, b, w0, 40)
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-12)
    assert config["velocity"].shape == w0.shape


def test_sgd_momentum_differs_from_plain_sgd():
    A, b, w0 = _quadratic(2)
    mom, _ = _numpy_trajectory(optim.sgd_momentum, {"momentum": 0.9}, A, b, w0, 5)
    plain, _ = _numpy_trajectory(optim.sgd, None, A, b, w0, 5)
    np.testing.assert_allclose(mom[0], plain[0])  # first step: v = -lr*dw
    assert not np.allclose(mom[-1], plain[-1])


def test_rmsprop_matches_torch():
    A, b, w0 = _quadratic(3)
    ours, config = _numpy_trajectory(optim.rmsprop, {"learning_rate": 1e-2}, A, b, w0, 50)
    ref = _torch_trajectory(lambda p: torch.optim.RMSprop(p, lr=1e-2, alpha=0.99, eps=1e-8), A, b, w0, 50)
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-12)
    assert config["decay_rate"] == 0.99 and config["epsilon"] == 1e-8


@pytest.mark.parametrize("betas", [(0.9, 0.999), (0.5, 0.9)])
def test_adam_matches_torch_with_bias_correction(betas):
    A, b, w0 = _quadratic(4)
    ours, config = _numpy_trajectory(optim.adam, {"learning_rate": 1e-2, "beta1": betas[0],
                                                  "beta2": betas[1]}, A, b, w0, 50)
    ref = _torch_trajectory(lambda p: torch.optim.Adam(p, lr=1e-2, betas=betas, eps=1e-8), A, b, w0, 50)
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-12)
    assert config["t"] == 50


def test_adam_first_step_is_lr_times_sign():
    # With bias correction the first step is lr * g / (|g| + eps) ~ lr * sign(g), for any beta.
    w = np.array([1.0, -2.0, 3.0])
    dw = np.array([0.3, -50.0, 1e-3])
    next_w, _ = optim.adam(w, dw, {"learning_rate": 0.1})
    np.testing.assert_allclose(next_w, w - 0.1 * np.sign(dw), rtol=0, atol=1e-5)


def test_defaults_are_cs231n():
    w, dw = np.zeros(3), np.ones(3)
    assert optim.sgd(w, dw)[1]["learning_rate"] == 1e-2
    c = optim.sgd_momentum(w, dw)[1]
    assert (c["learning_rate"], c["momentum"]) == (1e-2, 0.9)
    c = optim.rmsprop(w, dw)[1]
    assert (c["learning_rate"], c["decay_rate"], c["epsilon"]) == (1e-2, 0.99, 1e-8)
    c = optim.adam(w, dw)[1]
    assert (c["learning_rate"], c["beta1"], c["beta2"], c["epsilon"], c["t"]) == (1e-3, 0.9, 0.999, 1e-8, 1)


@pytest.mark.parametrize("rule", list(optim.UPDATE_RULES.values()))
def test_dtype_and_shape_kept_input_not_modified(rule):
    w = np.ones((2, 3), dtype=np.float32)
    dw = np.full((2, 3), 0.5, dtype=np.float32)
    next_w, _ = rule(w, dw, None)
    assert next_w.dtype == np.float32 and next_w.shape == (2, 3)
    assert np.all(w == 1) and np.all(next_w < 1)


@pytest.mark.parametrize("rule", list(optim.UPDATE_RULES.values()))
def test_shape_mismatch_raises(rule):
    with pytest.raises(ValueError, match="shape"):
        rule(np.zeros(3), np.zeros(4), None)


def test_bad_hyperparameters_raise():
    with pytest.raises(ValueError, match="momentum"):
        optim.sgd_momentum(np.zeros(2), np.zeros(2), {"momentum": 1.5})
    with pytest.raises(ValueError, match="learning_rate"):
        optim.sgd(np.zeros(2), np.zeros(2), {"learning_rate": -1.0})
    with pytest.raises(ValueError, match="beta1"):
        optim.adam(np.zeros(2), np.zeros(2), {"beta1": 1.0})
