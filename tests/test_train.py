"""cnnlab.train: metrics, seeding, the training loop, checkpoints/resume, the scale knob."""
import random
import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from cnnlab import data as D
from cnnlab import train as T

# Its module/session fixtures are built once: the whole file runs on one xdist worker.
pytestmark = pytest.mark.xdist_group("train_digits")


def tiny_net(num_classes=10, dropout=0.0, bn=True):
    layers = [nn.Conv2d(1, 8, 3, padding=1)]
    if bn:
        layers.append(nn.BatchNorm2d(8))
    layers += [nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(dropout), nn.Linear(8 * 4 * 4, num_classes)]
    return nn.Sequential(*layers)




@pytest.fixture(scope="module")
def digits():
    """8x8 digits, a 600-image training subset to keep the tests fast."""
    data = D.get_digits_data(8, seed=0)
    data["X_train"], data["y_train"] = data["X_train"][:600], data["y_train"][:600]
    return data


# ----------------------------------------------------------------------------- metrics
@given(st.integers(1, 30), st.integers(5, 12), st.integers(0, 1000))
def test_accuracy_matches_numpy_oracle(n, num_classes, seed):
    g = np.random.default_rng(seed)
    scores = g.normal(size=(n, num_classes))
    target = g.integers(0, num_classes, size=n)
    top1, top3, top5 = T.accuracy(torch.from_numpy(scores), torch.from_numpy(target), topk=(1, 3, 5))
    order = np.argsort(-scores, axis=1)  # oracle: rank of the true class
    rank = np.array([np.flatnonzero(order[i] == target[i])[0] for i in range(n)])
    assert top1 == pytest.approx((rank < 1).mean())
    assert top3 == pytest.approx((rank < 3).mean())
    assert top5 == pytest.approx((rank < 5).mean())
    assert T.accuracy(torch.from_numpy(scores), torch.from_numpy(target), topk=1) == pytest.approx(top1)


def test_accuracy_hand_example_and_errors():
    out = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.6, 0.1, 0.3]])
    y = torch.tensor([1, 1, 0, 2])
    assert T.accuracy(out, y, topk=(1, 2, 3)) == (0.25, 0.75, 1.0)
    with pytest.raises(ValueError, match="topk"):
        T.accuracy(out, y, topk=(5,))
    with pytest.raises(ValueError, match="target"):
        T.accuracy(out, y[:3])


# ----------------------------------------------------------------------------- seeding
def test_seed_everything_and_rng_state_roundtrip():
    T.seed_everything(123)
    a = (random.random(), np.random.rand(), torch.rand(3))
    T.seed_everything(123)
    b = (random.random(), np.random.rand(), torch.rand(3))
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])
    state = T.get_rng_state()
    first = (random.random(), np.random.normal(), torch.randn(2))
    T.seed_everything(999)
    T.set_rng_state(state)
    second = (random.random(), np.random.normal(), torch.randn(2))
    assert first[0] == second[0] and first[1] == second[1] and torch.equal(first[2], second[2])


# ----------------------------------------------------------------------------- training
def test_fit_learns_digits(digits):
    T.seed_everything(0)
    loaders = D.make_loaders(digits, batch_size=32, seed=0)
    model = tiny_net()
    before = T.evaluate(model, loaders["val"])
    hist = T.fit(model, loaders["train"], loaders["val"], epochs=3, optimizer="sgd", lr=0.05, device="cpu",
                 progress=False)
    assert set(hist) >= {"epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "val_top5", "time"}
    assert hist["epoch"] == [1, 2, 3]
    assert hist["train_loss"][-1] < 0.5 * hist["train_loss"][0] or hist["train_loss"][-1] < 0.3
    assert hist["val_loss"][-1] < before["loss"]
    assert hist["val_acc"][-1] > 0.8  # chance is 0.1
    assert hist["val_top5"][-1] >= hist["val_acc"][-1]


def test_evaluate_matches_direct_computation(digits):
    T.seed_everything(1)
    model = tiny_net(dropout=0.5)
    model.train()
    loader = D.make_loaders(digits, batch_size=16)["val"]
    res = T.evaluate(model, loader, topk=(1, 5))
    assert model.training  # mode restored
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(digits["X_val"]))
    y = torch.from_numpy(digits["y_val"])
    assert res["n"] == len(y)
    assert res["loss"] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-5)
    assert res["acc"] == pytest.approx((logits.argmax(1) == y).float().mean().item())
    assert res["top5"] == pytest.approx(T.accuracy(logits, y, topk=5))


def _run(digits, epochs, path=None, resume=None, init_seed=0, stop_after=None):
    """Shuffling, augmentation (random crop), dropout, momentum and a cosine schedule: every
    source of randomness and state that a resume has to restore."""
    T.seed_everything(init_seed)
    model = tiny_net(dropout=0.3)
    loaders = D.make_loaders(digits, batch_size=50, augment=True, flip=False, padding=1, seed=0)
    trainer = T.Trainer(model, optimizer="sgd", lr=0.05, momentum=0.9, scheduler="cosine", device="cpu",
                        progress=False)
    stop = None if stop_after is None else (lambda tr, row: tr.epoch == stop_after)
    hist = trainer.fit(loaders["train"], loaders["val"], epochs, checkpoint=path, resume=resume, callback=stop)
    return model, hist


