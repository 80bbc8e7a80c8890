"""cnnlab.plots.architecture: figure content checked on the Agg backend."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch.nn as nn  # noqa: E402

from cnnlab.analysis import model_summary, summarize  # noqa: E402
from cnnlab.plots import PUBLISHED_TOP1, plot_accuracy_vs_operations, plot_layer_costs  # noqa: E402


def _net():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 8 * 8, 10))


def test_layer_costs_bars_match_summary():
    s = summarize(_net(), (3, 16, 16))
    fig = plot_layer_costs(s)
    axes = fig.axes
    assert len(axes) == 3
    main = ["0", "2", "3", "6"]  # conv, pool, conv, linear
    for ax in axes:
        assert len(ax.patches) == len(main)
    assert [t.get_text() for t in axes[-1].get_xticklabels()] == main
    heights = [p.get_height() for p in axes[0].patches]
    assert heights == pytest.approx([8 * 16 * 16 * 4 / 2**20, 8 * 8 * 8 * 4 / 2**20,
                                     16 * 8 * 8 * 4 / 2**20, 10 * 4 / 2**20])
    assert [p.get_height() for p in axes[1].patches] == pytest.approx(
        [224 / 1e6, 0, 1168 / 1e6, (1024 * 10 + 10) / 1e6])
    assert [p.get_height() for p in axes[2].patches] == pytest.approx(
        [8 * 256 * 27 / 1e9, 0, 16 * 64 * 72 / 1e9, 10240 / 1e9])
    plt.close(fig)
    fig = plot_layer_costs(s, metrics=("flops",), layers="all")
    assert len(fig.axes) == 1 and len(fig.axes[0].patches) == len(s)
    plt.close(fig)


def test_layer_costs_bad_input():
    s = summarize(_net(), (3, 16, 16))
    with pytest.raises(ValueError, match="metrics"):
        plot_layer_costs(s, metrics=("speed",))
    with pytest.raises(ValueError, match="ModelSummary"):
        plot_layer_costs(_net())
    with pytest.raises(ValueError, match="layers"):
        plot_layer_costs(s, layers="some")


def test_accuracy_vs_operations_points():
    names = ["alexnet", "vgg16", "resnet50", "mobilenet_v2"]
    fig = plot_accuracy_vs_operations(names)
    ax = fig.axes[0]
    pts = ax.collections[0].get_offsets()
    assert len(pts) == 4
    # x = torchvision's GFLOPS, y = published top-1, area ~ parameters (vgg16 the largest)
    assert list(pts[:, 0]) == pytest.approx([0.714, 15.47, 4.089, 0.301], rel=5e-3)
    assert list(pts[:, 1]) == [PUBLISHED_TOP1[n][0] for n in names]
    sizes = ax.collections[0].get_sizes()
    assert sizes.argmax() == 1 and sizes.argmin() == 3
    assert [t.get_text() for t in ax.texts] == names
    plt.close(fig)


def test_accuracy_vs_operations_with_precomputed_summaries_and_errors():
    s = {"resnet18": model_summary("resnet18", flops="flop")}
    fig = plot_accuracy_vs_operations(summaries=s)
    assert fig.axes[0].collections[0].get_offsets()[0, 0] == pytest.approx(1.814, rel=5e-3)
    plt.close(fig)
    with pytest.raises(ValueError, match="published"):
        plot_accuracy_vs_operations(["lenet5"])
    assert all(isinstance(v[1], str) and v[1] for v in PUBLISHED_TOP1.values())


def test_default_names_are_the_registered_published_models():
    published = {"alexnet": (56.5, "a"), "resnet18": (69.8, "b"), "not_a_model": (1.0, "c")}
    fig = plot_accuracy_vs_operations(published=published)
    assert [t.get_text() for t in fig.axes[0].texts] == ["alexnet", "resnet18"]
    plt.close(fig)
