"""Where is the memory, where is the compute? Per-layer cost bars and the accuracy-vs-operations
bubble chart (Canziani, Paszke & Culurciello 2016, "An Analysis of Deep Neural Network Models for
Practical Applications", Fig. 2).

Both functions take their numbers from :mod:`cnnlab.analysis`; the accuracies are the published
ImageNet-1K top-1 values in :data:`PUBLISHED_TOP1` (one citation per entry).
"""
from __future__ import annotations

import matplotlib.pyplot as plt

__all__ = ["plot_layer_costs", "plot_accuracy_vs_operations", "PUBLISHED_TOP1"]

_TV = "torchvision model docs, ImageNet-1K acc@1 of {} IMAGENET1K_V1 weights"

#: name -> (top-1 accuracy in %, source). Single-crop ImageNet-1K validation accuracy.
PUBLISHED_TOP1 = {
    "alexnet": (56.522, _TV.format("AlexNet_Weights")),
    "vgg11": (69.020, _TV.format("VGG11_Weights")),
    "vgg13": (69.928, _TV.format("VGG13_Weights")),
    "vgg16": (71.592, _TV.format("VGG16_Weights")),
    "vgg19": (72.376, _TV.format("VGG19_Weights")),
    "vgg16_bn": (73.360, _TV.format("VGG16_BN_Weights")),
    "resnet18": (69.758, _TV.format("ResNet18_Weights")),
    "resnet34": (73.314, _TV.format("ResNet34_Weights")),
    "resnet50": (76.130, _TV.format("ResNet50_Weights")),
    "resnet101": (77.374, _TV.format("ResNet101_Weights")),
    "resnet152": (78.312, _TV.format("ResNet152_Weights")),
    "resnext50_32x4d": (77.618, _TV.format("ResNeXt50_32X4D_Weights")),
    "resnext101_32x8d": (79.312, _TV.format("ResNeXt101_32X8D_Weights")),
    "googlenet": (69.778, _TV.format("GoogLeNet_Weights")),
    "densenet121": (74.434, _TV.format("DenseNet121_Weights")),
    "mobilenet_v2": (71.878, _TV.format("MobileNet_V2_Weights")),
    "mobilenet_v1": (70.6, "Howard et al. 2017, MobileNets, Table 8 (1.0 MobileNet-224)"),
}

_METRICS = {
    "memory": ("activation memory", "MiB", lambda r: r.memory / 2**20),
    "params": ("parameters", "millions", lambda r: r.params / 1e6),
    "flops": ("FLOPs (multiply-adds)", "GFLOPs", lambda r: r.flops / 1e9),
}


def _is_main(row) -> bool:
    t = row.type.lower()
    return any(k in t for k in ("conv", "linear", "pool"))


