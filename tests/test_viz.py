"""The graph picture: DOT structure, rendering, grads, backward graphs, folding, summary."""

import os
import re

import graphviz
import numpy as np
import pytest

import tinygrad_cnn as tg
import tinygrad_cnn.functional as F
from tinygrad_cnn import Tensor, models, render, viz


def small_graph():
    rng = np.random.default_rng(0)
    params = {"w": Tensor(rng.standard_normal((2, 1, 3, 3)), requires_grad=True),
              "b": Tensor(np.zeros(2), requires_grad=True)}
    x = Tensor(rng.standard_normal((1, 1, 5, 5)), name="x")
    return params, x, F.relu(F.conv2d(x, params["w"], params["b"])).sum()


def nodes_and_edges(dot):
    """{node id: label} (labels hold real newlines) and [(tail, head)] from the DOT source."""
    labels = {node: quoted or bare for node, quoted, bare in re.findall(
        r'^\t(\w+) \[label=(?:"([^"]*)"|([^ \]]+))', dot.source, re.M)}
    edges = re.findall(r"^\t(\w+) -> (\w+)", dot.source, re.M)
    return labels, edges


def test_dot_structure_of_a_small_graph():
    params, x, out = small_graph()
    dot = tg.to_dot(out, params=params)
    assert isinstance(dot, graphviz.Digraph)
    labels, edges = nodes_and_edges(dot)
    ops = sorted(label.split()[0] for label in labels.values()
                 if label.split()[0] in {"conv2d", "reshape", "add", "relu", "sum"})
    assert ops == ["conv2d", "relu", "sum"]  # the bias is an input of conv2d
    by_label = {label.split("\n")[0]: node for node, label in labels.items()}
    assert "conv2d  stride=1  padding=0" in labels.values()
    assert labels[by_label["w"]] == "w\n(2, 1, 3, 3)" and "b" in by_label
    assert labels[by_label["x"]] == "x\n(1, 1, 5, 5)"
    assert (by_label["w"], by_label["conv2d  stride=1  padding=0"]) in edges
    assert (by_label["x"], by_label["conv2d  stride=1  padding=0"]) in edges
    assert any(label.endswith("(1, 2, 3, 3)") for label in labels.values())
    assert "peripheries=2" in dot.source  # the output is marked
    assert "#d4edda" in dot.source and "#d6e9f8" in dot.source  # parameter, input styles


def test_a_tensor_used_twice_is_one_node():
    x = Tensor(np.ones(3), requires_grad=True, name="x")
    labels, edges = nodes_and_edges(tg.to_dot((x * x).sum()))
    x_nodes = [node for node, label in labels.items() if label.startswith("x\n")]
    assert len(x_nodes) == 1
    assert sum(1 for a, _ in edges if a == x_nodes[0]) == 2


def test_output_is_deterministic():
    first = tg.to_dot(small_graph()[2]).source
    second = tg.to_dot(small_graph()[2]).source
    assert first == second


def test_show_grads_and_nan_highlighting():
    x = Tensor(np.array([0.0, 4.0]), requires_grad=True, name="x")
    y = x.sqrt().sum()
    y.backward()  # d sqrt(x)/dx at 0 is inf
    source = tg.to_dot(y, show_grads=True).source
    assert "|grad| = inf" in source and "color=red" in source
    ok = Tensor(np.array([1.0, 4.0]), requires_grad=True, name="ok")
    z = ok.sqrt().sum()
    viz.retain_grads(z)
    z.backward()
    source = tg.to_dot(z, show_grads=True).source
    assert "color=red" not in source and source.count("|grad|") >= 3


def test_backward_graph_of_a_second_derivative():
    params, x, _ = small_graph()
    out = (F.conv2d(x, params["w"], params["b"]) ** 2).sum()
    with pytest.raises(ValueError, match="backward\\(create_graph=True\\)"):
        tg.to_dot(out, backward=True)
    out.backward(create_graph=True)
    source = tg.to_dot(out, backward=True, params=params).source
    assert "conv2d_weight_grad" in source and "pow" in source and "w\n(2, 1, 3, 3)" in source


