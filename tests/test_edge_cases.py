"""Regression tests for wrong numbers, shared buffers, lost data and unclear errors found by
an adversarial pass; each test names the defect it guards against."""

import gzip
import zipfile

import numpy as np
import pytest

import tinygrad_cnn as tg
import tinygrad_cnn.functional as F
from tinygrad_cnn import Function, Tensor, data, optim, reference

rng = np.random.default_rng(0)


# ----------------------------------------------------------------------------- grad_of
def test_grad_of_flows_through_a_requested_intermediate_to_a_requested_leaf():
    x = Tensor(rng.standard_normal((1, 1, 5, 5)), requires_grad=True)
    w = Tensor(rng.standard_normal((2, 1, 3, 3)), requires_grad=True)
    h = F.relu(F.conv2d(x, w))
    loss = (h * h).sum()
    grad_h, grad_x = tg.grad_of(loss, [h, x])
    (expected_x,) = tg.grad_of((F.relu(F.conv2d(x, w)) ** 2).sum(), [x])
    np.testing.assert_allclose(grad_h.data, 2 * h.data)
    np.testing.assert_allclose(grad_x.data, expected_x.data, rtol=1e-12)


def test_grad_of_two_requested_tensors_where_one_depends_on_the_other():
    a = Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    b = a * 2
    grad_a, grad_b = tg.grad_of((a * b).sum(), [a, b])
    np.testing.assert_allclose(grad_a.data, 4 * a.data)   # d(2a^2)/da, through b too
    np.testing.assert_allclose(grad_b.data, a.data)


def test_grad_of_through_requested_tensors_with_create_graph():
    a = Tensor(np.array([1.5, -0.5]), requires_grad=True)
    b = a ** 3
    grad_a, grad_b = tg.grad_of((a * b).sum(), [a, b], create_graph=True)  # d(a^4)/da
    (second,) = tg.grad_of(grad_a.sum(), [a])
    np.testing.assert_allclose(grad_a.data, 4 * a.data ** 3)
    np.testing.assert_allclose(second.data, 12 * a.data ** 2)


def test_grad_of_an_output_without_grad_is_an_error():
    with pytest.raises(RuntimeError, match="output 0 .* does not require grad"):
        tg.grad_of(Tensor(np.ones(2)).sum(), [Tensor(np.ones(2), requires_grad=True)])


def test_grad_of_an_unused_input_needs_allow_unused():
    a, unused = Tensor(np.ones(2), requires_grad=True), Tensor(np.ones(2), requires_grad=True)
    with pytest.raises(RuntimeError, match="input 1 .* was not used.*allow_unused=True"):
        tg.grad_of((a * 2).sum(), [a, unused])
    grad_a, grad_unused = tg.grad_of((a * 2).sum(), [a, unused], allow_unused=True)
    assert grad_unused is None and np.allclose(grad_a.data, 2)


# ----------------------------------------------------------------------------- pow
def test_pow_with_exponent_zero_at_zero_has_gradient_zero():
    x = Tensor(np.array([0.0, 1.0, -2.0]), requires_grad=True)
    (x ** 0).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [0.0, 0.0, 0.0])


def test_pow_exponent_gradient_at_zero_base_is_zero():
    a = Tensor(np.array([0.0, 0.0, 2.0, 0.5]), requires_grad=True)
    b = Tensor(np.array([1.5, 0.0, 0.0, 2.0]), requires_grad=True)
    (a ** b).sum().backward()
    assert np.isfinite(a.grad.data).all() and np.isfinite(b.grad.data).all()
    np.testing.assert_allclose(b.grad.data, [0.0, 0.0, np.log(2.0), 0.25 * np.log(0.5)])
    np.testing.assert_allclose(a.grad.data, [0.0, 0.0, 0.0, 1.0])


def test_pow_second_order_with_a_constant_zero_exponent_is_zero():
    x = Tensor(np.array([0.0, 2.0]), requires_grad=True)
    (grad,) = tg.grad_of((x ** 0).sum(), [x], create_graph=True)
    (second,) = tg.grad_of(grad.sum(), [x])
    np.testing.assert_array_equal(second.data, [0.0, 0.0])


