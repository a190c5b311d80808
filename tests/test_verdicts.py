"""The gradient checker's verdicts and anomaly mode tell the truth: round-off is not a bug
or a kink, a one-element bug is found and named in inputs of any size, inputs (Buffers
included) never change, and anomaly mode follows PyTorch's rules and names the function
the user called. The localisation property runs 50 drawn cases in CI, 1,000 with
``pytest -m slow``."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinygrad_cnn as tg
import tinygrad_cnn.functional as F
from tinygrad_cnn import Function, Tensor

EXAMPLES = [pytest.param(50, id="ci"), pytest.param(1000, id="slow", marks=pytest.mark.slow)]


def planted(flat_index: int):
    """x * 3 whose backward is wrong at one element of the input (by +1 times g)."""
    class PlantedBug(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 3

        @staticmethod
        def backward(ctx, g):
            wrong = np.zeros(g.size)
            wrong[flat_index] = 1.0
            return (g * 3 + g * tg.as_tensor(wrong.reshape(g.shape)),)
    return PlantedBug


def test_a_float32_cast_of_large_values_is_round_off_not_a_bug():
    x = np.random.default_rng(0).uniform(1e4, 2e4, (3, 4))
    report = tg.locate_gradient_error(lambda t: (t.astype(np.float32) * 2).sum(), [x])
    assert all(n.diagnosis != "bug" for n in report.nodes), str(report)
    cast = next(n for n in report.nodes if n.op == "cast")
    assert cast.status == "passed" or cast.diagnosis == "round-off"


@pytest.mark.parametrize("shape", [(4, 16, 4, 4), (4, 16, 16, 16), (8, 16, 28, 28)])
@pytest.mark.parametrize("seed", range(3))
def test_a_one_element_bug_in_a_large_input_is_found_and_named(shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    flat = int(rng.integers(x.size))
    bug = planted(flat)
    report = tg.locate_gradient_error(lambda t: bug.apply(t).tanh(), [x], seed=seed)
    culprit = report.culprit
    assert culprit is not None and culprit.op == "PlantedBug" and culprit.diagnosis == "bug"
    assert culprit.worst_index == tuple(int(i) for i in np.unravel_index(flat, shape))


@pytest.mark.parametrize("op", ["sum", "mul", "sub"])
def test_round_off_of_large_values_is_not_a_kink(op):
    x = np.random.default_rng(1).uniform(1e7, 1e8, (4, 5))
    y = np.random.default_rng(2).uniform(1e7, 1e8, (4, 5))
    f = {"sum": lambda a, b: (a * 1.0).sum() + b.sum(), "mul": lambda a, b: (a * b).sum(),
         "sub": lambda a, b: ((a - b) * 3.0).sum()}[op]
    report = tg.locate_gradient_error(f, [x, y])
    assert not any(n.status == "not differentiable here" for n in report.nodes), str(report)
    assert all(n.diagnosis != "bug" for n in report.nodes), str(report)


def test_gradcheck_and_locate_leave_buffer_inputs_alone():
    rng = np.random.default_rng(3)
    mean, var = tg.buffer(rng.standard_normal(3)), tg.buffer(rng.uniform(1, 2, 3))
    before = mean.copy(), var.copy()

    def f(x, m, v):
        return F.batch_norm(x, m, v, training=True).tanh().sum()

    x = rng.standard_normal((4, 3, 2, 2))
    assert tg.gradcheck(f, [x, mean, var])
    tg.locate_gradient_error(f, [x, mean, var])
    np.testing.assert_array_equal(mean, before[0])
    np.testing.assert_array_equal(var, before[1])


@pytest.mark.parametrize("examples", EXAMPLES)
def test_localisation_finds_planted_bugs_and_blames_no_correct_op(examples):
    @given(log_size=st.floats(2, 5), seed=st.integers(0, 2 ** 31), scale=st.integers(0, 6),
           data=st.data())
    def prop(log_size, seed, scale, data):
        rng = np.random.default_rng(seed)
        size = int(10 ** log_size)
        x = rng.standard_normal(size)
        flat = data.draw(st.integers(0, size - 1))
        bug = planted(flat)
        report = tg.locate_gradient_error(lambda t: bug.apply(t).sigmoid(), [x], seed=seed)
        assert report.culprit is not None and report.culprit.worst_index == (flat,)
        # a correct graph with large values and a float32 cast: no bug, no false kink
        big = x[:50] * 10.0 ** scale
        correct = tg.locate_gradient_error(
            lambda t: ((t * 2.0 - t * 0.5).astype(np.float32) * 3).sum(), [big], seed=seed)
        assert all(n.diagnosis != "bug" and n.status != "not differentiable here"
                   for n in correct.nodes), str(correct)

    settings(max_examples=examples, deadline=None,
             suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])(prop)()


# ----------------------------------------------------------------------------- anomaly mode
def test_anomaly_inside_batch_norm_names_batch_norm_first():
    x = Tensor(np.ones((4, 2, 3, 3)), requires_grad=True)
    with pytest.raises(tg.AnomalyError) as error, np.errstate(all="ignore"):
        with tg.detect_anomaly():
            F.batch_norm(x, np.zeros(2), np.full(2, -1.0))   # var + eps < 0: NaN
    assert error.value.op == "batch_norm" and error.value.inner_op in ("pow", "div", "sqrt")
    assert str(error.value).startswith(f"batch_norm (inside it: {error.value.inner_op})")


def test_anomaly_inside_lrn_names_local_response_norm():
    x = Tensor(np.zeros((1, 3, 2, 2)), requires_grad=True)
    with pytest.raises(tg.AnomalyError) as error, np.errstate(all="ignore"):
        with tg.detect_anomaly():
            F.local_response_norm(x, 3, k=0.0)
    assert error.value.op == "local_response_norm" and error.value.inner_op is not None


def test_an_inf_logit_is_not_an_anomaly_and_its_gradient_is_finite():
    logits = Tensor(np.random.default_rng(0).standard_normal((2, 3)), requires_grad=True)
    with tg.detect_anomaly():
        loss = F.cross_entropy(logits + np.array([0.0, -np.inf, 0.0]), np.array([0, 2]))
        loss.backward()
    assert np.isfinite(loss.item()) and np.isfinite(logits.grad.data).all()
    np.testing.assert_array_equal(logits.grad.data[:, 1], 0.0)


def test_an_overflow_adding_up_gradients_is_a_backward_anomaly():
    x = Tensor(np.array([1e-10]), requires_grad=True)
    with pytest.raises(tg.AnomalyError) as error, np.errstate(all="ignore"):
        with tg.detect_anomaly():
            ((x * 1e308).sum() + (x * 1e308).sum()).backward()
    assert error.value.phase == "backward" and error.value.input_finite
    assert "adding up" in str(error.value)
