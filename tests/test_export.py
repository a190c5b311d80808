"""ONNX export: every zoo model and each conv/pool edge case round-trips through ONNX Runtime
at two batch sizes; unsupported ops raise ExportError and write nothing."""

import numpy as np
import pytest

import tinygrad_cnn.functional as F
from tinygrad_cnn import Tensor, concatenate, data
from tinygrad_cnn.cli import main
from tinygrad_cnn.models import MODELS

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from tinygrad_cnn.onnx import ExportError, export  # noqa: E402

rng = np.random.default_rng(0)


def round_trip(tmp_path, model, params, shape, rtol=1e-5):
    """Export with a batch of 2, then compare ONNX Runtime with tinygrad_cnn on new inputs
    of batch 2 and 3 (float32)."""
    path = tmp_path / "model.onnx"
    proto = export(model, params, rng.standard_normal((2,) + shape).astype(np.float32), path)
    onnx.checker.check_model(onnx.load(path), full_check=True)
    session = ort.InferenceSession(str(path))
    for batch in (2, 3):
        x = rng.standard_normal((batch,) + shape).astype(np.float32)
        got, want = session.run(None, {"x": x})[0], model(params, Tensor(x)).data
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.abs(want).max())
    return proto


@pytest.mark.parametrize("name", sorted(MODELS) + ["vgg+bn"])
def test_zoo_models_round_trip(tmp_path, name):
    model, init_model = MODELS[name.split("+")[0]]
    params = init_model(np.random.default_rng(0), image_size=28,
                        **({"batch_norm": True} if name == "vgg+bn" else {}))
    if name == "vgg+bn":   # running statistics away from 0 and 1
        model(params, rng.standard_normal((8, 1, 28, 28)).astype(np.float32), train=True)
    proto = round_trip(tmp_path, model, params, (1, 28, 28))
    names = {i.name for i in proto.graph.initializer}
    assert set(k for k in params if not k.endswith("num_batches")) <= names


def W(*shape):   # noqa: N802  (a weight)
    return rng.standard_normal(shape).astype(np.float32)


CONV_CASES = {
    "stride 2, pad 1, bias": lambda p, x: F.conv2d(x, p["w"], p["b"], stride=2, padding=1),
    "same, even kernel (asymmetric pads)": lambda p, x: F.conv2d(x, p["w2"], padding="same"),
    "dilation 2": lambda p, x: F.conv2d(x, p["w"], dilation=2, padding=(2, 1)),
    "groups 2": lambda p, x: F.conv2d(x, p["wg"], p["b"], groups=2, padding=1),
    "transpose, stride 2, output_padding 1": lambda p, x: F.conv_transpose2d(
        x, p["wt"], p["bt"], stride=2, padding=1, output_padding=1),
    "transpose, dilation 2, output_padding 1": lambda p, x: F.conv_transpose2d(
        x, p["wt"], dilation=2, output_padding=1),
    "transpose, groups 2": lambda p, x: F.conv_transpose2d(x, p["wtg"], stride=(2, 1),
                                                           groups=2),
}
CONV_PARAMS = {"w": W(4, 2, 3, 3), "b": W(4), "w2": W(4, 2, 2, 4), "wg": W(4, 1, 3, 3),
               "wt": W(2, 3, 3, 3), "bt": W(3), "wtg": W(2, 2, 2, 2)}


@pytest.mark.parametrize("case", sorted(CONV_CASES))
def test_conv_cases_round_trip(tmp_path, case):
    round_trip(tmp_path, CONV_CASES[case], CONV_PARAMS, (2, 9, 8))


POOL_CASES = {
    "max 3x3/2 pad 1 ceil": lambda x: F.max_pool2d(x, 3, 2, 1, ceil_mode=True),
    "max 2x2 dilation 2": lambda x: F.max_pool2d(x, 2, 1, dilation=2),
    "max 3x2/(2,1) pad (1,0)": lambda x: F.max_pool2d(x, (3, 2), (2, 1), (1, 0)),
    "avg 3x3/2 pad 1 ceil, include pad": lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True),
    "avg 3x3/2 pad 1 ceil, exclude pad": lambda x: F.avg_pool2d(
        x, 3, 2, 1, ceil_mode=True, count_include_pad=False),
    "avg 2x2 divisor_override 3": lambda x: F.avg_pool2d(x, 2, divisor_override=3),
    "adaptive 3x2 (uneven windows)": lambda x: F.adaptive_avg_pool2d(x, (3, 2)),
    "adaptive 3x4 (even windows)": lambda x: F.adaptive_avg_pool2d(x, (3, 4)),
    "global average": lambda x: F.global_avg_pool2d(x),
    "global average, keepdims": lambda x: F.global_avg_pool2d(x, keepdims=True),
}


@pytest.mark.parametrize("case", sorted(POOL_CASES))
def test_pooling_cases_round_trip(tmp_path, case):
    round_trip(tmp_path, lambda p, x: POOL_CASES[case](x), {"unused": W(1)}, (2, 9, 8))


