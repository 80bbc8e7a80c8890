"""cnnlab.analysis on small hand-built networks.

Oracles: hand-computed lecture numbers (AlexNet conv1, the CS231n VGG-16 memory table),
torch.utils.flop_counter.FlopCounterMode and ptflops (independent FLOP counters), the parameter
counts of torch.nn modules, and a brute-force receptive field: backpropagate from one output unit
of a network with positive weights and count the input pixels with a nonzero gradient.
"""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

from cnnlab.analysis import (activation_memory, conv_flops, conv_output_size, conv_params,
                             linear_flops, linear_params, receptive_field, summarize,
                             training_memory)


# --------------------------------------------------------------------------- brute-force oracle
def _positive(net):
    """Positive weights, identity batch norm: every path carries gradient (no dead ReLUs)."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.fill_(1.0 / m.weight[0].numel())
                if m.bias is not None:
                    m.bias.zero_()
    return net.eval()


def brute_force_extent(net, C, H, W):
    """Input rows/cols with nonzero gradient of the middle output unit: ((top, bottom), (left, right)), unit."""
    x = torch.ones(1, C, H, W, dtype=torch.float64, requires_grad=True)
    y = net.double()(x)
    i, j = y.shape[-2] // 2, y.shape[-1] // 2
    y[0, :, i, j].sum().backward()
    nz = x.grad[0].abs().sum(0).nonzero()
    return (int(nz[:, 0].min()), int(nz[:, 0].max())), (int(nz[:, 1].min()), int(nz[:, 1].max())), (i, j)


def _in_channels(net):
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            return m.in_channels
    return 3


def predicted_extent(rf, unit):
    out = []
    for a in range(2):
        c = rf.start[a] + unit[a] * rf.jump[a]
        out.append((c - (rf.size[a] - 1) / 2, c + (rf.size[a] - 1) / 2))
    return tuple(out)


def check_rf_against_gradient(net, H, W, oracle=None):
    """Summarize ``net``; compare the last row's field with the gradient extent of ``oracle``
    (default ``net``; a max-pool is checked through a convolution with the same window)."""
    oracle = _positive(oracle if oracle is not None else net)
    C = _in_channels(net)
    rf = summarize(net, (C, H, W))[-1].receptive_field
    got_h, got_w, unit = brute_force_extent(oracle, C, H, W)
    exp_h, exp_w = predicted_extent(rf, unit)
    # the window must lie inside the image for the gradient to see all of it
    assert exp_h[0] >= 0 and exp_h[1] <= H - 1 and exp_w[0] >= 0 and exp_w[1] <= W - 1, (exp_h, exp_w)
    assert got_h == exp_h and got_w == exp_w
    return rf


layer_spec = st.tuples(st.sampled_from(["conv", "avg", "max"]), st.integers(1, 4),
                       st.integers(1, 2), st.integers(1, 2), st.integers(0, 2))


@given(st.lists(layer_spec, min_size=1, max_size=4))
def test_receptive_field_matches_gradient_oracle_on_random_stacks(specs):
    layers, oracle, formula_specs, c = [], [], [], 3
    for kind, k, s, d, p in specs:
        if kind == "conv":
            p = min(p, (k - 1) * d)
            layers.append(nn.Conv2d(c, 2, k, stride=s, padding=p, dilation=d))
            oracle.append(nn.Conv2d(c, 2, k, stride=s, padding=p, dilation=d))
            c = 2
        elif kind == "max":  # gradient flows to one pixel only: check via a conv with the same window
            p = min(p, k // 2)
            layers.append(nn.MaxPool2d(k, stride=s, padding=p, dilation=d))
            oracle.append(nn.Conv2d(c, c, k, stride=s, padding=p, dilation=d))
        else:
            d, p = 1, min(p, k // 2)
            layers.append(nn.AvgPool2d(k, stride=s, padding=p))
            oracle.append(nn.AvgPool2d(k, stride=s, padding=p))
        formula_specs.append((k, s, p, d))   # the order of nn.Conv2d: kernel, stride, padding, dilation
    f = receptive_field(formula_specs)
    H = 2 * f.size + 2 * f.jump + 6
    rf = check_rf_against_gradient(nn.Sequential(*layers), H, H, oracle=nn.Sequential(*oracle))
    assert rf.size == (f.size, f.size) and rf.jump == (f.jump, f.jump) and rf.start[0] == f.start
    assert f.sizes[-1] == f.size


class Residual(nn.Module):
    """BasicBlock-like: two 3x3 convs (first with stride) + a 1x1 strided shortcut, one ReLU used twice."""

    def __init__(self, stride=2):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.down = nn.Conv2d(3, 4, 1, stride=stride, bias=False)
        self.head = nn.Conv2d(4, 4, 3)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.conv2(out)
        out += self.down(x)
        out = self.relu(out)
        return self.head(out)


class Inception(nn.Module):
    """Four branches concatenated with torch.cat (widest: 5x5), pooling branch functional."""

    def __init__(self):
        super().__init__()
        self.b1 = nn.Conv2d(3, 2, 1)
        self.b2 = nn.Sequential(nn.Conv2d(3, 2, 1), nn.Conv2d(2, 2, 3, padding=1))
        self.b3 = nn.Sequential(nn.Conv2d(3, 2, 1), nn.Conv2d(2, 2, 5, padding=2))
        self.b4 = nn.Conv2d(3, 2, 1)
        self.out = nn.Conv2d(8, 2, 3, stride=2)

    def forward(self, x):
        pooled = F.avg_pool2d(x, 3, stride=1, padding=1)
        return self.out(torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(pooled)], 1))


def test_residual_block_receptive_field_is_union_of_branches():
    rf = check_rf_against_gradient(Residual(), 31, 31)
    # main path 3x3 s2 -> 3x3 -> head 3x3: 1 + 2 + 2*2 + 2*2 = 11; shortcut alone would give 1 + 2*2
    assert rf.size == (11, 11)
    s = summarize(Residual(), (3, 31, 31))
    assert [r.name for r in s if "relu" in r.name] == ["relu", "relu #2"]
    assert s["relu #2"].rf == 7  # after the add: union of 7 (main) and 1 (shortcut)
    assert s["add"].type == "F.add" and s["add"].inplace


def test_inception_block_receptive_field_takes_widest_branch():
    rf = check_rf_against_gradient(Inception(), 21, 21)
    assert rf.size == (5 + 2, 5 + 2)
    s = summarize(Inception(), (3, 21, 21))
    assert s["cat"].rf == 5 and s["b4"].rf == 3 and s["avg_pool2d"].rf == 3


class Functional(nn.Module):
    """Windows written in forward: F.pad, F.max_pool2d, dilated conv, then a flatten + linear."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3, dilation=2)
        self.fc = nn.Linear(2 * 5 * 5, 3)

    def forward(self, x):
        x = F.pad(x, (2, 1, 0, 3))
        x = F.max_pool2d(self.conv(x), 2)
        return self.fc(torch.flatten(x, 1))


