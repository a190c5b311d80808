"""The PyTorch bridge computes tinygrad_cnn's numbers: the zoo's models and every op with a
torch lowering give the same outputs and gradients in PyTorch, batch norm's running
statistics move alike, drawn nets match or are refused, and the params come back."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinygrad_cnn as tg
import tinygrad_cnn.functional as F
from tinygrad_cnn import Buffer, Function, Tensor, models
from tinygrad_cnn.ops import REGISTRY

torch = pytest.importorskip("torch")
from tinygrad_cnn.torch import BridgeError, from_torch, to_torch  # noqa: E402

ZOO = [("lenet5", {}), ("vgg", {}), ("vgg", {"batch_norm": True}), ("inception", {}),
       ("alexnet", {})]


def float64_params(name: str, options: dict) -> tuple:
    model, init_model = models.get_model(name)
    params = {key: np.array(value, np.float64).view(Buffer) if isinstance(value, Buffer) else
              np.array(value.data, np.float64)
              for key, value in init_model(np.random.default_rng(0), **options).items()}
    return model, params


@pytest.mark.parametrize("name, options", ZOO, ids=[f"{n}{'-bn' * bool(o)}" for n, o in ZOO])
def test_zoo_models_give_the_same_outputs_and_gradients(name, options):
    model, params = float64_params(name, options)
    rng = np.random.default_rng(1)
    module = to_torch(model, params, rng.standard_normal((3, 1, 28, 28)))
    assert [n for n, _ in module.named_parameters()] == \
        [k for k, v in params.items() if not isinstance(v, Buffer)]
    for batch in (2, 5):
        x = rng.standard_normal((batch, 1, 28, 28))
        np.testing.assert_allclose(module(torch.from_numpy(x)).detach().numpy(),
                                   model(params, x).data, rtol=0, atol=1e-10)
    x, labels = rng.standard_normal((4, 1, 28, 28)), np.array([1, 3, 0, 9])
    module.zero_grad()
    torch.nn.functional.cross_entropy(module(torch.from_numpy(x)),
                                      torch.from_numpy(labels)).backward()
    trained = {k: v for k, v in params.items() if not isinstance(v, Buffer)}
    _, grads = tg.value_and_grad(
        lambda p: F.cross_entropy(model({**params, **p}, x), labels))(trained)
    theirs = dict(module.named_parameters())
    for key, grad in grads.items():
        np.testing.assert_allclose(theirs[key].grad.numpy(), grad.data, rtol=1e-9,
                                   atol=1e-12 * np.abs(grad.data).max(), err_msg=key)


def test_batch_norm_in_training_moves_the_running_statistics_as_tinygrad_cnn():
    model, params = float64_params("vgg", {"batch_norm": True})
    rng = np.random.default_rng(2)
    module = to_torch(model, params, rng.standard_normal((2, 1, 28, 28)), train=True)
    assert module.training and isinstance(module.get_submodule("block0.bn0"),
                                          torch.nn.BatchNorm2d)
    x = rng.standard_normal((4, 1, 28, 28))
    module(torch.from_numpy(x))                       # one training step's forward
    model(params, x, train=True, rng=np.random.default_rng(0))   # updates params' Buffers
    back = from_torch(module)
    for key in ("block0.bn0.running_mean", "block1.bn1.running_var"):
        assert isinstance(back[key], Buffer)
        np.testing.assert_allclose(back[key], params[key], rtol=1e-10, atol=1e-12)
    module.eval()
    y = rng.standard_normal((3, 1, 28, 28))
    np.testing.assert_allclose(module(torch.from_numpy(y)).detach().numpy(),
                               model(params, y).data, rtol=0, atol=1e-10)


def test_dropout_is_a_module_that_train_and_eval_switch():
    model, params = float64_params("alexnet", {})
    x = np.random.default_rng(3).standard_normal((2, 1, 28, 28))
    module = to_torch(model, params, x, train=True)
    dropouts = [m for m in module.modules() if isinstance(m, torch.nn.Dropout)]
    assert len(dropouts) == 2 and all(m.p == 0.5 for m in dropouts)
    module.eval()
    np.testing.assert_allclose(module(torch.from_numpy(x)).detach().numpy(),
                               model(params, x).data, rtol=0, atol=1e-10)


def test_params_come_back_with_their_keys_and_kinds():
    model, params = float64_params("vgg", {"batch_norm": True})
    module = to_torch(model, params, np.zeros((2, 1, 28, 28)))
    with torch.no_grad():
        module.get_parameter("block0.conv0.weight").mul_(2)
    back = from_torch(module)
    assert list(back) == list(params)
    np.testing.assert_array_equal(back["block0.conv0.weight"], 2 * params["block0.conv0.weight"])
    assert isinstance(back["block0.bn0.running_var"], Buffer)
    x = np.random.default_rng(4).standard_normal((2, 1, 28, 28))
    np.testing.assert_allclose(model(back, x).data,
                               module(torch.from_numpy(x)).detach().numpy(), atol=1e-10)


def test_float32_params_give_a_float32_module_that_double_converts():
    model, init_model = models.get_model("lenet5")
    params = init_model(np.random.default_rng(0))
    module = to_torch(model, params, np.zeros((2, 1, 28, 28), np.float32))
    assert {p.dtype for p in module.parameters()} == {torch.float32}
    module.double()
    out = module(torch.zeros((2, 1, 28, 28), dtype=torch.float64))
    assert out.dtype == torch.float64


# ----------------------------------------------------------------------------- refusals
class Twice(Function):
    @staticmethod
    def forward(ctx, x):
        return 2 * x

    @staticmethod
    def backward(ctx, g):
        return (2 * g,)


def test_an_op_without_a_lowering_is_named_with_its_line():
    with pytest.raises(BridgeError, match=r"Twice \(test_torch_bridge.py:\d+\) is not a "
                                          r"registered op"):
        to_torch(lambda p, x: Twice.apply(x) * p["w"], {"w": np.ones(3)}, np.ones((2, 3)))


@pytest.mark.parametrize("layer", [
    lambda p, x: tg.where(x > 0, x, 0.1 * x) * p["w"],
    lambda p, x: (x - x.mean(axis=0, keepdims=True)) * p["w"],
], ids=["comparison", "batch mean"])
def test_a_model_that_depends_on_a_frozen_value_is_refused(layer):
    with pytest.raises(BridgeError, match="froze|freeze"):
        to_torch(layer, {"w": np.ones(3)}, np.random.default_rng(0).standard_normal((2, 3)))


# ----------------------------------------------------------------------------- every op
def lowered_op(spec, sample):
    """A GraphModule of the op alone, its inputs as placeholders, through the bridge."""
    from tinygrad_cnn.torch import Builder
    root = torch.nn.Module()
    builder = Builder(torch, root, {})
    inputs = [Tensor(np.asarray(a)) if isinstance(a, (np.ndarray, float)) else a
              for a in sample.args]
    out = spec.function.apply(*[Tensor(t.data, requires_grad=True) for t in inputs],
                              **sample.params)
    args = [builder.graph.placeholder(f"a{i}") for i in range(len(inputs))]
    builder.graph.output(spec.torch(builder, out.grad_fn, args))
    return torch.fx.GraphModule(root, builder.graph), out, inputs


WITHOUT = {name for name, spec in REGISTRY.items() if not callable(spec.torch)}


def test_the_ops_without_a_lowering_are_the_backward_only_ones():
    assert WITHOUT == {"sum_to", "index_add", "conv2d_weight_grad", "max_pool2d_scatter",
                       "max_pool2d_gather", "avg_pool2d_spread", "channel_window_sum"}
    assert all("backward graphs only" in REGISTRY[n].torch or "part of" in REGISTRY[n].torch
               for n in WITHOUT)


def test_dropout_lowers_to_a_module_that_draws_its_own_mask():
    spec = REGISTRY["dropout"]
    (sample,) = spec.samples(np.random.default_rng(0))
    module, out, inputs = lowered_op(spec, sample)
    x = torch.tensor(inputs[0].data)
    ratios = set(np.round((module.train()(x) / x).numpy(), 12).ravel())
    assert ratios <= {0.0, round(1 / 0.7, 12)} and len(ratios) == 2
    np.testing.assert_array_equal(module.eval()(x).numpy(), inputs[0].data)


@pytest.mark.parametrize("name", [n for n in REGISTRY if n not in WITHOUT | {"dropout"}])
def test_every_lowering_matches_pytorch_forward_and_backward(name):
    spec = REGISTRY[name]
    rng = np.random.default_rng(5)
    for sample in spec.samples(np.random.default_rng(0)):
        module, out, inputs = lowered_op(spec, sample)
        theirs = [torch.tensor(t.data, requires_grad=t.dtype.kind == "f") for t in inputs]
        if name == "batch_norm":   # running statistics are the op's constants
            theirs[3].requires_grad_(False), theirs[4].requires_grad_(False)
        got = module(*theirs)
        np.testing.assert_allclose(got.detach().numpy(), out.data, rtol=1e-10, atol=1e-12,
                                   err_msg=f"{name} {sample.label}")
        upstream = rng.standard_normal(out.shape)
        ours = tg.grad_of(out, [t for t in out.grad_fn.inputs], upstream, allow_unused=True)
        got.backward(torch.from_numpy(upstream))
        for index, (grad, their) in enumerate(zip(ours, theirs)):
            if their.grad is None or grad is None:
                continue
            np.testing.assert_allclose(their.grad.numpy(), grad.data, rtol=1e-9, atol=1e-12,
                                       err_msg=f"{name} {sample.label} input {index}")


# ----------------------------------------------------------------------------- drawn nets
EXAMPLES = [pytest.param(30, id="ci"), pytest.param(500, id="slow", marks=pytest.mark.slow)]


@pytest.mark.parametrize("examples", EXAMPLES)
def test_drawn_nets_convert_exactly_or_are_refused(examples):
    """A convertible net converts and matches at two new batch sizes; a refusal only ever
    meets a net that depends on a value computed outside the graph or on the batch size."""
    pytest.importorskip("onnx")   # the net drawer lives in the ONNX fuzz test
    import importlib.util
    from pathlib import Path
    spec = importlib.util.spec_from_file_location(
        "export_fuzz", Path(__file__).with_name("test_export_fuzz.py"))
    fuzz = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fuzz)
    nets = fuzz.nets

    @given(net=nets(), seed=st.integers(0, 2 ** 32 - 1))
    def prop(net, seed: int) -> None:
        rng = np.random.default_rng(seed)
        example = rng.standard_normal((2,) + net.shape_in).astype(np.float32)
        try:
            module = to_torch(net, net.params, example)
        except BridgeError:
            assert not net.exportable, f"{net} was refused"
            return
        # converted: it must compute the net on fresh inputs, whatever it is made of (a
        # frozen value can be harmless: a batch mean of a log_softmax over one channel)
        for batch in (2, 3):
            x = rng.standard_normal((batch,) + net.shape_in).astype(np.float32)
            want = net(net.params, Tensor(x)).data
            with torch.no_grad():
                got = module(torch.from_numpy(x)).numpy()
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max(),
                                       err_msg=repr(net))

    settings(max_examples=examples, deadline=None,
             suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])(prop)()


def test_importing_tinygrad_cnn_never_imports_torch():
    import subprocess
    import sys
    code = ("import sys, tinygrad_cnn, tinygrad_cnn.functional, tinygrad_cnn.cli\n"
            "assert 'torch' not in sys.modules, 'torch was imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_cli_writes_a_module_that_torch_load_returns(tmp_path, capsys):
    from tinygrad_cnn.cli import main
    path = tmp_path / "lenet5.pt"
    assert main(["export", "--model", "lenet5", "--format", "torch", "-o", str(path)]) == 0
    module = torch.load(path, weights_only=False)
    model, init_model = models.get_model("lenet5")
    params = init_model(np.random.default_rng(0))   # what the command exports untrained
    x = np.random.default_rng(6).standard_normal((3, 1, 28, 28)).astype(np.float32)
    np.testing.assert_allclose(module(torch.from_numpy(x)).detach().numpy(),
                               model(params, x).data, rtol=1e-5, atol=1e-5)
    assert list(from_torch(module)) == list(params)


def test_sync_batch_norm_conversion_keeps_the_numbers():
    model, params = float64_params("vgg", {"batch_norm": True})
    x = np.random.default_rng(7).standard_normal((2, 1, 28, 28))
    module = to_torch(model, params, x)
    synced = torch.nn.SyncBatchNorm.convert_sync_batchnorm(module).eval()
    assert isinstance(synced.get_submodule("block0.bn0"), torch.nn.SyncBatchNorm)
    np.testing.assert_allclose(synced(torch.from_numpy(x)).detach().numpy(),
                               model(params, x).data, rtol=0, atol=1e-10)
