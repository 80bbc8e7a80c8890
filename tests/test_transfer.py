"""cnnlab.train.transfer: freezing, head replacement, parameter groups, the offline demo."""
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn as nn

from cnnlab import data as D
from cnnlab import train as T
from cnnlab.train import transfer as TL




def resnet_like(num_classes=10):
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(1, 4, 3, padding=1)), ("bn1", nn.BatchNorm2d(4)), ("relu", nn.ReLU()),
        ("layer1", nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())),
        ("avgpool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()), ("fc", nn.Linear(4, num_classes))]))


class VGGLike(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(2))
        self.classifier = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Dropout(), nn.Linear(8, 5))

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


class DenseLike(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 6, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(6, 5)

    def forward(self, x):
        return self.classifier(self.features(x))


class Generic(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 6, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 6))
        self.out = nn.Sequential(nn.ReLU(), nn.Linear(6, 5, bias=False))

    def forward(self, x):
        return self.out(self.body(x))


@pytest.mark.parametrize("make, head", [(resnet_like, "fc"), (VGGLike, "classifier.3"), (DenseLike, "classifier"),
                                        (Generic, "out.1")])
def test_head_name_and_replace_head(make, head):
    model = make()
    assert TL.head_name(model) == head
    body_before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith(head + ".")}
    old = model.get_submodule(head)
    TL.replace_head(model, 3)
    new = model.get_submodule(head)
    assert new is not old and isinstance(new, nn.Linear)
    assert (new.in_features, new.out_features) == (old.in_features, 3)
    assert (new.bias is None) == (old.bias is None)
    in_ch = 1 if make is resnet_like else 3
    assert model.eval()(torch.zeros(2, in_ch, 8, 8)).shape == (2, 3)
    after = model.state_dict()
    for k, v in body_before.items():
        assert torch.equal(after[k], v), k


def test_head_name_without_linear():
    with pytest.raises(ValueError, match="no nn.Linear"):
        TL.head_name(nn.Sequential(nn.Conv2d(1, 2, 1)))
    with pytest.raises(ValueError, match="num_classes"):
        TL.replace_head(resnet_like(), 0)


def test_freeze_unfreeze_flags():
    model = VGGLike()
    TL.freeze(model, except_=("classifier.3",))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"classifier.3.weight", "classifier.3.bias"}
    with pytest.raises(ValueError, match="matches no parameter"):
        TL.freeze(model, except_=("fc",))  # a VGG has no fc: refuse instead of freezing everything
    TL.unfreeze(model, only=("classifier",))
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {
        "classifier.0.weight", "classifier.0.bias", "classifier.3.weight", "classifier.3.bias"}
    TL.unfreeze(model)
    assert all(p.requires_grad for p in model.parameters())


def test_frozen_body_unchanged_head_changes():
    """Train a frozen network: body weights AND BatchNorm running statistics stay, the head moves."""
    data = D.get_digits_data(8, seed=0)
    data = {"X_train": data["X_train"][:256], "y_train": data["y_train"][:256]}
    loaders = D.make_loaders(data, batch_size=64, seed=0)
    T.seed_everything(0)
    model = TL.freeze(resnet_like(), except_=("fc",))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    T.fit(model, loaders["train"], None, 1, optimizer="sgd", lr=0.1, weight_decay=1e-3, device="cpu", progress=False)
    after = model.state_dict()
    for k, v in before.items():
        if k.startswith("fc."):
            assert not torch.equal(after[k], v), k
        else:
            assert torch.equal(after[k], v), k
    # Control: without freezing the body moves (the test can fail).
    control = resnet_like()
    w0 = control.conv1.weight.clone()
    T.fit(control, loaders["train"], None, 1, lr=0.1, device="cpu", progress=False)
    assert not torch.equal(control.conv1.weight, w0)


