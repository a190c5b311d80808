"""Finding the wrong gradient: per-op localisation, kinks and round-off, the coloured graph,
anomaly mode and the saved-bytes column of summary."""

import threading
import warnings

import numpy as np
import pytest

import tinygrad_cnn as tg
import tinygrad_cnn.functional as F
from tinygrad_cnn import Function, Tensor
from tinygrad_cnn.cli import main

rng = np.random.default_rng(0)
PLANTED = 5   # the flat element of the planted error


class PlantedScale(Function):
    """3x, whose backward is wrong at one element."""

    @staticmethod
    def forward(ctx, x):
        return x * 3

    @staticmethod
    def backward(ctx, g):
        slope = np.full(ctx.inputs[0].shape, 3.0)
        slope.flat[PLANTED] = 7.0
        return (g * Tensor(slope),)


class Cube(Function):
    """x^3 with a right first derivative, computed by SquareTimesThree..."""

    @staticmethod
    def forward(ctx, x):
        return x ** 3

    @staticmethod
    def backward(ctx, g):
        return (g * SquareTimesThree.apply(ctx.inputs[0]),)


class SquareTimesThree(Function):
    """...whose own backward is wrong (5x instead of 6x): only second order sees it."""

    @staticmethod
    def forward(ctx, x):
        return 3 * x ** 2

    @staticmethod
    def backward(ctx, g):
        return (g * 5 * ctx.inputs[0],)


class Float32Square(Function):
    """x^2 computed in float32 inside, with the right backward, or a wrong one."""

    wrong = False

    @staticmethod
    def forward(ctx, x):
        return (x.astype(np.float32) ** 2).astype(x.dtype)

    def backward(ctx, g):  # noqa: N805  (a staticmethod, see below)
        return (g * (2.5 if Float32Square.wrong else 2) * ctx.inputs[0],)

    backward = staticmethod(backward)


PARAMS = {"w1": rng.normal(0, 0.4, (3, 1, 3, 3)), "b1": rng.normal(0, 0.1, 3),
          "w2": rng.normal(0, 0.3, (4, 48)), "b2": np.zeros(4)}
X, Y = rng.standard_normal((2, 1, 8, 8)), np.array([1, 3])


def small_net(w1, b1, w2, b2):
    x = F.max_pool2d(F.relu(F.conv2d(X, w1, b1, padding=1)), 2)
    x = PlantedScale.apply(x)   # the planted bug: this line is the expected `where`
    return F.cross_entropy(F.linear(x.flatten(1), w2, b2), Y)


def line_of(marker: str) -> int:
    """The line of this file that holds `marker` (a comment), for expected `where`s."""
    with open(__file__) as source:
        return next(k for k, line in enumerate(source, 1)
                    if marker in line and "line_of(" not in line)


PLANTED_LINE = line_of("# the planted bug")


def test_localisation_names_the_planted_function_its_line_and_element():
    inputs = [PARAMS[k] for k in ("w1", "b1", "w2", "b2")]
    before = [a.copy() for a in inputs]
    report = tg.locate_gradient_error(small_net, inputs)
    culprit = report.culprit
    assert not report.passed and culprit.op == "PlantedScale"
    assert culprit.where == f"test_debugging.py:{PLANTED_LINE}"
    assert culprit.status == "failed" and culprit.diagnosis == "bug"
    assert culprit.input_index == 0 and culprit.input_shape == (2, 3, 4, 4)
    assert culprit.worst_index == tuple(np.unravel_index(PLANTED, (2, 3, 4, 4)))
    assert abs(culprit.analytic) > 2 * abs(culprit.numeric)
    others = [n for n in report.nodes if n is not culprit]
    assert {n.status for n in others} <= {"passed", "not differentiable here"}
    assert [n.op for n in report.nodes][:4] == ["conv2d", "relu", "max_pool2d", "PlantedScale"]
    assert all(np.array_equal(a, b) for a, b in zip(inputs, before))  # inputs untouched
    text = str(report)
    assert "PlantedScale" in text and "failed (bug)" in text and "<table>" in \
        report._repr_html_()


