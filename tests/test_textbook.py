"""LRN and AlexNet, locally connected layers, batch norm and receptive fields: against loop
implementations, PyTorch (when installed), the textbook's numbers and clear errors."""

import numpy as np
import pytest

import tinygrad_cnn as tg
import tinygrad_cnn.functional as F
from tinygrad_cnn import Tensor, data, optim, reference
from tinygrad_cnn.autograd import topological_nodes
from tinygrad_cnn.cli import main
from tinygrad_cnn.models import count_params, get_model, init_lenet5, init_vgg, vgg
from tinygrad_cnn.receptive import theoretical_fields

rng = np.random.default_rng(0)


def _grads(f, arrays, upstream_seed=1):
    tensors = [Tensor(a, requires_grad=True) for a in arrays]
    out = f(*tensors)
    upstream = np.random.default_rng(upstream_seed).standard_normal(out.shape)
    out.backward(upstream)
    return out.data, [t.grad.data for t in tensors], upstream


# ----------------------------------------------------------------------------- LRN
@pytest.mark.parametrize("shape, size", [((2, 7, 3, 3), 5), ((2, 4, 2, 2), 2), ((1, 5, 6), 3),
                                         ((2, 3, 2, 2), 8), ((1, 6, 2, 2), 1)])
def test_local_response_norm_matches_the_loops(shape, size):
    x = rng.standard_normal(shape)
    out = F.local_response_norm(x, size, alpha=0.3, beta=0.75, k=2.0)
    np.testing.assert_allclose(out.data, reference.local_response_norm_naive(x, size, 0.3,
                                                                             0.75, 2.0),
                               rtol=1e-12)