def plot_layer_costs(summary, metrics=("memory", "params", "flops"), layers: str = "main",
                     figsize=None):
    """Bar charts of per-layer activation memory, parameters and FLOPs of one network.

    The lectures' VGG-16 picture: memory sits in the early convolutions, parameters in the
    fully-connected layers, compute in the convolutions.

    Args:
        summary: a :class:`cnnlab.analysis.ModelSummary` (from ``summarize``).
        metrics: subset/order of ``"memory"`` (MiB of the layer's output), ``"params"``
            (millions), ``"flops"`` (GFLOPs in the summary's convention); one panel each.
        layers: ``"main"`` (convolution, linear and pooling rows) or ``"all"`` rows.
        figsize: matplotlib figure size; default grows with the number of layers.

    Returns:
        matplotlib Figure with one axes per metric, one bar per layer (x labels = layer names).
    """
    from ..analysis import ModelSummary

    if not isinstance(summary, ModelSummary):
        raise ValueError(f"summary must be a cnnlab.analysis.ModelSummary, got {type(summary).__name__}")
    metrics = tuple(metrics)
    if not metrics or any(m not in _METRICS for m in metrics):
        raise ValueError(f"metrics must be a non-empty subset of {tuple(_METRICS)}, got {metrics}")
    if layers not in ("main", "all"):
        raise ValueError(f"layers must be 'main' or 'all', got {layers!r}")
    rows = [r for r in summary if layers == "all" or _is_main(r)]
    if not rows:
        raise ValueError("the summary has no rows to plot")
    names = [r.name for r in rows]
    if figsize is None:
        figsize = (max(6.0, 0.28 * len(rows) + 2), 2.4 * len(metrics) + 1)
    fig, axes = plt.subplots(len(metrics), 1, figsize=figsize, sharex=True, squeeze=False)
    x = list(range(len(rows)))
    for ax, metric in zip(axes[:, 0], metrics):
        label, unit, value = _METRICS[metric]
        ax.bar(x, [value(r) for r in rows], color=f"C{list(_METRICS).index(metric)}")
        ax.set_ylabel(unit)
        ax.set_title(label, loc="left", fontsize="medium")
        ax.grid(axis="y", alpha=0.3)
    bottom = axes[-1, 0]
    bottom.set_xticks(x)
    bottom.set_xticklabels(names, rotation=90, fontsize="small")
    fig.suptitle(f"per-layer costs, input {tuple(summary.input_size)}")
    fig.tight_layout()
    return fig


def plot_accuracy_vs_operations(names=None, summaries=None, input_size=(3, 224, 224), ax=None,
                                published=None):
    """Top-1 accuracy against operations, bubble area proportional to parameters (Canziani 2016).

    FLOPs and parameters are computed by :func:`cnnlab.analysis.model_summary` (meta device,
    cached), or taken from ``summaries``; accuracies come from :data:`PUBLISHED_TOP1`.

    Args:
        names: model names (default: every name in ``published`` that is registered in
            :mod:`cnnlab.models`, or the keys of ``summaries``).
        summaries: optional ``{name: ModelSummary}`` computed elsewhere (skips the analysis).
        input_size: image size the FLOPs refer to.
        ax: an axes to draw into (default: a new figure).
        published: ``{name: (top1_percent, source)}``, default :data:`PUBLISHED_TOP1`.

    Returns:
        matplotlib Figure; one scatter point per model (x = GFLOPs, multiply-adds; y = top-1 %;
        size = parameters), each labelled with its name.
    """
    from ..analysis import model_summary

    published = PUBLISHED_TOP1 if published is None else published
    summaries = dict(summaries or {})
    if names is None:
        if summaries:
            names = list(summaries)
        else:
            from .. import models

            registered = set(models.list_models())
            names = [n for n in published if n in registered]
    names = list(names)
    missing = [n for n in names if n not in published]
    if missing:
        raise ValueError(f"no published top-1 accuracy for {missing}; known: {sorted(published)}")
    if not names:
        raise ValueError("names is empty: nothing to plot")
    gflops, acc, params = [], [], []
    for n in names:
        s = summaries[n] if n in summaries else model_summary(n, input_size)
        scale = 2 if s.flops_convention == "flop" else 1
        gflops.append(s.total_flops / scale / s.input_size[0] / 1e9)
        params.append(s.total_params / 1e6)
        acc.append(float(published[n][0]))
    if ax is None:
        fig, ax = plt.subplots(figsize=(8, 5.5))
    else:
        fig = ax.figure
    ax.scatter(gflops, acc, s=[max(10.0, 6 * p) for p in params],
               c=[f"C{i % 10}" for i in range(len(names))], alpha=0.5, edgecolors="k")
    for n, x, y in zip(names, gflops, acc):
        ax.annotate(n, (x, y), textcoords="offset points", xytext=(4, 4), fontsize="small")
    ax.set_xlabel(f"operations [G multiply-adds per image, {input_size[-2]}x{input_size[-1]}]")
    ax.set_ylabel("ImageNet top-1 accuracy [%]")
    ax.set_title("accuracy vs operations (bubble area ~ parameters)")
    ax.grid(alpha=0.3)
    return fig