def test_param_groups_lrs_match_sgd_step():
    torch.manual_seed(0)
    model = resnet_like()
    groups = TL.param_groups(model, head_lr=0.1, body_lr=0.01)
    assert [g["name"] for g in groups] == ["head", "body"] and [g["lr"] for g in groups] == [0.1, 0.01]
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())  # a partition
    opt = torch.optim.SGD(groups)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model(torch.randn(4, 1, 6, 6)).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    opt.step()
    for n, p in model.named_parameters():  # oracle: plain SGD, p <- p - lr * grad
        lr = 0.1 if n.startswith("fc.") else 0.01
        torch.testing.assert_close(p.detach(), before[n] - lr * grads[n])
    assert [g["name"] for g in TL.param_groups(model, 0.1, 0.0)] == ["head"]
    TL.freeze(model, except_=("fc",))
    assert len(TL.param_groups(model, 0.1, 0.01)) == 1


def test_strategy_table():
    assert len(TL.TRANSFER_STRATEGIES) == 4
    assert "linear classifier" in TL.transfer_strategy(little_data=True, similar=True).lower()
    assert "trouble" in TL.transfer_strategy(little_data=True, similar=False)
    assert "few layers" in TL.transfer_strategy(little_data=False, similar=True)
    assert "larger number" in TL.transfer_strategy(little_data=False, similar=False)


def test_transfer_demo_beats_scratch_small():
    """Pretrained on digits 0-4, fine-tuned on 5 images per digit 5-9 for 20 full-batch steps."""
    r = TL.transfer_demo(n_per_class=5, seeds=(0, 1), pretrain_epochs=10, finetune_epochs=20)
    assert len(r["transfer"]) == len(r["scratch"]) == 2 and r["n_train"] == 25
    assert r["pretrain_acc"] > 0.9
    assert r["transfer_mean"] > 0.6  # chance is 0.2
    assert r["transfer_mean"] > r["scratch_mean"] + 0.05
    assert r["transfer_mean"] == pytest.approx(np.mean(r["transfer"]))


def test_replace_head_on_registered_models():
    # Each family's head is found by name and replaced (built on the meta device: shapes only).
    from cnnlab import models

    for name, head in (("resnet18", "fc"), ("mobilenet_v2", "classifier.1"), ("googlenet", "fc")):
        with torch.device("meta"):
            model = models.create(name, num_classes=1000)
        assert TL.head_name(model) == head, name
        old = model.get_submodule(head)
        TL.replace_head(model, 7)
        new = model.get_submodule(head)
        assert new is not old and (new.in_features, new.out_features) == (old.in_features, 7), name


def test_transfer_demo_runs_the_students_steps():
    # The hooks replace the library's steps: a plain loop (the one assignment 5 asks for), a
    # freezing and a new head written here give the library's numbers for fine-tuning and
    # scratch (the loop is the Trainer's epoch); the linear mode runs the given freeze_body.
    import torch.nn.functional as F

    calls = {"epochs": 0, "freeze": 0, "head": 0}

    def train_epoch(model, loader, optimizer):
        model.train()
        calls["epochs"] += 1
        total, n = 0.0, 0
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, n = total + loss.item() * len(y), n + len(y)
        return total / n

    def freeze_body(model):
        calls["freeze"] += 1
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith("fc."))

    def new_head(model, k):
        calls["head"] += 1
        model.fc = nn.Linear(model.fc.in_features, k)
        return model

    kw = dict(n_per_class=5, seeds=(0, 1), pretrain_epochs=3, finetune_epochs=5)
    library = TL.transfer_demo(**kw)
    hooks = dict(make_model=lambda k: T.small_cnn(1, k), train_epoch=train_epoch, freeze_body=freeze_body,
                 new_head=new_head)
    mine = TL.transfer_demo(**kw, **hooks)
    assert mine["pretrain_acc"] == pytest.approx(library["pretrain_acc"], abs=1e-12)
    assert mine["transfer"] == pytest.approx(library["transfer"], abs=1e-12)
    assert mine["scratch"] == pytest.approx(library["scratch"], abs=1e-12)
    assert calls == {"epochs": 3 + 2 * 2 * 5, "freeze": 0, "head": 2}
    linear = TL.transfer_demo(**kw, **hooks, mode="linear")
    assert calls["freeze"] == 2 and all(0.0 <= a <= 1.0 for a in linear["transfer"])
