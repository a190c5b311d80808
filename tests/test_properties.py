"""Property tests: broadcasting, reductions, matmul shapes, indexing with repeats."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_cnn as tg
from tinygrad_cnn import Tensor

finite = st.floats(-3, 3, allow_nan=False, width=64)


@given(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3),
       st.sampled_from(["add", "sub", "mul", "maximum"]), st.integers(0, 2**16))
def test_binary_ops_undo_broadcasting(shapes, name, seed):
    rng = np.random.default_rng(seed)
    a, b = (rng.uniform(0.5, 2, s) for s in shapes.input_shapes)
    ta, tb = Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)
    out = tg.REGISTRY[name](ta, tb)
    assert out.shape == shapes.result_shape
    upstream = rng.standard_normal(out.shape)
    out.backward(gradient=upstream)
    assert ta.grad.shape == a.shape and tb.grad.shape == b.shape
    if name == "add":  # the gradient of a broadcast operand is the upstream summed over copies
        np.testing.assert_allclose(ta.grad.data.sum(), upstream.sum())
        np.testing.assert_allclose(tb.grad.data.sum(), upstream.sum())


@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=4, max_side=4),
                  elements=finite), st.data())
def test_reductions_match_numpy_and_sum_gradient_is_ones(array, data):
    axis = data.draw(st.none() | st.lists(st.integers(0, array.ndim - 1), unique=True,
                                          min_size=1).map(tuple))
    keepdims = data.draw(st.booleans())
    x = Tensor(array, requires_grad=True)
    for method in ["sum", "mean", "max", "min"]:
        got = getattr(x, method)(axis=axis, keepdims=keepdims)
        np.testing.assert_allclose(got.data, getattr(np, method)(array, axis=axis,
                                                                 keepdims=keepdims))
    x.sum(axis=axis, keepdims=keepdims).sum().backward()
    np.testing.assert_array_equal(x.grad.data, np.ones_like(array))
    x.zero_grad()
    x.max(axis=axis, keepdims=keepdims).sum().backward()  # each reduction's shares sum to 1
    np.testing.assert_allclose(x.grad.data.sum(), np.max(array, axis=axis).size)


@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4),
       hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=2, max_side=3),
       st.booleans(), st.booleans())
def test_matmul_shapes_and_gradients(m, k, n, batches, vector_a, vector_b):
    rng = np.random.default_rng(0)
    batch_a, batch_b = batches.input_shapes
    a_shape = (k,) if vector_a else tuple(batch_a) + (m, k)
    b_shape = (k,) if vector_b else tuple(batch_b) + (k, n)
    a, b = rng.standard_normal(a_shape), rng.standard_normal(b_shape)
    out = Tensor(a) @ Tensor(b)
    np.testing.assert_allclose(out.data, np.matmul(a, b))
    assert tg.gradcheck(lambda x, y: x @ y, [a, b])


@given(st.lists(st.integers(0, 4), min_size=1, max_size=12), st.integers(0, 2**16))
def test_indexing_with_repeated_indices_accumulates(indices, seed):
    x = Tensor(np.random.default_rng(seed).standard_normal((5, 2)), requires_grad=True)
    x[np.array(indices)].sum().backward()
    counts = np.bincount(indices, minlength=5)
    np.testing.assert_array_equal(x.grad.data, np.repeat(counts[:, None], 2, axis=1))
