"""The engine: accumulation, deep graphs, grad mode, create_graph, freeing, transforms."""

import gc
import threading
import weakref

import numpy as np
import pytest

import tinygrad_cnn as tg
from tinygrad_cnn import Tensor


def leaf(values, dtype=np.float64):
    return Tensor(np.asarray(values, dtype=dtype), requires_grad=True)


def test_reuse_accumulates():
    x = leaf(5.0)
    (x + 2 * x).backward()
    assert x.grad.item() == 3.0


def test_diamond():
    x = leaf([1.0, 2.0])
    a, b = x * 3, x.exp()
    (a * b).sum().backward()
    expected = 3 * np.exp(x.data) + 3 * x.data * np.exp(x.data)
    np.testing.assert_allclose(x.grad.data, expected)


def test_grads_accumulate_across_backward_calls_and_zero_grad():
    x = leaf([1.0, -1.0])
    (x * x).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.data, 4 * x.data)
    x.zero_grad()
    assert x.grad is None


def test_deep_chain_has_no_recursion_limit():
    x = leaf(1.0)
    y = x
    for _ in range(100_000):
        y = y * 1.0
    y.backward()
    assert x.grad.item() == 1.0


def test_second_backward_without_retain_graph_raises():
    x = leaf([1.0, 2.0])
    y = (x.exp() * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()


def test_retain_graph_allows_a_second_backward():
    x = leaf([1.0, 2.0])
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.data, 2 * (np.exp(x.data) * (1 + x.data)))


def test_create_graph_gives_second_derivatives():
    x = leaf(2.0)
    y = x ** 3
    y.backward(create_graph=True)
    first = x.grad
    assert first.item() == 12.0 and first.requires_grad
    x.zero_grad()
    first.backward()
    assert x.grad.item() == 12.0  # d2/dx2 x^3 = 6x


def test_non_scalar_backward_needs_gradient():
    x = leaf(np.ones((3, 4)))
    with pytest.raises(RuntimeError, match=r"non-scalar output of shape \(3, 4\).*gradient="):
        (x * 2).backward()
    (x * 2).backward(gradient=np.full((3, 4), 0.5))
    np.testing.assert_allclose(x.grad.data, 1.0)


def test_memory_is_freed_after_backward_and_del():
    gc.disable()
    try:
        x = leaf(np.ones(1000))
        y = (x.exp() * x).relu().sum()
        relu_node = y.grad_fn.inputs[0].grad_fn
        refs = [weakref.ref(y.grad_fn), weakref.ref(relu_node),
                weakref.ref(relu_node.saved[0]), weakref.ref(relu_node.inputs[0])]
        del relu_node
        y.backward()
        del y
        assert [ref() for ref in refs] == [None] * len(refs)
        assert x.grad is not None
    finally:
        gc.enable()


def test_saved_arrays_are_released_after_backward():
    gc.disable()
    try:
        x = leaf(np.linspace(-1, 1, 10))
        hidden = x.relu()
        y = hidden.sum()
        node = hidden.grad_fn
        assert node.saved and isinstance(node.saved[0], np.ndarray)
        y.backward()
        assert node.saved is None
        with_retain = x.relu()
        with_retain.sum().backward(retain_graph=True)
        assert with_retain.grad_fn.saved is not None
    finally:
        gc.enable()


def test_no_grad_records_nothing_and_saves_nothing():
    x = leaf([1.0, -2.0])
    with tg.no_grad():
        y = x.relu() * 2
    assert not y.requires_grad and y.grad_fn is None
    assert tg.is_grad_enabled()

    @tg.no_grad()
    def decorated(t):
        assert not tg.is_grad_enabled()
        with tg.enable_grad():
            assert tg.is_grad_enabled()
            return t * 2

    assert decorated(x).requires_grad


def test_grad_mode_is_thread_local():
    seen = []
    with tg.no_grad():
        thread = threading.Thread(target=lambda: seen.append(tg.is_grad_enabled()))
        thread.start()
        thread.join()
        assert not tg.is_grad_enabled()
    assert seen == [True]


def test_max_splits_gradient_among_ties():
    x = leaf([[1.0, 3.0, 3.0, -2.0], [0.5, 0.5, 0.5, 0.5]])
    x.max(axis=1).sum().backward()
    np.testing.assert_allclose(x.grad.data, [[0, 0.5, 0.5, 0], [0.25] * 4])
    y = leaf([2.0, -1.0, -1.0])
    y.min().backward()
    np.testing.assert_allclose(y.grad.data, [0, 0.5, 0.5])


def test_maximum_splits_ties_in_halves():
    a, b = leaf([1.0, 2.0, 3.0]), leaf([1.0, 0.0, 4.0])
    a.maximum(b).sum().backward()
    np.testing.assert_allclose(a.grad.data, [0.5, 1, 0])
    np.testing.assert_allclose(b.grad.data, [0.5, 0, 1])


def test_getitem_repeated_indices_accumulate():
    x = leaf([1.0, 2.0, 3.0])
    x[[0, 0, 2, 0]].sum().backward()
    np.testing.assert_allclose(x.grad.data, [3, 0, 1])


def test_dtypes_follow_pytorch_rules():
    assert Tensor([1.0, 2.0]).dtype == np.float32
    assert Tensor(np.ones(2)).dtype == np.float64
    assert Tensor([1, 2]).dtype.kind == "i"
    x = Tensor(np.ones(3, np.float32), requires_grad=True)
    y = x * 2.5 + 1
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32


def test_float32_grad_of_float64_constant_is_cast_back():
    x = Tensor(np.ones(3, np.float32), requires_grad=True)
    (x * np.full(3, 2.0)).sum().backward()  # float64 array promotes the product
    assert x.grad.dtype == np.float32


