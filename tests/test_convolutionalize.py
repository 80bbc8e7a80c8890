"""FC-to-conv conversion: equality with the original at the training size, score maps equal to
per-window evaluation (unpadded nets), shapes for VGG/AlexNet, costs, unsupported models."""
import copy

import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnlab.analysis import sliding_window_cost, summarize
from cnnlab.models import create, list_models
from cnnlab.models.convolutionalize import (
    ConvolutionalizedNet,
    average_scores,
    convolutionalize,
    sliding_window_scores,
)




class TinyVGG(nn.Module):
    """VGG layout (features / avgpool / classifier) at toy scale. ``pad=0``: "valid" 3x3 convs,
    training size 30 (30 -> 28 -> 14 -> 12 -> 6 -> 4 -> 2), total stride 8. ``pad=1``: training
    size 16 (16 -> 8 -> 4 -> 2)."""

    def __init__(self, pad=0, num_classes=5):
        super().__init__()
        layers, c = [], 3
        for v in (4, 6, 8):
            layers += [nn.Conv2d(c, v, 3, padding=pad), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            c = v
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((2, 2))
        self.classifier = nn.Sequential(
            nn.Dropout(0.5), nn.Linear(8 * 2 * 2, 16), nn.ReLU(inplace=True),
            nn.Dropout(0.5), nn.Linear(16, 16), nn.ReLU(inplace=True), nn.Linear(16, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def _tiny(pad=0, seed=0):
    torch.manual_seed(seed)
    return TinyVGG(pad).double().eval()


def test_training_size_output_equals_original():
    net = _tiny()
    x = torch.randn(3, 3, 30, 30, dtype=torch.float64)
    conv = convolutionalize(net)
    assert isinstance(conv, ConvolutionalizedNet) and not conv.training
    y = conv(x)
    assert y.shape == (3, 5, 1, 1)
    torch.testing.assert_close(y.flatten(1), net(x), rtol=1e-12, atol=1e-12)
    # the weights are the Linear weights reshaped in flatten's (C, H, W) order
    assert conv.classifier[1].kernel_size == (2, 2) and conv.classifier[4].kernel_size == (1, 1)
    torch.testing.assert_close(conv.classifier[1].weight.flatten(1), net.classifier[1].weight)
    assert [type(m) for m in conv.classifier] == [nn.Dropout, nn.Conv2d, nn.ReLU, nn.Dropout,
                                                  nn.Conv2d, nn.ReLU, nn.Conv2d]


def test_original_untouched_and_no_shared_tensors():
    net = _tiny()
    before = copy.deepcopy(net.state_dict())
    conv = convolutionalize(net)
    with torch.no_grad():
        for p in conv.parameters():
            p.add_(1.0)
    after = net.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert isinstance(net.classifier[1], nn.Linear) and isinstance(net.avgpool, nn.AdaptiveAvgPool2d)


@settings(max_examples=6)
@given(st.integers(0, 3), st.integers(0, 3), st.integers(0, 100))
def test_score_map_equals_sliding_windows_for_unpadded_net(a, b, seed):
    net = _tiny(seed=seed)
    x = torch.randn(2, 3, 30 + 8 * a, 30 + 8 * b, dtype=torch.float64)
    scores = convolutionalize(net)(x)
    ref = sliding_window_scores(net, x, window=30, stride=8)
    assert scores.shape == ref.shape == (2, 5, a + 1, b + 1)
    torch.testing.assert_close(scores, ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(average_scores(scores), ref.mean((2, 3)))


def test_padded_net_same_shape_but_border_effects():
    """With zero padding the crops see zeros where the large image has pixels: same map size,
    different numbers (the documented caveat)."""
    net = _tiny(pad=1)
    x = torch.randn(1, 3, 32, 32, dtype=torch.float64)
    conv = convolutionalize(net)
    torch.testing.assert_close(conv(x[:, :, :16, :16]).flatten(1), net(x[:, :, :16, :16]))
    scores, ref = conv(x), sliding_window_scores(net, x, window=16, stride=8)
    assert scores.shape == ref.shape == (1, 5, 3, 3)
    assert (scores - ref).abs().max() > 1e-6


def test_alexnet_training_size_equality():
    torch.manual_seed(0)
    net = create("alexnet", num_classes=10).eval()
    x = torch.randn(1, 3, 224, 224)
    conv = convolutionalize(net)
    assert conv.classifier[1].weight.shape == (4096, 256, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(conv(x).flatten(1), net(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", [n for n in list_models("vgg") if "cifar" not in n])
def test_vgg_384_gives_6x6_map(name):
    with torch.device("meta"):   # shapes only: no memory, no arithmetic
        conv = convolutionalize(create(name))
        assert conv.classifier[0].weight.shape == (4096, 512, 7, 7)
        assert conv.classifier[3].weight.shape == (4096, 4096, 1, 1)
        assert conv(torch.empty(1, 3, 384, 384)).shape == (1, 1000, 6, 6)   # (384/32) - 7 + 1
        assert conv(torch.empty(1, 3, 224, 224)).shape == (1, 1000, 1, 1)
        with pytest.raises(ValueError, match="too small"):
            conv(torch.empty(1, 3, 192, 192))


def test_costs():
    net = _tiny()
    c = sliding_window_cost(net, 46, window=30, stride=8)
    assert c["windows"] == c["score_map"] == (3, 3)
    assert c["sliding"] == 9 * summarize(net, (3, 30, 30)).total_flops
    # independent count: summarize the converted (all-convolutional) net on the large image
    assert c["convolutional"] == summarize(convolutionalize(net), (3, 46, 46)).total_flops
    assert c["speedup"] == c["sliding"] / c["convolutional"] > 1
    with torch.device("meta"):
        vgg = create("vgg16")
    v = sliding_window_cost(vgg, 384)
    assert v["windows"] == (6, 6) and v["num_windows"] == 36
    assert v["per_window"] == summarize(vgg, (3, 224, 224)).total_flops
    assert v["features"] + 36 * v["head"] == v["convolutional"]
    assert 10 < v["speedup"] < 13


def test_unsupported_models_and_bad_input():
    with torch.device("meta"):
        for name in ("resnet18", "googlenet", "densenet121", "vgg8_cifar"):
            with pytest.raises(ValueError, match="cannot convolutionalize"):
                convolutionalize(create(name))
    net = _tiny()
    bad = copy.deepcopy(net)
    bad.classifier[2] = nn.BatchNorm1d(16)
    with pytest.raises(ValueError, match=r"classifier.2 \(BatchNorm1d\)"):
        convolutionalize(bad)
    bad = copy.deepcopy(net)
    bad.avgpool = nn.AdaptiveAvgPool2d((3, 3))      # 8*3*3 != in_features 32
    with pytest.raises(ValueError, match="in_features == C"):
        convolutionalize(bad)
    with pytest.raises(ValueError, match="does not fit"):
        sliding_window_scores(net, torch.zeros(1, 3, 20, 40, dtype=torch.float64), window=30)
    with pytest.raises(ValueError, match=r"\(N, K, h, w\)"):
        average_scores(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="model must be"):
        convolutionalize("vgg16")