OTHER_CASES = {
    "lrn size 5": lambda p, x: F.local_response_norm(x, 5, 1e-2, 0.75, 2.0),
    "lrn size 4 (even)": lambda p, x: F.local_response_norm(x, 4, 0.5, 0.75, 1.0),
    "softmax, log_softmax": lambda p, x: F.softmax(x.flatten(1), 1) +
    F.log_softmax(x, 1).flatten(1) + x.max(axis=(2, 3)).sum(axis=1, keepdims=True),
    "concatenate, transpose, elementwise": lambda p, x: F.relu(
        (x.transpose(0, 1, 3, 2).tanh() * 2 - x.transpose(0, 1, 3, 2).sigmoid()) / 3
        + x.transpose(0, 1, 3, 2).abs().clip(0.1, 0.9)),
    "concat on channels, slicing": lambda p, x: F.linear(
        concatenate([x, x[:, :1] ** 2], axis=1).flatten(1)[:, 2:], p["fc"]),
    "batch norm (evaluation)": lambda p, x: F.batch_norm(x, p["mean"], p["var"], p["gamma"],
                                                         p["beta"]),
}
OTHER_PARAMS = {"fc": W(5, 3 * 8 * 8 - 2), "mean": W(2), "var": np.abs(W(2)) + 0.5,
                "gamma": W(2), "beta": W(2)}


@pytest.mark.parametrize("case", sorted(OTHER_CASES))
def test_other_ops_round_trip(tmp_path, case):
    round_trip(tmp_path, OTHER_CASES[case], OTHER_PARAMS, (2, 8, 8))


def test_unsupported_op_raises_and_writes_nothing(tmp_path):
    def local(p, x):
        return F.local_conv2d(x, p["w"])    # the unsupported op

    path = tmp_path / "m.onnx"
    with pytest.raises(ExportError, match=r"local_conv2d \(test_export.py:\d+\) has no ONNX "
                                          r"mapping; the ops that export are: .*conv2d"):
        export(local, {"w": W(2, 2, 1, 2, 2, 2)}, W(1, 2, 3, 3), path)
    with pytest.raises(ExportError, match=r"sum \(test_export.py:\d+\) reduces over the batch"):
        export(lambda p, x: x.mean(), {"u": W(1)}, W(2, 2, 3, 3), path)
    with pytest.raises(ExportError, match="batch_norm .* in training mode"):
        export(lambda p, x: F.batch_norm(x, None, None, training=True), {"u": W(1)},
               W(2, 2, 3, 3), path)
    assert list(tmp_path.iterdir()) == []


def test_cli_export_of_a_trained_model(tmp_path, capsys):
    model, init_model = MODELS["lenet5"]
    params = init_model(np.random.default_rng(0), image_size=8)
    saved = data.save(params, tmp_path / "params.npz",
                      meta={"model": "lenet5", "init": {"image_size": 8}})
    assert main(["export", "--model", "lenet", "--params", str(saved), "-o",
                 str(tmp_path / "lenet.onnx")]) == 0
    x = rng.standard_normal((4, 1, 8, 8)).astype(np.float32)
    got = ort.InferenceSession(str(tmp_path / "lenet.onnx")).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, model(params, x).data, rtol=1e-5, atol=1e-6)
    assert main(["export", "--params", str(saved)]) == 2
    assert "choose one of lenet5, vgg, inception, alexnet" in capsys.readouterr().err


def test_initializers_load_into_an_equivalent_torch_model(tmp_path):
    torch = pytest.importorskip("torch")
    model, init_model = MODELS["lenet5"]
    params = init_model(np.random.default_rng(0), image_size=28)
    proto = export(model, params, np.zeros((1, 1, 28, 28), np.float32), tmp_path / "m.onnx")
    state = {i.name: torch.from_numpy(onnx.numpy_helper.to_array(i).copy())
             for i in proto.graph.initializer if i.name in params}
    net = torch.nn.Sequential()
    net.add_module("conv1", torch.nn.Conv2d(1, 6, 5, padding=2))
    net.add_module("relu1", torch.nn.ReLU())
    net.add_module("pool1", torch.nn.MaxPool2d(2))
    net.add_module("conv2", torch.nn.Conv2d(6, 16, 5))
    net.add_module("relu2", torch.nn.ReLU())
    net.add_module("pool2", torch.nn.MaxPool2d(2))
    net.add_module("flatten", torch.nn.Flatten())
    for index, (inputs, outputs) in enumerate(((400, 120), (120, 84), (84, 10)), 1):
        net.add_module(f"fc{index}", torch.nn.Linear(inputs, outputs))
        if index < 3:
            net.add_module(f"relu_fc{index}", torch.nn.ReLU())
    net.load_state_dict(state)
    x = rng.standard_normal((3, 1, 28, 28)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(net(torch.from_numpy(x)).numpy(), model(params, x).data,
                                   rtol=1e-5, atol=1e-6)


def test_float64_numpy_params_export_as_float32_by_default(tmp_path):
    def model(p, x):
        x = F.max_pool2d(F.relu(F.conv2d(x, p["w1"], p["b1"], padding=2)), 2)
        return F.linear(x.flatten(1), p["w2"], p["b2"])

    params = {"w1": rng.normal(0, 0.3, (4, 1, 5, 5)), "b1": np.zeros(4),
              "w2": rng.normal(0, 0.3, (3, 64)), "b2": np.zeros(3)}      # float64, README style
    x = rng.normal(size=(6, 1, 8, 8))
    export(model, params, x, tmp_path / "m.onnx")
    got = ort.InferenceSession(str(tmp_path / "m.onnx")).run(None, {"x": x.astype(np.float32)})
    np.testing.assert_allclose(got[0], model(params, x).data, rtol=1e-4, atol=1e-5)
    with pytest.raises(ExportError, match="cannot load.*Conv"):   # no float64 Conv in ORT
        export(model, params, x, tmp_path / "m64.onnx", dtype=None)
    assert not (tmp_path / "m64.onnx").exists()
    proto = export(model, params, x, tmp_path / "m64.onnx", dtype=None, verify=False)
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