def test_resume_equals_uninterrupted(digits, tmp_path):
    ckpt = tmp_path / "run.pt"
    full_model, full_hist = _run(digits, 4)
    _, part_hist = _run(digits, 4, path=ckpt, stop_after=2)  # interrupted after epoch 2
    assert part_hist["epoch"] == [1, 2]
    # A fresh process would build a new model (other init) and loaders: the checkpoint restores all.
    resumed_model, resumed_hist = _run(digits, 4, path=ckpt, resume=ckpt, init_seed=7)
    for (name, a), (_, b) in zip(full_model.state_dict().items(), resumed_model.state_dict().items()):
        assert torch.equal(a, b), name
    for key in full_hist:
        if key != "time":
            assert full_hist[key] == resumed_hist[key], key
    assert len(resumed_hist["epoch"]) == 4 and full_hist["lr"][0] > full_hist["lr"][-1]
    # Sanity: the interrupted run alone differs (the test can fail).
    half_model, _ = _run(digits, 4, stop_after=2)
    assert not torch.equal(half_model[0].weight, full_model[0].weight)
    state = torch.load(ckpt, weights_only=True)  # safe loading works
    assert state["epoch"] == 4 and state["format"] == T.CHECKPOINT_FORMAT


def test_load_checkpoint_errors(tmp_path):
    trainer = T.Trainer(tiny_net(), device="cpu", progress=False)
    with pytest.raises(FileNotFoundError):
        trainer.load_checkpoint(tmp_path / "nope.pt")
    torch.save({"format": "other"}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="not a CNN Lab checkpoint"):
        trainer.load_checkpoint(tmp_path / "x.pt")


def test_trainer_options(digits):
    with pytest.raises(ValueError, match="optimizer"):
        T.Trainer(tiny_net(), optimizer="rmsprop-ish", device="cpu")
    bad = T.Trainer(tiny_net(), scheduler="linear-warmup", device="cpu", progress=False)
    loaders = D.make_loaders(digits, batch_size=100, seed=0)
    with pytest.raises(ValueError, match="scheduler"):
        bad.fit(loaders["train"], None, 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t = T.Trainer(tiny_net(), amp=True, device="cpu")
    assert not t.amp and any("amp=True needs a CUDA device" in str(w.message) for w in caught)
    step = T.Trainer(tiny_net(), lr=0.1, scheduler="step", device="cpu", progress=False)
    hist = step.fit(loaders["train"], None, 3)
    assert hist["lr"] == pytest.approx([0.1, 0.01, 0.001])
    assert "val_loss" not in hist
    frozen = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        T.Trainer(frozen, device="cpu")


def test_channels_last_same_result(digits):
    loaders = D.make_loaders(digits, batch_size=100, seed=0)
    results = []
    for cl in (False, True):
        T.seed_everything(0)
        model = tiny_net()
        hist = T.fit(model, loaders["train"], loaders["val"], 1, lr=0.05, device="cpu", channels_last=cl,
                     progress=False)
        results.append(hist)
    # NHWC kernels sum in another order: equal up to float rounding, not bit-identical.
    assert results[0]["train_loss"][0] == pytest.approx(results[1]["train_loss"][0], rel=5e-3)
    assert results[0]["val_loss"][0] == pytest.approx(results[1]["val_loss"][0], rel=5e-3)


def test_progress_switch(monkeypatch):
    monkeypatch.delenv("CNNLAB_PROGRESS", raising=False)
    assert T.progress_enabled(True) and not T.progress_enabled(False)
    monkeypatch.setenv("CI", "true")
    assert not T.progress_enabled()
    monkeypatch.setenv("CNNLAB_PROGRESS", "1")
    assert T.progress_enabled()
    monkeypatch.setenv("CNNLAB_PROGRESS", "0")
    assert not T.progress_enabled()


def test_progress_bars_run(digits, capsys):
    loaders = D.make_loaders(digits, batch_size=300, seed=0)
    T.fit(tiny_net(), loaders["train"], None, 1, device="cpu", progress=True, verbose=True)
    out = capsys.readouterr()
    assert "epoch=1" in out.out and "epochs" in out.err


def test_scale_knob(monkeypatch):
    monkeypatch.setenv("CNNLAB_SCALE", "1")
    assert T.epochs_for(5) == 5 and T.size_for(100, available=60) == 60
    monkeypatch.setenv("CNNLAB_SCALE", "0.1")
    assert T.epochs_for(5) == 1 and T.size_for(100) == 10
    monkeypatch.setenv("CNNLAB_SCALE", "10")
    assert T.epochs_for(5) == 50 and T.epochs_for(5, maximum=20) == 20


def test_small_cnn_shapes():
    for bn in (True, False):
        net = T.small_cnn(3, 7, width=4, batchnorm=bn)
        assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 7)
        assert any(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == bn
    assert T.transfer.head_name(T.small_cnn()) == "fc"


def test_fit_registered_resnet20():
    from cnnlab import models

    X, y = D.make_shapes(40, 32, "colors", seed=0)
    data = {"X_train": X, "y_train": y}
    loaders = D.make_loaders(data, batch_size=20, seed=0)
    T.seed_everything(0)
    model = models.create("resnet20", num_classes=4)
    hist = T.fit(model, loaders["train"], None, 2, optimizer="adam", lr=3e-3, device="cpu", progress=False)
    assert hist["train_loss"][-1] < hist["train_loss"][0]