def test_folding_a_large_graph_says_so():
    params = models.init_vgg(np.random.default_rng(0))
    loss = F.cross_entropy(models.vgg(params, np.ones((1, 1, 28, 28), np.float32)), [3])
    with pytest.warns(UserWarning, match=r"folded \d+ ops into 5 blocks"):
        dot = tg.to_dot(loss, params=params, max_nodes=12)
    assert "x2" in dot.source and "folded" in dot.source
    assert len(re.findall(r"^\tblock\d+ \[", dot.source, re.M)) == 5


def test_lenet_forward_graph_is_one_readable_picture():
    params = models.init_lenet5(np.random.default_rng(0))
    loss = F.cross_entropy(models.lenet5(params, np.ones((2, 1, 28, 28), np.float32)), [1, 2])
    labels, _ = nodes_and_edges(tg.to_dot(loss, params=params))
    assert len(labels) < 80
    assert sum("conv2d" in label for label in labels.values()) == 2
    assert "conv1.weight\n(6, 1, 5, 5)" in labels.values()


def test_tensor_graph_method():
    assert isinstance(small_graph()[2].graph(rankdir="LR"), graphviz.Digraph)


@pytest.mark.skipif(viz.find_renderer() is None, reason="no Graphviz renderer installed")
@pytest.mark.parametrize("suffix,magic", [(".svg", b"<svg"), (".png", b"\x89PNG")])
def test_rendering(tmp_path, suffix, magic):
    path = tg.draw_graph(small_graph()[2], path=tmp_path / f"graph{suffix}")
    assert magic in path.read_bytes()[:400]


def test_dot_source_output(tmp_path):
    path = tg.draw_graph(small_graph()[2], path=tmp_path / "graph.dot")
    assert path.read_text().startswith("digraph")


def test_without_a_renderer_the_error_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(render.sys, "executable", str(tmp_path / "empty" / "python"))
    with pytest.raises(viz.RendererNotFound, match="pip install graphviz-pure"):
        tg.draw_graph(small_graph()[2], path=tmp_path / "graph.svg")
    assert (tmp_path / "graph.dot").read_text().startswith("digraph")
    assert not os.path.exists(tmp_path / "graph.svg")


def test_summary_of_lenet(capsys):
    params = models.init_lenet5(np.random.default_rng(0))
    rows = tg.summary(models.lenet5, params, np.ones((1, 1, 28, 28), np.float32))
    total = rows[-1]
    assert total["op"] == "total" and total["params"] == 61_706
    convs = [row for row in rows if row["op"].startswith("conv2d")]
    assert [c["output_shape"] for c in convs] == [(1, 6, 28, 28), (1, 16, 10, 10)]
    assert [c["params"] for c in convs] == [156, 2416]  # weights and bias
    assert [c["macs"] for c in convs] == [6 * 28 * 28 * 25, 16 * 10 * 10 * 150]
    assert total["macs"] == 117_600 + 240_000 + 48_000 + 10_080 + 840
    printed = str(rows)   # the text table, as the REPL shows it
    assert "61,706" in printed and "MACs" in printed and capsys.readouterr().out == ""


def test_summary_of_one_conv_layer():
    w = Tensor(np.ones((20, 3, 8, 8), np.float32), requires_grad=True)
    b = Tensor(np.zeros(20, np.float32), requires_grad=True)
    rows = tg.summary(lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1),
                      np.ones((1, 3, 32, 32), np.float32), w, b)
    assert rows[-1]["params"] == 3_860 and rows[-1]["output_shape"] == (1, 20, 14, 14)


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="the folder .*nowhere does not exist"):
        tg.draw_graph(small_graph()[2], path=tmp_path / "nowhere" / "g.svg")