def test_local_response_norm_against_torch():
    torch = pytest.importorskip("torch")
    for shape, size in (((2, 7, 3, 3), 5), ((2, 5, 4), 2)):
        x = rng.standard_normal(shape)
        out, (grad,), upstream = _grads(
            lambda t, n=size: F.local_response_norm(t, n, 0.1, 0.6, 1.5), [x])
        xt = torch.tensor(x, requires_grad=True)
        expected = torch.nn.functional.local_response_norm(xt, size, 0.1, 0.6, 1.5)
        expected.backward(torch.tensor(upstream))
        np.testing.assert_allclose(out, expected.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("size, shape, message", [(0, (1, 3, 2, 2), "size must be a positive"),
                                                  (2.5, (1, 3, 2, 2), "size must be a positive"),
                                                  (3, (3, 4), "at least 3 dimensions")])
def test_local_response_norm_errors(size, shape, message):
    with pytest.raises(ValueError, match=message):
        F.local_response_norm(np.ones(shape), size)


# ----------------------------------------------------------------------------- local conv
@pytest.mark.parametrize("options", [dict(stride=1, padding=0, dilation=1),
                                     dict(stride=2, padding=1, dilation=1),
                                     dict(stride=(1, 2), padding=(2, 0), dilation=(2, 1))])
def test_local_conv2d_matches_the_loops(options):
    x = rng.standard_normal((2, 3, 7, 6))
    kernel = (3, 2)
    pairs = [v if isinstance(v, tuple) else (v, v) for v in
             (options["stride"], options["padding"], options["dilation"])]
    out_hw = [F.output_size(n, k, s, (p, p), d) for n, k, s, p, d in
              zip(x.shape[2:], kernel, *pairs)]
    w = rng.standard_normal((*out_hw, 4, 3, *kernel))
    b = rng.standard_normal((4, *out_hw))
    out = F.local_conv2d(x, w, b, **options)
    expected = reference.local_conv_forward_naive(x, w, b, *pairs)
    np.testing.assert_allclose(out.data, expected, rtol=1e-12, atol=1e-12)


def test_local_conv2d_gradients_match_the_loops_by_linearity():
    # the loop forward is linear in w and in x: its gradient is the loop of the upstream
    x, w = rng.standard_normal((1, 2, 4, 4)), rng.standard_normal((3, 3, 2, 2, 2, 2))
    out, (grad_x, grad_w), upstream = _grads(lambda a, b: F.local_conv2d(a, b), [x, w])
    for index in np.ndindex(*w.shape):
        basis = np.zeros(w.shape)
        basis[index] = 1
        assert np.isclose(grad_w[index], np.sum(
            upstream * reference.local_conv_forward_naive(x, basis, None, (1, 1), (0, 0))))
    assert tg.gradcheck(lambda a, b: F.local_conv2d(a, b), [x, w])


def test_shared_against_unshared_parameter_counts(capsys):
    x = rng.standard_normal((1, 3, 32, 32)).astype(np.float32)
    shared = [Tensor(rng.standard_normal((20, 3, 8, 8)).astype(np.float32), requires_grad=True),
              Tensor(np.zeros(20, np.float32), requires_grad=True)]
    unshared = [Tensor(np.zeros((14, 14, 20, 3, 8, 8), np.float32), requires_grad=True),
                Tensor(np.zeros((20, 14, 14), np.float32), requires_grad=True)]
    rows = tg.summary(lambda w, b: F.conv2d(x, w, b, stride=2, padding=1), *shared)
    assert rows[-1]["params"] == 3_860
    rows = tg.summary(lambda w, b: F.local_conv2d(x, w, b, stride=2, padding=1), *unshared)
    assert rows[-1]["params"] == (8 * 8 * 3 + 1) * (14 * 14 * 20) == 756_560
    assert "756,560" in str(rows)


def test_local_conv2d_errors_show_the_arithmetic():
    x = np.ones((1, 3, 32, 32))
    with pytest.raises(ValueError, match=r"weight has 14x13 positions but the output is "
                                         r"14x14: floor\(\(32 \+ 2\*1 - 1\*\(8-1\) - 1\)/2\) "
                                         r"\+ 1 = 14"):
        F.local_conv2d(x, np.ones((14, 13, 20, 3, 8, 8)), stride=2, padding=1)
    with pytest.raises(ValueError, match="6-D"):
        F.local_conv2d(x, np.ones((20, 3, 8, 8)))
    with pytest.raises(ValueError, match="x has 3 channels but weight expects 2"):
        F.local_conv2d(x, np.ones((25, 25, 4, 2, 8, 8)))
    with pytest.raises(ValueError, match=r"bias must have shape \(4, 25, 25\)"):
        F.local_conv2d(x, np.ones((25, 25, 4, 3, 8, 8)), np.ones(4))


def test_local_conv2d_against_torch_unfold_and_einsum():
    torch = pytest.importorskip("torch")
    x, w = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((3, 3, 4, 3, 2, 2))
    cols = torch.nn.functional.unfold(torch.tensor(x), 2, stride=2)        # (N, 12, 9)
    expected = torch.einsum("ncl,lfc->nfl", cols, torch.tensor(w.reshape(9, 4, 12)))
    out = F.local_conv2d(x, w, stride=2)
    np.testing.assert_allclose(out.data, expected.reshape(2, 4, 3, 3).numpy(), rtol=1e-12)


# ----------------------------------------------------------------------------- batch norm
@pytest.mark.parametrize("shape", [(4, 3, 2, 2), (5, 3)])
def test_batch_norm_training_and_running_statistics_match_the_loops(shape):
    mean, var = np.zeros(3), np.ones(3)
    weight, bias = rng.uniform(0.5, 1.5, 3), rng.standard_normal(3)
    expected_mean, expected_var = np.zeros(3), np.ones(3)
    for _ in range(3):
        x = rng.standard_normal(shape) * 2 + 1
        out = F.batch_norm(x, mean, var, weight, bias, training=True, momentum=0.2)
        batch_mean, biased, unbiased = reference.batch_statistics_naive(x)
        np.testing.assert_allclose(out.data, reference.batch_norm_naive(
            x, batch_mean, biased, weight, bias, 1e-5), rtol=1e-10, atol=1e-12)
        expected_mean = 0.8 * expected_mean + 0.2 * batch_mean
        expected_var = 0.8 * expected_var + 0.2 * unbiased
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-12)
    np.testing.assert_allclose(var, expected_var, rtol=1e-12)
    x = rng.standard_normal(shape)
    np.testing.assert_allclose(F.batch_norm(x, mean, var, weight, bias).data,
                               reference.batch_norm_naive(x, mean, var, weight, bias, 1e-5),
                               rtol=1e-12)


