"""Living beside other tools: Jupyter display, optimizers on plain numpy params (against
torch.optim), resuming a run exactly, and train's output in pipes, quiet and JSON modes."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tinygrad_cnn as tg
import tinygrad_cnn.functional as F
from tinygrad_cnn import data, optim, render, viz
from tinygrad_cnn.train import run

rng = np.random.default_rng(0)


# ----------------------------------------------------------------------------- Jupyter
def _graph():
    w = tg.Tensor(rng.standard_normal((2, 1, 3, 3)), requires_grad=True)
    return F.relu(F.conv2d(np.ones((1, 1, 4, 4)), w)).sum()


def test_graphs_render_inline_with_the_fallback_renderer():
    if viz.find_renderer() is None:
        pytest.skip("no Graphviz renderer installed")
    bundle = tg.to_dot(_graph())._repr_mimebundle_()
    assert bundle["image/svg+xml"].lstrip().startswith(("<?xml", "<svg"))
    assert "<svg" in _graph().graph()._repr_svg_()


def test_inline_graph_without_any_renderer_says_what_to_install(monkeypatch):
    monkeypatch.setattr(render, "find_renderer", lambda: None)
    with pytest.raises(viz.RendererNotFound, match="pip install graphviz-pure"):
        tg.to_dot(_graph())._repr_mimebundle_()


def test_summary_and_reports_have_html_tables(capsys):
    w = tg.Tensor(rng.standard_normal((2, 1, 3, 3)), requires_grad=True)
    table = tg.summary(lambda w: F.conv2d(np.ones((1, 1, 4, 4)), w), w)
    assert "receptive field" in str(table)   # the text table a terminal shows
    html = table._repr_html_()
    assert html.startswith("<table>") and "conv2d" in html and "3x3 /1" in html
    report = tg.check_gradients(lambda x: (x * x).sum(), [np.array([1.0, 2.0])])
    assert "<table>" in report._repr_html_() and "ok" in report._repr_html_()


# ----------------------------------------------------------------------------- optimizers
TORCH_OPTIONS = [
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.05, "momentum": 0.8, "dampening": 0.3, "weight_decay": 0.02}),
    ("SGD", {"lr": 0.05, "momentum": 0.5, "maximize": True}),
    ("SGD", {"lr": 0.0, "momentum": 0.9}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.01}),
    ("Adam", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.01}),
    ("Adam", {"lr": 0.01, "maximize": True, "amsgrad": True}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.1}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True, "maximize": True}),
]


@pytest.mark.parametrize("name, options", TORCH_OPTIONS,
                         ids=[f"{n}-{'-'.join(o)}" for n, o in TORCH_OPTIONS])
@pytest.mark.parametrize("dtype, steps, tolerance", [(np.float32, 5, 1e-6),
                                                     (np.float64, 60, 1e-10)])
def test_optimizers_on_numpy_params_match_torch(name, options, dtype, steps, tolerance):
    torch = pytest.importorskip("torch")
    start = {"conv": {"weight": rng.standard_normal((3, 2)).astype(dtype)},
             "bias": [rng.standard_normal(3).astype(dtype)]}
    params = {"conv": {"weight": start["conv"]["weight"].copy()},
              "bias": [start["bias"][0].copy()]}
    weight_array, bias_array = params["conv"]["weight"], params["bias"][0]
    ours = getattr(optim, name)(params, **options)
    theirs_params = [torch.tensor(start["conv"]["weight"], requires_grad=True),
                     torch.tensor(start["bias"][0], requires_grad=True)]
    theirs = getattr(torch.optim, name)(theirs_params, **options)
    for _ in range(steps):
        grads = {"conv": {"weight": rng.standard_normal((3, 2)).astype(dtype)},
                 "bias": [rng.standard_normal(3).astype(dtype)]}
        ours.step(grads)
        theirs.zero_grad()
        theirs_params[0].grad = torch.tensor(grads["conv"]["weight"])
        theirs_params[1].grad = torch.tensor(grads["bias"][0])
        theirs.step()
    assert params["conv"]["weight"] is weight_array and params["bias"][0] is bias_array
    np.testing.assert_allclose(weight_array, theirs_params[0].detach().numpy(), rtol=0,
                               atol=tolerance)
    np.testing.assert_allclose(bias_array, theirs_params[1].detach().numpy(), rtol=0,
                               atol=tolerance)


@pytest.mark.parametrize("make, expected", [
    (lambda p: optim.SGD(p, lr=-1.0), "invalid lr value -1.0"),
    (lambda p: optim.SGD(p, lr=float("nan")), "invalid lr value nan"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=-0.5), "invalid momentum value -0.5"),
    (lambda p: optim.SGD(p, lr=0.1, weight_decay=-1), "invalid weight_decay value -1"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True),
     "nesterov needs momentum > 0 and zero dampening"),
    (lambda p: optim.Adam(p, eps=-1e-8), "invalid eps value -1e-08"),
    (lambda p: optim.AdamW(p, weight_decay=-0.1), "invalid weight_decay value -0.1"),
    (lambda p: optim.Adam(p, betas=(0.9,)), r"betas must be in \[0, 1\), got \(0.9,\)"),
])
def test_hyperparameters_are_checked_as_torch_checks_them(make, expected):
    with pytest.raises(ValueError, match=expected):
        make({"w": np.ones(2)})
    optim.SGD({"w": np.ones(2)}, lr=0)    # lr=0 is allowed, as in torch.optim


def test_a_hyperparameter_that_is_not_a_number_is_a_type_error():
    with pytest.raises(TypeError, match="SGD: lr must be a number, got '0.1'"):
        optim.SGD({"w": np.ones(2)}, lr="0.1")
    with pytest.raises(TypeError, match="Adam: eps must be a number, got None"):
        optim.Adam({"w": np.ones(2)}, eps=None)


def _stepped(kind, params):
    opt = kind(params, lr=0.1, **({"momentum": 0.9} if kind is optim.SGD else {}))
    opt.step({key: np.ones_like(value) for key, value in params.items()})
    return opt


@pytest.mark.parametrize("saved, loading, expected", [
    (optim.SGD, optim.Adam, "state of SGD, not of Adam"),
    (optim.Adam, optim.SGD, "state of Adam, not of SGD"),
    (optim.Adam, optim.AdamW, "state of Adam, not of AdamW"),
])
def test_the_state_of_another_optimizer_is_refused(saved, loading, expected):
    params = {"w": np.ones(3), "b": np.zeros(2)}
    state = _stepped(saved, params).state_dict()
    target = _stepped(loading, {k: v.copy() for k, v in params.items()})
    before = [dict(s) for s in target.state]
    with pytest.raises(ValueError, match=expected):
        target.load_state_dict(state)
    legacy = {"steps": state["steps"], "state": state["state"]}   # saved before the kind
    if saved is not optim.Adam or loading is not optim.AdamW:     # (same keys, same update)
        with pytest.raises(ValueError, match="does not keep: the state of another optimizer"):
            target.load_state_dict(legacy)
    assert target.state == before and target.steps == 1


def test_the_state_of_other_parameters_is_refused():
    state = _stepped(optim.Adam, {"w": np.ones(3), "b": np.zeros(2)}).state_dict()
    with pytest.raises(ValueError, match=r"parameters \['w', 'b'\], these are \['v', 'b'\]"):
        optim.Adam({"v": np.ones(3), "b": np.zeros(2)}).load_state_dict(state)
    with pytest.raises(ValueError, match=r"had shape \(3,\), now \(4,\)"):
        optim.Adam({"w": np.ones(4), "b": np.zeros(2)}).load_state_dict(state)


def test_optimizer_state_round_trips_through_save(tmp_path):
    params = {"w": np.ones(3, np.float32)}
    opt = optim.Adam(params, lr=0.1)
    opt.step({"w": np.array([1.0, -1.0, 0.5], np.float32)})
    data.save(opt.state_dict(), tmp_path / "opt.npz")
    other = optim.Adam({"w": params["w"].copy()}, lr=0.1)
    other.load_state_dict(data.load(tmp_path / "opt.npz"))
    grads = {"w": np.array([0.3, 0.2, -0.1], np.float32)}
    opt.step(grads)
    other.step(grads)
    np.testing.assert_array_equal(other.params[0], params["w"])
    with pytest.raises(ValueError, match="expected the state of 2 parameters, got 1"):
        optim.Adam([np.ones(1), np.ones(1)], lr=0.1).load_state_dict(opt.state_dict())


# ----------------------------------------------------------------------------- resume
def test_a_resumed_run_equals_an_uninterrupted_one(tmp_path, capsys):
    pytest.importorskip("sklearn")
    _, whole = run(epochs=3, out=str(tmp_path / "whole"), progress=False, output="quiet")
    run(epochs=1, out=str(tmp_path / "split"), progress=False, output="quiet")
    _, resumed = run(epochs=3, resume=str(tmp_path / "split"), progress=False, output="quiet")
    assert [r["train_loss"] for r in resumed] == [r["train_loss"] for r in whole]
    assert [r["test_accuracy"] for r in resumed] == [r["test_accuracy"] for r in whole]
    a, b = data.load(tmp_path / "whole" / "params.npz"), data.load(tmp_path / "split" /
                                                                    "params.npz")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="nothing: does not exist"):
        run(resume=str(tmp_path / "nothing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="metrics.json is missing"):
        run(resume=str(tmp_path / "empty"))


# ----------------------------------------------------------------------------- output
def _train_cli(tmp_path, *flags):
    command = [sys.executable, "-m", "tinygrad_cnn.cli", "train", "--epochs", "3",
               "--out", str(tmp_path / "run"), *flags]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TINYGRAD_CNN_NO_REEXEC": "1"})
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines(), done.stderr


def test_train_into_a_pipe_prints_a_line_per_epoch(tmp_path):
    pytest.importorskip("sklearn")
    lines, stderr = _train_cli(tmp_path)
    epochs = [line for line in lines if line.split() and line.split()[0].isdigit()]
    assert [line.split()[0] for line in epochs] == ["1", "2", "3"]
    assert len(lines) == 3 + 3        # the run, the header, 3 epochs, the files written
    assert "\r" not in stderr and "batch/s" not in stderr     # no progress bar


def test_train_quiet_and_json(tmp_path):
    pytest.importorskip("sklearn")
    lines, _ = _train_cli(tmp_path, "--quiet")
    assert len(lines) == 1 and lines[0].startswith("lenet5 on digits: test accuracy")
    lines, _ = _train_cli(tmp_path, "--json")
    records = [json.loads(line) for line in lines]
    assert [r["epoch"] for r in records[:-1]] == [1, 2, 3]
    assert records[-1]["done"] and records[-1]["epochs"] == 3
