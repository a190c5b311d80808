"""Receptive fields off the straight path: branches of different geometry, joins, pools with
ceil_mode, dilation, concatenation, broadcasting and batch norm in both modes. The rule
checked on drawn nets: the theoretical box always contains the effective field's nonzeros.
CI draws 50 nets; ``pytest -m slow`` draws 1,000."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinygrad_cnn as tg
import tinygrad_cnn.functional as F
from tinygrad_cnn import Tensor
from tinygrad_cnn.receptive import WHOLE, theoretical_fields

EXAMPLES = [pytest.param(50, id="ci"), pytest.param(1000, id="slow", marks=pytest.mark.slow)]
rng = np.random.default_rng(7)


def output_field(f, images):
    x = Tensor(images, requires_grad=True)
    out = f(x)
    return out, theoretical_fields(out, x)[id(out.grad_fn)]


def assert_box_holds_the_effective_field(f, images, index):
    out, field = output_field(f, images)
    effective, box = tg.receptive_field(f, images, index)
    if field == WHOLE:
        return field
    theory = field.box(index[-2:], images.shape[2:])
    rows, cols = np.nonzero(effective)
    if rows.size:
        assert theory is not None, (field, box)
        top, left, bottom, right = theory
        assert top <= rows.min() and rows.max() <= bottom, (field, theory, box)
        assert left <= cols.min() and cols.max() <= right, (field, theory, box)
    return field


def weight(out_c, in_c, k):
    return rng.standard_normal((out_c, in_c, k, k))


def test_branches_of_different_geometry_join_as_a_union():
    w1, w5 = weight(2, 1, 1), weight(2, 1, 5)

    def f(x):
        return F.conv2d(x, w1, stride=2) + F.conv2d(x, w5)

    images = rng.standard_normal((2, 1, 8, 8))
    field = assert_box_holds_the_effective_field(f, images, (0, 0, 3, 3))
    assert field.box((3, 3), (8, 8)) == (3, 3, 7, 7)
    assert tg.receptive_field(f, images, (0, 0, 3, 3))[1] == (3, 3, 7, 7)
    assert str(field) == "1x1 /2 | 5x5 /1"


def test_batch_norm_in_training_mode_sees_the_whole_input():
    w = weight(2, 1, 3)

    def f(x, training):
        return F.batch_norm(F.conv2d(x, w), np.zeros(2), np.ones(2), training=training)

    images = rng.standard_normal((3, 1, 8, 8))
    assert output_field(lambda x: f(x, True), images)[1] == WHOLE
    assert output_field(lambda x: f(x, False), images)[1].size == (3, 3)
    assert tg.receptive_field(lambda x: f(x, True), images, (0, 0, 0, 0))[1] == (0, 0, 7, 7)


def test_concatenation_along_a_spatial_axis_and_broadcasting():
    images = rng.standard_normal((2, 1, 6, 6))
    spatial = lambda x: tg.concatenate([x, F.relu(x)], axis=3)  # noqa: E731
    assert output_field(spatial, images)[1] == WHOLE
    rows_mean = lambda x: F.avg_pool2d(x, (1, 6)).broadcast_to((2, 1, 6, 6))  # noqa: E731
    field = assert_box_holds_the_effective_field(rows_mean, images, (1, 0, 2, 4))
    assert field.box((2, 4), (6, 6)) == (2, 0, 2, 5)
    both = lambda x: F.avg_pool2d(x, (1, 6)) + x  # noqa: E731
    assert assert_box_holds_the_effective_field(both, images, (1, 0, 2, 4)).box(
        (2, 4), (6, 6)) == (2, 0, 2, 5)


def test_the_full_index_picks_one_example():
    w = weight(1, 1, 3)
    f = lambda x: F.batch_norm(F.conv2d(x, w), np.zeros(1), np.ones(1))  # noqa: E731
    images = rng.standard_normal((3, 1, 6, 6))
    images[1] = 0   # example 1 is blank: a field of example 1 alone is the conv's weights
    one, box = tg.receptive_field(f, images, (1, 0, 1, 1))
    summed, _ = tg.receptive_field(f, images, (0, 1, 1))
    assert box == (1, 1, 3, 3)
    np.testing.assert_allclose(one[1:4, 1:4], np.abs(w[0, 0]), rtol=1e-4)   # / sqrt(1 + eps)
    assert summed.sum() > one.sum()


def test_summary_starts_at_the_input_and_keeps_unbatched_fields(capsys):
    w = Tensor(weight(2, 1, 3), requires_grad=True)
    rows = tg.summary(lambda w, x: F.conv2d(F.max_pool2d(x, 2), w), w,
                      rng.standard_normal((1, 1, 12, 12)))
    assert [(r["op"].split()[0], r["receptive_field"], r["jump"]) for r in rows[:2]] == [
        ("max_pool2d", (2, 2), (2, 2)), ("conv2d", (6, 6), (2, 2))]
    assert rows[-1]["params"] == w.size
    rows = tg.summary(lambda w, x: F.conv2d(x, w), w, rng.standard_normal((1, 8, 8)))
    assert rows[-2]["receptive_field"] == (3, 3) and rows[-2]["output_shape"] == (2, 6, 6)


# ----------------------------------------------------------------------------- drawn nets
@st.composite
def window(draw, channels: int):
    """A conv or a pool with drawn geometry: (function, the label)."""
    k, s, d = draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    pad = draw(st.integers(0, k // 2))
    kind = draw(st.sampled_from(["conv", "max", "avg"]))
    if kind == "conv":
        w = rng.standard_normal((channels, channels, k, k))
        return lambda x: F.conv2d(x, w, None, s, pad, d), f"conv k{k} s{s} p{pad} d{d}"
    ceil = draw(st.booleans())
    if kind == "max":
        return (lambda x: F.max_pool2d(x, k, s, pad, d, ceil_mode=ceil),
                f"max k{k} s{s} p{pad} d{d} ceil {ceil}")
    return lambda x: F.avg_pool2d(x, k, s, pad, ceil_mode=ceil), f"avg k{k} s{s} p{pad}"


@st.composite
def branch_pair(draw, channels: int):
    """Two branches that give the same output size: a 1x1 conv of stride s, and a kxk
    dilated conv (padded to keep the size) of the same stride, maybe then a 3x3/1 max."""
    s, k, d = draw(st.integers(1, 2)), draw(st.sampled_from([1, 3, 5])), draw(st.integers(1, 2))
    w1, wk = rng.standard_normal((channels, channels, 1, 1)), \
        rng.standard_normal((channels, channels, k, k))
    pool = draw(st.booleans())
    join = draw(st.sampled_from(["add", "maximum", "concat"]))

    def f(x):
        a = F.conv2d(x, w1, stride=s)
        b = F.conv2d(x, wk, stride=s, padding=d * (k - 1) // 2, dilation=d)
        if pool:
            b = F.max_pool2d(b, 3, 1, 1)
        if join == "concat":
            return tg.concatenate([a, b], axis=1)
        return a + b if join == "add" else a.maximum(b)
    return f, f"branches 1x1/{s} and {k}x{k} d{d} pool {pool} {join}", join == "concat"


def then_mix_channels(inner, w):
    """inner, then a 1x1 conv back to the net's channel count."""
    return lambda x: F.conv2d(inner(x), w)


