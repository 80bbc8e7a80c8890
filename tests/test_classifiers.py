"""cnnlab.classifiers: ThreeLayerConvNet and ConvNet.

Oracles: torch autograd on the same parameters (loss and every gradient), numerical gradients
(cnnlab.gradcheck), log(num_classes) for the initial loss, and memorising 50 digits.
"""
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnlab.classifiers import ConvNet, ThreeLayerConvNet
from cnnlab.gradcheck import eval_numerical_gradient, rel_error
from cnnlab.solver import Solver


@pytest.fixture(autouse=True, scope="module")
def _single_threaded_blas():
    """These matrices are tiny: multi-threaded BLAS on a shared 2-core machine makes them ~30x
    slower (threads spinning for cores), so this module runs BLAS on one thread."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _torch_loss(model, X, y):
    """The same network written with torch.nn.functional; returns (scores, loss, grads)."""
    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in model.params.items()}
    out = torch.tensor(X, dtype=torch.float64)
    if isinstance(model, ThreeLayerConvNet):
        out = F.max_pool2d(F.relu(F.conv2d(out, t["W1"], t["b1"], padding=model.conv_param["pad"])), 2, 2)
        out = F.relu(out.flatten(1) @ t["W2"] + t["b2"])
        scores = out @ t["W3"] + t["b3"]
        Ws = ["W1", "W2", "W3"]
    else:
        for i in range(1, model.num_conv + 1):
            out = F.conv2d(out, t[f"W{i}"], t[f"b{i}"], padding=model.conv_params[i - 1]["pad"])
            if model.use_bn:
                out = F.batch_norm(out, None, None, t[f"gamma{i}"], t[f"beta{i}"], training=True, eps=1e-5)
            out = F.relu(out)
            if model.pools[i - 1]:
                out = F.max_pool2d(out, 2, 2)
        out = out.flatten(1)
        for i in range(model.num_conv + 1, model.num_layers):
            out = out @ t[f"W{i}"] + t[f"b{i}"]
            if model.use_bn:
                out = F.batch_norm(out, None, None, t[f"gamma{i}"], t[f"beta{i}"], training=True, eps=1e-5)
            out = F.relu(out)
        L = model.num_layers
        scores = out @ t[f"W{L}"] + t[f"b{L}"]
        Ws = [f"W{i}" for i in range(1, L + 1)]
    loss = F.cross_entropy(scores, torch.tensor(y)) + 0.5 * model.reg * sum((t[w] ** 2).sum() for w in Ws)
    loss.backward()
    return scores.detach().numpy(), loss.item(), {k: v.grad.numpy() for k, v in t.items()}


def _small_batch(rng, N=3, shape=(3, 8, 8), classes=5):
    return rng.standard_normal((N,) + shape), rng.integers(0, classes, N)


def _tiny_three_layer(reg=0.0, seed=0):
    return ThreeLayerConvNet(input_dim=(3, 8, 8), num_filters=3, filter_size=3, hidden_dim=7,
                             num_classes=5, weight_scale=1e-1, reg=reg, dtype=np.float64, seed=seed)


def _tiny_convnet(normalization=None, reg=0.0, seed=0):
    return ConvNet(input_dim=(3, 8, 8), num_filters=[3, 4], filter_size=[3, 3], pool=[True, False],
                   hidden_dims=[6], num_classes=5, normalization=normalization, reg=reg,
                   dtype=np.float64, seed=seed)


# --------------------------------------------------------------------- ThreeLayerConvNet
def test_three_layer_shapes_and_init():
    m = ThreeLayerConvNet(seed=0)
    shapes = {k: v.shape for k, v in m.params.items()}
    assert shapes == {"W1": (32, 3, 7, 7), "b1": (32,), "W2": (32 * 16 * 16, 100), "b2": (100,),
                      "W3": (100, 10), "b3": (10,)}
    assert all(v.dtype == np.float32 for v in m.params.values())
    assert abs(m.params["W2"].std() - 1e-3) < 1e-4 and not m.params["b2"].any()
    odd = ThreeLayerConvNet(input_dim=(1, 9, 7), num_filters=2, filter_size=3, hidden_dim=4)
    assert odd.params["W2"].shape == (2 * 4 * 3, 4)  # floor(9/2) x floor(7/2)
    np.testing.assert_array_equal(ThreeLayerConvNet(seed=3).params["W1"], ThreeLayerConvNet(seed=3).params["W1"])


@pytest.mark.parametrize("reg", [0.0, 0.7])
def test_three_layer_matches_torch(rng, reg):
    m = _tiny_three_layer(reg)
    X, y = _small_batch(rng)
    scores_ref, loss_ref, grads_ref = _torch_loss(m, X, y)
    np.testing.assert_allclose(m.loss(X), scores_ref, rtol=1e-10, atol=1e-12)
    loss, grads = m.loss(X, y)
    assert loss == pytest.approx(loss_ref, rel=1e-10)
    assert set(grads) == set(m.params)
    for k in m.params:
        assert rel_error(grads[k], grads_ref[k]) < 1e-8, k


@pytest.mark.parametrize("reg", [0.0, 0.5])
def test_three_layer_numerical_gradient(rng, reg):
    m = _tiny_three_layer(reg, seed=1)
    X, y = _small_batch(rng, N=2)
    loss, grads = m.loss(X, y)
    for name in ("W1", "b1", "W3", "b3", "b2"):  # W2 (336 entries) is covered by the torch test
        num = eval_numerical_gradient(lambda _: m.loss(X, y)[0], m.params[name], h=1e-6)
        assert rel_error(num, grads[name]) < 1e-6, name


def test_three_layer_initial_loss_and_reg(rng):
    m = ThreeLayerConvNet(input_dim=(3, 16, 16), num_filters=4, hidden_dim=20, dtype=np.float64, seed=0)
    X, y = rng.standard_normal((10, 3, 16, 16)), rng.integers(0, 10, 10)
    loss0, _ = m.loss(X, y)
    assert loss0 == pytest.approx(np.log(10), abs=1e-3)
    m.reg = 0.3
    loss_reg, _ = m.loss(X, y)
    expected = 0.5 * 0.3 * sum(np.sum(m.params[w] ** 2) for w in ("W1", "W2", "W3"))
    assert loss_reg - loss0 == pytest.approx(expected, rel=1e-6)


def test_three_layer_bad_input():
    with pytest.raises(ValueError, match="filter_size"):
        ThreeLayerConvNet(filter_size=4)
    with pytest.raises(ValueError, match="input_dim"):
        ThreeLayerConvNet(input_dim=(32, 32))
    with pytest.raises(ValueError, match="X must"):
        ThreeLayerConvNet(input_dim=(1, 8, 8)).loss(np.zeros((2, 3, 8, 8)))


def _noise_images(n=50, shape=(3, 16, 16), classes=10, seed=0):
    """n Gaussian-noise images with random labels: nothing to learn, only to memorise."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n,) + shape).astype(np.float32), rng.integers(0, classes, n)


