"""ResNet / ResNeXt, MobileNet v1/v2, DenseNet and the CIFAR nets: shapes, counts and costs
against the papers' tables, residual/identity properties, training passes, channels_last and
autocast. Shape-only checks run on the ``meta`` device (no compute)."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import cnnlab
from cnnlab import models
from cnnlab.models import cifar, densenet, mobilenet, resnet
from cnnlab.models.mobilenet import _make_divisible

IMAGENET = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d",
            "resnext101_32x8d", "mobilenet_v1", "mobilenet_v2", "densenet121"]
CIFAR = ["resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "vgg8_cifar"]


def registered_in(module):
    return {n for n in module.__all__ if n in models.list_models()}


def test_families_register_the_listed_models():
    ours = registered_in(resnet) | registered_in(mobilenet) | registered_in(densenet) | registered_in(cifar)
    assert ours == set(IMAGENET) | set(CIFAR)


def first_conv(model):
    return next(m for m in model.modules() if isinstance(m, nn.Conv2d))


def meta_model(name, **options):
    with torch.device("meta"):
        return models.create(name, **options)


def capture(model, module_names, x):
    """Run ``model(x)`` without grad and return the output shapes of the named submodules."""
    out, hooks = {}, []
    for name in module_names:
        sub = model.get_submodule(name)
        hooks.append(sub.register_forward_hook(lambda m, i, o, name=name: out.__setitem__(name, tuple(o.shape))))
    with torch.no_grad():
        final = model(x)
    for h in hooks:
        h.remove()
    return out, tuple(final.shape)


def mult_adds(model, size):
    """Multiply-adds of conv and linear layers for one (3, size, size) image (meta forward)."""
    total = [0]

    def hook(m, inp, out):
        if isinstance(m, nn.Conv2d):
            total[0] += out[0].numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        else:
            total[0] += m.in_features * m.out_features

    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model(torch.empty(1, 3, size, size, device="meta"))
    for h in hooks:
        h.remove()
    return total[0]


# --------------------------------------------------------------------------- training passes

@pytest.mark.parametrize("name", IMAGENET + CIFAR)
def test_forward_backward_small_input(name):
    torch.manual_seed(0)
    model = models.create(name, num_classes=7)
    x = torch.randn(2, 3, 32, 32)
    out = model(x)
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    g = first_conv(model).weight.grad
    assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v1", "mobilenet_v2", "densenet121"])
def test_forward_backward_native_224(name):
    torch.manual_seed(0)
    dev = cnnlab.device()
    model = models.create(name, num_classes=5).to(dev)
    out = model(torch.randn(2, 3, 224, 224, device=dev))
    assert out.shape == (2, 5)
    out.sum().backward()
    assert first_conv(model).weight.grad.abs().sum() > 0


def test_cifar_forward_backward_native_32():
    torch.manual_seed(0)
    model = models.create("resnet20", num_classes=10, shortcut="B")
    out = model(torch.randn(4, 3, 32, 32))
    F.cross_entropy(out, torch.tensor([0, 1, 2, 3])).backward()
    assert model.conv1.weight.grad.abs().sum() > 0


# --------------------------------------------------------------------------- ResNet / ResNeXt

def test_resnet_stage_shapes_224():
    # ResNet paper, Table 1: conv1 112x112, conv2_x 56x56, ..., conv5_x 7x7; 64..512 x expansion.
    for name, exp in (("resnet18", 1), ("resnet50", 4)):
        model = meta_model(name)
        got, final = capture(model, ["maxpool", "layer1", "layer2", "layer3", "layer4"],
                             torch.empty(2, 3, 224, 224, device="meta"))
        assert got == {"maxpool": (2, 64, 56, 56), "layer1": (2, 64 * exp, 56, 56),
                       "layer2": (2, 128 * exp, 28, 28), "layer3": (2, 256 * exp, 14, 14),
                       "layer4": (2, 512 * exp, 7, 7)}
        assert final == (2, 1000)


def test_resnext_grouped_width():
    # ResNeXt paper, Table 1: conv2 of ResNeXt-50 (32x4d) is 3x3, 128 channels, C = 32 groups.
    model = meta_model("resnext50_32x4d")
    conv = model.layer1[0].conv2
    assert (conv.in_channels, conv.out_channels, conv.groups) == (128, 128, 32)
    assert model.layer4[0].conv2.out_channels == 1024
    assert meta_model("resnext101_32x8d").layer1[0].conv2.out_channels == 256


def test_width_options_reproduce_other_torchvision_models():
    # Parameter counts from torchvision's model documentation (not in the manifest):
    # wide_resnet50_2 = ResNet-50 with width_per_group=128; resnext101_64x4d = 64 groups of 4.
    with torch.device("meta"):
        wide = models.create("resnet50", width_per_group=128)
        x64 = resnet.ResNet(resnet.Bottleneck, [3, 4, 23, 3], groups=64, width_per_group=4)
    assert sum(p.numel() for p in wide.parameters()) == 68_883_240
    assert sum(p.numel() for p in x64.parameters()) == 83_455_272


def test_replace_stride_with_dilation_output_stride():
    # Output stride 32 normally; 8 when layer3 and layer4 dilate instead of striding.
    x = torch.empty(1, 3, 128, 128, device="meta")
    normal, _ = capture(meta_model("resnet50"), ["layer4"], x)
    dilated_model = meta_model("resnet50", replace_stride_with_dilation=[False, True, True])
    dilated, final = capture(dilated_model, ["layer4"], x)
    assert normal["layer4"][2:] == (4, 4)
    assert dilated["layer4"][2:] == (16, 16)
    assert dilated_model.layer4[1].conv2.dilation == (4, 4) and final == (1, 1000)


def test_zero_init_residual_flag():
    # The last BN of every block starts at gamma = 0 with the flag, 1 without; nothing else changes.
    torch.manual_seed(0)
    for name in ("resnet18", "resnet20"):
        for flag in (False, True):
            model = models.create(name, num_classes=10, zero_init_residual=flag)
            blocks = [m for m in model.modules() if isinstance(m, resnet.BasicBlock)]
            assert blocks
            for b in blocks:
                assert (b.bn2.weight == (0.0 if flag else 1.0)).all()
                assert (b.bn1.weight == 1).all()


@pytest.mark.parametrize("block_cls,planes,inplanes", [(resnet.BasicBlock, 16, 16), (resnet.Bottleneck, 8, 32)])
def test_zero_init_block_is_identity(block_cls, planes, inplanes):
    torch.manual_seed(0)
    block = block_cls(inplanes, planes)  # no downsample: inplanes == planes * expansion
    last = block.bn2 if block_cls is resnet.BasicBlock else block.bn3
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    block.eval()
    x = torch.rand(2, inplanes, 9, 9)  # x >= 0, so relu(0 + x) == x
    with torch.no_grad():
        torch.testing.assert_close(block(x), x)
    nn.init.ones_(last.weight)  # the residual branch now contributes: no longer the identity
    with torch.no_grad():
        assert not torch.allclose(block(x), x)


def test_zero_init_residual_whole_bottleneck_blocks():
    # The real flag on the real model: blocks without a projection shortcut are identities.
    torch.manual_seed(0)
    model = models.create("resnet50", zero_init_residual=True).eval()
    x = torch.rand(1, 256, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(model.layer1[1](x), x)
        torch.testing.assert_close(model.layer1[2](x), x)


def test_basic_block_matches_functional_oracle():
    torch.manual_seed(0)
    down = nn.Sequential(resnet.conv1x1(8, 16, 2), nn.BatchNorm2d(16))
    block = resnet.BasicBlock(8, 16, stride=2, downsample=down)
    for bn in (block.bn1, block.bn2, down[1]):  # non-trivial BN statistics
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.5, 0.5)
    block.eval()
    x = torch.randn(2, 8, 10, 10)

    def bn(t, m):
        return F.batch_norm(t, m.running_mean, m.running_var, m.weight, m.bias, False, 0.0, m.eps)

    h = F.relu(bn(F.conv2d(x, block.conv1.weight, stride=2, padding=1), block.bn1))
    h = bn(F.conv2d(h, block.conv2.weight, padding=1), block.bn2)
    want = F.relu(h + bn(F.conv2d(x, down[0].weight, stride=2), down[1]))
    with torch.no_grad():
        torch.testing.assert_close(block(x), want)


def test_resnet_init_matches_torchvision_rule():
    # kaiming_normal, fan_out, ReLU gain: std = sqrt(2 / (out_channels * k * k)).
    torch.manual_seed(0)
    model = models.create("resnet18")
    w = model.layer4[0].conv1.weight  # 512 x 256 x 3 x 3
    expected = (2.0 / (512 * 9)) ** 0.5
    assert abs(w.std().item() / expected - 1) < 0.02
    assert abs(w.mean().item()) < 0.05 * expected
    assert (model.bn1.weight == 1).all() and (model.bn1.bias == 0).all()


def test_resnet_options_and_bad_input():
    model = models.create("resnet18", norm_layer=lambda c: nn.GroupNorm(8, c), num_classes=3)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert model(torch.randn(1, 3, 40, 40)).shape == (1, 3)
    with pytest.raises(ValueError, match="groups"):
        resnet.ResNet(resnet.BasicBlock, [2, 2, 2, 2], groups=2)
    with pytest.raises(ValueError, match="dilation"):
        models.create("resnet18", replace_stride_with_dilation=[False, False, True])
    with pytest.raises(ValueError, match="replace_stride_with_dilation"):
        models.create("resnet50", replace_stride_with_dilation=[True])
    with pytest.raises(ValueError, match="num_classes"):
        models.create("resnet18", num_classes=0)
    with pytest.raises(ValueError, match="groups=32"):
        models.create("resnext50_32x4d", groups=8)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\).*\(3, 32, 32\)"):
        models.create("resnet20")(torch.randn(3, 32, 32))
    with pytest.raises(ValueError, match=r"\(2, 1, 32, 32\)"):
        meta_model("resnet18")(torch.empty(2, 1, 32, 32, device="meta"))


# --------------------------------------------------------------------------- MobileNet

@pytest.mark.parametrize("alpha,params_m,madds_m", [(1.0, 4.2, 569), (0.75, 2.6, 325), (0.5, 1.3, 149),
                                                    (0.25, 0.5, 41)])
def test_mobilenet_v1_paper_table6(alpha, params_m, madds_m):
    # Howard et al. 2017, Table 6 (width multiplier): millions of parameters and mult-adds at 224.
    model = meta_model("mobilenet_v1", width_mult=alpha)
    n = sum(p.numel() for p in model.parameters())
    assert abs(n / 1e6 - params_m) <= 0.05
    assert abs(mult_adds(model, 224) / 1e6 - madds_m) < 1


@pytest.mark.parametrize("size,madds_m", [(224, 569), (192, 418), (160, 290), (128, 186)])
def test_mobilenet_v1_resolution_multiplier_table7(size, madds_m):
    # Table 7: the resolution multiplier is the input size; the cost falls by rho^2.
    assert abs(mult_adds(meta_model("mobilenet_v1"), size) / 1e6 - madds_m) < 1


def test_mobilenet_v1_table1_shapes():
    model = meta_model("mobilenet_v1")
    got, final = capture(model, ["features.0", "features.1", "features.2", "features.6", "features.12",
                                 "features.13"], torch.empty(1, 3, 224, 224, device="meta"))
    assert got == {"features.0": (1, 32, 112, 112), "features.1": (1, 64, 112, 112),
                   "features.2": (1, 128, 56, 56), "features.6": (1, 512, 14, 14),
                   "features.12": (1, 1024, 7, 7), "features.13": (1, 1024, 7, 7)}
    assert final == (1, 1000) and len(model.features) == 14
    # 1 + 13 * 2 conv layers + FC = 28 layers, as the paper counts
    assert sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules()) == 28


def test_depthwise_separable_conv():
    torch.manual_seed(0)
    m_in, n_out = 12, 20
    block = mobilenet.DepthwiseSeparableConv(m_in, n_out, stride=2)
    # parameter ratio versus a full 3x3 conv: 1/N + 1/K^2 (paper, eq. 5)
    sep = block.depthwise[0].weight.numel() + block.pointwise[0].weight.numel()
    assert sep / (9 * m_in * n_out) == pytest.approx(1 / n_out + 1 / 9)
    # the depthwise conv filters every channel separately
    block.eval()
    x = torch.randn(2, m_in, 9, 9)
    w = block.depthwise[0].weight
    per_channel = torch.cat([F.conv2d(x[:, c:c + 1], w[c:c + 1], stride=2, padding=1) for c in range(m_in)], 1)
    with torch.no_grad():
        torch.testing.assert_close(block.depthwise[0](x), per_channel)
        assert block(x).shape == (2, n_out, 5, 5)
    with pytest.raises(ValueError, match="stride"):
        mobilenet.DepthwiseSeparableConv(4, 8, stride=3)


def test_make_divisible_hand_values():
    assert _make_divisible(32 * 1.0, 8) == 32
    assert _make_divisible(32 * 0.5, 8) == 16
    assert _make_divisible(16 * 0.35, 8) == 8      # never below the divisor
    assert _make_divisible(24 * 0.35, 8) == 8      # 8.4 -> 8
    assert _make_divisible(96 * 0.75, 8) == 72
    assert _make_divisible(100, 8) == 104          # 100 -> 104 (nearest multiple, ties up)
    assert _make_divisible(19, 16) == 32           # 16 would lose more than 10% of 19


def test_mobilenet_v2_structure():
    model = meta_model("mobilenet_v2")
    got, final = capture(model, ["features.0", "features.1", "features.3", "features.17", "features.18"],
                         torch.empty(1, 3, 224, 224, device="meta"))
    # Sandler et al. 2018, Table 2
    assert got == {"features.0": (1, 32, 112, 112), "features.1": (1, 16, 112, 112),
                   "features.3": (1, 24, 56, 56), "features.17": (1, 320, 7, 7),
                   "features.18": (1, 1280, 7, 7)}
    assert final == (1, 1000)
    blocks = [m for m in model.features if isinstance(m, mobilenet.InvertedResidual)]
    assert len(blocks) == 17
    # residual connections exactly where stride 1 keeps the width: 10 of 17 blocks
    assert sum(b.use_res_connect for b in blocks) == 10
    assert abs(mult_adds(model, 224) / 1e6 - 300) < 1  # paper: 300M multiply-adds
    # width_mult: the last conv is never thinned below 1280, but grows for width > 1
    assert meta_model("mobilenet_v2", width_mult=0.5).last_channel == 1280
    assert meta_model("mobilenet_v2", width_mult=1.25).last_channel == 1600
    assert meta_model("mobilenet_v2", width_mult=0.5).features[0][0].out_channels == 16
    assert meta_model("mobilenet_v2", dropout=0.5).classifier[0].p == 0.5


def test_inverted_residual_identity_and_linear_bottleneck():
    torch.manual_seed(0)
    block = mobilenet.InvertedResidual(8, 8, stride=1, expand_ratio=6).eval()
    assert block.use_res_connect
    assert not isinstance(block.conv[-1], (nn.ReLU, nn.ReLU6))  # linear bottleneck: BN last
    nn.init.zeros_(block.conv[-1].weight)
    nn.init.zeros_(block.conv[-1].bias)
    x = torch.randn(2, 8, 6, 6)  # any sign: no ReLU after the sum
    with torch.no_grad():
        torch.testing.assert_close(block(x), x)
    down = mobilenet.InvertedResidual(8, 16, stride=2, expand_ratio=6)
    assert not down.use_res_connect and down(x).shape == (2, 16, 3, 3)


def test_mobilenet_bad_options():
    with pytest.raises(ValueError, match="width_mult"):
        models.create("mobilenet_v2", width_mult=0)
    with pytest.raises(ValueError, match="width_mult"):
        models.create("mobilenet_v1", width_mult=-0.5)
    with pytest.raises(ValueError, match="dropout"):
        models.create("mobilenet_v2", dropout=1.5)
    with pytest.raises(ValueError, match="inverted_residual_setting"):
        models.create("mobilenet_v2", inverted_residual_setting=[[1, 16, 1]])


# --------------------------------------------------------------------------- DenseNet

def test_densenet121_channels_table1():
    # Huang et al. 2017: k = 32; blocks of 6, 12, 24, 16 layers; transitions halve the channels.
    model = meta_model("densenet121")
    names = ["features.pool0", "features.denseblock1", "features.transition1", "features.denseblock2",
             "features.transition2", "features.denseblock3", "features.transition3", "features.denseblock4"]
    got, final = capture(model, names, torch.empty(1, 3, 224, 224, device="meta"))
    assert [got[n][1:] for n in names] == [
        (64, 56, 56), (64 + 6 * 32, 56, 56), (128, 28, 28), (128 + 12 * 32, 28, 28),
        (256, 14, 14), (256 + 24 * 32, 14, 14), (512, 7, 7), (512 + 16 * 32, 7, 7)]
    assert final == (1, 1000)
    layer = model.features.denseblock3.denselayer5
    assert layer.conv1.in_channels == 256 + 4 * 32 and layer.conv1.out_channels == 4 * 32


def test_densenet_memory_efficient_same_result():
    torch.manual_seed(0)
    plain = densenet.DenseNet(growth_rate=8, block_config=(2, 3), num_init_features=16, num_classes=4)
    efficient = densenet.DenseNet(growth_rate=8, block_config=(2, 3), num_init_features=16,
                                  num_classes=4, memory_efficient=True)
    efficient.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 32, 32)
    out_p, out_e = plain(x), efficient(x)
    torch.testing.assert_close(out_p, out_e)
    out_p.sum().backward()
    out_e.sum().backward()
    torch.testing.assert_close(plain.features.conv0.weight.grad, efficient.features.conv0.weight.grad)


def test_densenet_too_small_input():
    model = meta_model("densenet121").eval()
    assert model(torch.empty(1, 3, 29, 29, device="meta")).shape == (1, 1000)
    with pytest.raises(ValueError, match="too small along H"):
        model(torch.empty(1, 3, 28, 64, device="meta"))


# --------------------------------------------------------------------------- CIFAR nets

@pytest.mark.parametrize("name,params_m,digits", [("resnet20", 0.27, 2), ("resnet32", 0.46, 2),
                                                  ("resnet44", 0.66, 2), ("resnet56", 0.85, 2),
                                                  ("resnet110", 1.7, 1)])
def test_cifar_resnet_paper_param_counts(name, params_m, digits):
    # He et al. 2016, Table 6 (CIFAR-10), option A shortcuts.
    model = meta_model(name, num_classes=10)
    n = sum(p.numel() for p in model.parameters())
    assert round(n / 1e6, digits) == params_m
    depth = int(name[len("resnet"):])
    weighted = sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules())
    assert weighted == depth  # 6n + 2 layers, no projection convs with option A


def test_cifar_resnet_option_b_adds_projections():
    a = sum(p.numel() for p in meta_model("resnet20", num_classes=10).parameters())
    b = sum(p.numel() for p in meta_model("resnet20", num_classes=10, shortcut="B").parameters())
    # two 1x1 projections (16->32, 32->64) and their BN scale/shift
    assert b - a == 16 * 32 + 32 * 64 + 2 * (32 + 64)


def test_cifar_resnet_stage_shapes():
    model = meta_model("resnet56", num_classes=10)
    got, final = capture(model, ["layer1", "layer2", "layer3"], torch.empty(2, 3, 32, 32, device="meta"))
    assert got == {"layer1": (2, 16, 32, 32), "layer2": (2, 32, 16, 16), "layer3": (2, 64, 8, 8)}
    assert final == (2, 10) and len(model.layer1) == 9


def test_pad_shortcut():
    x = torch.randn(2, 16, 8, 8)
    short = cifar.PadShortcut(16, 32, stride=2)
    y = short(x)
    assert y.shape == (2, 32, 4, 4) and sum(p.numel() for p in short.parameters()) == 0
    torch.testing.assert_close(y[:, 8:24], x[:, :, ::2, ::2])
    assert (y[:, :8] == 0).all() and (y[:, 24:] == 0).all()


def test_cifar_bad_options():
    with pytest.raises(ValueError, match="6n"):
        cifar.CifarResNet(21)
    with pytest.raises(ValueError, match="shortcut"):
        models.create("resnet20", shortcut="C")
    vgg = models.create("vgg8_cifar", num_classes=10)
    with pytest.raises(ValueError, match="input_size"):
        vgg(torch.randn(1, 3, 64, 64))
    assert sum(p.numel() for p in vgg.parameters()) == (
        3 * 64 * 9 + 64 * 64 * 9 + 64 * 128 * 9 + 128 * 128 * 9 + 128 * 256 * 9 + 256 * 256 * 9  # convs
        + 2 * (64 + 64 + 128 + 128 + 256 + 256)                                                 # BN
        + 256 * 4 * 4 * 256 + 256 + 256 * 10 + 10)                                              # FCs


# --------------------------------------------------------------------------- channels_last, autocast

FAMILY_REPS = [("resnet18", 64), ("resnext50_32x4d", 32), ("mobilenet_v1", 64), ("mobilenet_v2", 64),
               ("densenet121", 32), ("resnet20", 32), ("vgg8_cifar", 32)]


@pytest.mark.parametrize("name,size", FAMILY_REPS)
def test_channels_last_matches_contiguous(name, size):
    torch.manual_seed(0)
    model = models.create(name, num_classes=10).eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        ref = model(x)
        model = model.to(memory_format=torch.channels_last)
        assert first_conv(model).weight.is_contiguous(memory_format=torch.channels_last)
        out = model(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name,size", FAMILY_REPS)
def test_autocast_bfloat16(name, size):
    torch.manual_seed(0)
    model = models.create(name, num_classes=10).eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
    assert out.shape == (2, 10) and out.dtype == torch.bfloat16
    assert torch.isfinite(out.float()).all()
    # bf16 keeps ~3 significant digits: the logits stay close to the float32 ones
    assert (out.float() - ref).abs().max() <= 0.1 * ref.abs().max() + 0.05