def test_pow_second_order_away_from_zero():
    a = Tensor(np.array([0.0, 1.5]), requires_grad=True)
    b = Tensor(np.array([2.5, 2.0]), requires_grad=True)
    grad_a, grad_b = tg.grad_of((a ** b).sum(), [a, b], create_graph=True)
    second_a, _ = tg.grad_of((grad_a + grad_b).sum(), [a, b], retain_graph=True)
    # at a = 1.5, b = 2: d2/da2 + d2/dadb = b(b-1)a^(b-2) + a^(b-1)(1 + b ln a)
    np.testing.assert_allclose(second_a.data[1], 2 + 1.5 * (1 + 2 * np.log(1.5)))
    (second_b,) = tg.grad_of(grad_b.sum(), [b])   # d2/db2 = a^b ln(a)^2, 0 at a = 0
    np.testing.assert_allclose(second_b.data, [0.0, 2.25 * np.log(1.5) ** 2])


# ----------------------------------------------------------------------------- max pool
def test_max_pool_padding_never_wins_a_window_of_minus_infinity():
    x = Tensor(np.full((1, 1, 3, 3), -np.inf), requires_grad=True)
    out, indices = F.max_pool2d(x, 3, stride=2, padding=1, return_indices=True)
    np.testing.assert_array_equal(indices.data[0, 0], [[0, 1], [3, 4]])
    out.backward(np.ones(out.shape))
    assert x.grad.data.sum() == 4   # no window's gradient is dropped on the padding


def test_max_pool_first_real_element_with_dilation_and_padding():
    x = Tensor(np.full((1, 1, 5, 5), -np.inf), requires_grad=True)
    _, indices = F.max_pool2d(x, 3, stride=2, padding=1, dilation=2, return_indices=True)
    np.testing.assert_array_equal(indices.data[0, 0], [[6, 6], [6, 6]])  # row 1, column 1


def test_max_pool_several_nans_the_last_one_wins():
    x = Tensor(np.array([[[[np.nan, 1.0, np.nan, 2.0], [3.0, np.nan, 0.0, 0.0]]]]),
               requires_grad=True)
    out, indices = F.max_pool2d(x, 2, return_indices=True)
    assert np.isnan(out.data).all()
    np.testing.assert_array_equal(indices.data[0, 0, 0], [5, 2])
    out.backward(np.ones(out.shape))
    np.testing.assert_array_equal(x.grad.data[0, 0], [[0, 0, 1, 0], [0, 1, 0, 0]])


# ----------------------------------------------------------------------------- empty
def test_mean_of_empty_is_nan_without_warnings(recwarn):
    x = Tensor(np.zeros((0, 3)), requires_grad=True)
    assert np.isnan(x.mean().item())
    assert np.isnan(x.mean(axis=0).data).all() and x.mean(axis=0).shape == (3,)
    logits = Tensor(np.zeros((0, 4)), requires_grad=True)
    loss = F.cross_entropy(logits, np.zeros(0, dtype=np.int64))
    assert np.isnan(loss.item())
    loss.backward()
    assert logits.grad.shape == (0, 4)
    assert F.cross_entropy(logits, np.zeros(0, dtype=np.int64), reduction="sum").item() == 0
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


# ----------------------------------------------------------------------------- buffers
def test_grads_of_an_add_are_separate_writable_arrays_not_the_seed():
    a, b = Tensor(np.ones(3), requires_grad=True), Tensor(np.ones(3), requires_grad=True)
    seed = np.array([1.0, 2.0, 3.0])
    (a + b).backward(seed)
    a.grad.data *= 10
    np.testing.assert_array_equal(b.grad.data, [1, 2, 3])
    np.testing.assert_array_equal(seed, [1, 2, 3])


