"""Optimizers against hand-computed updates; initializers' scales."""

import math

import numpy as np
import pytest

from tinygrad_cnn import Tensor, init, optim


def param(values):
    return Tensor(np.array(values, dtype=np.float64), requires_grad=True)


def test_sgd_plain_and_weight_decay():
    p = param([1.0, -2.0])
    opt = optim.SGD([p], lr=0.1, weight_decay=0.5)
    opt.step([np.array([1.0, 1.0])])
    # g = grad + wd*p = [1.5, 0]; p - lr*g
    np.testing.assert_allclose(p.data, [0.85, -2.0])


def test_sgd_momentum_and_nesterov():
    p = param([0.0])
    opt = optim.SGD({"w": p}, lr=1.0, momentum=0.5)
    for _ in range(3):
        opt.step({"w": np.array([1.0])})
    # buffers 1, 1.5, 1.75 -> p = -(1 + 1.5 + 1.75)
    np.testing.assert_allclose(p.data, [-4.25])
    q = param([0.0])
    nesterov = optim.SGD([q], lr=1.0, momentum=0.5, nesterov=True)
    for _ in range(2):
        nesterov.step([np.array([1.0])])
    # step 1: b=1, g=1+0.5*1=1.5; step 2: b=1.5, g=1+0.75=1.75
    np.testing.assert_allclose(q.data, [-3.25])


def test_adam_first_steps_by_hand():
    p = param([1.0])
    opt = optim.Adam([p], lr=0.1, betas=(0.9, 0.999), eps=1e-8)
    opt.step([np.array([2.0])])
    # m_hat = g, v_hat = g^2: the first step moves by lr * g/|g| = 0.1
    np.testing.assert_allclose(p.data, [0.9], rtol=1e-7)
    opt.step([np.array([-1.0])])
    m = 0.9 * 0.2 + 0.1 * -1.0
    v = 0.999 * 0.004 + 0.001 * 1.0
    expected = 0.9 - 0.1 * (m / (1 - 0.81)) / (math.sqrt(v / (1 - 0.999 ** 2)) + 1e-8)
    np.testing.assert_allclose(p.data, [expected], rtol=1e-7)


def test_adam_couples_and_adamw_decouples_weight_decay():
    a, b = param([1.0]), param([1.0])
    optim.Adam([a], lr=0.1, weight_decay=0.1).step([np.array([0.0])])
    optim.AdamW([b], lr=0.1, weight_decay=0.1).step([np.array([0.0])])
    np.testing.assert_allclose(a.data, [0.9], rtol=1e-6)   # g = wd*p = 0.1: a unit step
    np.testing.assert_allclose(b.data, [0.99])              # p*(1 - lr*wd), no gradient step


def test_step_from_dot_grad_and_zero_grad():
    p = param([1.0, 1.0])
    (p * p).sum().backward()
    opt = optim.SGD([p], lr=0.25)
    opt.step()
    np.testing.assert_allclose(p.data, [0.5, 0.5])
    opt.zero_grad()
    assert p.grad is None
    opt.step()  # no gradient: no change
    np.testing.assert_allclose(p.data, [0.5, 0.5])


def test_optimizer_errors():
    with pytest.raises(TypeError, match="parameter 1 has dtype int64; only floating-point"):
        optim.SGD([np.ones(2), np.arange(2)], lr=0.1)
    with pytest.raises(TypeError, match="parameter 0 is a float"):
        optim.SGD([[[1.0]]], lr=0.1)
    with pytest.raises(ValueError, match="numpy parameters hold no .grad"):
        optim.SGD([np.ones(2)], lr=0.1).step()
    with pytest.raises(ValueError, match="invalid lr value -0.1"):
        optim.SGD([param([1.0])], lr=-0.1)
    opt = optim.SGD({"w": param([1.0])}, lr=0.1)
    with pytest.raises(ValueError, match="structure of the params"):
        opt.step({"v": np.ones(1), "w": np.ones(1)})
    with pytest.raises(ValueError, match=r"gradient 0 has shape \(2,\) but its parameter"):
        opt.step({"w": np.ones(2)})


@pytest.mark.parametrize("shape,fan_in,fan_out", [((16, 6, 5, 5), 150, 400), ((10, 84), 84, 10)])
def test_initializer_scales_follow_pytorch(shape, fan_in, fan_out):
    rng = np.random.default_rng(0)
    assert init.fans(shape) == (fan_in, fan_out)
    big = (200,) + shape[1:]
    normal = init.kaiming_normal(big, rng)
    np.testing.assert_allclose(normal.std(), math.sqrt(2 / fan_in), rtol=0.05)
    uniform = init.kaiming_uniform(shape, rng, a=math.sqrt(5))
    assert np.abs(uniform).max() <= 1 / math.sqrt(fan_in) + 1e-7
    xavier = init.xavier_uniform(shape, rng)
    assert np.abs(xavier).max() <= math.sqrt(6 / (fan_in + fan_out)) + 1e-7
    assert init.zeros(shape).sum() == 0 and normal.dtype == np.float32


def test_initializers_are_reproducible_from_a_seed():
    first = init.kaiming_normal((4, 3), np.random.default_rng(7))
    second = init.kaiming_normal((4, 3), np.random.default_rng(7))
    np.testing.assert_array_equal(first, second)
