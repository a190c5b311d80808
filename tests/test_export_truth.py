"""ONNX export never writes a wrong file: each case either round-trips through ONNX Runtime
at the example's batch size and another, or raises ExportError and writes nothing."""

import numpy as np
import pytest

import tinygrad_cnn as tg
import tinygrad_cnn.functional as F
from tinygrad_cnn import Tensor
from tinygrad_cnn.tree import tree_flatten

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from tinygrad_cnn.onnx import ExportError, export  # noqa: E402

rng = np.random.default_rng(3)


def run_onnx(path, x):
    return ort.InferenceSession(str(path)).run(None, {"x": x})[0]


def assert_round_trips(tmp_path, model, params, shape, batches=(2, 3)):
    path = tmp_path / "m.onnx"
    export(model, params, rng.standard_normal((2,) + shape).astype(np.float32), path,
           verify=False)   # the file itself is what is checked here
    for batch in batches:
        x = rng.standard_normal((batch,) + shape).astype(np.float32)
        want = model(params, Tensor(x)).data
        got = run_onnx(path, x)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


FROZEN = {
    "where on a comparison": lambda p, x: tg.where(x > 0, x, 0.1 * x),
    "a mask cast to float": lambda p, x: x * (x > 0).astype(np.float32),
    "a detached mean": lambda p, x: x - x.detach().mean(1, keepdims=True),
    "a mean over the batch moved by transpose": lambda p, x: x.transpose(1, 0, 2).mean(axis=1),
    "an op under no_grad": lambda p, x: x - _no_grad_max(x),
}


def _no_grad_max(x):
    with tg.no_grad():
        return x.max()


@pytest.mark.parametrize("case", sorted(FROZEN))
def test_values_computed_outside_the_graph_are_refused(tmp_path, case):
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    with pytest.raises(ExportError):
        export(FROZEN[case], {}, x, tmp_path / "m.onnx", verify=False)
    assert not (tmp_path / "m.onnx").exists()


def test_the_refusal_names_the_line(tmp_path):
    x = rng.standard_normal((2, 3)).astype(np.float32)
    with pytest.raises(ExportError, match=r"test_export_truth.py:\d+"):
        export(FROZEN["where on a comparison"], {}, x, tmp_path / "m.onnx")


def test_a_negative_index_on_the_batch_axis_stays_negative(tmp_path):
    assert_round_trips(tmp_path, lambda p, x: x[-1] * 2, {}, (3, 4))
    assert_round_trips(tmp_path, lambda p, x: x[-2:] * 2, {}, (3, 4))


def test_a_square_param_used_transposed_is_wired_transposed(tmp_path):
    params = {"proj": rng.standard_normal((4, 4)).astype(np.float32)}
    assert_round_trips(tmp_path, lambda p, x: x @ p["proj"].T, params, (4,))
    assert_round_trips(tmp_path, lambda p, x: x @ p["proj"] + x @ p["proj"].T, params, (4,))


def test_an_integer_index_when_channels_equal_batch(tmp_path):
    def model(p, x):
        return x[0] + 1.0

    path = tmp_path / "m.onnx"
    export(model, {}, rng.standard_normal((2, 2, 3)).astype(np.float32), path)
    x = rng.standard_normal((3, 2, 3)).astype(np.float32)
    np.testing.assert_allclose(run_onnx(path, x), model({}, Tensor(x)).data, rtol=1e-6)


def test_ceil_mode_pad_as_large_as_the_kernel_loads(tmp_path):
    def model(p, x):
        return F.max_pool2d(x, (1, 3), None, (0, 1), (1, 2), ceil_mode=True)

    assert_round_trips(tmp_path, model, {}, (2, 5, 7))
    assert_round_trips(tmp_path, lambda p, x: F.avg_pool2d(x, (1, 3), None, (0, 1),
                                                           ceil_mode=True), {}, (2, 5, 8))