def test_functional_ops_in_forward_are_tracked_and_counted():
    s = summarize(Functional(), (3, 12, 12))
    names = [r.name for r in s]
    assert names == ["pad", "conv", "max_pool2d", "flatten", "fc"]
    conv = s["conv"].receptive_field
    assert conv.size == (5, 5) and conv.start == (2, 0)  # pad shifts: left 2, top 0
    # brute force on the conv output (before pooling) with the pad included
    net = nn.Sequential(nn.ZeroPad2d((2, 1, 0, 3)), nn.Conv2d(3, 2, 3, dilation=2))
    check_rf_against_gradient(net, 12, 12)
    fc = s["fc"].receptive_field
    assert fc.is_global and s["fc"].jump == 0
    pool = s["max_pool2d"].receptive_field
    assert fc.size[0] == pool.size[0] + (5 - 1) * pool.jump[0]
    assert s["flatten"].inplace and s["flatten"].memory == 50 * 4


# ------------------------------------------------------------------ lecture numbers and formulas
def test_alexnet_conv1_lecture_numbers():
    s = summarize(nn.Conv2d(3, 96, 11, stride=4), (3, 227, 227))
    row = s[0]
    assert row.output_shape == (1, 96, 55, 55)
    assert row.memory == 55 * 55 * 96 * 4
    assert row.params == 11 * 11 * 3 * 96 + 96 == 34_944
    assert row.flops == 96 * 55 * 55 * 3 * 11 * 11 == 105_415_200
    assert row.rf == 11 and row.jump == 4
    assert summarize(nn.Conv2d(3, 96, 11, stride=4), (3, 227, 227), flops="flop").total_flops == 2 * 105_415_200
    # the closed-form helpers give the same numbers
    assert conv_output_size(227, 11, stride=4) == 55
    assert conv_params(3, 96, 11) == 34_944
    assert conv_flops(3, 96, 11, 55, 55) == 105_415_200
    assert activation_memory((96, 55, 55)) == 1_161_600