def test_comparisons_are_not_differentiable():
    x = leaf([1.0, -1.0])
    mask = x > 0
    assert mask.dtype == bool and not mask.requires_grad
    np.testing.assert_array_equal((x == 1.0).data, [True, False])


def test_attributes_and_repr():
    x = Tensor(np.zeros((2, 3)), requires_grad=True, name="w")
    y = x.relu()
    assert (x.shape, x.ndim, x.size, x.is_leaf, y.is_leaf) == ((2, 3), 2, 6, True, False)
    assert y.grad_fn.name == "relu" and y.grad_fn.inputs[0] is x
    assert "grad_fn=<relu>" in repr(y) and "float64" in repr(y) and "(2, 3)" in repr(y)
    assert y.detach().grad_fn is None
    assert Tensor(3.5).item() == 3.5


def test_transpose_flatten_expand_pad_concat_stack():
    x = leaf(np.arange(24.0).reshape(2, 3, 4))
    assert x.transpose(2, 0, 1).shape == (4, 2, 3) and x.T.shape == (4, 3, 2)
    assert x.flatten().shape == (24,) and x.flatten(1).shape == (2, 12)
    assert x.flatten(0, 1).shape == (6, 4)
    assert leaf([1.0, 2.0]).expand(3, 2).shape == (3, 2)
    assert x.pad(((0, 0), (1, 1), (2, 0))).shape == (2, 5, 6)
    assert tg.concatenate([x, x], axis=-1).shape == (2, 3, 8)
    s = tg.stack([x, x, x], axis=1)
    assert s.shape == (2, 3, 3, 4)
    s.sum().backward()
    np.testing.assert_allclose(x.grad.data, 3.0)


# ----------------------------------------------------------------------------- transforms
def loss(params, x):
    return ((params["w"] @ x + params["b"]) ** 2).sum()


def test_value_and_grad_mirrors_params_structure():
    params = {"w": np.ones((2, 3)), "b": np.zeros(2)}
    x = np.array([1.0, 2.0, 3.0])
    value, grads = tg.value_and_grad(loss)(params, x)
    assert value.item() == 72.0
    assert set(grads) == {"w", "b"}
    np.testing.assert_allclose(grads["b"].data, [12.0, 12.0])
    np.testing.assert_allclose(grads["w"].data, np.outer([12, 12], x))


def test_argnums_tuple_and_has_aux():
    params = {"w": np.ones((2, 3)), "b": np.zeros(2)}
    x = np.array([1.0, 2.0, 3.0])
    (value, aux), (g_params, g_x) = tg.value_and_grad(
        lambda p, x: (loss(p, x), "aux"), argnums=(0, 1), has_aux=True)(params, x)
    assert aux == "aux" and value.item() == 72.0
    np.testing.assert_allclose(g_x.data, [24.0, 24.0, 24.0])  # W^T 2(Wx + b)
    grads, aux = tg.grad(lambda p, x: (loss(p, x), 1), has_aux=True)(params, x)
    assert aux == 1 and grads["w"].shape == (2, 3)


def test_grad_of_lists_and_unused_args_gives_zeros():
    grads = tg.grad(lambda ws: (ws[0] * 2).sum())([np.ones(2), np.ones(3)])
    assert isinstance(grads, list)
    np.testing.assert_allclose(grads[0].data, 2.0)
    np.testing.assert_allclose(grads[1].data, 0.0)


def test_nested_grad_gives_higher_derivatives():
    cube = lambda x: x ** 3  # noqa: E731
    assert tg.grad(tg.grad(cube))(np.float64(2.0)).item() == 12.0
    assert tg.grad(tg.grad(tg.grad(cube)))(np.float64(2.0)).item() == 6.0


def test_grad_inside_a_differentiated_function():
    def outer(y):
        inner = tg.grad(lambda x: (x * y * y).sum())(np.ones(2))  # = y^2
        return inner.sum()

    np.testing.assert_allclose(tg.grad(outer)(np.array([3.0, 4.0])).data, [6.0, 8.0])


def test_jacobian_and_hvp():
    x = np.array([1.0, 2.0, 3.0])
    jac = tg.jacobian(lambda t: t * t)(x)
    np.testing.assert_allclose(jac.data, np.diag(2 * x))
    cubic = lambda t: (t ** 3).sum()  # noqa: E731  Hessian = diag(6x)
    v = np.array([1.0, 0.5, -1.0])
    np.testing.assert_allclose(tg.hvp(cubic, x, v).data, 6 * x * v)


def test_grad_rejects_integer_arguments_and_non_scalars():
    with pytest.raises(TypeError, match="floating point"):
        tg.grad(lambda x: x.sum())(np.array([1, 2]))
    with pytest.raises(ValueError, match=r"must return a scalar, got shape \(2,\)"):
        tg.grad(lambda x: x * 2)(np.ones(2))


def test_top_level_grad_does_not_keep_a_graph():
    g = tg.grad(lambda x: (x ** 2).sum())(np.ones(3))
    assert not g.requires_grad and g.grad_fn is None


def test_the_engine_imports_and_differentiates_without_graphviz():
    import subprocess
    import sys
    code = ("import sys; sys.modules['graphviz'] = None\n"
            "import numpy as np, tinygrad_cnn as tg\n"
            "x = tg.Tensor(np.ones(2), requires_grad=True); (x * x).sum().backward()\n"
            "assert x.grad.data.tolist() == [2.0, 2.0]\n")
    subprocess.run([sys.executable, "-c", code], check=True)