def test_grad_of_a_sum_is_writable():
    c = Tensor(np.ones((2, 3)), requires_grad=True)
    c.sum().backward()
    c.grad.data *= 0.5     # in-place clipping, a common pattern
    np.testing.assert_array_equal(c.grad.data, np.full((2, 3), 0.5))


def test_retained_and_leaf_grads_do_not_alias():
    a = Tensor(np.ones(3), requires_grad=True)
    h = a + 0          # add's backward passes g on unchanged
    h.retain_grad()
    h.sum().backward()
    a.grad.data[0] = 7
    assert h.grad.data[0] == 1


def test_grad_of_results_never_alias_the_seed_or_each_other():
    a, b = Tensor(np.ones(2), requires_grad=True), Tensor(np.ones(2), requires_grad=True)
    seed = np.array([1.0, 2.0])
    grad_a, grad_b = tg.grad_of(a + b, [a, b], seed)
    grad_a.data[:] = 0
    np.testing.assert_array_equal(grad_b.data, [1, 2])
    np.testing.assert_array_equal(seed, [1, 2])


# ----------------------------------------------------------------------------- Function
class ReturnsArray(Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return (g.data * 2,)


class ReturnsWrongShape(Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return (g[:1],)


def test_a_backward_returning_an_ndarray_is_accepted_at_a_leaf_and_in_the_middle():
    x = Tensor(np.ones(3), requires_grad=True)
    ReturnsArray.apply(x).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [2, 2, 2])
    y = Tensor(np.ones(3), requires_grad=True)
    (ReturnsArray.apply(y * 3) * 1).sum().backward()
    np.testing.assert_array_equal(y.grad.data, [6, 6, 6])


def test_a_backward_returning_a_wrong_shape_names_the_function_and_input():
    x = Tensor(np.ones((3, 2)), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"returnswrongshape.backward returned a gradient "
                                           r"of shape \(1, 2\) for input 0 of shape \(3, 2\)"):
        ReturnsWrongShape.apply(x).sum().backward()


# ----------------------------------------------------------------------------- save / load
def test_save_load_gives_back_any_tree_exactly(tmp_path):
    params = {"allow_pickle": np.ones(2), "file": np.arange(3, dtype=np.int32),
              "a/b": np.ones(1, np.float32), "a": {"b": np.zeros((2, 2))},
              "layers": [np.ones(2), np.ones(2)], "pair": (np.float64(1.5), Tensor(np.ones(1)))}
    written = data.save(params, tmp_path / "p")
    assert written == tmp_path / "p.npz"
    loaded = data.load(written)
    assert list(loaded) == list(params) and isinstance(loaded["layers"], list)
    assert isinstance(loaded["pair"], tuple) and isinstance(loaded["pair"][0], np.float64)
    assert loaded["file"].dtype == np.int32 and loaded["a/b"].dtype == np.float32
    np.testing.assert_array_equal(loaded["a"]["b"], np.zeros((2, 2)))
    assert len(loaded["layers"]) == 2 and loaded["layers"][0].shape == (2,)


@pytest.mark.parametrize("tree, message", [({1: np.ones(1)}, "keys must be strings"),
                                           ({"a": 1.0}, "leaves must be Tensors"),
                                           ({"a": np.array([{}], dtype=object)}, "object")])
def test_save_refuses_what_it_could_not_give_back_before_writing(tmp_path, tree, message):
    with pytest.raises(TypeError, match=message):
        data.save(tree, tmp_path / "p.npz")
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = data.save({"w": np.ones(3)}, tmp_path / "p.npz")

    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np.lib.format, "write_array", fail)
    with pytest.raises(KeyboardInterrupt):
        data.save({"w": np.zeros(3)}, path)
    np.testing.assert_array_equal(data.load(path)["w"], np.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["p.npz"]   # no temporary left behind


def test_load_errors_name_the_file_and_the_problem(tmp_path):
    np.save(tmp_path / "one.npy", np.ones(3))
    with pytest.raises(data.DatasetError, match="one.npy is a single .npy array"):
        data.load(tmp_path / "one.npy")
    good = data.save({"w": np.ones(100)}, tmp_path / "good.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(good[:len(good) // 2])
    with pytest.raises(data.DatasetError, match="cut.npz is not an .npz archive, or it is "
                                                "truncated"):
        data.load(tmp_path / "cut.npz")
    start = good.index(b"\x93NUMPY") + 200
    (tmp_path / "bad.npz").write_bytes(good[:start] + b"garbage!" + good[start + 8:])
    with pytest.raises(data.DatasetError, match="bad.npz member arr_0.npy is corrupt"):
        data.load(tmp_path / "bad.npz")


def test_load_refuses_a_corrupt_header_as_corrupt_not_as_pickle(tmp_path):
    with zipfile.ZipFile(tmp_path / "x.npz", "w") as archive:
        archive.writestr("w.npy", b"\x93NUMPY\x01\x00\x10\x00{'descr': <f8, }\n")
    with pytest.raises(data.DatasetError, match="w.npy is corrupt"):
        data.load(tmp_path / "x.npz")


def test_load_for_a_model_names_every_mismatch(tmp_path):
    from tinygrad_cnn.models import init_lenet5
    params = {k: v.data for k, v in init_lenet5(np.random.default_rng(0), image_size=8).items()}
    path = data.save(params, tmp_path / "ok.npz", meta={"model": "lenet5",
                                                        "init": {"image_size": 8}})
    assert set(data.load(path, model="lenet5")) == set(params)
    params["fc1.weight"] = params["fc1.weight"][:3]
    params["fc3.bias"] = params["fc3.bias"].astype(np.int64)
    del params["conv1.bias"]
    params["extra"] = np.ones(1)
    bad = data.save(params, tmp_path / "bad.npz")
    with pytest.raises(data.DatasetError) as error:
        data.load(bad, model="lenet5", image_size=8)
    for part in ("'fc1.weight' has shape (3, 64), expected (120, 64)",
                 "'fc3.bias' has dtype int64, expected a float dtype",
                 "missing 'conv1.bias' (6,)", "unexpected 'extra'", "bad.npz"):
        assert part in str(error.value)
    with pytest.raises(data.DatasetError, match="holds lenet5 parameters, not vgg"):
        data.load(path, model="vgg")


def test_idx_header_with_huge_sizes_is_a_dataset_error():
    header = b"\x00\x00\x08\x03" + b"".join((2**31).to_bytes(4, "big") for _ in range(3))
    with pytest.raises(data.DatasetError, match="truncated or corrupt"):
        data.read_idx(header + b"\x00" * 16, "huge.idx")


def test_corrupt_deflate_data_is_a_dataset_error(tmp_path, monkeypatch):
    packed = bytearray(gzip.compress(b"\x00\x00\x08\x01" + (4).to_bytes(4, "big") + bytes(4)))
    packed[12:16] = b"\xff\xff\xff\xff"
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(bytes(packed))
    md5 = data._md5(path)
    monkeypatch.setitem(data.DATASETS, "mnist", (data.DATASETS["mnist"][0], {
        "test": ((path.name, md5), (path.name, md5))}))
    with pytest.raises(data.DatasetError, match="t10k-labels-idx1-ubyte.gz is not a valid gzip"):
        data.load_mnist(tmp_path, "test", download=False)


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("groups", [0, -1, 2.0, True])
def test_conv_transpose2d_validates_groups_as_conv2d(groups):
    with pytest.raises(ValueError, match="conv_transpose2d: groups must be a positive int"):
        F.conv_transpose2d(np.ones((1, 2, 4, 4)), np.ones((2, 3, 3, 3)), groups=groups)


def test_conv_transpose2d_output_padding_follows_stride_or_dilation():
    out = F.conv_transpose2d(np.ones((1, 2, 4, 4)), np.ones((2, 3, 3, 3)), dilation=2,
                             output_padding=1, padding=1)
    assert out.shape == (1, 3, 7, 7)
    with pytest.raises(ValueError, match=r"output_padding \(2, 2\) must be smaller than the "
                                         r"stride \(2, 2\) or the dilation \(1, 1\)"):
        F.conv_transpose2d(np.ones((1, 2, 4, 4)), np.ones((2, 3, 3, 3)), stride=2,
                           output_padding=2)


def test_conv2d_empty_kernel_and_no_channels_are_clear_errors():
    with pytest.raises(ValueError, match=r"conv2d: weight \(4, 3, 0, 3\) has an empty 0x3"):
        F.conv2d(np.ones((2, 3, 5, 5)), np.ones((4, 3, 0, 3)))
    with pytest.raises(ValueError, match=r"conv2d: x \(2, 0, 5, 5\) has no channels"):
        F.conv2d(np.ones((2, 0, 5, 5)), np.ones((4, 0, 3, 3)))


def test_adaptive_avg_pool_on_empty_input_names_itself():
    with pytest.raises(ValueError, match=r"adaptive_avg_pool2d: x \(1, 2, 0, 4\) is empty"):
        F.adaptive_avg_pool2d(np.ones((1, 2, 0, 4)), 2)


def test_unfold_takes_unbatched_input():
    x = rng.standard_normal((3, 5, 5))
    np.testing.assert_array_equal(F.unfold(x, 2).data, F.unfold(x[None], 2).data[0])


@pytest.mark.parametrize("options", [dict(kernel_size=2), dict(kernel_size=3, stride=1,
                                                                padding=1)])
def test_max_pool_routes_an_infinite_or_nan_gradient_to_the_winner_only(options):
    x = Tensor(rng.standard_normal((1, 1, 4, 4)), requires_grad=True)
    out = F.max_pool2d(x, **options)
    upstream = np.zeros(out.shape)
    upstream.flat[0], upstream.flat[1] = np.inf, np.nan
    out.backward(upstream)
    _, indices = F.max_pool2d(x.data, return_indices=True, **options)
    expected = np.zeros(16)
    for value, index in zip(upstream.ravel(), indices.data.ravel()):
        expected[index] += value if value == value else 0   # NaN added below
    expected[indices.data.flat[1]] = np.nan
    np.testing.assert_array_equal(x.grad.data.ravel(), expected)


def test_more_bad_input_gets_clear_errors(tmp_path):
    x = np.ones((2, 3, 4, 4))
    with pytest.raises(ValueError, match="batch_norm: momentum must be a non-negative number"):
        F.batch_norm(x, np.zeros(3), np.ones(3), training=True, momentum="a")
    with pytest.raises(ValueError,
                       match=r"index \(0, 9, 9\) is outside the output.s shape \(1, 2, 2\)"):
        tg.receptive_field(lambda t: F.conv2d(t, np.ones((1, 3, 3, 3))), x, (0, 9, 9))
    with pytest.raises(TypeError, match="parameter 0 is a read-only array"):
        optim.SGD({"w": np.broadcast_to(np.ones(1), (2,))}, lr=1)
    with pytest.raises(FileNotFoundError, match="the folder .*missing does not exist"):
        data.save({"a": np.ones(1)}, tmp_path / "missing" / "p.npz")
    with pytest.raises(TypeError, match="check must be the LocateReport"):
        tg.to_dot(Tensor(np.ones(2), requires_grad=True).sum(), check=5)
    with pytest.raises(TypeError, match="input 0 is a ndarray, not a Tensor"):
        tg.grad_of(Tensor(np.ones(2), requires_grad=True).sum(), [np.ones(2)])


@pytest.mark.parametrize("where", ["x", "weight"])
@pytest.mark.parametrize("padding", [0, 1, 2])
def test_conv2d_inf_reaches_only_the_elements_it_touches(where, padding):
    """An inf in the input must not turn the weight gradient NaN through the garbage
    columns of wide im2col, nor an inf weight the input gradient through the padding."""
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 3, 6, 7)), rng.standard_normal((4, 3, 3, 3))
    if where == "x":
        x[1, 2, 3, 6] = np.inf            # the last column: wide rows wrap past it
    else:
        w[1, 2, 0, 0] = np.inf
    upstream = rng.standard_normal((2, 4, 4 + 2 * padding, 5 + 2 * padding))
    X, W = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)
    dx, dw = tg.grad_of(F.conv2d(X, W, padding=padding), [X, W], upstream)
    pads = (padding,) * 4
    expected_dx, expected_dw, _ = reference.conv_backward_naive(upstream, x, w, (1, 1), pads)
    np.testing.assert_allclose(dx.data, expected_dx, rtol=1e-12)   # NaN and inf where they are
    np.testing.assert_allclose(dw.data, expected_dw, rtol=1e-12)
    assert np.isfinite(dw.data if where == "x" else dx.data).any()   # not all NaN


