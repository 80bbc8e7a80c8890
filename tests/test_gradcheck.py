"""cnnlab.gradcheck against gradients known in closed form."""
import numpy as np
import pytest

from cnnlab.gradcheck import (
    GradCheckResult,
    check_layer_gradients,
    eval_numerical_gradient,
    eval_numerical_gradient_array,
    rel_error,
)


def test_numerical_gradient_of_known_scalar_function(rng):
    x = rng.standard_normal((3, 4))
    before = x.copy()
    # f(x) = sum(sin(x) * x**2): df/dx = cos(x) x^2 + 2 x sin(x)
    num = eval_numerical_gradient(lambda v: np.sum(np.sin(v) * v**2), x)
    exact = np.cos(x) * x**2 + 2 * x * np.sin(x)
    assert num.shape == x.shape and num.dtype == np.float64
    assert rel_error(num, exact) < 1e-8
    np.testing.assert_array_equal(x, before)  # restored exactly


def test_numerical_gradient_verbose_prints_every_index(capsys):
    eval_numerical_gradient(lambda v: float(np.sum(v**2)), np.array([1.0, 2.0]), verbose=True)
    out = capsys.readouterr().out
    assert "(0,)" in out and "(1,)" in out and "4.0" in out


def test_numerical_gradient_array_of_matrix_product(rng):
    x = rng.standard_normal((4, 3))
    a = rng.standard_normal((3, 5))
    df = rng.standard_normal((4, 5))
    # d/dx sum((x @ a) * df) = df @ a.T
    num = eval_numerical_gradient_array(lambda v: v @ a, x, df)
    assert rel_error(num, df @ a.T) < 1e-9
    # the function may return a buffer it reuses: the values are copied
    buf = np.empty((4, 5))

    def f(v):
        np.matmul(v, a, out=buf)
        return buf

    assert rel_error(eval_numerical_gradient_array(f, x, df), df @ a.T) < 1e-9


def test_rel_error_definition():
    assert rel_error(1.0, 1.1) == pytest.approx(0.1 / 2.1)
    assert rel_error(np.zeros(3), np.zeros(3)) == 0.0
    # max over elements; the 1e-8 floor keeps tiny values from dividing by zero
    assert rel_error(np.array([1.0, 0.0]), np.array([1.0, 1e-12])) == pytest.approx(1e-12 / 1e-8)
    assert rel_error(np.array([1.0, 2.0]), np.array([1.0, 4.0])) == pytest.approx(2 / 6)


def test_rel_error_shape_mismatch():
    with pytest.raises(ValueError, match=r"same shape.*\(3,\).*\(4,\)"):
        rel_error(np.zeros(3), np.zeros(4))


def _scale_forward(x, w, k):
    return x * w * k, (x, w, k)


def _scale_backward(dout, cache):
    x, w, k = cache
    return dout * w * k, dout * x * k


def _scale_backward_wrong(dout, cache):
    x, w, k = cache
    return 2 * dout * w * k, dout * x * k  # dx off by a factor of 2


def test_check_layer_gradients_passes_correct_and_catches_wrong(rng):
    inputs = {"x": rng.standard_normal((2, 3)), "w": rng.standard_normal((2, 3))}
    before = {k: v.copy() for k, v in inputs.items()}
    good = check_layer_gradients(_scale_forward, _scale_backward, inputs, params={"k": 3.0})
    assert isinstance(good, GradCheckResult) and set(good) == {"x", "w"}
    assert good.max_error < 1e-9
    good.assert_below(1e-7)
    for k in inputs:  # inputs are not modified
        np.testing.assert_array_equal(inputs[k], before[k])

    bad = check_layer_gradients(_scale_forward, _scale_backward_wrong, inputs, params={"k": 3.0})
    assert bad["x"] == pytest.approx(1 / 3, rel=1e-6)  # |2g - g| / (|2g| + |g|)
    assert bad["w"] < 1e-9
    with pytest.raises(AssertionError, match="gradient check failed"):
        bad.assert_below(1e-7)


def test_check_layer_gradients_table_and_wrt(rng):
    inputs = {"x": rng.standard_normal((2, 3)), "w": rng.standard_normal((2, 3))}
    res = check_layer_gradients(_scale_forward, _scale_backward, inputs, params={"k": 1.0}, wrt="w")
    assert list(res) == ["w"]
    table = repr(res)
    assert "max rel error" in table and "w" in table and "(2, 3)" in table
    np.testing.assert_allclose(res.analytic["w"], res.numeric["w"], rtol=1e-7)


def test_check_layer_gradients_explicit_dout(rng):
    inputs = {"x": rng.standard_normal(4), "w": rng.standard_normal(4)}
    dout = np.array([1.0, 0.0, 0.0, 0.0])
    res = check_layer_gradients(_scale_forward, _scale_backward, inputs, params={"k": 2.0}, dout=dout)
    expected = np.zeros(4)
    expected[0] = 2.0 * inputs["w"][0]
    np.testing.assert_allclose(res.numeric["x"], expected, atol=1e-9)


def test_check_layer_gradients_loss_mode(rng):
    a = rng.standard_normal((3, 3))

    def quadratic(x):  # loss = x^T A x, grad = (A + A^T) x
        return x @ a @ x, (a + a.T) @ x

    res = check_layer_gradients(quadratic, None, {"x": rng.standard_normal(3)})
    assert res["x"] < 1e-9


def test_check_layer_gradients_errors(rng):
    inputs = {"x": rng.standard_normal((2, 3)), "w": rng.standard_normal((2, 3))}
    with pytest.raises(ValueError, match=r"returned 1 gradient.*2 entries"):
        check_layer_gradients(_scale_forward, lambda d, c: d, inputs, params={"k": 1.0})
    with pytest.raises(ValueError, match=r"unknown inputs \['z'\]"):
        check_layer_gradients(_scale_forward, _scale_backward, inputs, params={"k": 1.0}, wrt=["z"])
    with pytest.raises(ValueError, match=r"dout must have the output's shape \(2, 3\)"):
        check_layer_gradients(_scale_forward, _scale_backward, inputs, params={"k": 1.0}, dout=np.ones(3))
    with pytest.raises(ValueError, match=r"inputs\['x'\] must be a floating-point"):
        check_layer_gradients(_scale_forward, _scale_backward, {"x": np.ones(3, dtype=int), "w": np.ones(3)},
                              params={"k": 1.0})
    with pytest.raises(ValueError, match=r"gradient returned for 'w' has shape \(3,\)"):
        check_layer_gradients(_scale_forward, lambda d, c: (d, d[0]), inputs, params={"k": 1.0})
    with pytest.raises(ValueError, match="h must be a positive number"):
        eval_numerical_gradient(np.sum, np.ones(2), h=0)
    with pytest.raises(ValueError, match="f must return a scalar"):
        eval_numerical_gradient(lambda v: v, np.ones(2))
    with pytest.raises(ValueError, match=r"f\(x\) has shape \(2,\) but df has shape \(3,\)"):
        eval_numerical_gradient_array(lambda v: v, np.ones(2), np.ones(3))
