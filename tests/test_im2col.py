"""cnnlab.im2col: against brute-force loops, torch's unfold/fold, the adjoint identity and the
lecture's AlexNet example."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from cnnlab.im2col import col2im, im2col, im2col_out_shape


@st.composite
def geometries(draw):
    """(x_shape, HH, WW, stride, pad, dilation) with a window that fits."""
    HH, WW = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride, pad, dil = draw(st.integers(1, 3)), draw(st.integers(0, 2)), draw(st.integers(1, 2))
    H = draw(st.integers(max(1, dil * (HH - 1) + 1 - 2 * pad), 7))
    W = draw(st.integers(max(1, dil * (WW - 1) + 1 - 2 * pad), 7))
    N, C = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return (N, C, H, W), HH, WW, stride, pad, dil


def im2col_loops(x, HH, WW, stride, pad, dil):
    """Oracle: build X_col one entry at a time from the documented ordering."""
    N, C, H, W = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    Ho = (H + 2 * pad - dil * (HH - 1) - 1) // stride + 1
    Wo = (W + 2 * pad - dil * (WW - 1) - 1) // stride + 1
    cols = np.zeros((C * HH * WW, N * Ho * Wo))
    for c in range(C):
        for i in range(HH):
            for j in range(WW):
                for n in range(N):
                    for h in range(Ho):
                        for w in range(Wo):
                            cols[(c * HH + i) * WW + j, (n * Ho + h) * Wo + w] = \
                                xp[n, c, h * stride + i * dil, w * stride + j * dil]
    return cols


@given(geometries())
def test_im2col_matches_loops_and_torch_unfold(geom):
    shape, HH, WW, s, p, d = geom
    x = np.random.default_rng(1).standard_normal(shape)
    cols = im2col(x, HH, WW, s, p, d)
    np.testing.assert_array_equal(cols, im2col_loops(x, HH, WW, s, p, d))
    # torch's unfold: (N, C*HH*WW, L) with the same (c, i, j) row order.
    ref = F.unfold(torch.from_numpy(x), (HH, WW), dilation=d, padding=p, stride=s)
    np.testing.assert_array_equal(cols, ref.permute(1, 0, 2).reshape(cols.shape).numpy())
    assert cols.shape == im2col_out_shape(shape, HH, WW, s, p, d)
    assert cols.flags.c_contiguous


@given(geometries())
def test_col2im_is_the_adjoint_and_matches_torch_fold(geom):
    shape, HH, WW, s, p, d = geom
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape)
    c = rng.standard_normal(im2col_out_shape(shape, HH, WW, s, p, d))
    back = col2im(c, shape, HH, WW, s, p, d)
    assert back.shape == shape
    # <im2col(x), c> == <x, col2im(c)>
    assert np.isclose(np.sum(im2col(x, HH, WW, s, p, d) * c), np.sum(x * back), rtol=1e-12, atol=1e-12)
    N = shape[0]
    ref = F.fold(torch.from_numpy(c.reshape(c.shape[0], N, -1).transpose(1, 0, 2).copy()),
                 shape[2:], (HH, WW), dilation=d, padding=p, stride=s)
    np.testing.assert_allclose(back, ref.numpy(), rtol=1e-12, atol=1e-12)


def test_col2im_of_ones_counts_covering_windows():
    # 4x4 input, 3x3 window, stride 1, pad 0: corner pixels are in 1 window, the center 4 in 4.
    counts = col2im(im2col(np.ones((1, 1, 4, 4)), 3, 3, 1, 0), (1, 1, 4, 4), 3, 3, 1, 0)
    np.testing.assert_array_equal(counts[0, 0], [[1, 2, 2, 1], [2, 4, 4, 2], [2, 4, 4, 2], [1, 2, 2, 1]])


def test_lecture_alexnet_example():
    """227x227x3 image, 96 11x11x3 filters, stride 4: X_col (363, 3025), W_row (96, 363),
    W_row @ X_col (96, 3025) -> 55x55x96, equal to torch's conv2d."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 3, 227, 227))
    w = rng.standard_normal((96, 3, 11, 11))
    X_col = im2col(x, 11, 11, stride=4, pad=0)
    assert X_col.shape == (363, 3025)
    W_row = w.reshape(96, -1)
    assert W_row.shape == (96, 363)
    out = (W_row @ X_col).reshape(96, 55, 55)
    ref = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), stride=4)[0].numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-10)


def test_float32_stays_float32():
    x = np.ones((1, 2, 5, 5), dtype=np.float32)
    cols = im2col(x, 3, 3, 1, 1)
    assert cols.dtype == np.float32
    assert col2im(cols, x.shape, 3, 3, 1, 1).dtype == np.float32


def test_errors():
    with pytest.raises(ValueError, match=r"x must be 4-D .* got shape \(5, 5\)"):
        im2col(np.zeros((5, 5)), 3, 3)
    with pytest.raises(ValueError, match=r"window does not fit along H.*floor\("):
        im2col(np.zeros((1, 1, 2, 9)), 3, 3, 1, 0)
    with pytest.raises(ValueError, match="pad must be an integer >= 0"):
        im2col(np.zeros((1, 1, 5, 5)), 3, 3, 1, -1)
    with pytest.raises(ValueError, match=r"cols must have shape \(C\*HH\*WW, N\*Hout\*Wout\) = "
                                         r"\(1\*3\*3, 1\*3\*3\) = \(9, 9\)"):
        col2im(np.zeros((9, 8)), (1, 1, 5, 5), 3, 3)
    with pytest.raises(ValueError, match=r"x_shape must be \(N, C, H, W\)"):
        col2im(np.zeros((9, 9)), (1, 5, 5), 3, 3)
