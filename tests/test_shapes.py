"""cnnlab.shapes: the output-size formula against brute-force counting, torch and lecture numbers."""
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from cnnlab.shapes import check_4d, check_int, conv_output_size


def count_positions(W, F, stride, pad, dilation):
    """Brute force: slide the (dilated) window over the padded input and count where it fits."""
    span = dilation * (F - 1) + 1
    return sum(1 for start in range(0, W + 2 * pad, stride) if start + span <= W + 2 * pad)


@given(W=st.integers(1, 40), F=st.integers(1, 7), stride=st.integers(1, 5),
       pad=st.integers(0, 4), dilation=st.integers(1, 3))
def test_formula_matches_brute_force_count(W, F, stride, pad, dilation):
    expected = count_positions(W, F, stride, pad, dilation)
    if expected == 0:
        with pytest.raises(ValueError, match="window does not fit"):
            conv_output_size(W, F, stride, pad, dilation)
    else:
        assert conv_output_size(W, F, stride, pad, dilation) == expected


@given(H=st.integers(1, 12), F=st.integers(1, 4), stride=st.integers(1, 3),
       pad=st.integers(0, 2), dilation=st.integers(1, 2))
def test_formula_matches_torch_conv2d(H, F, stride, pad, dilation):
    span = dilation * (F - 1) + 1
    if span > H + 2 * pad:
        return
    out = torch.nn.functional.conv2d(torch.zeros(1, 1, H, H), torch.zeros(1, 1, F, F),
                                     stride=stride, padding=pad, dilation=dilation)
    assert conv_output_size(H, F, stride, pad, dilation) == out.shape[-1]


@pytest.mark.parametrize("args, expected", [
    ((227, 11, 4, 0), 55),   # AlexNet conv1 (lecture)
    ((7, 3, 1, 0), 5),       # CS231n notes: 7x7 input, 3x3 filter, stride 1
    ((7, 3, 2, 0), 3),       # ... stride 2
    ((32, 5, 1, 2), 32),     # "same" padding P = (F-1)/2
    ((55, 3, 2, 0), 27),     # AlexNet pool1
    ((7, 3, 1, 0, 2), 3),    # dilation 2: the 3x3 filter spans 5
])
def test_lecture_numbers(args, expected):
    assert conv_output_size(*args) == expected


def test_window_too_large_shows_formula_with_numbers():
    with pytest.raises(ValueError) as err:
        conv_output_size(5, 7, stride=1, pad=0, axis="H")
    msg = str(err.value)
    assert "along H" in msg and "floor((5 + 2*0 - 1*(7-1) - 1)/1 + 1)" in msg


@pytest.mark.parametrize("kwargs, match", [
    (dict(W=5, F=3, stride=1, pad=-1), r"pad must be an integer >= 0, got -1"),
    (dict(W=5, F=3, stride=0, pad=0), r"stride must be an integer >= 1, got 0"),
    (dict(W=5, F=3, stride=1, pad=0, dilation=0), r"dilation must be an integer >= 1"),
    (dict(W=0, F=3), r"input size W must be an integer >= 1"),
    (dict(W=5, F=0), r"filter size along W must be an integer >= 1"),
    (dict(W=5.0, F=3), r"must be an integer"),
    (dict(W=5, F=3, stride=True), r"stride must be an integer"),
])
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        conv_output_size(**kwargs)


def test_numpy_integers_accepted():
    assert conv_output_size(np.int64(227), np.int32(11), np.int64(4)) == 55


def test_check_4d():
    check_4d("x", np.zeros((1, 2, 3, 4)))
    with pytest.raises(ValueError, match=r"x must be 4-D with shape \(N, C, H, W\), got shape \(2, 3\)"):
        check_4d("x", np.zeros((2, 3)))
    with pytest.raises(ValueError, match="w must be a numpy array"):
        check_4d("w", [[[[1.0]]]])


def test_check_int():
    assert check_int("k", np.int64(3), 1) == 3
    with pytest.raises(ValueError, match="k must be an integer >= 1, got 0"):
        check_int("k", 0, 1)
    with pytest.raises(ValueError, match="k must be an integer >= 0, got 1.5"):
        check_int("k", 1.5, 0)


def test_check_dout_names_the_shape_rule():
    import numpy as np

    from cnnlab.shapes import check_dout

    d = np.zeros((2, 3), dtype=np.float32)
    assert check_dout(d, (2, 3)) is d and check_dout(d, (2, 3), dtype=np.float64).dtype == np.float64
    with pytest.raises(ValueError, match=r"dout must have the shape of x \(3, 2\), got \(2, 3\)"):
        check_dout(d, (3, 2), of="x")
    with pytest.raises(ValueError, match=r"of the forward output \(N, F\) = \(2, 4\), got list"):
        check_dout([1], (2, 4), layout="(N, F)")


@pytest.mark.parametrize("value, include_one, ok", [(0, True, True), (1.0, True, True), (1.0, False, False),
                                                    (0.5, False, True), (-0.1, True, False), (True, True, False),
                                                    ("0.5", True, False)])
def test_check_probability(value, include_one, ok):
    from cnnlab.shapes import check_probability

    if ok:
        assert check_probability("p", value, include_one=include_one) == float(value)
    else:
        with pytest.raises(ValueError, match=r"p must be a probability in \[0, 1[\])]"):
            check_probability("p", value, include_one=include_one)
