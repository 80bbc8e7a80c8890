"""The crossing rules of hardened grading (autograder/README.md, "Crossing the boundary").

Each test runs real student code in a real sandboxed agent process and checks, against an
oracle computed on the trusted side (the same code run locally, torch itself, torchvision's
recorded state_dict shapes), that the semantics the notebooks rely on survive the crossing —
and that each new path refuses, or scores as the honest wrong answer, an attack aimed at it.
"""
from __future__ import annotations

import collections
import copy
import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from autograder.secure import sandbox, wire

DATA = Path(__file__).parent / "data"


@pytest.fixture
def student(tmp_path):
    """``student(src)`` runs ``src`` in a fresh sandboxed agent; ``student.get(name)`` is the
    trusted side's handle on a name the student defined."""
    wd = tmp_path / "work"
    wd.mkdir()
    agent = sandbox.start_agent(wd, sandbox.Limits(), [], tmp_path / "log")
    conn = wire.AgentConnection(agent.rfd, agent.wfd, lambda: time.monotonic() + 60)

    class Student:
        def __call__(self, src):
            reply, _ = conn.request({"op": "exec", "src": src})
            assert reply.get("ok") is True, reply
            return reply

        def get(self, name):
            return conn.value({"op": "get", "name": name})

    try:
        yield Student()
    finally:
        agent.kill()


# ---------------------------------------------------------------- in-place updates


def test_bn_param_dict_and_array_updates_reach_the_caller(student):
    student(
        "import numpy as np\n"
        "def batchnorm_forward(x, gamma, beta, bn_param):\n"
        "    m = bn_param.get('momentum', 0.9)\n"
        "    rm = bn_param.get('running_mean', np.zeros(x.shape[1]))\n"
        "    bn_param['running_mean'] = m * rm + (1 - m) * x.mean(axis=0)\n"
        "    bn_param.setdefault('seen', []).append(len(x))\n"
        "    return gamma * (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5) + beta, None\n"
        "def scale_(a, k):\n    a *= k\n")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 3))
    bn_param = {"mode": "train", "momentum": 0.5}
    out, cache = student.get("batchnorm_forward")(x, np.ones(3), np.zeros(3), bn_param)
    assert cache is None
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-12)
    # the caller's own dict object now holds what the layer stored (CS231n's contract)
    np.testing.assert_allclose(bn_param["running_mean"], 0.5 * x.mean(axis=0))
    assert bn_param["seen"] == [8] and bn_param["mode"] == "train"
    student.get("batchnorm_forward")(x, np.ones(3), np.zeros(3), bn_param)
    np.testing.assert_allclose(bn_param["running_mean"], 0.75 * x.mean(axis=0))
    a = np.arange(4.0)
    view = a   # identity kept: the caller's array is updated, not replaced
    student.get("scale_")(a, 3)
    assert view is a and a.tolist() == [0.0, 3.0, 6.0, 9.0]


def _train_src():
    return (
        "import torch\nfrom torch import nn\n"
        "def train_one_epoch(model, loader, optimizer, device):\n"
        "    model.train()\n"
        "    total = 0.0\n"
        "    for xb, yb in loader:\n"
        "        xb, yb = xb.to(device), yb.to(device)\n"
        "        optimizer.zero_grad()\n"
        "        loss = nn.functional.cross_entropy(model(xb), yb)\n"
        "        loss.backward()\n"
        "        optimizer.step()\n"
        "        total += loss.item() * len(xb)\n"
        "    return total / sum(len(b[0]) for b in loader)\n")


