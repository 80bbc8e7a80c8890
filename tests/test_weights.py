"""Loading torchvision-format weight files from a local path: bare state_dicts, checkpoint dicts,
DataParallel prefixes, legacy DenseNet names, and clear errors."""
import re

import pytest
import torch

import cnnlab
from cnnlab import models
from cnnlab.models import densenet
from cnnlab.models.weights import _head_name, load_state_dict_file, load_torchvision_weights, load_weights


def perturbed_state(model, seed=1):
    """The model's state_dict with every float tensor shifted by noise (differs from any fresh init)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for k, v in model.state_dict().items():
        if v.is_floating_point():
            noise = torch.randn(v.shape, generator=g) * 0.1
            v = (v + noise).abs() + 0.5 if k.endswith("running_var") else v + noise
        state[k] = v.clone()
    return state


def outputs(model, x):
    model.eval()
    with torch.no_grad():
        return model(x)


@pytest.fixture
def x():
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name,num_classes", [("resnet20", 10), ("mobilenet_v2", 1000)])
def test_roundtrip_bare_state_dict(tmp_path, x, name, num_classes):
    torch.manual_seed(0)
    source = models.create(name, num_classes=num_classes)
    source.load_state_dict(perturbed_state(source))
    path = tmp_path / f"{name}.pth"
    torch.save(source.state_dict(), path)

    torch.manual_seed(123)
    target = models.create(name, num_classes=num_classes)
    assert not torch.allclose(outputs(target, x), outputs(source, x))  # the test can fail
    returned = load_weights(target, path)
    assert returned is target
    torch.testing.assert_close(outputs(target, x), outputs(source, x), rtol=0, atol=0)
    for k, v in source.state_dict().items():
        assert torch.equal(target.state_dict()[k], v), k


@pytest.mark.parametrize("wrap", ["state_dict", "model", "model_state_dict", "module", "compiled"])
def test_checkpoint_dicts_and_prefixes(tmp_path, x, wrap):
    torch.manual_seed(0)
    source = models.create("resnet20", num_classes=10)
    state = perturbed_state(source)
    source.load_state_dict(state)
    if wrap == "module":
        obj = {"module." + k: v for k, v in state.items()}
    elif wrap == "compiled":
        obj = {"state_dict": {"_orig_mod." + k: v for k, v in state.items()}, "epoch": 3}
    else:
        obj = {wrap: state, "epoch": 7, "optimizer": {"lr": 0.1}}
    path = tmp_path / "ckpt.pt"
    torch.save(obj, path)
    loaded = load_state_dict_file(path)
    assert set(loaded) == set(state)
    target = load_weights(models.create("resnet20", num_classes=10), path)
    torch.testing.assert_close(outputs(target, x), outputs(source, x), rtol=0, atol=0)


def test_load_onto_device_keeps_device(tmp_path, x):
    dev = cnnlab.device()
    source = models.create("resnet20", num_classes=10)
    path = tmp_path / "w.pth"
    torch.save(perturbed_state(source), path)
    target = models.create("resnet20", num_classes=10).to(dev)
    load_weights(target, path)
    assert target.conv1.weight.device.type == dev.type
    source.load_state_dict(torch.load(path))
    torch.testing.assert_close(outputs(target, x.to(dev)).cpu(), outputs(source, x))


def test_missing_and_unexpected_keys(tmp_path):
    model = models.create("resnet20", num_classes=10)
    state = model.state_dict()
    dropped = ["layer3.2.bn2.running_var", "fc.bias"]
    broken = {k: v for k, v in state.items() if k not in dropped}
    broken["extra.weight"] = torch.zeros(3)
    path = tmp_path / "broken.pth"
    torch.save(broken, path)
    with pytest.raises(ValueError) as info:
        load_weights(models.create("resnet20", num_classes=10), path)
    msg = str(info.value)
    assert "missing keys" in msg and "layer3.2.bn2.running_var" in msg and "fc.bias" in msg
    assert "unexpected keys" in msg and "extra.weight" in msg
    # strict=False tolerates both and loads the rest
    target = load_weights(models.create("resnet20", num_classes=10), path, strict=False)
    assert torch.equal(target.conv1.weight, state["conv1.weight"])


def test_error_lists_only_the_first_few(tmp_path):
    model = models.create("resnet20", num_classes=10)
    path = tmp_path / "half.pth"
    torch.save({k: v for k, v in model.state_dict().items() if not k.startswith("layer")}, path)
    with pytest.raises(ValueError, match=r"missing keys .*\(\d+ more\)"):
        load_weights(models.create("resnet20", num_classes=10), path)


def test_num_classes_mismatch_hint_and_exclude(tmp_path, x):
    torch.manual_seed(0)
    source = models.create("resnet20", num_classes=100)
    source.load_state_dict(perturbed_state(source))
    path = tmp_path / "c100.pth"
    torch.save(source.state_dict(), path)
    target = models.create("resnet20", num_classes=10)
    with pytest.raises(ValueError) as info:
        load_weights(target, path)
    msg = str(info.value)
    assert "fc.weight (100, 64) vs (10, 64)" in msg
    assert "num_classes" in msg and "file: 100 classes, model: 10" in msg
    assert "strict=False" in msg and "fc." in msg
    with pytest.raises(ValueError, match="shape mismatch"):
        load_weights(target, path, strict=False)  # strict=False does not excuse a wrong shape
    head_before = target.fc.weight.clone()
    load_weights(target, path, exclude=["fc."])
    assert torch.equal(target.fc.weight, head_before)
    assert torch.equal(target.layer3[2].conv2.weight, source.layer3[2].conv2.weight)


def test_load_torchvision_weights_new_head(tmp_path, x):
    torch.manual_seed(0)
    source = models.create("mobilenet_v2")
    source.load_state_dict(perturbed_state(source))
    path = tmp_path / "mobilenet_v2.pth"
    torch.save(source.state_dict(), path)
    same = load_torchvision_weights("mobilenet_v2", path)
    torch.testing.assert_close(outputs(same, x), outputs(source, x), rtol=0, atol=0)
    tuned = load_torchvision_weights("mobilenet_v2", path, num_classes=5)
    assert _head_name(tuned) == "classifier.1" and tuned.classifier[1].out_features == 5
    assert torch.equal(tuned.features[5].conv[1][0].weight, source.features[5].conv[1][0].weight)
    assert outputs(tuned, x).shape == (2, 5)


def test_head_names():
    with torch.device("meta"):
        assert _head_name(models.create("resnet18")) == "fc"
        assert _head_name(models.create("densenet121")) == "classifier"
        assert _head_name(models.create("mobilenet_v1")) == "classifier.1"
    with pytest.raises(ValueError, match="no nn.Linear"):
        _head_name(torch.nn.Conv2d(1, 1, 1))


def test_legacy_densenet_names(tmp_path, x):
    torch.manual_seed(0)
    kw = dict(growth_rate=8, block_config=(2, 2), num_init_features=16, num_classes=3)
    source = densenet.DenseNet(**kw)
    state = perturbed_state(source)
    source.load_state_dict(state)
    legacy = {re.sub(r"(denselayer\d+\.(?:norm|relu|conv))([12])\.", r"\1.\2.", k): v for k, v in state.items()}
    assert "features.denseblock1.denselayer1.norm.1.weight" in legacy
    path = tmp_path / "densenet_old.pth"
    torch.save(legacy, path)
    target = load_weights(densenet.DenseNet(**kw), path)
    torch.testing.assert_close(outputs(target, x), outputs(source, x), rtol=0, atol=0)


def test_bad_files(tmp_path):
    model = models.create("resnet20", num_classes=10)
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        load_weights(model, tmp_path / "nope.pth")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="not a state_dict"):
        load_weights(model, tmp_path / "list.pth")
    torch.save({"epoch": 3, "lr": 0.1}, tmp_path / "meta.pth")
    with pytest.raises(ValueError, match="checkpoint"):
        load_weights(model, tmp_path / "meta.pth")
