"""Converting fully connected layers to convolutions ("convolutionalization", CS231n notes,
"Converting FC layers to CONV layers"; OverFeat, FCN).

A fully connected layer that looks at a C x k x k volume is a k x k convolution with
``out_features`` filters and no padding: its weight (out, C*k*k) reshaped to (out, C, k, k) (the
order in which ``torch.flatten`` lays out C, H, W) gives the same numbers on a k x k input. Every
later fully connected layer is a 1x1 convolution. The converted network accepts LARGER images
and slides the whole classifier over them in one pass, producing a map of class scores:

- VGG: the features of a 224x224 image are 512 x 7x7 -> fc6 = 7x7 conv, fc7 and fc8 = 1x1 convs;
  on a 384x384 image the features are 12x12 and the score map is (12 - 7 + 1) = 6 x 6 -- the
  scores of the 224x224 windows at stride 32 (the network's total stride);
- AlexNet: 256 x 6x6 features -> fc6 = 6x6 conv.

Computing the 36 windows separately repeats the shared convolutions 36 times; the converted net
computes them once (:func:`cnnlab.analysis.sliding_window_cost` counts the saving). Averaging the map, ``scores.mean((2, 3))``
(:func:`average_scores`), is the cheap multi-crop test-time evaluation of the lectures.

**Exactness.** At the training size the converted net equals the original. On larger images the
score at position (i, j) equals the original's score on the window at offset
(i*stride, j*stride) exactly only for networks WITHOUT zero padding (OverFeat's "valid"
convolutions): with padding (VGG, AlexNet) a cropped window sees zeros at its border where the
large image has real pixels, so border units -- and the scores -- differ somewhat.

The adaptive average pooling torchvision-style models put before ``flatten``
(``AdaptiveAvgPool2d((7, 7))`` in VGG, ``((6, 6))`` in AlexNet) is the identity at the training
size and is dropped, so that the network can slide.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn

from ..shapes import check_int, check_pair

__all__ = ["ConvolutionalizedNet", "convolutionalize", "sliding_window_scores", "average_scores",
           "head_window", "window_grid"]

_KEEP = (nn.ReLU, nn.Dropout)


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def head_window(model: nn.Module) -> tuple[int, int]:
    """``(k_h, k_w)``: the feature-map size the first fully connected layer of ``model`` expects
    (its ``avgpool``'s output size); raises ValueError explaining the layout when ``model`` cannot
    be convolutionalized (see :func:`convolutionalize`)."""
    need = ("supported models have the layout of cnnlab's vgg* / alexnet / zfnet: `features` "
            "(nn.Sequential), `avgpool` (nn.AdaptiveAvgPool2d((k, k))), `classifier` (nn.Sequential "
            "of Linear, ReLU, Dropout) and forward = classifier(flatten(avgpool(features(x))))")
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    name = type(model).__name__
    missing = [a for a in ("features", "avgpool", "classifier") if not hasattr(model, a)]
    if missing:
        raise ValueError(f"cannot convolutionalize {name}: it has no attribute(s) {missing}; {need}")
    if not isinstance(model.features, nn.Sequential) or not isinstance(model.classifier, nn.Sequential):
        raise ValueError(f"cannot convolutionalize {name}: features and classifier must be "
                         f"nn.Sequential, got {type(model.features).__name__} and "
                         f"{type(model.classifier).__name__}; {need}")
    if not isinstance(model.avgpool, nn.AdaptiveAvgPool2d):
        raise ValueError(f"cannot convolutionalize {name}: avgpool must be nn.AdaptiveAvgPool2d, "
                         f"got {type(model.avgpool).__name__}; {need}")
    k = _pair(model.avgpool.output_size)
    if any(v is None for v in k):
        raise ValueError(f"cannot convolutionalize {name}: avgpool.output_size {k} must be fixed ints")
    bad = [f"classifier.{i} ({type(m).__name__})" for i, m in enumerate(model.classifier)
           if not isinstance(m, (nn.Linear,) + _KEEP)]
    if bad:
        raise ValueError(f"cannot convolutionalize {name}: unsupported layer(s) {bad} in the "
                         f"classifier; {need}")
    if not any(isinstance(m, nn.Linear) for m in model.classifier):
        raise ValueError(f"cannot convolutionalize {name}: the classifier has no nn.Linear; {need}")
    return k


def _feature_channels(features: nn.Sequential):
    """out_channels of the last convolution in ``features`` (None if there is none)."""
    convs = [m for m in features.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1].out_channels if convs else None


def _fc_to_conv(fc: nn.Linear, in_channels: int, kernel) -> nn.Conv2d:
    """The convolution equal to ``fc`` on an (in_channels, *kernel) input."""
    w = fc.weight
    conv = nn.Conv2d(in_channels, fc.out_features, kernel, bias=fc.bias is not None,
                     device=w.device, dtype=w.dtype)
    with torch.no_grad():
        conv.weight.copy_(w.reshape(fc.out_features, in_channels, *kernel))
        if fc.bias is not None:
            conv.bias.copy_(fc.bias)
    conv.weight.requires_grad_(w.requires_grad)
    return conv


class ConvolutionalizedNet(nn.Module):
    """A network whose fully connected head was converted to convolutions.

    Attributes:
        features: a deep copy of the original ``features``.
        classifier: ``nn.Sequential`` with the original's layers in order, each ``nn.Linear``
            replaced by an ``nn.Conv2d`` (the first one k x k, the others 1x1); same indices,
            so ``classifier.0.weight`` etc. keep their names.
        window: (k_h, k_w), the feature-map size the first fully connected layer expected.

    Input ``(N, C, H, W)`` (features at least ``window`` large) -> class-score map
    ``(N, num_classes, H_f - k_h + 1, W_f - k_w + 1)``, where ``H_f x W_f`` is the size of the
    feature map. At the original's training size the map is 1x1.
    """

    def __init__(self, features: nn.Sequential, classifier: nn.Sequential, window) -> None:
        super().__init__()
        self.features = features
        self.classifier = classifier
        self.window = tuple(window)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(N, C, H, W)`` -> score map ``(N, num_classes, H', W')``."""
        if x.dim() != 4:
            raise ValueError(f"input x must have shape (N, C, H, W), got {tuple(x.shape)}")
        f = self.features(x)
        kh, kw = self.window
        if f.shape[2] < kh or f.shape[3] < kw:
            raise ValueError(f"input x of shape {tuple(x.shape)} is too small: its feature map is "
                             f"{f.shape[2]}x{f.shape[3]} but the first fully connected layer (now a "
                             f"{kh}x{kw} convolution) needs at least {kh}x{kw}")
        return self.classifier(f)


def convolutionalize(model: nn.Module) -> ConvolutionalizedNet:
    """Convert a network's flatten + fully connected head into equivalent convolutions.

    The first ``nn.Linear`` (``in_features = C*k*k``, with k x k the output size of
    ``model.avgpool`` and C the channels of the features) becomes a k x k ``nn.Conv2d`` with
    weight ``W.reshape(out, C, k, k)``; every later ``nn.Linear`` becomes a 1x1 ``nn.Conv2d``;
    ReLU and Dropout stay; ``avgpool`` is dropped. The result is built from deep copies: the
    original model is not modified and shares no tensors with it. Train/eval mode, dtype and
    device are kept.

    Args:
        model: a network with cnnlab's VGG/AlexNet layout (``features``, ``avgpool``,
            ``classifier``), e.g. ``create("vgg16")``, ``create("alexnet")``.

    Returns:
        :class:`ConvolutionalizedNet`; on an image of the training size its output
        ``(N, num_classes, 1, 1)`` squeezed equals ``model``'s ``(N, num_classes)`` (in eval mode).

    Raises:
        ValueError: for a model without that layout (ResNet, GoogLeNet, DenseNet, ...), or when
            the first Linear's ``in_features`` is not ``C * k_h * k_w``.

    Example:
        >>> from cnnlab.models import create
        >>> with torch.device("meta"):   # shapes only
        ...     net = convolutionalize(create("vgg16"))
        >>> net(torch.empty(1, 3, 384, 384, device="meta")).shape
        torch.Size([1, 1000, 6, 6])
    """
    kh, kw = head_window(model)
    name = type(model).__name__
    features = copy.deepcopy(model.features)
    C = _feature_channels(features)
    first = next(m for m in model.classifier if isinstance(m, nn.Linear))
    if C is None:
        if first.in_features % (kh * kw):
            raise ValueError(f"cannot convolutionalize {name}: the first Linear has in_features="
                             f"{first.in_features}, not a multiple of k_h*k_w = {kh}*{kw}")
        C = first.in_features // (kh * kw)
    if first.in_features != C * kh * kw:
        raise ValueError(f"cannot convolutionalize {name}: the first Linear has in_features="
                         f"{first.in_features} but the features give C*k_h*k_w = {C}*{kh}*{kw} = "
                         f"{C * kh * kw}; the rule is in_features == C*k_h*k_w")
    layers = []
    seen_linear = False
    for m in model.classifier:
        if isinstance(m, nn.Linear):
            layers.append(_fc_to_conv(m, C, (kh, kw)) if not seen_linear
                          else _fc_to_conv(m, m.in_features, (1, 1)))
            seen_linear = True
        else:
            layers.append(copy.deepcopy(m))
    net = ConvolutionalizedNet(features, nn.Sequential(*layers), (kh, kw))
    net.train(model.training)
    return net



def window_grid(H: int, W: int, window, stride: int):
    """The crops of a sliding-window evaluation of an ``H x W`` image: ``(wh, ww, stride, nh, nw)``
    -- the window size, the stride and the number of crops down and across; raises ValueError
    naming ``window``/``stride`` when they are bad or the window does not fit."""
    wh, ww = check_pair("window", window)
    stride = check_int("stride", stride, 1)
    if wh > H or ww > W:
        raise ValueError(f"window {wh}x{ww} does not fit in the {H}x{W} image")
    return wh, ww, stride, (H - wh) // stride + 1, (W - ww) // stride + 1


@torch.no_grad()
def sliding_window_scores(model: nn.Module, x: torch.Tensor, window=224, stride: int = 32) -> torch.Tensor:
    """Evaluate ``model`` separately on every ``window`` crop of ``x`` -- the expensive way.

    Crops start at ``(i*stride, j*stride)`` for ``i = 0 .. (H - window_h)//stride`` (likewise j);
    each is a full forward pass of the original network. Put the model in eval mode first.

    Args:
        model: the ORIGINAL network (image ``(N, C, wh, ww)`` -> logits ``(N, K)``).
        x: images, tensor of shape (N, C, H, W).
        window: crop size, int or (wh, ww) -- the training size (224).
        stride: step between crops in pixels (int >= 1); the network's total stride (32 for
            VGG and AlexNet) lines the crops up with the convolutionalized net's score map.

    Returns:
        scores: tensor (N, K, nh, nw), ``scores[:, :, i, j] = model(crop at (i*stride, j*stride))``.

    Raises:
        ValueError: if ``x`` is not 4-D or the window does not fit in it.
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ValueError(f"x must be a tensor of shape (N, C, H, W), got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    wh, ww, s, nh, nw = window_grid(x.shape[2], x.shape[3], window, stride)
    rows = []
    for i in range(nh):
        row = [model(x[:, :, i * s:i * s + wh, j * s:j * s + ww]) for j in range(nw)]
        rows.append(torch.stack(row, dim=-1))          # (N, K, nw)
    return torch.stack(rows, dim=-2)                   # (N, K, nh, nw)


def average_scores(scores: torch.Tensor) -> torch.Tensor:
    """Average a class-score map over its positions: ``(N, K, h, w) -> (N, K)``, i.e.
    ``scores.mean((2, 3))``, multi-crop evaluation in one pass."""
    if not isinstance(scores, torch.Tensor) or scores.dim() != 4:
        raise ValueError(f"scores must be a tensor of shape (N, K, h, w), got "
                         f"{tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__}")
    return scores.mean(dim=(2, 3))