def _template_images(n, shape=(1, 8, 8), classes=10, seed=0):
    """Learnable data: one random template per class plus noise (half the template's scale)."""
    rng = np.random.default_rng(seed)
    templates = rng.standard_normal((classes,) + shape)
    y = rng.integers(0, classes, n)
    return (templates[y] + 0.5 * rng.standard_normal((n,) + shape)).astype(np.float32), y


def test_three_layer_overfits_50_images():
    X, y = _noise_images(50)
    data = {"X_train": X, "y_train": y, "X_val": X[:10], "y_val": y[:10]}
    model = ThreeLayerConvNet(input_dim=(3, 16, 16), num_filters=16, filter_size=5, hidden_dim=100,
                              weight_scale=5e-2, seed=0)
    solver = Solver(model, data, update_rule="adam", optim_config={"learning_rate": 2e-3},
                    batch_size=10, num_epochs=15, num_train_samples=None, verbose=False, seed=0)
    start = time.perf_counter()
    solver.train()
    seconds = time.perf_counter() - start
    assert solver.train_acc_history[-1] == 1.0  # 50 random labels memorised
    first_perfect = solver.train_acc_history.index(1.0)
    print(f"overfit 50 images: 100% train accuracy first at epoch {first_perfect}, "
          f"{solver.epoch} epochs in {seconds:.2f} s")
    assert solver.loss_history[-1] < 0.1 * solver.loss_history[0]