@st.composite
def drawn_net(draw):
    channels = draw(st.integers(1, 2))
    layers, labels = [], []
    for _ in range(draw(st.integers(1, 4))):
        choice = draw(st.sampled_from(["window", "window", "branches", "bn", "broadcast",
                                       "concat", "relu"]))
        if choice == "window":
            layer, label = draw(window(channels))
        elif choice == "branches":
            layer, label, doubled = draw(branch_pair(channels))
            if doubled:
                w = rng.standard_normal((channels, 2 * channels, 1, 1))
                layer = then_mix_channels(layer, w)
        elif choice == "bn":
            training = draw(st.booleans())
            layer = (lambda t: lambda x: F.batch_norm(
                x, np.zeros(channels), np.ones(channels), training=t))(training)
            label = f"batch norm training {training}"
        elif choice == "broadcast":
            axis = draw(st.sampled_from([2, 3]))
            layer = (lambda a: lambda x: x * 0.5 + F.avg_pool2d(   # (N, C, 1, W) + (N, C, H, W)
                x, (x.shape[2], 1) if a == 2 else (1, x.shape[3])))(axis)
            label = f"broadcast along axis {axis}"
        elif choice == "concat":
            axis = draw(st.sampled_from([1, 2, 3]))
            layer = (lambda a: lambda x: tg.concatenate([x, F.relu(x)], axis=a))(axis)
            label = f"concat axis {axis}"
            if axis == 1:
                w = rng.standard_normal((channels, 2 * channels, 1, 1))
                layer = then_mix_channels(layer, w)
        else:
            layer, label = (lambda x: F.relu(x)), "relu"
        layers.append(layer)
        labels.append(label)

    def f(x):
        for layer in layers:
            x = layer(x)
        return x
    size = (draw(st.integers(5, 14)), draw(st.integers(5, 14)))
    return f, labels, channels, size


@pytest.mark.parametrize("examples", EXAMPLES)
def test_theoretical_box_contains_the_effective_field(examples):
    checked = []

    @given(net=drawn_net(), batch=st.integers(1, 3), data=st.data())
    def prop(net, batch, data):
        f, labels, channels, size = net
        images = np.random.default_rng(len(labels)).standard_normal((batch, channels) + size)
        try:
            out = f(Tensor(images))
        except ValueError:   # a drawn window that does not fit the input: no net to check
            return
        index = tuple(data.draw(st.integers(0, n - 1)) for n in out.shape)
        field = assert_box_holds_the_effective_field(f, images, index)
        checked.append(field != WHOLE)

    settings(max_examples=examples, deadline=None,
             suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])(prop)()
    assert sum(checked) >= len(checked) // 4   # most draws have a box to check
