"""conv and pooling, forward and backward, against the textbook loops in reference.py."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_cnn.functional as F
from tinygrad_cnn import Tensor, reference


def _run(fn, inputs, **options):
    """Forward, then backward with a random upstream; returns (out, grads, upstream)."""
    tensors = [None if a is None else Tensor(a, requires_grad=True) for a in inputs]
    out = fn(*tensors, **options)
    upstream = np.random.default_rng(1).standard_normal(out.shape)
    out.backward(gradient=upstream)
    return out.data, [None if t is None else t.grad.data for t in tensors], upstream


@st.composite
def conv_configs(draw):
    groups = draw(st.sampled_from([1, 2, 3]))
    channels = groups * draw(st.integers(1, 2))
    depthwise = draw(st.booleans())
    if depthwise:
        groups = channels
    filters = groups * draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    same = draw(st.booleans()) and stride == (1, 1)
    padding = "same" if same else (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    pad_h = dilation[0] * (kh - 1) if same else 2 * padding[0]
    pad_w = dilation[1] * (kw - 1) if same else 2 * padding[1]
    min_h = max(1, dilation[0] * (kh - 1) + 1 - pad_h)
    min_w = max(1, dilation[1] * (kw - 1) + 1 - pad_w)
    height = draw(st.integers(min_h, min_h + 5))
    width = draw(st.integers(min_w, min_w + 5))
    return dict(batch=draw(st.integers(1, 2)), channels=channels, filters=filters,
                kernel=(kh, kw), size=(height, width), stride=stride, padding=padding,
                dilation=dilation, groups=groups, bias=draw(st.booleans()))


def _pad4(config):
    if config["padding"] == "same":
        totals = [d * (k - 1) for k, d in zip(config["kernel"], config["dilation"])]
        return totals[0] // 2, totals[0] - totals[0] // 2, totals[1] // 2, \
            totals[1] - totals[1] // 2
    ph, pw = config["padding"]
    return ph, ph, pw, pw


@given(conv_configs(), st.integers(0, 2**16))
def test_conv2d_matches_loops(config, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((config["batch"], config["channels"]) + config["size"])
    w = rng.standard_normal((config["filters"], config["channels"] // config["groups"])
                            + config["kernel"])
    b = rng.standard_normal(config["filters"]) if config["bias"] else None
    options = {k: config[k] for k in ("stride", "padding", "dilation", "groups")}
    out, (dx, dw, db), upstream = _run(F.conv2d, [x, w, b], **options)
    geometry = (config["stride"], _pad4(config), config["dilation"], config["groups"])
    np.testing.assert_allclose(out, reference.conv_forward_naive(x, w, b, *geometry),
                               atol=1e-10)
    want_dx, want_dw, want_db = reference.conv_backward_naive(upstream, x, w, *geometry)
    np.testing.assert_allclose(dx, want_dx, atol=1e-10)
    np.testing.assert_allclose(dw, want_dw, atol=1e-10)
    if b is not None:
        np.testing.assert_allclose(db, want_db, atol=1e-10)


def test_kernel_as_large_as_the_padded_input():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((1, 2, 3, 4)), rng.standard_normal((3, 2, 5, 6))
    out, (dx, dw), upstream = _run(F.conv2d, [x, w], padding=1)
    assert out.shape == (1, 3, 1, 1)
    want_dx, want_dw, _ = reference.conv_backward_naive(upstream, x, w, (1, 1), (1, 1, 1, 1))
    np.testing.assert_allclose(dx, want_dx, atol=1e-12)
    np.testing.assert_allclose(dw, want_dw, atol=1e-12)


@st.composite
def pool_configs(draw, dilated=True):
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if dilated else (1, 1)
    min_h = max(1, dilation[0] * (kernel[0] - 1) + 1 - 2 * padding[0])
    min_w = max(1, dilation[1] * (kernel[1] - 1) + 1 - 2 * padding[1])
    size = (draw(st.integers(min_h, min_h + 6)), draw(st.integers(min_w, min_w + 6)))
    return dict(kernel=kernel, stride=stride, padding=padding, dilation=dilation, size=size,
                ceil_mode=draw(st.booleans()), batch=draw(st.integers(1, 2)),
                channels=draw(st.integers(1, 2)))


@given(pool_configs(), st.integers(0, 2**16), st.booleans())
def test_max_pool2d_matches_loops(config, seed, with_ties):
    rng = np.random.default_rng(seed)
    shape = (config["batch"], config["channels"]) + config["size"]
    x = rng.integers(0, 3, shape).astype(float) if with_ties else rng.standard_normal(shape)
    geometry = (config["kernel"], config["stride"], config["padding"], config["dilation"],
                config["ceil_mode"])
    if (reference.max_pool_forward_naive(x, *geometry)[1] < 0).any():
        with pytest.raises(ValueError, match="window covers only padding"):
            F.max_pool2d(x, config["kernel"], config["stride"], config["padding"],
                         config["dilation"], config["ceil_mode"])
        return
    out, (dx,), upstream = _run(F.max_pool2d, [x], kernel_size=config["kernel"],
                                stride=config["stride"], padding=config["padding"],
                                dilation=config["dilation"], ceil_mode=config["ceil_mode"])
    np.testing.assert_array_equal(out, reference.max_pool_forward_naive(x, *geometry)[0])
    np.testing.assert_allclose(dx, reference.max_pool_backward_naive(upstream, x, *geometry),
                               atol=1e-12)


@given(pool_configs(dilated=False), st.integers(0, 2**16), st.booleans(),
       st.sampled_from([None, 3]))
def test_avg_pool2d_matches_loops(config, seed, count_include_pad, divisor_override):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((config["batch"], config["channels"]) + config["size"])
    options = dict(ceil_mode=config["ceil_mode"], count_include_pad=count_include_pad,
                   divisor_override=divisor_override)
    out, (dx,), upstream = _run(F.avg_pool2d, [x], kernel_size=config["kernel"],
                                stride=config["stride"], padding=config["padding"], **options)
    geometry = (config["kernel"], config["stride"], config["padding"])
    np.testing.assert_allclose(out, reference.avg_pool_forward_naive(x, *geometry, **options),
                               atol=1e-12)
    np.testing.assert_allclose(
        dx, reference.avg_pool_backward_naive(upstream, x, *geometry, **options), atol=1e-12)


# ----------------------------------------------------------------------------- max-pool, by hand
def _max_pool_grad(x, **options):
    t = Tensor(np.asarray(x, dtype=float)[None, None], requires_grad=True)
    out = F.max_pool2d(t, **options)
    out.sum().backward()
    return out.data[0, 0], t.grad.data[0, 0]


def test_max_pool_ties_send_the_gradient_to_the_first_maximum_only():
    out, grad = _max_pool_grad([[1, 1], [1, 1]], kernel_size=2)
    assert out.tolist() == [[1.0]]
    assert grad.tolist() == [[1, 0], [0, 0]]  # `x == max` would give four ones


def test_max_pool_overlapping_windows_accumulate():
    # 3x3 windows with stride 1 on a 4x4 input: the 9 in the middle wins all four windows
    x = [[0, 0, 0, 0], [0, 9, 0, 0], [0, 0, 5, 0], [0, 0, 0, 0]]
    out, grad = _max_pool_grad(x, kernel_size=3, stride=1)
    assert out.tolist() == [[9, 9], [9, 9]]
    assert grad[1, 1] == 4 and grad.sum() == 4


def test_max_pool_padding_is_minus_infinity():
    # all-negative input: zero padding would win the border windows and lose the gradient
    x = -np.arange(1.0, 10.0).reshape(3, 3)
    out, grad = _max_pool_grad(x, kernel_size=2, stride=2, padding=1)
    assert out.tolist() == [[-1, -2], [-4, -5]]
    assert grad.tolist() == [[1, 1, 0], [1, 1, 0], [0, 0, 0]]


def test_max_pool_ceil_mode_keeps_the_partial_window():
    x = np.arange(25.0).reshape(5, 5)
    out, grad = _max_pool_grad(x, kernel_size=2, stride=2, ceil_mode=True)
    assert out.tolist() == [[6, 8, 9], [16, 18, 19], [21, 23, 24]]
    expected = np.zeros((5, 5))
    for r, c in [(1, 1), (1, 3), (1, 4), (3, 1), (3, 3), (3, 4), (4, 1), (4, 3), (4, 4)]:
        expected[r, c] = 1
    np.testing.assert_array_equal(grad, expected)
    floor_out, _ = _max_pool_grad(x, kernel_size=2, stride=2)
    assert floor_out.shape == (2, 2)


def test_max_pool_nan_propagates_like_numpy():
    out, _ = _max_pool_grad([[1, np.nan], [3, 2]], kernel_size=2)
    assert np.isnan(out[0, 0])


def test_conv_with_nan_and_inf_computes_like_numpy():
    x = np.ones((1, 1, 3, 3))
    x[0, 0, 0, 0] = np.nan
    x[0, 0, 2, 2] = np.inf
    out = F.conv2d(x, np.ones((1, 1, 2, 2))).data[0, 0]
    assert np.isnan(out[0, 0]) and np.isinf(out[1, 1]) and out[0, 1] == 4


def test_max_pool_indices_with_and_without_a_graph():
    x = np.random.default_rng(5).standard_normal((2, 3, 7, 6))
    options = dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, return_indices=True)
    plain_out, plain_indices = F.max_pool2d(x, **options)
    out, indices = F.max_pool2d(Tensor(x, requires_grad=True), **options)
    np.testing.assert_array_equal(indices.data, plain_indices.data)
    flat = x.reshape(2, 3, -1)
    picked = np.take_along_axis(flat, indices.data.reshape(2, 3, -1), axis=2)
    np.testing.assert_array_equal(picked.reshape(out.shape), out.data)
    _, single = F.max_pool2d(x[0], **options)
    np.testing.assert_array_equal(single.data, plain_indices.data[0])