def test_model_and_optimizer_trained_in_place(student):
    """A library model + optimizer passed to student training code come back trained, in
    place, exactly as the same code run here trains a copy (the oracle)."""
    student(_train_src())
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    g = torch.Generator().manual_seed(1)
    loader = [(torch.randn(6, 5, generator=g), torch.randint(0, 3, (6,), generator=g)) for _ in range(3)]
    ref_model = copy.deepcopy(model)
    ref_opt = torch.optim.SGD(ref_model.parameters(), lr=0.1, momentum=0.9)
    ns = {}
    exec(_train_src(), ns)
    want = ns["train_one_epoch"](ref_model, loader, ref_opt, torch.device("cpu"))

    first_layer, first_weight = model[0], model[0].weight
    got = student.get("train_one_epoch")(model, loader, opt, torch.device("cpu"))
    assert got == pytest.approx(want, rel=1e-6)
    assert model[0] is first_layer and model[0].weight is first_weight   # identity preserved
    for (k, v), (k2, v2) in zip(model.state_dict().items(), ref_model.state_dict().items()):
        assert k == k2 and v.shape == v2.shape and v.dtype == v2.dtype, k
        torch.testing.assert_close(v, v2, rtol=1e-5, atol=1e-6, msg=k)
    assert model[1].num_batches_tracked.shape == () and int(model[1].num_batches_tracked) == 3
    # the optimizer (same object) got its momentum buffers back: they equal the oracle's
    assert opt.param_groups[0]["params"][0] is first_weight
    for p, q in zip(opt.param_groups[0]["params"], ref_opt.param_groups[0]["params"]):
        torch.testing.assert_close(opt.state[p]["momentum_buffer"], ref_opt.state[q]["momentum_buffer"],
                                   rtol=1e-5, atol=1e-6)
    again = ns["train_one_epoch"](model, loader, opt, torch.device("cpu"))
    ref_again = ns["train_one_epoch"](ref_model, loader, ref_opt, torch.device("cpu"))
    assert again == pytest.approx(ref_again, rel=1e-5)


def test_freeze_and_new_head_keep_identity(student):
    student(
        "import torch\nfrom torch import nn\n"
        "def freeze_body(net):\n"
        "    for name, p in net.named_parameters():\n"
        "        p.requires_grad = name.startswith('fc.')\n"
        "    return net\n"
        "def new_head(net, num_classes):\n"
        "    net.fc = nn.Linear(net.fc.in_features, num_classes)\n"
        "    return net\n"
        "def zero_init_(net):\n"
        "    with torch.no_grad():\n"
        "        net.body[1].weight.zero_()\n")

    class Net(nn.Module):   # a class the grader defines: crosses as its parts, comes back as itself
        pass

    torch.manual_seed(0)
    net = nn.Sequential(collections.OrderedDict(
        body=nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)), flat=nn.Flatten(), fc=nn.Linear(4, 10)))
    old_fc, old_body = net.fc, net.body
    out = student.get("freeze_body")(net)
    assert out is net
    assert [p.requires_grad for p in net.body.parameters()] == [False] * 4
    assert net.fc.weight.requires_grad and net.fc.bias.requires_grad
    out = student.get("new_head")(net, 7)
    assert out is net and net.body is old_body and net.fc is not old_fc
    assert type(net.fc) is nn.Linear and net.fc.weight.shape == (7, 4)
    assert net.eval()(torch.zeros(1, 3, 3, 3)).shape == (1, 7)   # the module works here
    student.get("zero_init_")(net)
    assert float(net.body[1].weight.abs().sum()) == 0.0
    with pytest.raises(TypeError, match="cannot pass"):
        student.get("freeze_body")(Net())   # defined in a test function: no importable path


# ---------------------------------------------------------------- student modules and values


_RESNET18 = '''
import torch
from torch import nn

class BasicBlock(nn.Module):
    expansion = 1
    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + idt)

class MyResNet(nn.Module):
    def __init__(self, layers=(2, 2, 2, 2), num_classes=1000):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], 2)
        self.layer3 = self._make_layer(256, layers[2], 2)
        self.layer4 = self._make_layer(512, layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)
    def _make_layer(self, planes, blocks, stride=1):
        down = None
        if stride != 1 or self.inplanes != planes:
            down = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
        layers = [BasicBlock(self.inplanes, planes, stride, down)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)
    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))
'''


