"""Every op declares what the tools need to know about it, and those facts hold on its own
gradcheck samples; the op tables in the docs are the registry's."""

from __future__ import annotations

import ast
import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

from tinygrad_cnn import Tensor
from tinygrad_cnn.kernels.windows import Window
from tinygrad_cnn.ops import REGISTRY
from tinygrad_cnn.ops.registry import FIELDS, KINDS

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "tinygrad_cnn"


KEPT = []   # recorded outputs: a node holds its output weakly


def recorded(spec, sample):
    """The node the op records on a sample (float inputs require grad)."""
    args = [Tensor(np.asarray(a), requires_grad=True)
            if isinstance(a, (np.ndarray, float)) and np.asarray(a).dtype.kind == "f"
            else a for a in sample.args]
    out = spec.function.apply(*args, **sample.params)
    KEPT.append(out)
    return out.grad_fn


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_op_declares_its_facts(name):
    spec = REGISTRY[name]
    assert spec.kind in KINDS
    assert spec.macs is not None, f"{name}: declare macs= (a count, a function, or 0)"
    assert spec.field is not None, f"{name}: declare field= (or a kind that implies it)"
    assert callable(spec.onnx) or (isinstance(spec.onnx, str) and spec.onnx), \
        f"{name}: declare onnx= (a lowering, or the reason there is none)"
    assert callable(spec.label)
    assert (spec.window is not None) == (spec.kind == "window"), \
        f"{name}: window ops, and only they, declare window="


@pytest.mark.parametrize("name", list(REGISTRY))
def test_the_facts_hold_on_the_samples(name):
    spec = REGISTRY[name]
    for sample in spec.samples(np.random.default_rng(0)):
        node = recorded(spec, sample)
        assert isinstance(spec.macs_of(node), int) and spec.macs_of(node) >= 0
        rule = spec.field_of(node)
        assert rule in FIELDS
        if rule == "window":
            window = spec.window(node)
            assert isinstance(window, Window)
            windows = math.prod(window.out_size(*node.inputs[0].shape[2:]))
            assert windows in (math.prod(node.output.shape[-2:]), node.output.shape[-1])
        assert isinstance(spec.label(node.params), str)


def test_macs_count_one_multiply_accumulate_per_product_term():
    x, w = np.ones((2, 3, 6, 6)), np.ones((4, 3, 3, 3))
    conv = REGISTRY["conv2d"]
    node = recorded(conv, conv.samples(np.random.default_rng(0))[0])
    out, weight = node.output, node.inputs[1]
    assert conv.macs_of(node) == out.size * math.prod(weight.shape[1:])
    matmul = REGISTRY["matmul"]
    product = matmul.function.apply(Tensor(x.reshape(6, 36), requires_grad=True),
                                    Tensor(np.ones((36, 5))))
    assert matmul.macs_of(product.grad_fn) == 6 * 5 * 36
    assert w.size  # (the conv sample's weight is the one counted above)


def test_a_new_op_without_its_facts_is_refused():
    from tinygrad_cnn.ops.registry import defop
    with pytest.raises(ValueError, match="kind must be one of"):
        defop("made_up", samples=lambda rng: [], kind="magic")
    with pytest.raises(ValueError, match="field must be one of"):
        defop("made_up", samples=lambda rng: [], kind="select", field="sometimes")


# ----------------------------------------------------------------------------- no name tables
TOOLS = [path for path in PACKAGE.rglob("*.py")
         if path.parent.name not in ("ops", "kernels")]


def _compares_op_names(tree: ast.AST) -> list[str]:
    """`x.name == "..."`, `node.name in {...}` and the like in a module."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and isinstance(node.left, ast.Attribute) \
                and node.left.attr == "name":
            names = [c for c in node.comparators
                     if isinstance(c, ast.Constant) and c.value in REGISTRY or
                     isinstance(c, (ast.Set, ast.Tuple, ast.List, ast.Name))]
            if names:
                found.append(f"line {node.lineno}")
    return found


def _op_name_tables(tree: ast.AST) -> list[str]:
    """Sets and dicts holding three or more op names, and module-level tuples or lists of
    them (`__all__`, a module's public function names, is not one)."""
    candidates = [node for node in ast.walk(tree) if isinstance(node, (ast.Set, ast.Dict))]
    candidates += [node.value for node in getattr(tree, "body", [])
                   if isinstance(node, ast.Assign) and isinstance(node.value, (ast.Tuple, ast.List))
                   and not any(getattr(t, "id", None) == "__all__" for t in node.targets)]
    found = []
    for node in candidates:
        items = node.keys if isinstance(node, ast.Dict) else node.elts
        if sum(isinstance(item, ast.Constant) and item.value in REGISTRY for item in items) >= 3:
            found.append(f"line {node.lineno}")
    return found


@pytest.mark.parametrize("path", TOOLS, ids=[str(p.relative_to(PACKAGE)) for p in TOOLS])
def test_no_module_outside_ops_compares_op_names(path):
    tree = ast.parse(path.read_text())
    assert not _compares_op_names(tree), f"{path.name} compares op names"
    assert not _op_name_tables(tree), f"{path.name} keeps a table of op names"


def test_the_name_checks_find_what_they_look_for():
    planted = ast.parse('if node.name == "conv2d": pass\nOPS = {"add", "sub", "mul"}\n'
                        'if node.name in SHAPE_OPS: pass\nMAJOR = ("conv2d", "matmul", "fold")')
    assert len(_compares_op_names(planted)) == 2 and len(_op_name_tables(planted)) == 2


# ----------------------------------------------------------------------------- docs
def test_the_op_tables_in_the_docs_are_the_registrys():
    spec = importlib.util.spec_from_file_location("make_op_tables",
                                                  ROOT / "docs" / "make_op_tables.py")
    tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tables)
    for filename, (name, make) in tables.TABLES.items():
        path = ROOT / "docs" / filename
        assert tables.rendered(path, name, make()) == path.read_text(), \
            f"docs/{filename} is stale: run python docs/make_op_tables.py"


def test_no_module_is_over_400_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 420}
    assert not long