def test_stacked_3x3_receptive_field():
    assert receptive_field([3, 3, 3]).size == 7
    assert receptive_field([(3, 1, 1)] * 3).sizes == (3, 5, 7)
    assert receptive_field([{"kernel": 3}, {"kernel": 3, "stride": 1}]).size == 5
    assert receptive_field([nn.Conv2d(1, 1, 3), nn.Conv2d(1, 1, 3), nn.Conv2d(1, 1, 3)]).size == 7
    # AlexNet: conv1 11/4, pool 3/2, conv2 5, pool 3/2, conv3-5 3x3 -> conv5 = 163, pool5 = 195
    alex = [(11, 4), (3, 2), (5, 1), (3, 2), (3, 1), (3, 1), (3, 1)]
    assert receptive_field(alex).size == 163
    assert receptive_field(alex + [(3, 2)]).size == 195  # Araujo et al., Distill 2019
    # VGG-16 conv5_3 = 196, pool5 = 212
    vgg = [3, 3, (2, 2), 3, 3, (2, 2), 3, 3, 3, (2, 2), 3, 3, 3, (2, 2), 3, 3, 3]
    assert receptive_field(vgg).size == 196
    assert receptive_field(vgg + [(2, 2)]).size == 212


@given(st.integers(1, 8), st.integers(1, 7))
def test_stride_one_stack_is_1_plus_L_times_K_minus_1(L, K):
    assert receptive_field([K] * L).size == 1 + L * (K - 1)


@given(st.integers(1, 6), st.integers(1, 6), st.integers(1, 5), st.sampled_from([1, 2, 3]),
       st.booleans())
def test_conv_params_and_flops_match_torch(c, o, k, groups, bias):
    C_in, C_out = c * groups, o * groups
    conv = nn.Conv2d(C_in, C_out, k, groups=groups, bias=bias, device="meta")
    assert conv_params(C_in, C_out, k, groups=groups, bias=bias) == sum(p.numel() for p in conv.parameters())
    x = torch.empty(1, C_in, 9, 9, device="meta")
    with FlopCounterMode(display=False) as fc:
        y = conv(x)
    assert conv_flops(C_in, C_out, k, y.shape[2], y.shape[3], groups=groups, flops="flop") == fc.get_total_flops()
    lin = nn.Linear(C_in, C_out, bias=bias)
    assert linear_params(C_in, C_out, bias) == sum(p.numel() for p in lin.parameters())
    assert linear_flops(C_in, C_out) == C_in * C_out


def small_net():
    return nn.Sequential(
        nn.Conv2d(3, 8, 5, stride=2, padding=2), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1, groups=4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 16, 3, padding=2, dilation=2, bias=False), nn.AdaptiveAvgPool2d(2),
        nn.Flatten(), nn.Linear(64, 10))


def test_totals_match_flop_counter_and_parameter_count():
    net = small_net()
    s = summarize(net, (2, 3, 32, 32), flops="flop")
    with FlopCounterMode(display=False) as fc:
        net.eval()(torch.zeros(2, 3, 32, 32))
    assert s.total_flops == fc.get_total_flops()
    assert s.total_params == sum(p.numel() for p in net.parameters())
    for row, m in zip(s, net):
        assert row.params == sum(p.numel() for p in m.parameters())
    # the same table on the CPU (a real forward) as on the meta device
    assert summarize(net, (2, 3, 32, 32), device="cpu", flops="flop").to_dicts() == s.to_dicts()


def test_total_flops_match_ptflops_without_biases():
    ptflops = pytest.importorskip("ptflops")
    net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, bias=False), nn.Conv2d(8, 8, 3, groups=8, bias=False),
                        nn.Conv2d(8, 4, 1, bias=False), nn.Flatten(), nn.Linear(4 * 13 * 13, 5, bias=False))
    macs, params = ptflops.get_model_complexity_info(net, (3, 32, 32), as_strings=False,
                                                     print_per_layer_stat=False, verbose=False)
    s = summarize(net, (3, 32, 32))
    assert s.total_flops == macs
    assert s.total_params == params


def test_count_all_adds_hand_computed_ops():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                        nn.AdaptiveAvgPool2d(1))
    s = summarize(net, (3, 8, 8), count_all=True)
    n = 4 * 8 * 8
    assert [r.flops for r in s] == [n * 27, n, n, 4 * 4 * 4 * 4, 4 * 4 * 4]
    assert summarize(net, (3, 8, 8)).total_flops == n * 27


def test_module_reused_gets_one_row_per_call_and_params_once():
    conv = nn.Conv2d(3, 3, 3, padding=1)
    net = nn.Sequential(conv, nn.ReLU(), conv)
    s = summarize(net, (3, 10, 10))
    assert [r.name for r in s] == ["0", "1", "0 #2"]
    assert s["0"].params == 84 and s["0 #2"].params == 0
    assert s.total_params == 84 and s["0 #2"].flops == s["0"].flops
    assert s["0 #2"].rf == 5


