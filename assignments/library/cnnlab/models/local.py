"""``LocallyConnected2d``: a PyTorch convolution without weight sharing (DeepFace's L4-L6 layers).

Like ``nn.Conv2d`` but with a separate filter bank at every output position, so the layer is
tied to one input size. Implemented with ``F.unfold`` (PyTorch's im2col): the (N, C*kH*kW, L)
columns, L = Hout*Wout, are multiplied position by position with the (L, F, C*kH*kW) weights.

Parameter layouts are those of the numpy layer :mod:`cnnlab.layers.local`, so no conversion is
needed between the two:

- ``weight``: (Hout, Wout, out_channels, in_channels, kH, kW) -- ``weight[h, w]`` is the
  ``nn.Conv2d`` weight used at output position (h, w);
- ``bias``: (out_channels, Hout, Wout).

``LocallyConnected2d.from_conv(conv, input_size)`` copies a convolution's filters to every
position: weight sharing is the special case where all ``weight[h, w]`` are equal.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..shapes import check_int, check_pair, conv_output_size

__all__ = ["LocallyConnected2d"]



class LocallyConnected2d(nn.Module):
    """Locally-connected 2-D layer (unshared convolution).

    Args:
        in_channels: C, channels of the input.
        out_channels: F, filters per position.
        input_size: H = W (int) or (H, W); the layer only accepts inputs of this size.
        kernel_size: int or (kH, kW).
        stride: int or pair, >= 1.
        padding: int or pair, >= 0 (zero padding).
        bias: learn a bias per filter and position.

    Shapes: input (N, C, H, W) -> output (N, F, Hout, Wout), ``Hout = (H + 2*pad - kH)//stride + 1``.
    Parameters: ``weight`` (Hout, Wout, F, C, kH, kW), ``bias`` (F, Hout, Wout) -- the layouts of
    :func:`cnnlab.layers.local_forward`. Initialization: ``nn.Conv2d``'s default, i.e.
    U(-1/sqrt(C*kH*kW), 1/sqrt(C*kH*kW)) for weights and biases.
    """

    def __init__(self, in_channels: int, out_channels: int, input_size, kernel_size, stride=1,
                 padding=0, bias: bool = True) -> None:
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels, 1)
        self.out_channels = check_int("out_channels", out_channels, 1)
        self.input_size = check_pair("input_size", input_size, 1)
        self.kernel_size = check_pair("kernel_size", kernel_size, 1)
        self.stride = check_pair("stride", stride, 1)
        self.padding = check_pair("padding", padding, 0)
        (H, W), (kh, kw), (sh, sw), (ph, pw) = self.input_size, self.kernel_size, self.stride, self.padding
        self.output_size = (conv_output_size(H, kh, sh, ph, axis="H"),
                            conv_output_size(W, kw, sw, pw, axis="W"))
        Hout, Wout = self.output_size
        self.weight = nn.Parameter(torch.empty(Hout, Wout, self.out_channels, self.in_channels, kh, kw))
        self.bias = nn.Parameter(torch.empty(self.out_channels, Hout, Wout)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``nn.Conv2d``'s default initialization: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
        bound = 1 / math.sqrt(self.in_channels * self.kernel_size[0] * self.kernel_size[1])
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, input_size) -> "LocallyConnected2d":
        """A locally-connected layer computing exactly ``conv`` on inputs of ``input_size``:
        the convolution's weight (F, C, kH, kW) and bias (F,) copied to every position.

        Raises:
            ValueError: if ``conv`` is not an ``nn.Conv2d`` with ``groups=1``, ``dilation=1``,
                integer zero padding.
        """
        if not isinstance(conv, nn.Conv2d):
            raise ValueError(f"conv must be an nn.Conv2d, got {type(conv).__name__}")
        if conv.groups != 1 or conv.dilation != (1, 1) or isinstance(conv.padding, str) \
                or conv.padding_mode != "zeros":
            raise ValueError(f"conv must have groups=1, dilation=1 and integer zero padding, got {conv}")
        layer = cls(conv.in_channels, conv.out_channels, input_size, conv.kernel_size,
                    conv.stride, conv.padding, bias=conv.bias is not None)
        layer.to(device=conv.weight.device, dtype=conv.weight.dtype)
        with torch.no_grad():
            layer.weight.copy_(conv.weight.expand_as(layer.weight))
            if conv.bias is not None:
                layer.bias.copy_(conv.bias[:, None, None].expand_as(layer.bias))
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (N, C, H, W) with (H, W) == ``input_size`` -> (N, F, Hout, Wout)."""
        C, (H, W) = self.in_channels, self.input_size
        if x.dim() != 4 or x.shape[1] != C or tuple(x.shape[2:]) != (H, W):
            raise ValueError(f"LocallyConnected2d input x must have shape (N, {C}, {H}, {W}) "
                             f"(in_channels and input_size are fixed: every position has its own "
                             f"weights), got {tuple(x.shape)}")
        Hout, Wout = self.output_size
        L = Hout * Wout
        cols = F.unfold(x, self.kernel_size, padding=self.padding, stride=self.stride)   # (N, K, L)
        w = self.weight.reshape(L, self.out_channels, -1)                                  # (L, F, K)
        out = torch.einsum("lfk,nkl->nfl", w, cols).reshape(x.shape[0], self.out_channels, Hout, Wout)
        if self.bias is not None:
            out = out + self.bias
        return out

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, input_size={self.input_size}, "
                f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"output_size={self.output_size}, bias={self.bias is not None}")