def _grads(fn, arrays, upstream):
    tensors = [Tensor(np.asarray(a, float), requires_grad=True) for a in arrays]
    return [g.data for g in tg.grad_of(fn(*tensors), tensors, np.asarray(upstream, float))]


def test_relu_and_clip_select_the_gradient_rather_than_multiply_it():
    """PyTorch's rules: relu passes the gradient where its output is not 0 (NaN included);
    an inf upstream gradient never reaches an element the mask excludes (no 0 * inf)."""
    x = [np.nan, -1.0, 2.0, 0.0]
    (grad,) = _grads(F.relu, [x], [1.0, np.inf, 1.0, np.inf])
    np.testing.assert_array_equal(grad, [1.0, 0.0, 1.0, 0.0])
    (grad,) = _grads(lambda t: t.clip(-0.5, 0.5), [x], [np.inf, np.inf, np.inf, np.inf])
    np.testing.assert_array_equal(grad, [0.0, 0.0, 0.0, np.inf])   # NaN is not inside


def test_abs_gradient_at_nan_is_zero():
    (grad,) = _grads(lambda t: t.abs(), [[np.nan, -2.0, 0.0]], [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(grad, [0.0, -1.0, 0.0])


def test_maximum_gives_the_whole_gradient_to_both_sides_of_a_nan():
    a, b = [np.nan, 1.0, 2.0, 3.0], [1.0, np.nan, 2.0, 0.0]
    grad_a, grad_b = _grads(lambda s, t: s.maximum(t), [a, b], [1.0, 1.0, 1.0, np.inf])
    np.testing.assert_array_equal(grad_a, [1.0, 1.0, 0.5, np.inf])
    np.testing.assert_array_equal(grad_b, [1.0, 1.0, 0.5, 0.0])


def test_all_finite_sees_every_inf_and_nan():
    from tinygrad_cnn.kernels import all_finite
    values = np.ones((4, 6))
    assert all_finite(values) and all_finite(values[:, ::2]) and all_finite(values[:0])
    for special in (np.inf, -np.inf, np.nan):
        for index in ((0, 0), (3, 5), (2, 4)):
            bad = values.copy()
            bad[index] = special
            strided = bad[:, index[1] % 2::2]          # a non-contiguous view holding it
            assert not all_finite(bad) and not all_finite(strided)


def test_conv_and_pool_kernels_do_not_warn_about_inf_and_nan(recwarn, monkeypatch):
    from tinygrad_cnn.kernels import threads
    monkeypatch.setattr(threads, "MIN_BYTES", 0)          # the pool's worker threads too
    monkeypatch.setattr(threads, "SLICE_BYTES", 64)
    monkeypatch.setenv("TINYGRAD_CNN_THREADS", "2")
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 6))
    x[0, 1, 2, 3], x[1, 0, 5, 5] = np.nan, np.inf
    w = np.ones((4, 3, 3, 3))
    w[0, 0, 0, 0] = -np.inf
    X, W = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)
    out = F.avg_pool2d(F.max_pool2d(F.conv2d(X, W, padding=1), 2), 2, ceil_mode=True)
    tg.grad_of(out, [X, W], np.full(out.shape, np.inf))
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)], \
        [str(w.message) for w in recwarn]