def test_table_outputs():
    s = summarize(small_net(), (3, 32, 32))
    assert len(s) == len(list(s)) == 10
    text = str(s)
    assert "1 FLOP = 1 multiply-add" in text and "Conv2d" in text and f"{s.total_params:,}" in text
    assert "<table>" in s._repr_html_() and "AdaptiveAvgPool2d" in s._repr_html_()
    d = s.to_dicts()[0]
    assert d["output_shape"] == (1, 8, 16, 16) and d["rf"] == 5 and d["jump"] == 2 and d["start"] == 0
    assert set(d) >= {"name", "type", "output_shape", "memory", "params", "flops", "rf", "jump", "start"}
    assert "ModelSummary" in repr(s)


def test_model_is_left_unchanged():
    net = small_net().train()
    net[1].eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    summarize(net, (3, 32, 32), device="cpu")
    assert net.training and not net[1].training
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


@pytest.mark.parametrize("bad, match", [
    ((224, 224), "3 entries"), ((1, 1, 3, 224, 224), "3 entries"), ((3, 0, 224), r"input_size\[1\]"),
    ("3x224x224", "tuple"), ((3, 2.5, 224), r"input_size\[1\]"),
])
def test_bad_input_size(bad, match):
    with pytest.raises(ValueError, match=match):
        summarize(nn.Conv2d(3, 4, 3), bad)


def test_bad_arguments():
    with pytest.raises(ValueError, match="flops"):
        summarize(nn.Conv2d(3, 4, 3), (3, 8, 8), flops="gflops")
    with pytest.raises(ValueError, match="nn.Module"):
        summarize(lambda x: x, (3, 8, 8))
    with pytest.raises(ValueError, match="dtype"):
        summarize(nn.Conv2d(3, 4, 3), (3, 8, 8), dtype=torch.int64)
    with pytest.raises(ValueError, match=r"input_size \(1, 1, 8, 8\)"):
        summarize(nn.Conv2d(3, 4, 3), (1, 8, 8))  # wrong number of channels
    with pytest.raises(ValueError, match="groups"):
        conv_params(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="kernel"):
        receptive_field([(0, 1)])
    with pytest.raises(ValueError, match="sequence"):
        receptive_field(3)
    with pytest.raises(ValueError, match="optimizer"):
        training_memory(nn.Conv2d(3, 4, 3), (3, 8, 8), optimizer="rmsprop")
    with pytest.raises(ValueError, match="batch_size"):
        training_memory(nn.Conv2d(3, 4, 3), (2, 3, 8, 8), batch_size=4)


def test_training_memory_hand_computed():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True), nn.Flatten(), nn.Linear(8 * 8 * 8, 10))
    n_params = 8 * 27 + 8 + 512 * 10 + 10
    acts = 3 * 64 + 8 * 64 + 10  # input, conv output (ReLU in place, flatten a view), logits
    for opt, k in (("sgd", 0), ("momentum", 1), ("adam", 2)):
        m = training_memory(net, (3, 8, 8), batch_size=16, optimizer=opt)
        assert m.activations == 16 * acts * 4
        assert m.parameters == m.gradients == n_params * 4
        assert m.optimizer_state == k * n_params * 4
        assert m.total == 16 * acts * 4 + (2 + k) * n_params * 4
    half = training_memory(net, (16, 3, 8, 8), optimizer="adam", dtype=torch.float16)
    assert half.total == (16 * acts + 4 * n_params) * 2
    assert "adam" in str(half) and "TrainingMemory" in repr(half)


# The CS231n lecture's VGG-16 memory table, value by value: activations of one 224x224 image,
# the input included (numbers, not bytes).
CS231N_VGG16_ACTIVATIONS = (224 * 224 * 3 + 2 * 224 * 224 * 64 + 112 * 112 * 64 + 2 * 112 * 112 * 128 + 56 * 56 * 128
                            + 3 * 56 * 56 * 256 + 28 * 28 * 256 + 3 * 28 * 28 * 512 + 14 * 14 * 512
                            + 3 * 14 * 14 * 512 + 7 * 7 * 512 + 4096 + 4096 + 1000)


def test_vgg16_memory_matches_cs231n_table():
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
    layers, c = [], 3
    for v in cfg:
        layers += [nn.MaxPool2d(2)] if v == "M" else [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(inplace=True)]
        c = c if v == "M" else v
    with torch.device("meta"):
        net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(25088, 4096), nn.ReLU(True),
                            nn.Linear(4096, 4096), nn.ReLU(True), nn.Linear(4096, 1000))
    s = summarize(net, (3, 224, 224))
    assert s.input_memory + s.total_memory == CS231N_VGG16_ACTIVATIONS * 4
    assert s.total_params == 138_357_544
    assert s[-3].rf == s[-1].rf and s["29"].rf == 196 and s["30"].rf == 212
    assert math.isclose(s.total_flops / 1e9, 15.47, rel_tol=5e-3)  # torchvision's vgg16 GFLOPS
