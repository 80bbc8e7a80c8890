"""Classic architectures: LeNet-5, AlexNet (torchvision and 2012 paper), ZFNet, VGG, GoogLeNet.

Oracles: torchvision's state-dict manifest (tests/data/torchvision_state_dicts.json), parameter
counts from the hand formula (K*K*C_in/groups + 1)*C_out, the lectures' feature-map sizes, and
PyTorch itself (grouped-convolution independence, raw layers failing below the minimum size).
Big models are built on the ``meta`` device (shapes only, no memory, no compute) where only
shapes matter.
"""
import json
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from hypothesis import given
from hypothesis import strategies as st

from cnnlab import models
from cnnlab.models.alexnet import AlexNet, AlexNetOriginal
from cnnlab.models.googlenet import GoogLeNet, GoogLeNetOutputs
from cnnlab.models.vgg import VGG, cfgs, make_layers
from cnnlab.models.zfnet import ZFNet
from cnnlab.shapes import conv_output_size

MANIFEST = json.loads((Path(__file__).parent / "data" / "torchvision_state_dicts.json").read_text())["models"]
VGG_NAMES = ["vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn"]
MY_MODELS = ["lenet5", "alexnet", "alexnet_original", "zfnet", "googlenet"] + VGG_NAMES




def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def meta(name: str, **options) -> nn.Module:
    with torch.device("meta"):
        return models.create(name, **options)


