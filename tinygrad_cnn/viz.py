"""See the computation graph: DOT construction (pure, deterministic) and rendering.

`to_dot` walks the recorded graph from output Tensors and returns a `graphviz.Digraph`: op
nodes are boxes labelled with the op and its parameters, tensor nodes are ellipses with
their name and shape. Leaves are styled by kind: parameters (green), inputs (blue) and
constants (grey); outputs are drawn with a double border. Node ids follow the order of a
deterministic walk, so the same graph always gives the same bytes.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .autograd import Context
from .folding import block_label, folded_chains, op_label, repeats
from .graph import forward_order, leaf_kind, walk
from .locate import STATUS_COLOURS, LocateReport, op_name
from .render import RendererNotFound, find_renderer, graph_class, graph_format, render
from .tensor import Tensor
from .tree import tensor_keys

if TYPE_CHECKING:
    import graphviz

__all__ = ["to_dot", "draw_graph", "retain_grads", "RendererNotFound", "find_renderer",
           "render", "graph_class", "op_label", "graph_format"]

STYLE = {
    "op": {"shape": "box", "style": "rounded,filled", "fillcolor": "#fff3cd"},
    "parameter": {"shape": "ellipse", "style": "filled", "fillcolor": "#d4edda"},
    "input": {"shape": "ellipse", "style": "filled", "fillcolor": "#d6e9f8"},
    "constant": {"shape": "ellipse", "style": "filled", "fillcolor": "#eeeeee",
                 "fontsize": "10"},
    "tensor": {"shape": "ellipse"},
    "bad": {"color": "red", "fontcolor": "red", "penwidth": "2.5"},
}
# a gradient-check status -> (fill colour, DOT class copied into the SVG)
CHECK_CLASS = {"passed": "check-passed", "failed": "check-failed",
               "not differentiable here": "check-nondiff", "not checked": "check-unchecked"}
CHECK_SEVERITY = ("failed", "not differentiable here", "passed", "not checked")


# ----------------------------------------------------------------------------- labels
def _tensor_label(tensor: Tensor, name: str | None, options: dict) -> str:
    lines = [name] if name else []
    if options["show_shapes"]:
        lines.append(str(tuple(tensor.shape)))
    if options["show_dtypes"]:
        lines.append(str(tensor.dtype))
    if options["show_grads"] and tensor.grad is not None:
        lines.append(f"|grad| = {np.linalg.norm(np.asarray(tensor.grad.data, float)):.3g}")
    return "\n".join(lines) or " "


def _dot_text(text: str) -> Any:
    """Text shown as itself by Graphviz: backslashes are not escapes (`\\G` is not the
    graph's name), `&` starts no entity, and `<...>` is not an HTML label."""
    import graphviz
    return graphviz.nohtml(text.replace("\\", "\\\\").replace("&", "&amp;"))


def _is_bad(tensor: Tensor) -> bool:
    return tensor.grad is not None and not np.all(np.isfinite(tensor.grad.data))


# ----------------------------------------------------------------------------- to_dot
def _backward_outputs(outputs: Sequence[Tensor]) -> list[Tensor]:
    tensors, _ = walk(outputs)
    grads = [t.grad for t in tensors if t.grad is not None and t.grad.grad_fn is not None]
    if not grads:
        raise ValueError("to_dot(backward=True): no recorded backward graph; call "
                         "backward(create_graph=True) on the output first")
    return grads


def to_dot(*outputs: Tensor, params: Any = None, show_shapes: bool = True,
           show_dtypes: bool = False, show_grads: bool = False, show_attrs: bool = True,
           backward: bool = False, rankdir: str = "TB",
           max_nodes: int | None = None, check: Any = None) -> graphviz.Digraph:
    """The recorded graph behind `outputs` as a graphviz Digraph (Jupyter shows it inline,
    with the system `dot` or graphviz-pure).

    Parameters
    ----------
    params : dict or list of Tensors, optional
        Names parameter leaves by their keys (else by `Tensor.name`).
    show_grads : after backward, add each tensor's grad norm; NaN/Inf gradients in red.
    backward : draw the graph that ``backward(create_graph=True)`` recorded (the gradients
        of the leaves and how they were computed).
    max_nodes : above this many op nodes, fold chains of ops into blocks and repeated
        blocks into one "xN" node; the graph's title says what was folded.
    check : a `LocateReport`: colour each op by its own gradient check (green passed, red
        failed with the error and element, amber not differentiable here, grey not
        checked), with a DOT class ``check-<status>`` and a tooltip with where it was
        created. The graph may be the report's own or one recorded by another call of
        the same function (matched by forward order and op name).
    """
    if not outputs or not all(isinstance(t, Tensor) for t in outputs):
        raise TypeError("to_dot: pass one or more output Tensors")
    if rankdir not in ("TB", "LR", "BT", "RL"):
        raise ValueError(f"to_dot: rankdir must be TB, LR, BT or RL, got {rankdir!r}")
    roots = _backward_outputs(outputs) if backward else list(outputs)
    options = {"show_shapes": show_shapes, "show_dtypes": show_dtypes,
               "show_grads": show_grads, "show_attrs": show_attrs}
    tensors, nodes = walk(roots)
    options["check"] = _check_results(nodes, check) if check is not None else None
    names = tensor_keys(params)
    dot = graph_class()("computation_graph", graph_attr={"rankdir": rankdir},
                        node_attr={"fontname": "Helvetica", "fontsize": "11"})
    folded = folded_chains(nodes, max_nodes) if max_nodes and len(nodes) > max_nodes else None
    if folded is not None:
        _draw_folded(dot, roots, tensors, nodes, folded, names, options)
    else:
        _draw_full(dot, roots, tensors, nodes, names, options)
    return dot


def _tensor_attrs(tensor: Tensor, is_output: bool) -> dict:
    attrs = dict(STYLE[leaf_kind(tensor)])
    if is_output:
        attrs["peripheries"] = "2"
    if _is_bad(tensor):
        attrs.update(STYLE["bad"])
    return attrs


def _draw_full(dot: graphviz.Digraph, roots: list[Tensor], tensors: list[Tensor],
               nodes: list[Context], names: dict[int, str], options: dict) -> None:
    tensor_ids = {id(t): f"t{k}" for k, t in enumerate(tensors)}
    node_ids = {id(n): f"op{k}" for k, n in enumerate(nodes)}
    root_ids = {id(t) for t in roots}
    for tensor in tensors:
        name = names.get(id(tensor)) or tensor.name
        dot.node(tensor_ids[id(tensor)], _dot_text(_tensor_label(tensor, name, options)),
                 **_tensor_attrs(tensor, id(tensor) in root_ids))
    for node in nodes:
        label = op_label(node) if options["show_attrs"] else node.name
        attrs = dict(STYLE["op"])
        if options["check"] is not None:
            result = options["check"][id(node)]
            label += _check_note(result)
            attrs.update(_check_attrs(result.status, result.where))
        dot.node(node_ids[id(node)], _dot_text(label), **attrs)
        for tensor in node.inputs:
            dot.edge(tensor_ids[id(tensor)], node_ids[id(node)])
    for tensor in tensors:
        if tensor.grad_fn is not None:
            dot.edge(node_ids[id(tensor.grad_fn)], tensor_ids[id(tensor)])


# ----------------------------------------------------------------------------- check colours
def _check_results(nodes: list[Context], check: Any) -> dict[int, Any]:
    """id(node) -> its NodeReport: by identity on the report's own graph, else by forward
    order and op name on a graph recorded by another call of the same function."""
    if not isinstance(check, LocateReport):
        raise TypeError(f"to_dot: check must be the LocateReport of locate_gradient_error, "
                        f"got {type(check).__name__}")
    own = {id(r.node): r for r in check.nodes}
    if all(id(n) in own for n in nodes):
        return {id(n): own[id(n)] for n in nodes}
    drawn = forward_order([n.output for n in nodes if not n.released])
    reported = [own[id(n)] for n in forward_order([check.output])]
    if len(drawn) != len(reported):
        raise ValueError(f"to_dot(check=...): the graph has {len(drawn)} ops but the report "
                         f"checked {len(reported)}; pass a graph of the same function")
    for k, (node, result) in enumerate(zip(drawn, reported)):
        if op_name(node) != result.op:
            raise ValueError(f"to_dot(check=...): op {k} in forward order is {op_name(node)} "
                             f"in the graph but {result.op} in the report; pass a graph "
                             "recorded by the same function")
    return {id(n): r for n, r in zip(drawn, reported)}


def _check_attrs(status: str, where: str) -> dict:
    return {"fillcolor": STATUS_COLOURS[status], "class": CHECK_CLASS[status],
            "tooltip": _dot_text(f"{status}: {where}")}


def _check_note(result: Any) -> str:
    if result.status == "failed":
        return f"\nrel err {result.max_rel_error:.2g} at {result.worst_index}"
    return ""


def _draw_folded(dot: graphviz.Digraph, roots: list[Tensor], tensors: list[Tensor],
                 nodes: list[Context], blocks: list[list[Context]], names: dict[int, str],
                 options: dict) -> None:
    block_of = {id(n): k for k, block in enumerate(blocks) for n in block}
    labels = [block_label(block, options["show_attrs"]) for block in blocks]
    edges = {(block_of[id(t.grad_fn)], block_of[id(n)]) for n in nodes for t in n.inputs
             if t.grad_fn is not None and block_of[id(t.grad_fn)] != block_of[id(n)]}
    groups = repeats(blocks, labels, edges)
    group_of = {b: g for g, members in enumerate(groups) for b in members}
    for g, members in enumerate(groups):
        last = blocks[members[-1]][-1].output
        leaves = [names.get(id(t)) or t.name for b in members for n in blocks[b]
                  for t in n.inputs if leaf_kind(t) == "parameter"]
        text = labels[members[0]] + (f"  x{len(members)}" if len(members) > 1 else "")
        text += f"\n{tuple(last.shape)}"
        shown = [leaf for leaf in leaves if leaf]
        if shown:
            text += "\nparams: " + ", ".join(shown[:4]) + (" ..." if len(shown) > 4 else "")
        attrs = dict(STYLE["op"])
        if any(id(n.output) in {id(r) for r in roots} for b in members for n in blocks[b]):
            attrs["peripheries"] = "2"
        if options["check"] is not None:
            results = [options["check"][id(n)] for b in members for n in blocks[b]]
            worst = min(results, key=lambda r: CHECK_SEVERITY.index(r.status))
            if worst.status == "failed":
                text += f"\nFAILED: {worst.op}" + _check_note(worst)
            attrs.update(_check_attrs(worst.status, worst.where))
        dot.node(f"block{g}", _dot_text(text), **attrs)
    for a, b in sorted({(group_of[a], group_of[b]) for a, b in edges if
                        group_of[a] != group_of[b]}):
        dot.edge(f"block{a}", f"block{b}")
    inputs = [t for t in tensors if leaf_kind(t) == "input"]
    for k, tensor in enumerate(inputs):
        dot.node(f"in{k}", _dot_text(_tensor_label(tensor, names.get(id(tensor)) or
                                                   tensor.name, options)), **STYLE["input"])
        consumers = sorted({group_of[block_of[id(n)]] for n in nodes
                            if any(t is tensor for t in n.inputs)})
        for g in consumers:
            dot.edge(f"in{k}", f"block{g}")
    message = (f"folded {len(nodes)} ops into {len(groups)} blocks (max_nodes={len(nodes)} "
               "would show every op)")
    dot.attr(label=message, labelloc="t")
    warnings.warn(f"to_dot: {message}", stacklevel=3)


def draw_graph(*outputs: Tensor, path: str | os.PathLike, format: str | None = None,
               **to_dot_options: Any) -> Path:
    """Render the graph of `outputs` to `path` (.svg, .png, .pdf; .dot/.gv write the source).

    The DOT source is always written next to the picture (same name, .dot), so a missing
    renderer still leaves something to look at; then `RendererNotFound` says what to install.
    """
    path = Path(path)
    fmt = graph_format(path, format)
    source = to_dot(*outputs, **to_dot_options).source
    if fmt in ("dot", "gv"):
        path.write_text(source)
        return path
    path.with_suffix(".dot").write_text(source)
    path.write_bytes(render(source, fmt, f"draw_graph: no Graphviz renderer on PATH to make "
                                         f"{path}; the DOT source is in "
                                         f"{path.with_suffix('.dot')}"))
    return path


def retain_grads(*outputs: Tensor) -> None:
    """Keep the gradient of every tensor in the graph (for `show_grads` on a whole graph)."""
    tensors, _ = walk(outputs)
    for tensor in tensors:
        if tensor.requires_grad:
            tensor.retain_grad()