def test_student_class_state_dict_matches_torchvision(student):
    """A student-defined model stays on the student's side (a proxy); its state_dict crosses as
    data with torchvision's keys and exact shapes — 0-d ``num_batches_tracked`` stays 0-d."""
    student(_RESNET18 + "net = MyResNet()\n")
    net = student.get("net")
    assert isinstance(net, wire.RemoteObject) and not isinstance(net, nn.Module)
    sd = net.state_dict()
    want = json.loads((DATA / "torchvision_state_dicts.json").read_text())["models"]["resnet18"]["state_dict"]
    assert list(sd) == list(want)
    assert {k: list(v.shape) for k, v in sd.items()} == want
    assert sd["bn1.num_batches_tracked"].shape == () and sd["bn1.num_batches_tracked"].dtype == torch.int64
    assert sum(p.numel() for p in net.parameters()) == \
        json.loads((DATA / "torchvision_state_dicts.json").read_text())["models"]["resnet18"]["num_params"]
    # load_state_dict from the trusted side reaches the student's model
    sd2 = {k: torch.full_like(v, 0.5) if v.is_floating_point() else v for k, v in sd.items()}
    net.load_state_dict(sd2)
    assert float(net.state_dict()["fc.bias"][0]) == 0.5


_DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.complex64, torch.int8,
           torch.uint8, torch.int16, torch.int32, torch.int64, torch.bool]


@pytest.mark.parametrize("dtype", _DTYPES, ids=str)
def test_student_tensor_of_each_dtype(student, dtype):
    student(
        "import torch\n"
        "def make(dtype, shape):\n"
        "    g = torch.Generator().manual_seed(3)\n"
        "    t = (torch.randn(shape, generator=g) * 5).to(dtype)\n"
        "    return t, t.sum(), torch.empty(shape, dtype=dtype, device='meta'), t.shape, t.device\n")
    t, s, meta, shape, dev = student.get("make")(dtype, (2, 3))
    g = torch.Generator().manual_seed(3)
    want = (torch.randn((2, 3), generator=g) * 5).to(dtype)
    assert type(t) is torch.Tensor and t.dtype == dtype and t.shape == (2, 3)
    assert torch.equal(t, want)
    assert s.shape == () and s.dtype == want.sum().dtype and torch.equal(s, want.sum())   # 0-d stays 0-d
    assert meta.device.type == "meta" and meta.dtype == dtype and meta.shape == (2, 3)
    assert type(shape) is torch.Size and shape == (2, 3)
    assert type(dev) is torch.device and dev == torch.device("cpu")


def test_student_module_returned_by_value(student):
    student(
        "import torch\nfrom torch import nn\n"
        "def build():\n"
        "    torch.manual_seed(0)\n"
        "    m = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(),\n"
        "                      nn.Linear(2 * 4 * 4, 3))\n"
        "    m.eval()\n"
        "    return m, m(torch.ones(1, 1, 4, 4))\n")
    m, y = student.get("build")()
    assert type(m) is nn.Sequential and not m.training
    assert [type(c).__name__ for c in m] == ["Conv2d", "BatchNorm2d", "ReLU", "Flatten", "Linear"]
    torch.testing.assert_close(m(torch.ones(1, 1, 4, 4)), y)   # the rebuilt module computes the same
    assert m[1].num_batches_tracked.shape == ()


# ---------------------------------------------------------------- attacks on the new paths


def test_reduce_and_setstate_payloads_are_never_unpickled(student, tmp_path):
    marker = tmp_path / "pwned"
    student(
        "import os\n"
        f"MARK = {str(marker)!r}\n"
        "class Evil:\n"
        "    def __reduce__(self):\n"
        "        return (os.system, ('touch ' + MARK,))\n"
        "class Evil2:\n"
        "    def __setstate__(self, st):\n"
        "        open(MARK, 'w').write('x')\n"
        "    def __getstate__(self):\n"
        "        return {'a': 1}\n"
        "def give():\n    return Evil(), [Evil2()], {'k': Evil()}\n"
        "def stash(d):\n    d['payload'] = Evil()\n    d['p2'] = Evil2()\n")
    a, (b,), c = student.get("give")()
    assert isinstance(a, wire.RemoteObject) and isinstance(b, wire.RemoteObject)
    assert isinstance(c["k"], wire.RemoteObject)
    d = {}
    student.get("stash")(d)   # the payload stays on the student's side, behind handles
    assert isinstance(d["payload"], wire.RemoteObject) and isinstance(d["p2"], wire.RemoteObject)
    assert not marker.exists()


