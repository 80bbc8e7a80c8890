"""Figures of cnnlab.plots.training / filters / pictures: checked for content (line data, image
arrays, masks), against independent computations (torch autograd, F.unfold, hand numbers)."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from hypothesis import assume, given, strategies as st  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from cnnlab.plots import (  # noqa: E402
    normalize_history,
    plot_feature_maps,
    plot_filters,
    plot_im2col,
    plot_receptive_field,
    plot_training_curves,
    receptive_field_mask,
    receptive_field_masks,
)
from cnnlab.shapes import conv_output_size  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _lines(ax):
    return {line.get_label(): line for line in ax.lines}


# ------------------------------------------------------------------------ training curves
class FakeSolver:
    loss_history = [2.3, 2.0, 1.5, 1.2, 1.0, 0.8]
    train_acc_history = [0.1, 0.5, 0.9]
    val_acc_history = [0.1, 0.4, 0.6]


def test_training_curves_from_solver_attributes():
    fig = plot_training_curves(FakeSolver())
    ax_loss, ax_acc = fig.axes
    loss = _lines(ax_loss)["train loss"]
    np.testing.assert_array_equal(loss.get_ydata(), FakeSolver.loss_history)
    np.testing.assert_array_equal(loss.get_xdata(), np.arange(1, 7))
    assert ax_loss.get_xlabel() == "iteration"
    acc = _lines(ax_acc)
    np.testing.assert_array_equal(acc["train acc"].get_ydata(), FakeSolver.train_acc_history)
    np.testing.assert_array_equal(acc["val acc"].get_ydata(), FakeSolver.val_acc_history)
    np.testing.assert_array_equal(acc["val acc"].get_xdata(), [0, 1, 2])


def test_training_curves_solver_dict_same_as_solver():
    d = {"loss_history": FakeSolver.loss_history, "train_acc_history": FakeSolver.train_acc_history,
         "val_acc_history": FakeSolver.val_acc_history}
    a, b = normalize_history(d), normalize_history(FakeSolver())
    for k in ("loss", "train_acc", "val_acc", "loss_x", "acc_x"):
        np.testing.assert_array_equal(a[k], b[k])


def test_training_curves_from_trainer_dict_of_lists():
    h = {"train_loss": [1.0, 0.7, 0.5], "val_loss": [1.1, 0.9, 0.8],
         "train_acc": [0.5, 0.7, 0.9], "val_acc": np.array([0.4, 0.6, 0.7])}
    fig = plot_training_curves(h)
    ax_loss, ax_acc = fig.axes
    assert ax_loss.get_xlabel() == "epoch"
    lines = _lines(ax_loss)
    np.testing.assert_array_equal(lines["train loss"].get_xdata(), [1, 2, 3])
    np.testing.assert_array_equal(lines["val loss"].get_ydata(), h["val_loss"])
    assert lines["val loss"].get_linestyle() == "--"
    np.testing.assert_array_equal(_lines(ax_acc)["val acc"].get_ydata(), h["val_acc"])


def test_training_curves_from_list_of_epoch_dicts_uses_epoch_numbers():
    h = [{"epoch": 3, "train_loss": 0.9, "train_acc": 0.6, "val_acc": 0.5},
         {"epoch": 4, "train_loss": torch.tensor(0.5), "train_acc": 0.8, "val_acc": 0.55}]
    fig = plot_training_curves(h)
    lines = _lines(fig.axes[0])
    np.testing.assert_array_equal(lines["train loss"].get_xdata(), [3, 4])
    np.testing.assert_allclose(lines["train loss"].get_ydata(), [0.9, 0.5])
    np.testing.assert_array_equal(_lines(fig.axes[1])["val acc"].get_ydata(), [0.5, 0.55])


def test_training_curves_compare_runs_on_same_axes():
    runs = {"no BN": {"train_loss": [2.0, 1.5], "val_acc": [0.3, 0.4]},
            "batchnorm": {"train_loss": [1.8, 1.0], "val_acc": [0.5, 0.7]}}
    fig = plot_training_curves(runs, title="BN vs no BN")
    assert len(fig.axes) == 2
    loss = _lines(fig.axes[0])
    assert set(loss) == {"no BN train loss", "batchnorm train loss"}
    np.testing.assert_array_equal(loss["batchnorm train loss"].get_ydata(), [1.8, 1.0])
    acc = _lines(fig.axes[1])
    assert acc["no BN val acc"].get_color() == loss["no BN train loss"].get_color()
    assert acc["no BN val acc"].get_color() != acc["batchnorm val acc"].get_color()
    assert fig._suptitle.get_text() == "BN vs no BN"


def test_training_curves_trainer_history_and_wrapped_results():
    # cnnlab.train.Trainer.fit's history (extra keys ignored), wrapped as the experiments return it
    h = {"epoch": [1, 2, 3], "lr": [0.1] * 3, "train_loss": [1.0, 0.6, 0.4], "train_acc": [0.6, 0.8, 0.9],
         "val_loss": [0.9, 0.7, 0.6], "val_acc": [0.55, 0.7, 0.75], "val_top5": [0.9] * 3, "time": [1.0] * 3}
    fig = plot_training_curves({"bn": {"history": h, "val_acc": 0.75}, "no_bn": {"history": h, "val_acc": 0.75}})
    assert len(fig.axes[0].lines) == 4 and len(fig.axes[1].lines) == 4
    np.testing.assert_array_equal(_lines(fig.axes[1])["no_bn val acc"].get_ydata(), h["val_acc"])

    class Trainer:
        history = h

    np.testing.assert_array_equal(normalize_history(Trainer())["val_loss"], h["val_loss"])


def test_training_curves_bad_input():
    with pytest.raises(ValueError, match="recognised|history must be"):
        plot_training_curves({"foo": [1, 2]})
    with pytest.raises(ValueError, match="history must be"):
        plot_training_curves(42)


# ------------------------------------------------------------------------ filters
def _tile(img, k, ncols, h, w, pad=1):
    r, c = divmod(k, ncols)
    y0, x0 = pad + r * (h + pad), pad + c * (w + pad)
    return img[y0:y0 + h, x0:x0 + w]


def test_plot_filters_rgb_per_filter_normalization(rng):
    w = rng.standard_normal((5, 3, 4, 4)) * np.arange(1, 6)[:, None, None, None]
    fig = plot_filters(torch.tensor(w), ncols=3)
    assert len(fig.axes) == 1 and len(fig.axes[0].images) == 1
    img = np.asarray(fig.axes[0].images[0].get_array())
    assert img.shape == (2 * 5 + 1, 3 * 5 + 1, 3)  # 2 rows x 3 cols of 4x4 tiles, padding 1
    for k in range(5):
        expected = (w[k] - w[k].min()) / (w[k].max() - w[k].min())
        np.testing.assert_allclose(_tile(img, k, 3, 4, 4), expected.transpose(1, 2, 0))
    np.testing.assert_array_equal(_tile(img, 5, 3, 4, 4), 1.0)  # empty slot: white background
    assert img[0].min() == 1.0  # border padding


def test_plot_filters_grayscale_and_channel_choice(rng):
    w = rng.standard_normal((4, 1, 3, 3))
    img = np.asarray(plot_filters(w).axes[0].images[0].get_array())
    assert img.shape == (2 * 4 + 1, 2 * 4 + 1)
    np.testing.assert_allclose(_tile(img, 3, 2, 3, 3), (w[3, 0] - w[3, 0].min()) / np.ptp(w[3, 0]))
    assert plot_filters(w).axes[0].images[0].get_cmap().name == "gray"
    w4 = rng.standard_normal((2, 4, 3, 3))
    with pytest.raises(ValueError, match="channel"):
        plot_filters(w4)
    img = np.asarray(plot_filters(w4, channel=2).axes[0].images[0].get_array())
    np.testing.assert_allclose(_tile(img, 1, 2, 3, 3), (w4[1, 2] - w4[1, 2].min()) / np.ptp(w4[1, 2]))
    with pytest.raises(ValueError, match="shape"):
        plot_filters(np.zeros((3, 3, 3)))


def test_plot_feature_maps_grid(rng):
    a = rng.standard_normal((1, 6, 5, 7))
    a[0, 4] = 2.0  # a constant map is drawn mid-scale, not as NaN
    fig = plot_feature_maps(a, ncols=4)
    img = fig.axes[0].images[0].get_array()
    assert img.shape == (2 * 6 + 1, 4 * 8 + 1)
    for k in (0, 5):
        m = a[0, k]
        np.testing.assert_allclose(_tile(img, k, 4, 5, 7), (m - m.min()) / np.ptp(m))
    np.testing.assert_array_equal(_tile(img, 4, 4, 5, 7), 0.5)
    assert np.ma.getmaskarray(img)[0].all()  # padding is masked (transparent)
    raw = plot_feature_maps(a[0], normalize=False, max_maps=2).axes[0].images[0].get_array()
    np.testing.assert_allclose(_tile(raw, 1, 2, 5, 7), a[0, 1])
    with pytest.raises(ValueError, match="C, H, W"):
        plot_feature_maps(np.zeros((5, 5)))


# ------------------------------------------------------------------------ receptive field
def _autograd_mask(layers, size, pos):
    """Oracle: gradient of one output unit of a stack of all-ones convolutions w.r.t. the input."""
    x = torch.ones(1, 1, size, size, dtype=torch.float64, requires_grad=True)
    out = x
    for k, s, p, d in layers:
        out = F.conv2d(out, torch.ones(1, 1, k, k, dtype=torch.float64), stride=s, padding=p, dilation=d)
    out[0, 0, pos[0], pos[1]].backward()
    return (x.grad[0, 0] > 0).numpy()


layer_st = st.tuples(st.integers(1, 4), st.integers(1, 3), st.integers(0, 2), st.integers(1, 3))


@given(layers=st.lists(layer_st, min_size=1, max_size=3), size=st.integers(6, 20), data=st.data())
def test_receptive_field_matches_autograd(layers, size, data):
    n = size
    for k, s, p, d in layers:
        assume(n + 2 * p - d * (k - 1) - 1 >= 0)
        n = conv_output_size(n, k, s, p, d)
    pos = (data.draw(st.integers(0, n - 1)), data.draw(st.integers(0, n - 1)))
    np.testing.assert_array_equal(receptive_field_mask(layers, size, pos),
                                  _autograd_mask(layers, size, pos))


def test_receptive_field_lecture_numbers():
    # Three stacked 3x3 convs (stride 1) see 7x7; a 7x7 conv sees the same (lecture 9 / VGG).
    m = receptive_field_mask([(3, 1, 0)] * 3, 11, (2, 2))
    rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
    assert m.sum() == 49 and list(rows) == list(range(2, 9)) and list(cols) == list(range(2, 9))
    # 3x3 dilation 2: 9 isolated taps spanning 5x5.
    m = receptive_field_mask([(3, 1, 0, 2)], 7, (0, 0))
    assert m.sum() == 9 and set(zip(*np.nonzero(m))) == {(i, j) for i in (0, 2, 4) for j in (0, 2, 4)}
    # conv 3x3 s1 then 2x2 pool s2: 4x4 field.
    assert receptive_field_mask([(3, 1, 1), (2, 2, 0)], 8, (1, 1)).sum() == 16
    # padding clips the field at the border: unit (0, 0) of a pad-1 3x3 conv sees 2x2 pixels.
    m = receptive_field_mask([{"kernel_size": 3, "stride": 1, "padding": 1}], 5, (0, 0))
    assert m.sum() == 4 and m[:2, :2].all()


def test_plot_receptive_field_draws_masks():
    layers = [(3, 1, 1, 1), (3, 2, 1, 1), (3, 1, 0, 2)]
    fig = plot_receptive_field(layers, 12, (1, 0))
    masks = receptive_field_masks(layers, 12, (1, 0))
    assert len(fig.axes) == len(layers) + 1
    np.testing.assert_array_equal(fig.rf_mask, _autograd_mask(layers, 12, (1, 0)))
    for ax, mask in zip(fig.axes, masks):
        np.testing.assert_array_equal(ax.images[0].get_array(), mask.astype(float))
    assert masks[-1].sum() == 1 and masks[-1][1, 0]
    # bounding box outlined on the input panel
    rect = [p for p in fig.axes[0].patches if isinstance(p, Rectangle)][0]
    rows, cols = np.flatnonzero(fig.rf_mask.any(1)), np.flatnonzero(fig.rf_mask.any(0))
    assert rect.get_xy() == (cols[0] - 0.5, rows[0] - 0.5)
    assert (rect.get_width(), rect.get_height()) == (cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1)
    assert len(plot_receptive_field(layers, 12, (1, 0), show_layers=False).axes) == 1


def test_receptive_field_bad_input():
    with pytest.raises(ValueError, match="outside the output"):
        receptive_field_mask([(3, 1, 0)], 5, (3, 0))
    with pytest.raises(ValueError, match="does not fit"):
        receptive_field_mask([(7, 1, 0)], 5, (0, 0))
    with pytest.raises(ValueError, match="layers\\[0\\]"):
        receptive_field_mask(["conv"], 5, (0, 0))


# ------------------------------------------------------------------------ im2col picture
@pytest.mark.parametrize("C,HH,stride,pad,dilation", [(1, 3, 1, 1, 1), (2, 2, 2, 0, 1), (1, 2, 1, 0, 2)])
def test_plot_im2col_matrix_and_highlights(C, HH, stride, pad, dilation):
    x = np.arange(C * 5 * 5, dtype=float).reshape(C, 5, 5)
    fig = plot_im2col(x, HH, HH, stride=stride, pad=pad, dilation=dilation)
    ref = F.unfold(torch.tensor(x)[None], HH, dilation=dilation, padding=pad, stride=stride)[0].numpy()
    np.testing.assert_array_equal(fig.x_col, ref)
    assert len(fig.axes) == C + 1
    np.testing.assert_array_equal(fig.axes[-1].images[0].get_array(), ref)
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    for c in range(C):
        np.testing.assert_array_equal(fig.axes[c].images[0].get_array(), xp[c])
    Wout = conv_output_size(5, HH, stride, pad, dilation)
    assert fig.patch_indices == [0, 1, Wout]
    span = dilation * (HH - 1) + 1
    img_rects = [p for p in fig.axes[0].patches if p.get_label().startswith("patch")]
    col_rects = [p for p in fig.axes[-1].patches if p.get_label().startswith("column")]
    for p, r_img, r_col in zip(fig.patch_indices, img_rects, col_rects):
        i, j = divmod(p, Wout)
        assert r_img.get_xy() == (j * stride - 0.5, i * stride - 0.5)
        assert (r_img.get_width(), r_img.get_height()) == (span, span)
        assert r_col.get_xy() == (p - 0.5, -0.5) and r_col.get_height() == ref.shape[0]
        assert r_img.get_edgecolor() == r_col.get_edgecolor()
        # the highlighted column holds exactly the outlined patch's pixels
        patch = xp[:, i * stride:i * stride + span:dilation, j * stride:j * stride + span:dilation]
        np.testing.assert_array_equal(fig.x_col[:, p], patch.ravel())


def test_plot_im2col_bad_input():
    with pytest.raises(ValueError, match="patch index"):
        plot_im2col(np.zeros((4, 4)), 3, 3, patches=[4])
    with pytest.raises(ValueError, match="does not fit"):
        plot_im2col(np.zeros((4, 4)), 5, 5)