def conv_params(k, c_in, c_out, groups=1, bias=True):
    """Hand formula: each of the C_out filters has K*K*C_in/groups weights (+ 1 bias)."""
    return (k * k * c_in // groups + int(bias)) * c_out


def fc_params(n_in, n_out):
    return (n_in + 1) * n_out


# --------------------------------------------------------------------------- registry, manifest

def test_all_classic_models_are_registered():
    names = models.list_models()
    for name in MY_MODELS:
        assert name in names


@pytest.mark.parametrize("name", ["alexnet", "googlenet"] + VGG_NAMES)
def test_state_dict_matches_torchvision_manifest(name):
    model = meta(name)
    expected = MANIFEST[name]
    got = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert list(got) == list(expected["state_dict"])  # same names, same order
    assert got == expected["state_dict"]
    assert n_params(model) == expected["num_params"]


def test_vgg16_param_count_from_lecture_numbers():
    # 13 convs of config "D" + three fc layers, formula by hand: 138,357,544 (the "138M")
    convs = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
             (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]
    total = sum(conv_params(3, a, b) for a, b in convs)
    total += fc_params(512 * 7 * 7, 4096) + fc_params(4096, 4096) + fc_params(4096, 1000)
    assert total == 138_357_544 == n_params(meta("vgg16"))


# --------------------------------------------------------------------------- hand formulas

def test_lenet5_param_count_by_hand():
    expected = (conv_params(5, 1, 6) + conv_params(5, 6, 16) + fc_params(16 * 5 * 5, 120)
                + fc_params(120, 84) + fc_params(84, 10))
    assert expected == 61_706
    for activation in ("relu", "tanh"):
        for pool in ("max", "avg"):
            assert n_params(models.lenet5(activation=activation, pool=pool)) == expected
    assert n_params(models.lenet5(num_classes=7, in_channels=3)) == (
        conv_params(5, 3, 6) + conv_params(5, 6, 16) + fc_params(400, 120) + fc_params(120, 84)
        + fc_params(84, 7))


def test_lenet5_options_change_layers():
    net = models.lenet5(activation="tanh", pool="avg")
    assert isinstance(net.features[1], nn.Tanh) and isinstance(net.features[2], nn.AvgPool2d)
    net = models.lenet5()
    assert isinstance(net.features[1], nn.ReLU) and isinstance(net.features[2], nn.MaxPool2d)


def test_alexnet_original_param_count_by_hand():
    convs = (conv_params(11, 3, 96) + conv_params(5, 96, 256, groups=2) + conv_params(3, 256, 384)
             + conv_params(3, 384, 384, groups=2) + conv_params(3, 384, 256, groups=2))
    fcs = fc_params(256 * 6 * 6, 4096) + fc_params(4096, 4096) + fc_params(4096, 1000)
    model = meta("alexnet_original")
    assert n_params(model) == convs + fcs == 60_965_224
    assert 60e6 <= n_params(model) <= 62e6  # the paper: "60 million parameters"
    grouped = [m for m in model.features if isinstance(m, nn.Conv2d) and m.groups == 2]
    assert [tuple(m.weight.shape) for m in grouped] == [(256, 48, 5, 5), (384, 192, 3, 3),
                                                        (256, 192, 3, 3)]


def test_zfnet_param_count_by_hand():
    convs = (conv_params(7, 3, 96) + conv_params(5, 96, 256) + conv_params(3, 256, 512)
             + conv_params(3, 512, 1024) + conv_params(3, 1024, 512))
    fcs = fc_params(512 * 6 * 6, 4096) + fc_params(4096, 4096) + fc_params(4096, 1000)
    assert n_params(meta("zfnet")) == convs + fcs == 107_627_624


GOOGLENET_5X5 = [(16, 32), (32, 96), (16, 48), (24, 64), (24, 64), (32, 64), (32, 128), (32, 128),
                 (48, 128)]  # (5x5 reduce, 5x5) of inception 3a..5b, the paper's table 1


def test_googlenet_aux_and_paper_5x5_param_counts():
    base = n_params(meta("googlenet"))
    assert base == 6_624_904

    def aux(c_in, classes=1000):  # 1x1 conv (no bias) + BN + fc 2048->1024 + fc 1024->classes
        return conv_params(1, c_in, 128, bias=False) + 2 * 128 + fc_params(2048, 1024) + fc_params(1024, classes)

    with_aux = n_params(meta("googlenet", aux_logits=True))
    assert with_aux == base + aux(512) + aux(528) == 13_004_888
    paper = meta("googlenet", paper_5x5=True)
    assert n_params(paper) == base + sum(r * c * (25 - 9) for r, c in GOOGLENET_5X5)
    assert tuple(paper.inception3a.branch3[1].conv.weight.shape) == (32, 16, 5, 5)


# --------------------------------------------------------------------------- lecture sizes

def _materialize(module: nn.Module) -> nn.Module:
    """A meta-built (sub)module moved to the CPU with PyTorch's default initialization: avoids
    initializing a whole 60M-parameter model when a test needs only its convolutions."""
    module = module.to_empty(device="cpu")
    for m in module.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    return module


def _record_shapes(modules):
    shapes, handles = [], []
    for m in modules:
        handles.append(m.register_forward_hook(lambda mod, inp, out: shapes.append(tuple(out.shape[1:]))))
    return shapes, handles


def test_lenet5_feature_sizes_28_14_10_5():
    net = models.lenet5()
    shapes, _ = _record_shapes([net.features[i] for i in (0, 2, 3, 5)])
    out = net(torch.randn(2, 1, 32, 32))
    assert shapes == [(6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 5, 5)]
    assert out.shape == (2, 10)


def test_alexnet_original_conv1_is_55x55x96_on_227():
    torch.manual_seed(0)
    m = meta("alexnet_original")
    assert conv_output_size(227, 11, stride=4) == 55
    conv1 = _materialize(m.features[0])
    y = conv1(torch.randn(1, 3, 227, 227))  # a real convolution on the CPU
    assert y.shape == (1, 96, 55, 55)
    # the whole stack on meta: 55 -> 27 (pool) -> 27 -> 13 (pool) -> 13 -> 6 (pool)
    pools = [l for l in m.features if isinstance(l, nn.MaxPool2d)]
    shapes, _ = _record_shapes(pools)
    m(torch.empty(1, 3, 227, 227, device="meta"))
    assert shapes == [(96, 27, 27), (256, 13, 13), (256, 6, 6)]


def test_zfnet_sizes_match_the_paper_figure():
    with torch.device("meta"):
        m = ZFNet()
    layers = [l for l in m.features if isinstance(l, (nn.Conv2d, nn.MaxPool2d))]
    shapes, _ = _record_shapes(layers)
    m(torch.empty(1, 3, 224, 224, device="meta"))
    assert [s[1] for s in shapes] == [110, 55, 26, 13, 13, 13, 13, 6]
    assert [s[0] for s in shapes] == [96, 96, 256, 256, 512, 1024, 512, 512]


def test_vgg16_stage_sizes_224_112_56_28_14_7():
    m = meta("vgg16")
    pools = [l for l in m.features if isinstance(l, nn.MaxPool2d)]
    first_conv = m.features[0]
    shapes, _ = _record_shapes([first_conv] + pools)
    m(torch.empty(1, 3, 224, 224, device="meta"))
    assert shapes == [(64, 224, 224), (64, 112, 112), (128, 56, 56), (256, 28, 28), (512, 14, 14),
                      (512, 7, 7)]


def _chain(size, layers):
    """Output size after (F, S, P) windows, by the notes' formula (cnnlab.shapes)."""
    for f, stride, pad in layers:
        size = conv_output_size(size, f, stride=stride, pad=pad)
    return size


ALEXNET_WINDOWS = [(11, 4, 2), (3, 2, 0), (5, 1, 2), (3, 2, 0), (3, 1, 1), (3, 1, 1), (3, 1, 1), (3, 2, 0)]
ORIGINAL_WINDOWS = [(11, 4, 0)] + ALEXNET_WINDOWS[1:]


@given(h=st.integers(67, 300), w=st.integers(67, 300))
def test_feature_map_size_follows_the_output_size_formula(h, w):
    """Property over random image sizes: the last feature map is what (W - F + 2P)/S + 1
    predicts layer by layer, and the classifier still gets its fixed input."""
    for name, windows in (("alexnet", ALEXNET_WINDOWS), ("alexnet_original", ORIGINAL_WINDOWS)):
        model = meta(name, num_classes=3)
        feats = model.features(torch.empty(1, 3, h, w, device="meta"))
        assert feats.shape == (1, 256, _chain(h, windows), _chain(w, windows))
        assert model(torch.empty(1, 3, h, w, device="meta")).shape == (1, 3)
    vgg = meta("vgg11", num_classes=3)
    assert vgg.features(torch.empty(1, 3, h, w, device="meta")).shape == (1, 512, h // 32, w // 32)


# --------------------------------------------------------------------------- forward + backward

def _forward_backward(model, x):
    out = model(x)
    outputs = [out] if isinstance(out, torch.Tensor) else list(out)  # GoogLeNet: main + aux
    sum(o.pow(2).mean() for o in outputs).backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    return out


@pytest.mark.parametrize("name,size,classes", [
    ("lenet5", 32, 10), ("alexnet", 224, 1000), ("alexnet_original", 227, 1000),
    ("zfnet", 224, 1000)])
def test_forward_backward_native_size(name, size, classes):
    torch.manual_seed(0)
    model = models.create(name, num_classes=classes)
    c = 1 if name == "lenet5" else 3
    out = _forward_backward(model, torch.randn(2, c, size, size))
    assert out.shape == (2, classes)


def test_vgg11_native_forward_backward_and_torchvision_init():
    torch.manual_seed(0)
    model = models.vgg11(num_classes=1000)
    # init as torchvision: kaiming normal fan_out for convs, N(0, 0.01) for fc, zero biases
    conv = model.features[8]  # 256 -> 256 3x3: fan_out = 256*9
    assert abs(conv.weight.std().item() - (2 / (256 * 9)) ** 0.5) < 0.03 * (2 / (256 * 9)) ** 0.5
    assert abs(model.classifier[3].weight.std().item() - 0.01) < 1e-4
    assert all(m.bias.abs().max() == 0 for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    out = _forward_backward(model, torch.randn(2, 3, 224, 224))
    assert out.shape == (2, 1000)


@pytest.mark.parametrize("name", VGG_NAMES)
def test_every_vgg_features_forward_backward_small_input(name):
    # the full-size classifier (25088 x 4096) costs the same at any input size, so the real
    # forward/backward runs on the convolutional part at 32x32 and the whole model on meta
    torch.manual_seed(0)
    features = _materialize(meta(name).features)
    y = features(torch.randn(2, 3, 32, 32))
    assert y.shape == (2, 512, 1, 1)
    y.pow(2).mean().backward()
    assert all(p.grad is not None for p in features.parameters())
    n_conv = sum(isinstance(m, nn.Conv2d) for m in features)
    assert n_conv + 3 == int(name[3:5])  # VGG-n has n weight layers
    assert meta(name, num_classes=5)(torch.empty(2, 3, 64, 64, device="meta")).shape == (2, 5)


def test_googlenet_native_train_aux_outputs_and_sizes():
    torch.manual_seed(0)
    model = models.googlenet(num_classes=1000, aux_logits=True)
    shapes, _ = _record_shapes([model.inception3a, model.inception4a, model.inception4d,
                                model.inception5b])
    model.train()
    out = _forward_backward(model, torch.randn(2, 3, 224, 224))
    assert isinstance(out, GoogLeNetOutputs)
    assert [t.shape for t in out] == [(2, 1000)] * 3
    # inception3a 28x28x256 and inception5b 7x7x1024 (lecture numbers); aux heads see 512 / 528
    assert shapes == [(256, 28, 28), (512, 14, 14), (528, 14, 14), (1024, 7, 7)]


def test_googlenet_train_eval_outputs_small_input():
    torch.manual_seed(0)
    model = models.googlenet(num_classes=6, aux_logits=True)
    x = torch.randn(2, 3, 64, 64)
    out = model.train()(x)
    assert isinstance(out, GoogLeNetOutputs)
    assert [tuple(t.shape) for t in out] == [(2, 6)] * 3
    (out.aux_logits1.sum() + out.aux_logits2.sum()).backward()
    assert model.aux1.fc2.weight.grad is not None and model.aux2.fc2.weight.grad is not None
    assert model.fc.weight.grad is None  # aux losses alone do not reach the main head
    y = model.eval()(x)
    assert isinstance(y, torch.Tensor) and y.shape == (2, 6)
    plain = models.googlenet(num_classes=6).train()
    assert plain.aux1 is None and isinstance(plain(x), torch.Tensor)


def test_googlenet_transform_input_matches_manual_renormalization():
    # x was normalized with ImageNet mean/std; the Google weights expect (x' - 0.5) / 0.5
    torch.manual_seed(0)
    a = models.googlenet(num_classes=4, transform_input=True).eval()
    b = models.googlenet(num_classes=4).eval()
    b.load_state_dict(a.state_dict())
    seen = []
    for m in (a, b):
        m.conv1.register_forward_pre_hook(lambda mod, args: seen.append(args[0]))
    x = torch.randn(2, 3, 32, 32)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    expected = ((x * std + mean) - 0.5) / 0.5
    torch.testing.assert_close(a(x), b(expected))
    assert len(seen) == 2
    torch.testing.assert_close(seen[0], expected)  # what conv1 of ``a`` received
    torch.testing.assert_close(seen[1], expected)
    b(x)
    assert torch.equal(seen[2], x)  # without the option the input is untouched


def test_googlenet_init_and_inception_concat():
    torch.manual_seed(0)
    model = models.googlenet()
    w = model.inception4e.branch2[1].conv.weight  # 320 x 160 x 3 x 3
    assert abs(w.std().item() - 0.01) < 5e-4 and abs(model.fc.weight.std().item() - 0.01) < 5e-4
    assert model.inception3a.branch1.bn.weight.eq(1).all()
    # the module output is the channel concatenation of its four branches
    blk = model.inception3a.eval()
    x = torch.randn(1, 192, 7, 7)
    parts = [blk.branch1(x), blk.branch2(x), blk.branch3(x), blk.branch4(x)]
    assert [p.shape[1] for p in parts] == [64, 128, 32, 32]
    torch.testing.assert_close(blk(x), torch.cat(parts, 1))


# --------------------------------------------------------------------------- two towers

def test_alexnet_original_towers_communicate_only_at_conv3():
    torch.manual_seed(0)
    model = meta("alexnet_original")
    conv2, conv3 = _materialize(model.features[4]), _materialize(model.features[8])
    x = torch.randn(1, 96, 9, 9)
    x2 = x.clone()
    x2[:, 48:] += torch.randn(1, 48, 9, 9)  # change only the second tower's inputs
    y, y2 = conv2(x), conv2(x2)
    torch.testing.assert_close(y[:, :128], y2[:, :128])  # first tower unaffected
    assert not torch.allclose(y[:, 128:], y2[:, 128:])
    # conv3 is dense: its every output sees both towers
    z = torch.randn(1, 256, 5, 5)
    z2 = z.clone()
    z2[:, 128:] += 1.0
    assert not torch.allclose(conv3(z)[:, :192], conv3(z2)[:, :192])


def test_alexnet_original_paper_init():
    torch.manual_seed(0)
    model = AlexNetOriginal(num_classes=10, init_weights=True)
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    fcs = [m for m in model.classifier if isinstance(m, nn.Linear)]
    assert [m.bias.mean().item() for m in convs] == [0.0, 1.0, 0.0, 1.0, 1.0]
    assert [m.bias.mean().item() for m in fcs] == [1.0, 1.0, 0.0]
    assert abs(fcs[0].weight.std().item() - 0.01) < 1e-4
    lrn = [m for m in model.features if isinstance(m, nn.LocalResponseNorm)]
    assert [(m.size, m.alpha, m.beta, m.k) for m in lrn] == [(5, 1e-4, 0.75, 2.0)] * 2


# --------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("cls", [AlexNet, AlexNetOriginal, ZFNet, GoogLeNet])
def test_min_input_size_is_the_true_minimum(cls):
    """At ``min_input_size`` PyTorch's layers run; one pixel less they fail (independent oracle),
    and the model then raises a ValueError naming the input instead."""
    with torch.device("meta"):
        model = cls().eval()
    s = cls.min_input_size
    model(torch.empty(1, 3, s, s, device="meta"))
    with pytest.raises(ValueError, match="too small"):
        model(torch.empty(1, 3, s - 1, s, device="meta"))
    model.min_input_size = 1  # bypass the check: the raw layers must fail
    with pytest.raises(RuntimeError):
        model(torch.empty(1, 3, s - 1, s - 1, device="meta"))


def test_vgg_min_input_size():
    with torch.device("meta"):
        model = VGG(make_layers(cfgs["A"]))
    model(torch.empty(1, 3, 32, 32, device="meta"))
    with pytest.raises(ValueError, match=">= 32"):
        model(torch.empty(1, 3, 31, 40, device="meta"))
    model.min_input_size = 1
    with pytest.raises(RuntimeError):
        model(torch.empty(1, 3, 31, 31, device="meta"))


@pytest.mark.parametrize("name,x", [
    ("lenet5", torch.empty(2, 1, 28, 28)), ("lenet5", torch.empty(2, 3, 32, 32)),
    ("lenet5", torch.empty(1, 32, 32)), ("alexnet", torch.empty(1, 1, 224, 224)),
    ("googlenet", torch.empty(3, 224, 224)), ("vgg11", torch.empty(1, 4, 64, 64))])
def test_wrong_input_shape_raises_value_error(name, x):
    with torch.device("meta"):
        model = models.create(name, num_classes=10)
    with pytest.raises(ValueError, match="input x"):
        model(x.to("meta"))


@pytest.mark.parametrize("name,options,match", [
    ("lenet5", {"activation": "sigmoid"}, "activation"), ("lenet5", {"pool": "l2"}, "pool"),
    ("lenet5", {"num_classes": 0}, "num_classes"), ("alexnet", {"dropout": 1.5}, "dropout"),
    ("zfnet", {"num_classes": 2.5}, "num_classes"), ("vgg11", {"dropout": -0.1}, "dropout"),
    ("googlenet", {"dropout_aux": 2.0}, "dropout_aux")])
def test_bad_options_raise_value_error(name, options, match):
    with torch.device("meta"), pytest.raises(ValueError, match=match):
        models.create(name, **options)


# --------------------------------------------------------------------------- memory format

@pytest.mark.parametrize("name,shape", [("lenet5", (2, 1, 32, 32)), ("googlenet", (2, 3, 40, 40)),
                                        ("alexnet_original", (2, 3, 67, 67))])
def test_channels_last_gives_the_same_output(name, shape):
    torch.manual_seed(0)
    if name == "alexnet_original":  # the convolutions, LRN and pools; the fc layers are plain
        model = _materialize(meta(name).features)
    else:
        model = models.create(name, num_classes=10).eval()
    x = torch.randn(shape)
    ref = model(x)
    model = model.to(memory_format=torch.channels_last)
    out = model(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