def test_gradcheck_localize_raises_with_the_report_and_names_the_culprit():
    inputs = [PARAMS[k] for k in ("w1", "b1", "w2", "b2")]
    with pytest.raises(tg.GradcheckError) as error:
        tg.gradcheck(small_net, inputs, localize=True)
    message = str(error.value)
    assert "PlantedScale" in message and f"test_debugging.py:{PLANTED_LINE}" in message
    assert "input 0 (shape (2, 3, 4, 4))" in message and "analytic" in message
    assert error.value.report.culprit.op == "PlantedScale"


def test_an_error_only_in_the_second_derivative_is_found_by_order_2():
    x = rng.uniform(0.5, 1.5, (4,))
    assert tg.locate_gradient_error(lambda t: Cube.apply(t).sum(), [x]).passed
    report = tg.locate_gradient_error(lambda t: Cube.apply(t).sum(), [x], order=2)
    assert report.culprit.op == "Cube" and report.culprit.diagnosis == "bug"
    with pytest.raises(tg.GradcheckError, match="Cube"):
        tg.gradgradcheck(lambda t: Cube.apply(t).sum(), [x], localize=True)


@pytest.mark.parametrize("f, x", [
    (lambda t: t.relu().sum(), np.array([0.0, 1.0, -2.0])),
    (lambda t: t.abs().sum(), np.array([0.0, 1.0, -2.0])),
    (lambda t: F.max_pool2d(t, 2).sum(), np.ones((1, 1, 2, 2))),
    (lambda t: t.max(), np.array([1.0, 3.0, 3.0])),
    (lambda t: t.clip(-1.0, 1.0).sum(), np.array([1.0, 0.5])),
])
def test_kinks_are_not_differentiable_here_never_failed(f, x):
    report = tg.locate_gradient_error(f, [x])
    assert report.passed
    assert report.nodes[0].status == "not differentiable here"
    assert report.nodes[0].worst_index is not None
    assert "not differentiable" in str(report)


def test_gradcheck_localize_passes_a_kink_with_a_warning():
    with pytest.warns(UserWarning, match="not differentiable at element"):
        assert tg.gradcheck(lambda t: t.relu().sum(), [np.array([0.0, 1.0])], localize=True)
    with pytest.raises(tg.GradcheckError):   # without localize, the kink is a failure
        tg.gradcheck(lambda t: t.relu().sum(), [np.array([0.0, 1.0])])


@pytest.mark.parametrize("wrong, diagnosis", [(False, "round-off"), (True, "bug")])
def test_float32_inside_is_round_off_and_a_wrong_formula_a_bug(wrong, diagnosis, monkeypatch):
    monkeypatch.setattr(Float32Square, "wrong", wrong)
    report = tg.locate_gradient_error(lambda t: Float32Square.apply(t).sum(),
                                      [rng.uniform(0.5, 1.5, (3,))])
    assert report.culprit.diagnosis == diagnosis
    errors = [error for _, error in report.culprit.eps_sweep]
    assert len(errors) == len(tg.locate.EPS_SWEEP)
    if diagnosis == "round-off":
        assert min(errors) < 1e-4 < max(errors)


def test_every_registered_op_passes_localisation_on_its_samples():
    for spec in tg.REGISTRY.values():
        for sample in spec.samples(np.random.default_rng(1))[:1]:
            report = tg.locate_gradient_error(
                lambda *xs, s=sample, op=spec: op.function.apply(*xs, **s.params),
                list(sample.args))
            assert report.passed, f"{spec.name}: {report}"


# ----------------------------------------------------------------------------- the graph
def test_coloured_graph_classes_and_a_graph_from_another_call():
    inputs = [PARAMS[k] for k in ("w1", "b1", "w2", "b2")]
    report = tg.locate_gradient_error(small_net, inputs)
    source = tg.to_dot(report.output, check=report).source
    failed = [line for line in source.splitlines() if "check-failed" in line]
    assert len(failed) == 1 and "rel err" in source
    assert "check-passed" in source and f"test_debugging.py:{PLANTED_LINE}" in source
    other = small_net(*[Tensor(a, requires_grad=True) for a in inputs])
    assert tg.to_dot(other, check=report).source.count("check-failed") == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        folded = tg.to_dot(report.output, check=report, max_nodes=3).source
    assert "FAILED: PlantedScale" in folded and "check-failed" in folded