# --------------------------------------------------------------------- ConvNet
def test_convnet_shapes():
    m = ConvNet(input_dim=(3, 16, 16), num_filters=[4, 8], filter_size=[5, 3], pool=True,
                hidden_dims=[20, 10], num_classes=7, normalization="batchnorm", seed=0)
    shapes = {k: v.shape for k, v in m.params.items()}
    assert shapes == {
        "W1": (4, 3, 5, 5), "b1": (4,), "W2": (8, 4, 3, 3), "b2": (8,),
        "W3": (8 * 4 * 4, 20), "b3": (20,), "W4": (20, 10), "b4": (10,), "W5": (10, 7), "b5": (7,),
        "gamma1": (4,), "beta1": (4,), "gamma2": (8,), "beta2": (8,),
        "gamma3": (20,), "beta3": (20,), "gamma4": (10,), "beta4": (10,)}
    # Kaiming init by default: std sqrt(2 / fan_in)
    assert m.params["W3"].std() == pytest.approx(np.sqrt(2 / 128), rel=0.1)
    assert len(m.bn_params) == 4


@pytest.mark.parametrize("normalization", [None, "batchnorm"])
@pytest.mark.parametrize("reg", [0.0, 0.3])
def test_convnet_matches_torch(rng, normalization, reg):
    m = _tiny_convnet(normalization, reg)
    X, y = _small_batch(rng, N=4)
    _, loss_ref, grads_ref = _torch_loss(m, X, y)
    loss, grads = m.loss(X, y)
    assert loss == pytest.approx(loss_ref, rel=1e-10)
    assert set(grads) == set(m.params)
    for k in m.params:
        assert rel_error(grads[k], grads_ref[k]) < 1e-7, k


@pytest.mark.parametrize("normalization", [None, "batchnorm"])
def test_convnet_other_configs_match_torch(rng, normalization):
    # no pooling, no hidden affine layer, three conv layers of different sizes
    m = ConvNet(input_dim=(2, 6, 5), num_filters=[3, 2, 4], filter_size=[5, 1, 3], pool=False,
                hidden_dims=[], num_classes=3, normalization=normalization, reg=0.2,
                dtype=np.float64, seed=4)
    assert m.params["W4"].shape == (4 * 6 * 5, 3)
    X, y = rng.standard_normal((3, 2, 6, 5)), np.array([0, 2, 1])
    _, loss_ref, grads_ref = _torch_loss(m, X, y)
    loss, grads = m.loss(X, y)
    assert loss == pytest.approx(loss_ref, rel=1e-10)
    for k in m.params:
        assert rel_error(grads[k], grads_ref[k]) < 1e-7, k


@pytest.mark.parametrize("model_cls", [ThreeLayerConvNet, ConvNet])
def test_float32_parameters_and_gradients(rng, model_cls):
    m = model_cls(input_dim=(3, 8, 8), num_classes=4, seed=0)
    X, y = rng.standard_normal((2, 3, 8, 8)), np.array([1, 3])  # float64 input is cast
    assert m.loss(X).dtype == np.float32
    _, grads = m.loss(X, y)
    assert all(grads[k].dtype == np.float32 and grads[k].shape == v.shape for k, v in m.params.items())


