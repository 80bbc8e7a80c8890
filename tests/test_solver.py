"""cnnlab.solver.Solver on a tiny numpy softmax-regression model (independent of cnnlab.layers)."""
import numpy as np
import pytest

from cnnlab.solver import Solver, load_checkpoint


class SoftmaxRegression:
    """scores = X.reshape(N, -1) @ W + b; mean cross-entropy; gradients written out by hand."""

    def __init__(self, dim, num_classes, seed=0):
        rng = np.random.default_rng(seed)
        self.params = {"W": 1e-2 * rng.standard_normal((dim, num_classes)), "b": np.zeros(num_classes)}

    def loss(self, X, y=None):
        X = X.reshape(len(X), -1)
        scores = X @ self.params["W"] + self.params["b"]
        if y is None:
            return scores
        z = scores - scores.max(axis=1, keepdims=True)
        p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        loss = -np.log(p[np.arange(len(y)), y]).mean()
        d = p.copy()
        d[np.arange(len(y)), y] -= 1
        d /= len(y)
        return loss, {"W": X.T @ d, "b": d.sum(axis=0)}


def _data(seed=0, n_train=120, n_val=60, dim=6, classes=3):
    rng = np.random.default_rng(seed)
    centers = 3 * rng.standard_normal((classes, dim))
    def split(n):
        y = rng.integers(0, classes, n)
        return centers[y] + rng.standard_normal((n, dim)), y
    X_train, y_train = split(n_train)
    X_val, y_val = split(n_val)
    return {"X_train": X_train, "y_train": y_train, "X_val": X_val, "y_val": y_val}


def _solver(seed=0, model_seed=0, **kw):
    data = _data()
    opts = dict(update_rule="sgd_momentum", optim_config={"learning_rate": 0.05}, batch_size=20,
                num_epochs=3, verbose=False, seed=seed, num_train_samples=50)
    opts.update(kw)
    return Solver(SoftmaxRegression(6, 3, model_seed), data, **opts)


def test_history_lengths_and_learning():
    s = _solver().train()
    iters = 3 * (120 // 20)
    assert s.iterations_per_epoch == 6
    assert len(s.loss_history) == iters
    assert len(s.train_acc_history) == len(s.val_acc_history) == 3 + 1  # first iteration + each epoch
    assert s.epoch == 3
    assert np.mean(s.loss_history[-6:]) < np.mean(s.loss_history[:3])  # the loss went down
    assert s.best_val_acc > 0.9  # well separated clusters
    assert s.best_val_acc == max(s.val_acc_history)


def test_best_params_restored_and_accuracy_reproducible():
    s = _solver(num_epochs=4).train()
    for k in s.model.params:
        np.testing.assert_array_equal(s.model.params[k], s.best_params[k])
    # Full validation set (num_val_samples=None): recomputing gives best_val_acc exactly.
    assert s.check_accuracy(s.X_val, s.y_val) == s.best_val_acc
    # check_accuracy is an independent count of argmax hits
    preds = np.argmax(s.model.loss(s.X_val), axis=1)
    assert s.best_val_acc == np.mean(preds == s.y_val)


def test_lr_decay_applied_per_epoch():
    s = _solver(lr_decay=0.5).train()
    for config in s.optim_configs.values():
        assert config["learning_rate"] == pytest.approx(0.05 * 0.5 ** 3)
    assert set(s.optim_configs) == {"W", "b"}
    assert s.optim_configs["W"]["velocity"] is not s.optim_configs["b"].get("velocity")


def test_deterministic_with_seed_and_no_global_state():
    np.random.seed(123)
    state = np.random.get_state()[1].copy()
    a, b = _solver(seed=7).train(), _solver(seed=7).train()
    assert np.array_equal(np.random.get_state()[1], state)  # global numpy RNG untouched
    assert a.loss_history == b.loss_history
    assert a.val_acc_history == b.val_acc_history
    np.testing.assert_array_equal(a.model.params["W"], b.model.params["W"])
    c = _solver(seed=8).train()
    assert c.loss_history != a.loss_history  # a different seed samples other minibatches


def test_checkpoint_round_trip_resumes_exactly(tmp_path):
    name = str(tmp_path / "run")
    full = _solver(update_rule="adam", optim_config={"learning_rate": 1e-2},
                   checkpoint_name=name, num_epochs=3).train()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["run_epoch_1.pkl", "run_epoch_2.pkl", "run_epoch_3.pkl"]
    ckpt = load_checkpoint(f"{name}_epoch_1.pkl")
    assert ckpt["epoch"] == 1 and len(ckpt["loss_history"]) == 6
    assert ckpt["optim_configs"]["W"]["t"] == 6  # Adam state saved too
    resumed = Solver.from_checkpoint(f"{name}_epoch_1.pkl", _data(), verbose=False)
    assert resumed.epoch == 1 and resumed.num_epochs == 3
    resumed.train()
    assert resumed.loss_history == full.loss_history
    assert resumed.train_acc_history == full.train_acc_history
    assert resumed.val_acc_history == full.val_acc_history
    for k in full.model.params:
        np.testing.assert_array_equal(resumed.model.params[k], full.model.params[k])


def test_from_checkpoint_can_train_longer(tmp_path):
    name = str(tmp_path / "r")
    _solver(checkpoint_name=name, num_epochs=2).train()
    more = Solver.from_checkpoint(f"{name}_epoch_2.pkl", _data(), num_epochs=4, verbose=False).train()
    assert more.epoch == 4 and len(more.loss_history) == 4 * 6 and len(more.val_acc_history) == 2 + 1 + 2


def test_verbose_prints(capsys):
    _solver(num_epochs=1, verbose=True, print_every=2).train()
    out = capsys.readouterr().out
    assert "(Iteration 1 / 6) loss:" in out and "(Epoch 1 / 1) train acc:" in out


def test_callable_update_rule():
    calls = []
    def halve(w, dw, config):
        calls.append(1)
        return w - 0.1 * dw, config
    _solver(update_rule=halve, num_epochs=1).train()
    assert len(calls) == 6 * 2  # 6 iterations x 2 parameters


def test_bad_arguments():
    data = _data()
    model = SoftmaxRegression(6, 3)
    with pytest.raises(ValueError, match="update_rule"):
        Solver(model, data, update_rule="adagrad")
    with pytest.raises(ValueError, match="batch_size"):
        Solver(model, data, batch_size=0)
    with pytest.raises(ValueError, match="missing"):
        Solver(model, {"X_train": data["X_train"]})
    bad = dict(data, y_val=data["y_val"][:-1])
    with pytest.raises(ValueError, match="y_val"):
        Solver(model, bad)
    with pytest.raises(ValueError, match="params"):
        Solver(object(), data)
