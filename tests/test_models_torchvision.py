"""Every model of the torchvision manifest has torchvision's exact state_dict: the same keys
(BN ``num_batches_tracked`` included), the same shapes and the same parameter count, so that
torchvision's pretrained files load with ``strict=True``.

The oracle is ``tests/data/torchvision_state_dicts.json``, dumped from torchvision itself.
Models are built on the ``meta`` device (no memory, no init time) when possible.
"""
import json
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from cnnlab import models

MANIFEST = json.loads((Path(__file__).parent / "data" / "torchvision_state_dicts.json").read_text())["models"]
NAMES = sorted(MANIFEST)


def build(name, **options):
    """Build a registered model on the meta device (shapes only), falling back to the CPU."""
    try:
        with torch.device("meta"):
            return models.create(name, **options)
    except (NotImplementedError, RuntimeError):
        return models.create(name, **options)


def shapes(model):
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def test_manifest_is_complete():
    # The 19 models the course promises torchvision compatibility for.
    assert len(NAMES) == 19
    for name in ("resnet50", "mobilenet_v2", "densenet121", "vgg16", "googlenet", "alexnet"):
        assert name in NAMES


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_matches_torchvision(name):
    if name not in models.list_models():
        pytest.fail(f"{name} is in the torchvision manifest but not registered")
    model = build(name)
    want = MANIFEST[name]["state_dict"]
    got = shapes(model)
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    assert not missing and not extra, f"{name}: missing {missing[:5]}, unexpected {extra[:5]}"
    wrong = {k: (got[k], want[k]) for k in want if got[k] != want[k]}
    assert not wrong, f"{name}: shape (ours, torchvision) differs for {dict(list(wrong.items())[:5])}"
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == MANIFEST[name]["num_params"]


@pytest.mark.parametrize("name", NAMES)
def test_num_classes_changes_only_the_classifier(name):
    if name not in models.list_models():
        pytest.fail(f"{name} is in the torchvision manifest but not registered")
    model = build(name, num_classes=10)
    got, want = shapes(model), MANIFEST[name]["state_dict"]
    assert set(got) == set(want)
    changed = [k for k in want if got[k] != want[k]]
    assert changed, "num_classes=10 changed no shape"
    linear = {n for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    for k in changed:
        assert k.rsplit(".", 1)[0] in linear, f"{k} is not a classifier parameter"
        assert want[k][0] == 1000 and got[k][0] == 10 and got[k][1:] == want[k][1:]
