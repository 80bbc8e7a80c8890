"""Every receptive-field path of the course agrees, on random stacks of windows, with a brute-force
oracle: the input pixels that the gradient of one output unit reaches (PyTorch's autograd through
convolutions with positive weights, so no gradient cancels).

Paths: :func:`cnnlab.analysis.receptive_field` (the one-axis recurrence), the per-layer table of
:func:`cnnlab.analysis.summarize` (its ``rf`` and ``jump``), and the pictures' back-projection
:func:`cnnlab.plots.receptive_field_mask`. All read a layer as ``nn.Conv2d`` does: (kernel,
stride, padding, dilation).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnlab.analysis import layer_window, receptive_field, summarize
from cnnlab.plots import receptive_field_mask

layer = st.tuples(st.integers(1, 4), st.integers(1, 3), st.integers(0, 2), st.integers(1, 3))   # k, s, p, d
stacks = st.lists(layer, min_size=1, max_size=4)


def _convs(stack):
    return nn.Sequential(*[nn.Conv2d(1, 1, k, stride=s, padding=p, dilation=d, bias=False) for k, s, p, d in stack])


def _gradient_footprint(stack, size, row):
    """(first, last) input row whose pixel the gradient of output unit (row, row) reaches."""
    net = _convs(stack).double()
    with torch.no_grad():
        for conv in net:
            conv.weight.fill_(1.0)
    x = torch.ones(1, 1, size, size, dtype=torch.float64, requires_grad=True)
    out = net(x)
    out[0, 0, row, row].backward()
    rows = torch.nonzero(x.grad[0, 0].abs().sum(dim=1)).flatten()
    return int(rows.min()), int(rows.max())


def _output_size(stack, size):
    for k, s, p, d in stack:
        size = (size + 2 * p - d * (k - 1) - 1) // s + 1
    return size


@settings(max_examples=40, deadline=None)
@given(stacks)
def test_every_path_agrees_with_the_gradient(stack):
    rf = receptive_field(stack)
    # an input large enough that a unit in the middle sees no padding
    size = 4 * rf.size + 8 * rf.jump + 16
    n_out = _output_size(stack, size)
    row = n_out // 2
    first, last = _gradient_footprint(stack, size, row)
    # a middle unit's window lies inside the image: its extent is the receptive field's size
    assert last - first + 1 == rf.size, (stack, first, last, rf)
    # the centre of unit `row` is start + row * jump (start may be a half pixel)
    assert (first + last) / 2 == pytest.approx(rf.start + row * rf.jump), (stack, rf)
    # its neighbour's window is `jump` pixels further on
    if row + 1 < n_out:
        f2, _ = _gradient_footprint(stack, size, row + 1)
        assert f2 - first == rf.jump, (stack, rf)
    # the per-layer table of summarize reads nn.Conv2d modules: the same size and jump
    last_row = summarize(_convs(stack), (1, size, size))[-1]
    assert (last_row.rf, last_row.jump) == (rf.size, rf.jump), stack
    # the pictures' back-projection (tuples in nn.Conv2d's order) marks the same rows
    mask = receptive_field_mask(list(stack), size, (row, row))
    rows = np.flatnonzero(mask.any(axis=1))
    assert (rows.min(), rows.max()) == (first, last), stack


def test_one_layer_description_for_every_form():
    want = layer_window((3, 2, 1, 2))
    assert want == ((3, 3), (2, 2), (1, 1), (2, 2))
    assert layer_window({"kernel": 3, "stride": 2, "padding": 1, "dilation": 2}) == want
    assert layer_window({"kernel_size": 3, "stride": 2, "pad": 1, "dilation": 2}) == want
    assert layer_window(nn.Conv2d(1, 1, 3, stride=2, padding=1, dilation=2)) == want
    assert layer_window(nn.MaxPool2d(3, stride=2, padding=1, dilation=2)) == want
    assert layer_window(nn.MaxPool2d(2)).stride == (2, 2), "a pooling module's stride defaults to its kernel"
    assert layer_window(5) == ((5, 5), (1, 1), (0, 0), (1, 1))
    # padding is the third entry, as in nn.Conv2d: it moves the window, it does not widen it
    assert receptive_field([(3, 1, 5)]).size == 3 and receptive_field([(3, 1, 0, 2)]).size == 5


@pytest.mark.parametrize("bad, match", [
    ((3, 1, 0, 1, 9), r"layers\[0\] must be \(kernel\[, stride\[, padding\[, dilation\]\]\]\)"),
    ({"kernel": 3, "size": 2}, r"layers\[0\]: a dict needs 'kernel'"),
    ((3, 0), r"layers\[0\] stride must be an integer >= 1"),
    ((3, 1, -1), r"layers\[0\] padding must be an integer >= 0"),
    ("3", r"layers\[0\] must be an int, a tuple"),
])
def test_bad_layers_are_named(bad, match):
    with pytest.raises(ValueError, match=match):
        layer_window(bad)
    with pytest.raises(ValueError, match=match):
        receptive_field([bad])
