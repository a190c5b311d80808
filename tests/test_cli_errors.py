"""Commands check what they were asked for before doing the work: a bad format, folder or
model is one line on stderr, exit 2, no traceback and nothing printed or written before.
Names are shown as themselves in graphs; locations name notebook cells."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest

import tinygrad_cnn as tg
from tinygrad_cnn import cli, trace
from tinygrad_cnn.viz import find_renderer, render, to_dot


def one_line_error(capsys, argv: list[str], *parts: str) -> None:
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""                         # refused before any work
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err, captured.err
    for part in parts:
        assert part in captured.err, captured.err


@pytest.mark.parametrize("argv, expected", [
    (["graph", "-o", "{tmp}/g.txt"], "unsupported format 'txt'"),
    (["graph", "-o", "{tmp}/missing/g.dot"], "the folder {tmp}/missing does not exist"),
    (["gradcheck", "--demo", "--graph", "{tmp}/c.txt"], "unsupported format 'txt'"),
    (["gradcheck", "--op", "relu", "--model", "resnet"], "unknown model 'resnet'"),
    (["gradcheck", "--op", "relu", "--graph", "{tmp}/c.svg"], "--graph and --html draw the"),
    (["receptive-field", "-o", "{tmp}/rf.txt"], "unsupported picture format 'txt'"),
    (["receptive-field", "-o", "{tmp}/missing/rf.png"], "the folder {tmp}/missing does not"),
    (["summary", "--model", "resnet"], "unknown model 'resnet'"),
    (["export", "--model", "resnet"], "unknown model 'resnet'"),
])
def test_a_bad_request_is_refused_before_the_work(tmp_path, capsys, argv, expected):
    pytest.importorskip("matplotlib")
    one_line_error(capsys, [part.format(tmp=tmp_path) for part in argv],
                   expected.format(tmp=tmp_path))
    assert not list(tmp_path.iterdir())


def test_graphviz_pure_beside_python_is_found_off_path(monkeypatch):
    from pathlib import Path
    beside = Path(sys.executable).parent / "graphviz-pure"
    if not beside.exists():
        pytest.skip("graphviz-pure is not installed beside this Python")
    monkeypatch.setenv("PATH", "/nonexistent")
    assert find_renderer() == str(beside)


HOSTILE = ["\\G", "é&amp;", "<b>", 'q"x', "\\N\\l"]


def test_names_are_shown_as_themselves():
    if find_renderer() is None:
        pytest.skip("no Graphviz renderer")
    params = {name: tg.Tensor(np.ones(2), requires_grad=True) for name in HOSTILE}
    out = sum((p for p in params.values()), tg.Tensor(np.zeros(2))).sum()
    svg = render(to_dot(out, params=params).source).decode()
    import html
    texts = [html.unescape(text) for text in re.findall(r"<text[^>]*>([^<]*)</text>", svg)]
    for name in HOSTILE:
        assert name in texts, (name, texts)
    assert "computation_graph" not in texts


def test_a_location_in_a_notebook_names_the_cell(monkeypatch):
    class Compiler:
        _filename_map = {"/tmp/ipykernel_1/3389075802.py": 5}

    class Shell:
        compile = Compiler()

    class FakeIPython:
        @staticmethod
        def get_ipython():
            return Shell()

    monkeypatch.setitem(sys.modules, "IPython", FakeIPython)
    code = compile("\n\nwhere = call_site()[0]\n", "/tmp/ipykernel_1/3389075802.py", "exec")
    scope = {"call_site": trace.call_site}
    exec(code, scope)
    assert scope["where"] == "In [5], line 3"
    assert trace.call_site()[0].startswith("test_cli_errors.py:")