def test_module_subclass_that_lies_stays_remote(student):
    """A student subclass of a library module (lying ``state_dict``/``__eq__``) is never rebuilt
    here: it stays a proxy, so a test that needs a real ``nn.Module`` scores it as wrong."""
    student(
        "import torch\nfrom torch import nn\n"
        "class Liar(nn.Linear):\n"
        "    def state_dict(self, *a, **k):\n"
        "        return {'weight': torch.zeros(10, 512), 'bias': torch.zeros(10)}\n"
        "    def __eq__(self, other):\n        return True\n"
        "    __hash__ = nn.Linear.__hash__\n"
        "def build():\n    return Liar(2, 2)\n"
        "def patched():\n"
        "    nn.Linear.state_dict = lambda self, *a, **k: {'weight': torch.zeros(10, 512)}\n"
        "    return nn.Linear(2, 2)\n")
    liar = student.get("build")()
    assert isinstance(liar, wire.RemoteObject) and not isinstance(liar, nn.Module)
    assert not (liar == nn.Linear(2, 2))            # its __eq__ decides nothing here
    # a library class patched inside the student's process: the description is of the real
    # parameters, and state_dict here is torch's own
    lin = student.get("patched")()
    assert type(lin) is nn.Linear and list(lin.state_dict()) == ["weight", "bias"]
    assert lin.weight.shape == (2, 2)


def test_tensor_subclass_arrives_as_plain_data(student):
    student(
        "import torch\n"
        "class Always(torch.Tensor):\n"
        "    def __eq__(self, other):\n        return torch.ones(1, dtype=torch.bool)\n"
        "    def allclose(self, *a, **k):\n        return True\n"
        "def forward():\n    return torch.zeros(3).as_subclass(Always)\n")
    t = student.get("forward")()
    assert type(t) is torch.Tensor
    assert not torch.allclose(t, torch.ones(3)) and torch.equal(t, torch.zeros(3))


def _module_desc(cls, attrs=(), params=(), children=()):
    return {"t": "module", "cls": cls, "attrs": [list(a) for a in attrs], "params": list(params),
            "buffers": [], "np": [], "children": list(children), "training": True}


@pytest.mark.parametrize("desc, message", [
    (_module_desc("os:system"), "not from the course library"),
    (_module_desc("builtins:object"), "not from the course library"),
    (_module_desc("autograder.secure.wire:RemoteObject"), "not from the course library"),
    (_module_desc("torch.nn:Module.__subclasses__"), "not from the course library"),
    (_module_desc("cnnlab.not_a_module_here:Net"), "not loaded"),
    (_module_desc("torch:Tensor"), "not a Module"),
    (_module_desc("torch.nn.modules.linear:Linear", attrs=[("forward", 1)]), "would hide the method"),
    (_module_desc("torch.nn.modules.linear:Linear", attrs=[("__class__", 1)]), "bad module attribute"),
    (_module_desc("torch.nn.modules.linear:Linear", attrs=[("in_features", {"t": "h", "id": 1})]), "not data"),
    (_module_desc("torch.nn.modules.linear:Linear", children=[("x", {"t": "nd", "i": 0})]), "not a module"),
])
def test_forged_module_descriptions_are_refused(desc, message):
    """What a fully compromised student process could send instead of an honest description."""
    with pytest.raises(wire.ProtocolError, match=message):
        wire.decode(desc, [b""], None)


def test_forged_tensor_data_is_refused():
    buf = io.BytesIO()
    np.save(buf, np.array([object()], dtype=object), allow_pickle=True)   # a pickle inside .npy
    with pytest.raises(wire.ProtocolError):
        wire.decode({"t": "tensor", "dtype": "float32", "shape": [1], "dev": "cpu", "i": 0}, [buf.getvalue()], None)
    buf = io.BytesIO()
    np.save(buf, np.zeros(3, np.float32))
    with pytest.raises(wire.ProtocolError, match="does not match"):
        wire.decode({"t": "tensor", "dtype": "float32", "shape": [4], "dev": "cpu", "i": 0}, [buf.getvalue()], None)
    with pytest.raises(wire.ProtocolError, match="unknown tensor dtype"):
        wire.decode({"t": "tensor", "dtype": "__class__", "shape": [], "dev": "meta"}, [], None)
    with pytest.raises(wire.ProtocolError, match="reference"):
        wire.decode({"t": "ref", "tok": 0}, [], None)   # a 'ref' to nothing the grader passed