@pytest.mark.parametrize("shape", [(4, 7), (4, 3, 3, 2)], ids=["3-D", "5-D"])
@pytest.mark.parametrize("size", [3, 4])
def test_local_response_norm_of_any_rank(tmp_path, shape, size):
    assert_round_trips(tmp_path, lambda p, x: F.local_response_norm(x, size, 0.1, 0.75, 1.0),
                       {}, shape)


def test_a_failed_export_leaves_running_statistics_alone(tmp_path):
    params = {"mean": tg.buffer(np.zeros(3)), "var": tg.buffer(np.ones(3))}
    before = {k: v.copy() for k, v in params.items()}

    def model(p, x):
        return F.batch_norm(x, p["mean"], p["var"], training=True)

    with pytest.raises(ExportError, match="training"):
        export(model, params, rng.standard_normal((4, 3, 2, 2)) + 5, tmp_path / "m.onnx")
    for key in params:
        np.testing.assert_array_equal(params[key], before[key])
        assert isinstance(params[key], tg.Buffer)


def test_float64_constants_take_the_export_dtype(tmp_path):
    assert_round_trips(tmp_path, lambda p, x: x - np.array(0.13), {}, (3,))


def test_verification_refuses_what_the_tracer_cannot_see(tmp_path):
    def model(p, x):   # a numpy computation on the input's data: invisible to the graph
        return x - Tensor(x.data.mean())

    x = rng.standard_normal((2, 3)).astype(np.float32)
    with pytest.raises(ExportError, match="computes"):
        export(model, {}, x, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("op", ["max_pool2d", "amax"])
def test_onnx_runtime_can_drop_nan_in_max_where_tinygrad_propagates_it(tmp_path, op):
    """The documented difference (docs/export.md): ONNX Runtime's MaxPool and ReduceMax
    drop a NaN in some places of a window; tinygrad_cnn and PyTorch always propagate it."""
    def model(p, x):
        return F.max_pool2d(x, 2) if op == "max_pool2d" else x.max(axis=(2, 3))

    path = tmp_path / "m.onnx"
    export(model, {}, rng.standard_normal((1, 1, 2, 2)).astype(np.float32), path)
    dropped = 0
    for place in range(4):
        x = np.array([1.0, 2.0, 3.0, 0.5], np.float32)
        x[place] = np.nan
        x = x.reshape(1, 1, 2, 2)
        with np.errstate(invalid="ignore"):
            assert np.isnan(model({}, Tensor(x)).data).all()
        dropped += int(np.isfinite(run_onnx(path, x)).all())
    assert dropped > 0


@pytest.mark.parametrize("params", [
    {"": rng.standard_normal((3, 3))}, {"x": rng.standard_normal((3, 3))},
    {"relu_1": rng.standard_normal((3, 3))}, {"y": rng.standard_normal((3, 3))},
    {"a.b": rng.standard_normal((3, 3)), "a": {"b": rng.standard_normal((3, 3))}},
], ids=["empty", "x", "relu_1", "y", "a.b beside a/b"])
def test_any_param_keys_export_under_distinct_names(tmp_path, params):
    leaves = tree_flatten(params)[0]

    def model(p, x):
        out = x - np.array(0.13)          # a float64 constant in a float32 export
        for leaf in tree_flatten(p)[0]:
            out = F.relu(out @ leaf)
        return out
    assert_round_trips(tmp_path, model, params, (3,))
    initializers = onnx.load(tmp_path / "m.onnx").graph.initializer
    names = [init.name for init in initializers]
    assert len(names) == len(set(names)) and {"x", "y"}.isdisjoint(names)
    assert sum(list(init.dims) == [3, 3] for init in initializers) == len(leaves)


@pytest.mark.parametrize("leaf", [np.array(3), np.arange(3), 3])
def test_an_integer_param_is_an_export_error_naming_its_key(tmp_path, leaf):
    params = {"w": rng.standard_normal((3, 3)), "n": leaf}
    with pytest.raises(ExportError, match="param 'n' has dtype int64"):
        export(lambda p, x: x @ p["w"] * p["n"], params, np.ones((2, 3), np.float32),
               tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()
