"""cnnlab.analysis on the registered models against published numbers.

References: torchvision's model documentation (``num_params`` and ``_ops`` = GFLOPS, one
multiply-add per FLOP, at 224x224), Araujo, Norris & Sim, "Computing Receptive Fields of
Convolutional Neural Networks", Distill 2019 (AlexNet 195, VGG-16 212, MobileNet v1 315), and a
brute-force receptive field (gradient of one output unit) on the CIFAR ResNet-20.
"""
import math

import pytest
import torch
import torch.nn as nn

from cnnlab import models
from cnnlab.analysis import model_summary, summarize, training_memory

# name: (GFLOPS, parameters) from torchvision's weights metadata (IMAGENET1K_V1)
TORCHVISION = {
    "resnet18": (1.814, 11_689_512),
    "resnet50": (4.089, 25_557_032),
    "resnext50_32x4d": (4.230, 25_028_904),
    "vgg16": (15.470, 138_357_544),
    "alexnet": (0.714, 61_100_840),
    "googlenet": (1.498, 6_624_904),
    "mobilenet_v2": (0.301, 3_504_872),
    "densenet121": (2.834, 7_978_856),
}


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_flops_and_params_match_torchvision(name):
    gflops, params = TORCHVISION[name]
    s = model_summary(name)
    assert math.isclose(s.total_flops / 1e9, gflops, rel_tol=5e-3), s.total_flops
    assert s.total_params == params
    assert model_summary(name, flops="flop").total_flops == 2 * s.total_flops


def test_mobilenet_v1_matches_howard_et_al():
    s = model_summary("mobilenet_v1")
    # Howard et al. 2017, Table 8: 1.0 MobileNet-224, 569 million mult-adds, 4.2 million parameters
    assert math.isclose(s.total_flops / 1e6, 569, rel_tol=5e-3)
    assert math.isclose(s.total_params / 1e6, 4.2, rel_tol=2e-2)
    last_conv = [r for r in s if r.type == "Conv2d"][-1]
    assert last_conv.rf == 315  # Distill 2019


def test_classic_receptive_fields():
    vgg = model_summary("vgg16")
    assert vgg["features.28"].rf == 196  # conv5_3
    assert vgg["features.30"].rf == 212  # pool5 (Distill 2019)
    alex = model_summary("alexnet")
    assert alex["features.10"].rf == 163  # conv5
    assert alex["features.12"].rf == 195  # pool5 (Distill 2019)
    first = alex[0]
    assert first.output_shape == (1, 64, 55, 55) and first.rf == 11 and first.jump == 4


def test_alexnet_original_conv1_on_227():
    s = summarize(models.create("alexnet_original"), (3, 227, 227))
    conv1 = [r for r in s if r.type == "Conv2d"][0]
    assert conv1.output_shape == (1, 96, 55, 55)
    assert conv1.memory == 55 * 55 * 96 * 4
    assert conv1.params == 34_944 and conv1.flops == 105_415_200


def test_resnet20_receptive_field_by_gradient():
    net = models.create("resnet20").eval()
    with torch.no_grad():  # positive weights: no dead ReLU, every path carries gradient
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.fill_(1.0 / m.weight[0].numel())
    H = 112
    s = summarize(net, (3, H, H))
    last = [r for r in s if r.type == "Conv2d"][-1]
    rf = last.receptive_field
    assert rf.size == (81, 81)  # 3 + 2*6 ... = 1 + 2*(7 + 2*6 + 4*6): see the recurrence
    feats = {}
    net.layer3.register_forward_hook(lambda m, i, o: feats.setdefault("y", o))
    x = torch.ones(1, 3, H, H, requires_grad=True)
    net(x)
    y = feats["y"]
    u = y.shape[-1] // 2
    y[0, :, u, u].sum().backward()
    nz = x.grad[0].abs().sum(0).nonzero()
    lo = rf.start[0] + u * rf.jump[0] - (rf.size[0] - 1) / 2
    assert 0 <= lo and lo + rf.size[0] - 1 <= H - 1
    assert (int(nz[:, 0].min()), int(nz[:, 0].max())) == (lo, lo + rf.size[0] - 1)
    assert (int(nz[:, 1].min()), int(nz[:, 1].max())) == (lo, lo + rf.size[0] - 1)


def test_resnet_blocks_reuse_relu_and_track_the_add():
    s = model_summary("resnet18")
    names = [r.name for r in s]
    assert "layer1.0.relu #2" in names and "layer1.0.add" in names
    # after layer4 (before global pooling): torchvision ResNet-18 receptive field 435
    layer4_out = s["layer4.1.relu #2"]
    assert layer4_out.rf == 435 and layer4_out.jump == 32
    assert s["fc"].receptive_field.is_global


def test_vgg16_training_memory():
    with torch.device("meta"):
        net = models.create("vgg16")
    m = training_memory(net, (3, 224, 224), batch_size=32, optimizer="adam")
    # Oracles: the CS231n lecture's table (about 24M numbers, ~93 MB per image, forward only) and
    # torchvision's 138,357,544 parameters; Adam keeps two moments per parameter, float32.
    from test_analysis import CS231N_VGG16_ACTIVATIONS
    # torchvision's VGG-16 has an AdaptiveAvgPool2d(7) the lecture's has not: one more 7x7x512 output
    assert m.activations == 32 * (CS231N_VGG16_ACTIVATIONS + 7 * 7 * 512) * 4
    assert m.parameters == m.gradients == 138_357_544 * 4
    assert m.optimizer_state == 2 * 138_357_544 * 4
    assert m.total == m.activations + m.parameters + m.gradients + m.optimizer_state
