"""The gradient checker itself: it must catch wrong backwards and say where."""

import numpy as np
import pytest

import tinygrad_cnn as tg
from tinygrad_cnn import Function, Tensor


class ScaledSquare(Function):
    """x^2 * y whose backward is wrong for y at one element."""

    @staticmethod
    def forward(ctx, x, y):
        return x * x * y

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.inputs
        wrong = np.ones(x.shape)
        wrong[1, 2] = 1.5  # the bug: element (1, 2) of y's gradient is scaled
        return g * 2 * x * y, g * x * x * Tensor(wrong)


class IgnoresUpstream(Function):
    @staticmethod
    def forward(ctx, x):
        return 3 * x

    @staticmethod
    def backward(ctx, g):
        return (Tensor(np.full(ctx.inputs[0].shape, 3.0)),)  # forgets to multiply by g


def test_wrong_backward_is_caught_naming_input_and_element():
    rng = np.random.default_rng(0)
    x, y = rng.uniform(1, 2, (2, 3)), Tensor(rng.uniform(1, 2, (2, 3)), requires_grad=True,
                                             name="scale")
    with pytest.raises(tg.GradcheckError) as info:
        tg.gradcheck(ScaledSquare.apply, [x, y])
    message = str(info.value)
    assert "input 1 ('scale'" in message and "element (1, 2)" in message
    assert "input 0" not in message
    assert "analytic" in message and "numeric" in message and "max abs error" in message
    assert tg.gradcheck(ScaledSquare.apply, [x, y], raise_exception=False) is False


def test_backward_that_ignores_the_upstream_gradient_is_caught():
    x = np.linspace(0.1, 1, 6).reshape(2, 3)
    assert tg.gradcheck(lambda t: IgnoresUpstream.apply(t).sum(), [x])  # passes with ones
    assert not tg.gradcheck(IgnoresUpstream.apply, [x], raise_exception=False)


def test_report_table():
    x = np.random.default_rng(1).uniform(1, 2, (2, 3))
    report = tg.check_gradients(ScaledSquare.apply, [x, x.copy()])
    assert [row.passed for row in report.inputs] == [True, False]
    assert report.inputs[1].worst_index == (1, 2)
    table = str(report)
    assert "max abs err" in table and "FAIL" in table and "ok" in table


def test_gradgradcheck_catches_a_wrong_second_derivative():
    class FirstOrderOnly(Function):
        """cube whose backward drops to a constant: right first, wrong second derivative."""

        @staticmethod
        def forward(ctx, x):
            return x ** 3

        @staticmethod
        def backward(ctx, g):
            return (g * Tensor(3 * ctx.inputs[0].data ** 2),)

    x = np.array([0.5, 1.5])
    assert tg.gradcheck(FirstOrderOnly.apply, [x])
    with pytest.raises(tg.GradcheckError, match="gradgradcheck: input 0"):
        tg.gradgradcheck(FirstOrderOnly.apply, [x])


def test_float32_input_warns():
    with pytest.warns(UserWarning, match="float64"):
        tg.gradcheck(lambda t: (t * t).sum(), [np.ones(3, np.float32)])


def test_numerical_grad():
    x = np.array([1.0, 2.0])
    (numeric,) = tg.numerical_grad(lambda t: (t ** 3).sum(), [x])
    np.testing.assert_allclose(numeric, 3 * x ** 2, rtol=1e-6)
    (weighted,) = tg.numerical_grad(lambda t: t * t, [x], gradient=np.array([1.0, -1.0]))
    np.testing.assert_allclose(weighted, [2.0, -4.0], rtol=1e-6)
    with pytest.raises(ValueError, match="pass gradient="):
        tg.numerical_grad(lambda t: t * t, [x])


def test_integer_and_constant_inputs_are_passed_through():
    labels = np.array([0, 2])
    const = Tensor(np.ones(2))
    assert tg.gradcheck(lambda x, y, c: (x[y] * c).sum(), [np.ones(3), labels, const])
    with pytest.raises(ValueError, match="no input to check"):
        tg.gradcheck(lambda y: y * 1.0, [labels])


def test_elements_limits_the_finite_differences():
    calls = []

    def f(x):
        calls.append(1)
        return (x * x).sum()

    x = np.linspace(0.5, 1.5, 10)
    report = tg.check_gradients(f, [x], elements=3)
    assert report.passed and len(calls) == 1 + 2 * 3 + 1  # shape, 3 columns, analytic
    broken = tg.check_gradients(ScaledSquare.apply, [x.reshape(2, 5), x.reshape(2, 5)],
                                elements=10)
    assert not broken.passed