def test_batch_norm_three_training_steps_and_eval_equal_torch():
    torch = pytest.importorskip("torch")
    weight = rng.uniform(0.5, 1.5, 3)
    bias = rng.standard_normal(3)
    ours_stats = (tg.buffer(np.zeros(3), np.float64), Tensor(np.ones(3)))
    theirs_stats = (torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64))
    for _ in range(3):
        x = rng.standard_normal((4, 3, 5, 5))
        out, grads, upstream = _grads(
            lambda t, w, b: F.batch_norm(t, *ours_stats, w, b, training=True), [x, weight, bias])
        tensors = [torch.tensor(a, requires_grad=True) for a in (x, weight, bias)]
        expected = torch.nn.functional.batch_norm(tensors[0], *theirs_stats, tensors[1],
                                                  tensors[2], training=True)
        expected.backward(torch.tensor(upstream))
        np.testing.assert_allclose(out, expected.detach().numpy(), rtol=1e-10, atol=1e-12)
        for mine, theirs in zip(grads, tensors):
            np.testing.assert_allclose(mine, theirs.grad.numpy(), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(ours_stats[0], theirs_stats[0].numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours_stats[1].data, theirs_stats[1].numpy(), rtol=1e-12)
    x = rng.standard_normal((2, 3, 5, 5))
    np.testing.assert_allclose(
        F.batch_norm(x, *ours_stats, weight, bias).data,
        torch.nn.functional.batch_norm(torch.tensor(x), *theirs_stats, torch.tensor(weight),
                                       torch.tensor(bias)).numpy(), rtol=1e-12)


def test_batch_norm_errors():
    x = np.ones((4, 3, 2, 2))
    with pytest.raises(ValueError, match=r"running_mean has shape \(4,\) but x has 3 channels"):
        F.batch_norm(x, np.zeros(4), np.ones(3), training=True)
    with pytest.raises(ValueError, match="evaluation .* needs running_mean and running_var"):
        F.batch_norm(x, None, None)
    with pytest.raises(ValueError, match="more than one value per channel"):
        F.batch_norm(np.ones((1, 3)), None, None, training=True)
    with pytest.raises(TypeError, match="running_var must be a float numpy array"):
        F.batch_norm(x, np.zeros(3), [1.0, 1.0, 1.0], training=True)
    with pytest.raises(ValueError, match=r"weight must have shape \(3,\)"):
        F.batch_norm(x, np.zeros(3), np.ones(3), np.ones(2))


def test_buffers_are_passed_through_untrained_and_saved(tmp_path):
    params = init_vgg(np.random.default_rng(0), image_size=8, batch_norm=True)
    before = params["block0.bn0.running_mean"].copy()
    opt = optim.AdamW(params, lr=0.01)
    x, y = rng.standard_normal((4, 1, 8, 8)).astype(np.float32), np.array([0, 1, 2, 3])
    loss, grads = tg.value_and_grad(
        lambda p: F.cross_entropy(vgg(p, x, train=True), y))(params)
    assert grads["block0.bn0.running_mean"] is None and grads["block0.bn0.weight"] is not None
    after_forward = params["block0.bn0.running_mean"].copy()
    assert not np.allclose(after_forward, before)              # updated by the forward
    opt.step(grads)
    np.testing.assert_array_equal(params["block0.bn0.running_mean"], after_forward)  # not by AdamW
    path = data.save(params, tmp_path / "p.npz")
    loaded = data.load(path, model="vgg", image_size=8, batch_norm=True)
    assert isinstance(loaded["block0.bn0.running_var"], tg.Buffer)
    eval_out = vgg(params, x).data
    np.testing.assert_allclose(vgg(loaded, x).data, eval_out, rtol=1e-6)


def test_batch_norm_vgg_and_alexnet_train_from_the_cli(tmp_path, capsys):
    pytest.importorskip("sklearn")
    for extra in (["--model", "vgg", "--batch-norm"], ["--model", "alexnet"]):
        out = tmp_path / extra[1]
        assert main(["train", *extra, "--epochs", "1", "--max-steps", "3", "--no-progress",
                     "--out", str(out)]) == 0
        assert (out / "params.npz").exists()
        data.load(out / "params.npz", model=extra[1])  # the saved options check the shapes
    assert main(["train", "--model", "lenet5", "--batch-norm", "--max-steps", "1",
                 "--no-progress", "--out", str(tmp_path / "x")]) == 2
    assert "no batch-norm variant" in capsys.readouterr().err


def test_alexnet_has_lrn_dropout_and_overlapping_pools():
    model, init_model = get_model("alexnet")
    params = init_model(np.random.default_rng(0), image_size=28)
    x = rng.standard_normal((2, 1, 28, 28)).astype(np.float32)
    names = [n.name for n in topological_nodes([model(params, Tensor(x, requires_grad=True))])]
    assert names.count("local_response_norm") == 2 and names.count("max_pool2d") == 3
    evaluation = model(params, x).data
    np.testing.assert_array_equal(model(params, x).data, evaluation)   # no dropout in eval
    trained = model(params, x, train=True, rng=np.random.default_rng(1)).data
    assert not np.allclose(trained, evaluation)
    assert count_params(params) == 543_882


# ----------------------------------------------------------------------------- receptive fields
def _lenet_stage_two(params):
    def f(x):
        x = F.max_pool2d(F.relu(F.conv2d(x, params["conv1.weight"], params["conv1.bias"],
                                         padding=2)), 2)
        return F.conv2d(x, params["conv2.weight"], params["conv2.bias"])
    return f


@pytest.mark.parametrize("index", [(0, 5, 5), (3, 0, 0), (1, 9, 2)])
def test_lenet_second_stage_effective_field_fills_the_theoretical_box(index):
    f = _lenet_stage_two(init_lenet5(np.random.default_rng(0)))
    images = np.random.default_rng(1).standard_normal((32, 1, 28, 28))
    field, box = tg.receptive_field(f, images, index)
    x = Tensor(images[:1], requires_grad=True)
    out = f(x)
    theoretical = theoretical_fields(out, x)[id(out.grad_fn)]
    assert (theoretical.size, theoretical.jump) == ((14, 14), (2, 2))
    assert box == theoretical.box(index[1:], (28, 28))
    assert field.shape == (28, 28) and field.min() >= 0


def test_dilated_stack_field():
    weights = [rng.standard_normal((2, 1 if i == 0 else 2, 3, 3)) for i in range(3)]

    def f(x):
        for weight, dilation in zip(weights, (1, 2, 4)):
            x = F.conv2d(x, weight, dilation=dilation, padding=dilation)
        return x

    images = rng.standard_normal((4, 1, 32, 32))
    _, box = tg.receptive_field(f, images, (0, 16, 16))
    x = Tensor(images[:1], requires_grad=True)
    out = f(x)
    theoretical = theoretical_fields(out, x)[id(out.grad_fn)]
    assert theoretical.size == (15, 15)           # 1 + 2*(1 + 2 + 4)
    assert box == theoretical.box((16, 16), (32, 32)) == (9, 9, 23, 23)


def test_summary_receptive_field_column(capsys):
    model, init_model = get_model("lenet5")
    params = init_model(np.random.default_rng(0))
    rows = tg.summary(model, params, np.zeros((1, 1, 28, 28), np.float32))
    fields = [(r["op"].split()[0], r["receptive_field"], r["jump"]) for r in rows[:6]]
    assert fields == [("conv2d", (5, 5), (1, 1)), ("relu", (5, 5), (1, 1)),
                      ("max_pool2d", (6, 6), (2, 2)), ("conv2d", (14, 14), (2, 2)),
                      ("relu", (14, 14), (2, 2)), ("max_pool2d", (16, 16), (4, 4))]
    assert rows[7]["receptive_field"] == "whole input"
    assert "14x14 /2" in str(rows)


def test_receptive_field_cli_draws_a_picture(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "rf.png"
    assert main(["receptive-field", "--model", "lenet", "-o", str(path)]) == 0
    assert path.stat().st_size > 1000
    assert "conv 2 (16, 10, 10), centre (5, 5): 14x14 /2" in capsys.readouterr().out
