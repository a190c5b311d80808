"""Differential fuzz of ONNX export: hypothesis draws small nets from every exportable op and
option, exports them, and compares ONNX Runtime with tinygrad_cnn on fresh inputs at the
example's batch size and another. A net built only from exportable layers must export and
match to 1e-5; a net with a layer that cannot be exported (a value computed from the input
outside the recorded graph, a mean over the batch) must raise ExportError and write nothing.
CI draws 50 nets; ``pytest -m slow`` draws 1,000."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinygrad_cnn as tg
import tinygrad_cnn.functional as F
from tinygrad_cnn import Tensor

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from tinygrad_cnn.onnx import ExportError, export  # noqa: E402

EXAMPLES = [pytest.param(50, id="ci"), pytest.param(1000, id="slow", marks=pytest.mark.slow)]


class Net:
    """A drawn net: layers (functions of (params, x)), its params, and whether it exports."""

    def __init__(self, rng: np.random.Generator, shape: tuple[int, int, int]) -> None:
        self.rng, self.shape, self.params = rng, shape, {}
        self.layers: list = []
        self.labels: list[str] = []
        self.exportable = True

    def param(self, *shape: int, scale: float = 0.5) -> str:
        key = f"p{len(self.params)}"
        self.params[key] = (self.rng.standard_normal(shape) * scale).astype(np.float32)
        return key

    def add(self, label: str, layer, shape: tuple[int, int, int]) -> None:
        self.layers.append(layer)
        self.labels.append(label)
        self.shape = shape

    def __call__(self, p: dict, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(p, x)
        return x

    def __repr__(self) -> str:
        return f"Net({self.labels})"


def out_size(size: int, kernel: int, stride: int, pad: int, dilation: int = 1) -> int:
    return (size + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1


def conv(draw, net: Net) -> None:
    c, h, w = net.shape
    groups = draw(st.sampled_from([g for g in (1, 2, 3) if c % g == 0]))
    filters = groups * draw(st.integers(1, 2))
    k, s, d = draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    pad = draw(st.integers(0, 2))
    if out_size(min(h, w), k, s, pad, d) < 1:
        return
    weight, bias = net.param(filters, c // groups, k, k), net.param(filters)
    use_bias = draw(st.booleans())
    net.add(f"conv k{k} s{s} p{pad} d{d} g{groups}", lambda p, x: F.conv2d(
        x, p[weight], p[bias] if use_bias else None, s, pad, d, groups),
        (filters, out_size(h, k, s, pad, d), out_size(w, k, s, pad, d)))


def conv_transpose(draw, net: Net) -> None:
    c, h, w = net.shape
    k, s, d = draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    pad = draw(st.integers(0, d * (k - 1)))
    extra = draw(st.integers(0, max(s, d) - 1))
    filters = draw(st.integers(1, 3))
    size = [(n - 1) * s - 2 * pad + d * (k - 1) + extra + 1 for n in (h, w)]
    if min(size) < 1 or max(size) > 16:
        return
    weight = net.param(c, filters, k, k)
    net.add(f"conv_transpose k{k} s{s} p{pad} d{d} op{extra}", lambda p, x: F.conv_transpose2d(
        x, p[weight], None, s, pad, extra, 1, d), (filters, *size))


def pool(draw, net: Net) -> None:
    c, h, w = net.shape
    kind = draw(st.sampled_from(["max", "avg"]))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    ceil = draw(st.booleans())
    options = {"ceil_mode": ceil}
    if kind == "max":
        options["dilation"] = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    else:
        options["count_include_pad"] = draw(st.booleans())
        options["divisor_override"] = draw(st.sampled_from([None, 2]))
    function = F.max_pool2d if kind == "max" else F.avg_pool2d
    try:
        probe = function(Tensor(np.zeros((1, c, h, w), np.float32)), (kh, kw), (sh, sw),
                         (ph, pw), **options)
    except ValueError:
        return
    net.add(f"{kind}_pool k{kh}x{kw} s{sh}x{sw} p{ph}x{pw} {options}",
            lambda p, x: function(x, (kh, kw), (sh, sw), (ph, pw), **options),
            probe.shape[1:])


def elementwise(draw, net: Net) -> None:
    c, h, w = net.shape
    name = draw(st.sampled_from(["relu", "tanh", "sigmoid", "softplus", "abs", "neg", "clip",
                                 "add", "mul", "sub", "div", "maximum", "pow2", "exp"]))
    unary = {"relu": F.relu, "tanh": lambda x: x.tanh(), "sigmoid": lambda x: x.sigmoid(),
             "softplus": lambda x: x.softplus(), "abs": lambda x: x.abs(), "neg": lambda x: -x,
             "clip": lambda x: x.clip(-0.5, 0.7), "pow2": lambda x: x ** 2,
             "exp": lambda x: (x.tanh()).exp()}
    if name in unary:
        net.add(name, lambda p, x: unary[name](x), net.shape)
        return
    key = net.param(*draw(st.sampled_from([(c, 1, 1), (1, w), (c, h, w), ()])))
    if name == "div":
        net.params[key] = np.abs(net.params[key]) + 0.5
    binary = {"add": lambda a, b: a + b, "mul": lambda a, b: a * b, "sub": lambda a, b: b - a,
              "div": lambda a, b: a / b, "maximum": lambda a, b: a.maximum(b)}
    net.add(f"{name} param {net.params[key].shape}", lambda p, x: binary[name](x, p[key]),
            net.shape)


def norm(draw, net: Net) -> None:
    c, h, w = net.shape
    if draw(st.booleans()):
        mean, var = net.param(c), net.param(c)
        net.params[var] = tg.buffer(np.abs(net.params[var]) + 0.5)
        net.params[mean] = tg.buffer(net.params[mean])
        weight, bias = net.param(c), net.param(c)
        net.add("batch_norm eval", lambda p, x: F.batch_norm(
            x, p[mean], p[var], p[weight], p[bias], training=False), net.shape)
    else:
        size = draw(st.integers(1, 5))
        net.add(f"lrn {size}", lambda p, x: F.local_response_norm(x, size, 0.3, 0.75, 1.5),
                net.shape)


def shape_op(draw, net: Net) -> None:
    c, h, w = net.shape
    name = draw(st.sampled_from(["slice", "transpose", "pad", "concat", "reshape", "reduce",
                                 "broadcast", "where", "log_softmax", "last"]))
    if name == "slice" and h > 1:
        net.add("slice", lambda p, x: x[:, :, 1:, ::2], (c, h - 1, (w + 1) // 2))
    elif name == "transpose":
        net.add("transpose", lambda p, x: x.transpose(0, 1, 3, 2), (c, w, h))
    elif name == "pad":
        net.add("pad", lambda p, x: x.pad(((0, 0), (0, 0), (1, 0), (0, 2)), 0.5),
                (c, h + 1, w + 2))
    elif name == "concat":
        net.add("concat", lambda p, x: tg.concatenate([x, F.relu(x)], axis=1), (2 * c, h, w))
    elif name == "reshape":
        net.add("reshape", lambda p, x: x.reshape(x.shape[0], c * h, w).reshape(
            x.shape[0], c, h, w), net.shape)
    elif name == "reduce":
        op = draw(st.sampled_from(["sum", "max", "min", "mean"]))
        net.add(f"{op} over H", lambda p, x: getattr(x, op)(axis=2, keepdims=True), (c, 1, w))
    elif name == "broadcast" and h > 1:
        net.add("broadcast", lambda p, x: x.sum(axis=2, keepdims=True).broadcast_to(
            x.shape) + x, net.shape)
    elif name == "where":
        mask = net.rng.random((h, w)) < 0.5
        net.add("where param mask", lambda p, x: tg.where(mask, x, x * 0.5), net.shape)
    elif name == "log_softmax":
        net.add("log_softmax", lambda p, x: F.log_softmax(x, axis=1), net.shape)
    elif name == "last":
        net.add("x[-1:]", lambda p, x: x[-1:] + x, net.shape)


def unexportable(draw, net: Net) -> None:
    name = draw(st.sampled_from(["compare", "detach", "batch mean", "moved batch mean"]))
    layers = {
        "compare": lambda p, x: tg.where(x > 0, x, 0.1 * x),
        "detach": lambda p, x: x - x.detach().mean(axis=1, keepdims=True),
        "batch mean": lambda p, x: x - x.mean(axis=0, keepdims=True),
        "moved batch mean": lambda p, x: x + x.transpose(1, 0, 2, 3).mean(axis=1)[None],
    }
    net.add(name, layers[name], net.shape)
    net.exportable = False


LAYERS = [conv, conv, conv_transpose, pool, pool, elementwise, norm, shape_op]


@st.composite
def nets(draw) -> Net:
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    net = Net(rng, (draw(st.integers(1, 3)), draw(st.integers(3, 8)), draw(st.integers(3, 8))))
    net.shape_in = net.shape
    for _ in range(draw(st.integers(1, 5))):
        draw(st.sampled_from(LAYERS))(draw, net)
    if draw(st.integers(0, 9)) == 0:
        unexportable(draw, net)
    if draw(st.booleans()):
        c, h, w = net.shape
        weight, bias = net.param(3, c * h * w, scale=0.2), net.param(3)
        net.add("flatten + linear", lambda p, x: F.linear(x.flatten(1), p[weight], p[bias]),
                (3,))
    return net


@pytest.mark.parametrize("examples", EXAMPLES)
def test_drawn_nets_export_exactly_or_refuse(tmp_path, examples):
    @given(net=nets(), seed=st.integers(0, 2 ** 32 - 1))
    def prop(net: Net, seed: int) -> None:
        rng = np.random.default_rng(seed)
        path = tmp_path / "net.onnx"
        path.unlink(missing_ok=True)
        example = rng.standard_normal((2,) + net.shape_in).astype(np.float32)
        try:
            export(net, net.params, example, path)
        except ExportError:
            assert not net.exportable, f"{net} was refused"
            assert not path.exists()
            return
        assert net.exportable, f"{net} exported although it cannot be"
        session = ort.InferenceSession(str(path))
        for batch in (2, 3):
            x = rng.standard_normal((batch,) + net.shape_in).astype(np.float32)
            want = net(net.params, Tensor(x)).data
            got = session.run(None, {"x": x})[0]
            assert got.shape == want.shape, net
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max(),
                                       err_msg=repr(net))

    settings(max_examples=examples, deadline=None,
             suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                    HealthCheck.data_too_large])(prop)()