def test_a_graph_of_another_function_is_refused():
    report = tg.locate_gradient_error(lambda t: t.relu().sum(), [np.array([1.0, 2.0])])
    other = Tensor(np.array([1.0, 2.0]), requires_grad=True).exp().sum()
    with pytest.raises(ValueError, match="exp in the graph but relu in the report"):
        tg.to_dot(other, check=report)


def test_cli_demo_and_model_localisation(tmp_path, capsys, monkeypatch):
    assert main(["gradcheck", "--demo", "--graph", str(tmp_path / "demo.dot")]) == 0
    out = capsys.readouterr().out
    assert "culprit: LeakyScale at demo.py" in out and "diagnosis bug" in out
    assert "check-failed" in (tmp_path / "demo.dot").read_text()
    monkeypatch.chdir(tmp_path)
    assert main(["gradcheck", "--demo"]) == 0          # the picture by default
    assert (tmp_path / "gradcheck_demo.dot").exists()
    assert main(["gradcheck", "--model", "lenet", "--localize"]) == 0
    assert "models.py" in capsys.readouterr().out


# ----------------------------------------------------------------------------- anomaly mode
def test_anomaly_in_forward_names_log_and_its_line():
    x = Tensor(np.array([0.0, 1.0]), requires_grad=True)
    with pytest.raises(tg.AnomalyError) as error:
        with tg.detect_anomaly():
            y = x.log()   # the log source
            (y * 2).exp().sum()
    line = line_of("# the log source")
    e = error.value
    assert (e.op, e.phase, e.where) == ("log", "forward", f"test_debugging.py:{line}")
    assert e.shape == (2,) and e.count == 1 and e.input_finite
    assert isinstance(e, FloatingPointError)


def test_anomaly_in_backward_blames_sqrt_not_the_ops_after_it():
    x = Tensor(np.array([0.0, 4.0]), requires_grad=True)
    mask = np.array([0.0, 1.0])

    @tg.detect_anomaly()
    def run():
        y = x.sqrt()                 # the sqrt source: 0 * its infinite gradient at 0
        ((y + 1) * mask).sum().backward()

    with pytest.raises(tg.AnomalyError) as error, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run()
    line = line_of("# the sqrt source")
    assert (error.value.op, error.value.phase) == ("sqrt", "backward")
    assert error.value.where == f"test_debugging.py:{line}" and error.value.input_finite


def test_a_nan_flowing_through_later_ops_is_blamed_on_its_source_only():
    x = Tensor(np.array([-1.0, 1.0]), requires_grad=True)
    with pytest.raises(tg.AnomalyError) as error:
        with tg.detect_anomaly():
            (x.sqrt() * 2 + 1).tanh().sum()
    assert error.value.op == "sqrt" and error.value.phase == "forward"


def test_anomaly_mode_is_off_by_default_nests_and_is_thread_local():
    x = Tensor(np.array([0.0]), requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        x.log()                       # no error outside the block
    seen = []
    with tg.detect_anomaly():
        with tg.detect_anomaly():
            pass
        with pytest.raises(tg.AnomalyError):
            x.log()                   # still on after the inner block ends
        thread = threading.Thread(target=lambda: seen.append(x.log().data))
        thread.start()
        thread.join()
    assert len(seen) == 1             # the other thread was not in anomaly mode


# ----------------------------------------------------------------------------- summary
def test_summary_saved_bytes_of_a_conv_are_the_arrays_its_node_holds(capsys):
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    w = Tensor(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), requires_grad=True)
    rows = tg.summary(lambda w: F.conv2d(x, w, padding=1), w)
    out = F.conv2d(x, w, padding=1)
    node = out.grad_fn
    expected = x.nbytes + w.data.nbytes + sum(a.nbytes for a in node.saved)
    assert rows[0]["saved_bytes"] == expected and rows[-1]["saved_bytes"] == expected
    assert "saved" in str(rows)
    relu_rows = tg.summary(lambda w: (w * 2).relu(), w)
    assert relu_rows[1]["saved_bytes"] == w.size   # relu keeps a bool mask only