@pytest.mark.parametrize("normalization", [None, "batchnorm"])
def test_convnet_numerical_gradient(rng, normalization):
    m = _tiny_convnet(normalization, reg=0.1, seed=2)
    X, y = _small_batch(rng, N=4)
    _, grads = m.loss(X, y)
    # the big W3 (384 entries) is left to the torch comparison above
    names = ["W1", "W4", "b4"] + (["gamma1", "beta2", "gamma3"] if normalization else ["b2", "b3"])
    for name in names:
        num = eval_numerical_gradient(lambda _: m.loss(X, y)[0], m.params[name], h=1e-6)
        assert rel_error(num, grads[name]) < 1e-6, name
    if normalization:
        # a bias followed by batchnorm is cancelled by the mean subtraction: zero gradient
        num = eval_numerical_gradient(lambda _: m.loss(X, y)[0], m.params["b2"], h=1e-6)
        assert np.abs(num).max() < 1e-8 and np.abs(grads["b2"]).max() < 1e-12


@pytest.mark.parametrize("normalization", [None, "batchnorm"])
def test_convnet_initial_loss(rng, normalization):
    m = ConvNet(input_dim=(3, 8, 8), num_filters=[4], hidden_dims=[10], normalization=normalization,
                weight_scale=1e-3, dtype=np.float64, seed=0)
    X, y = rng.standard_normal((20, 3, 8, 8)), rng.integers(0, 10, 20)
    assert m.loss(X, y)[0] == pytest.approx(np.log(10), abs=1e-3)


def test_convnet_batchnorm_train_and_test_modes(rng):
    m = _tiny_convnet("batchnorm")
    X, y = _small_batch(rng, N=6)
    before = m.loss(X)  # test mode: running stats (mean 0, var 1) -> independent per sample
    np.testing.assert_allclose(m.loss(X[:2]), before[:2], rtol=1e-12)
    assert "running_mean" not in m.bn_params[0] or not m.bn_params[0]["running_mean"].any()
    m.loss(X, y)  # train mode updates the running averages
    assert m.bn_params[0]["running_mean"].shape == (3,) and m.bn_params[0]["running_mean"].any()
    after = m.loss(X)
    assert not np.allclose(before, after)
    np.testing.assert_allclose(m.loss(X[:2]), after[:2], rtol=1e-12)
    # train mode on one sample vs the batch differs (batch statistics)
    assert not np.allclose(m.loss(X[:2], mode="train"), after[:2])
    assert all(p["mode"] == "train" for p in m.bn_params)


def test_convnet_bad_input():
    with pytest.raises(ValueError, match="normalization"):
        ConvNet(normalization="layernorm")
    with pytest.raises(ValueError, match="pool"):
        ConvNet(num_filters=[4, 8], pool=[True])
    with pytest.raises(ValueError, match="filter_size"):
        ConvNet(filter_size=2)
    with pytest.raises(ValueError, match="num_filters"):
        ConvNet(num_filters=[])
    with pytest.raises(ValueError, match="mode"):
        _tiny_convnet().loss(np.zeros((1, 3, 8, 8)), mode="eval")
    with pytest.raises(ValueError, match="window does not fit"):
        ConvNet(input_dim=(1, 4, 4), num_filters=[2, 2, 2], pool=True)


def test_convnet_trains_with_solver():
    X, y = _template_images(120)
    data = {"X_train": X[:80], "y_train": y[:80], "X_val": X[80:], "y_val": y[80:]}
    for normalization in (None, "batchnorm"):
        model = ConvNet(input_dim=(1, 8, 8), num_filters=[8], hidden_dims=[32],
                        normalization=normalization, seed=0)
        solver = Solver(model, data, update_rule="adam", optim_config={"learning_rate": 5e-3},
                        batch_size=20, num_epochs=8, verbose=False, seed=0).train()
        assert solver.train_acc_history[-1] > 0.9, normalization
        assert solver.best_val_acc > 0.8, normalization  # generalises to held-out samples
