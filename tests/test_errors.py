"""Every promised error of the core, with its message."""

import operator

import numpy as np
import pytest

import tinygrad_cnn as tg
import tinygrad_cnn.functional as F
from tinygrad_cnn import Tensor


@pytest.mark.parametrize("op", [operator.add, operator.sub, operator.mul, operator.truediv,
                                operator.pow])
def test_elementwise_shape_mismatch_names_both_shapes(op):
    a, b = Tensor(np.ones((3, 4))), Tensor(np.ones((5,)))
    with pytest.raises(ValueError, match=r"shapes \(3, 4\) and \(5,\) cannot be broadcast"):
        op(a, b)


def test_maximum_shape_mismatch():
    with pytest.raises(ValueError, match=r"maximum: shapes \(2,\) and \(3,\)"):
        Tensor(np.ones(2)).maximum(Tensor(np.ones(3)))


def test_matmul_mismatch_names_shapes_and_axes():
    with pytest.raises(ValueError, match=r"matmul: shapes \(3, 4\) and \(5, 6\) are not "
                                         r"aligned: 4 \(last axis of a\) != 5"):
        Tensor(np.ones((3, 4))) @ Tensor(np.ones((5, 6)))
    with pytest.raises(ValueError, match=r"batch shapes \(2,\) and \(3,\)"):
        Tensor(np.ones((2, 3, 4))) @ Tensor(np.ones((3, 4, 5)))
    with pytest.raises(ValueError, match="at least 1 dimension"):
        Tensor(np.float64(2.0)) @ Tensor(np.ones(3))


@pytest.mark.parametrize("method", ["sum", "mean", "max", "min"])
def test_axis_out_of_range(method):
    x = Tensor(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"axis 2 is out of range for a tensor with 2 "
                                         r"dimensions \(valid: -2 to 1\)"):
        getattr(x, method)(axis=2)
    with pytest.raises(TypeError, match="axis must be an int"):
        getattr(x, method)(axis=1.5)


def test_shape_op_errors():
    x = Tensor(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"cannot reshape a tensor of shape \(2, 3\) \(6 "
                                         r"elements\) into shape \(4,\)"):
        x.reshape(4)
    with pytest.raises(ValueError, match=r"axes \(0,\) are not a permutation of the 2 axes"):
        x.transpose((0,))
    with pytest.raises(ValueError, match=r"repeats an axis"):
        x.transpose(0, 0)
    with pytest.raises(ValueError, match=r"cannot broadcast a tensor of shape \(2, 3\) to "
                                         r"shape \(3, 3\)"):
        x.expand(3, 3)
    with pytest.raises(ValueError, match="must match on every axis except axis 0"):
        tg.concatenate([x, Tensor(np.ones((2, 4)))])
    with pytest.raises(ValueError, match="same shape"):
        tg.stack([x, Tensor(np.ones((3, 2)))])
    with pytest.raises(ValueError, match="non-negative"):
        x.pad(-1)
    with pytest.raises(IndexError, match=r"getitem: .*out of bounds.*shape \(2, 3\)"):
        x[5]


def test_type_errors():
    with pytest.raises(TypeError, match="expected numeric data"):
        Tensor("abc")
    with pytest.raises(TypeError, match="requires_grad=True needs a floating dtype"):
        Tensor([1, 2], requires_grad=True)
    with pytest.raises(TypeError, match="unsupported operand"):
        Tensor(np.ones(2)) + "a"


def test_backward_errors():
    x = Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"non-scalar output of shape \(3,\): pass "
                                           r"gradient="):
        (x * 2).backward()
    with pytest.raises(ValueError, match=r"gradient has shape \(2,\) but the output has "
                                         r"shape \(3,\)"):
        (x * 2).backward(gradient=np.ones(2))
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor(np.ones(3)).sum().backward()


def test_clip_errors():
    with pytest.raises(ValueError, match="at least one of min and max"):
        Tensor(np.ones(2)).clip()
    with pytest.raises(ValueError, match="min=2 is greater than max=1"):
        Tensor(np.ones(2)).clip(2, 1)


def test_argnums_out_of_range():
    with pytest.raises(ValueError, match="argnums 3 refers to argument 3"):
        tg.grad(lambda x: x.sum(), argnums=3)(np.ones(2))


# ----------------------------------------------------------------------------- batch norm
def test_batch_norm_training_with_eps_0_raises_as_torch_does():
    x = np.ones((4, 3))    # a constant channel: variance 0, so eps=0 would divide by 0
    with pytest.raises(ValueError, match="eps must be positive during training, got 0"):
        F.batch_norm(x, np.zeros(3), np.ones(3), training=True, eps=0)
    assert np.all(np.isfinite(F.batch_norm(x, np.zeros(3), np.ones(3), eps=0).data))


@pytest.mark.parametrize("shape", [(0, 3), (0, 3, 4, 4)])
def test_batch_norm_of_an_empty_batch_is_empty_and_keeps_the_statistics(shape):
    mean, var = np.arange(3.0), np.full(3, 2.0)
    weight = tg.Tensor(np.ones(3), requires_grad=True)
    out = F.batch_norm(np.zeros(shape), mean, var, weight, training=True)
    assert out.shape == shape
    np.testing.assert_array_equal(mean, np.arange(3.0))
    np.testing.assert_array_equal(var, np.full(3, 2.0))
    out.sum().backward()
    np.testing.assert_array_equal(weight.grad.data, np.zeros(3))


@pytest.mark.parametrize("read_only", ["running_mean", "running_var"])
def test_batch_norm_checks_both_statistics_before_writing_either(read_only):
    stats = {"running_mean": np.zeros(3), "running_var": np.ones(3)}
    stats[read_only].flags.writeable = False
    with pytest.raises(ValueError, match=f"batch_norm: {read_only} is read-only"):
        F.batch_norm(np.random.default_rng(0).standard_normal((4, 3)), training=True, **stats)
    np.testing.assert_array_equal(stats["running_mean"], np.zeros(3))
    np.testing.assert_array_equal(stats["running_var"], np.ones(3))
