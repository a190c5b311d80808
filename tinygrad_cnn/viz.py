"""See the computation graph: DOT construction (pure, deterministic) and rendering.

`to_dot` walks the recorded graph from output Tensors and returns a `graphviz.Digraph`: op
nodes are boxes labelled with the op and its parameters, tensor nodes are ellipses with
their name and shape. Leaves are styled by kind: parameters (green), inputs (blue) and
constants (grey); outputs are drawn with a double border. Node ids follow the order of a
deterministic walk, so the same graph always gives the same bytes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .autograd import Context, topological_nodes
from .tensor import Tensor
from .tree import tree_flatten, tree_keys

if TYPE_CHECKING:
    import graphviz

__all__ = ["to_dot", "draw_graph", "retain_grads", "RendererNotFound", "find_renderer",
           "render", "graph_class", "op_label", "leaf_kind", "forward_order", "SHAPE_OPS"]

STYLE = {
    "op": {"shape": "box", "style": "rounded,filled", "fillcolor": "#fff3cd"},
    "parameter": {"shape": "ellipse", "style": "filled", "fillcolor": "#d4edda"},
    "input": {"shape": "ellipse", "style": "filled", "fillcolor": "#d6e9f8"},
    "constant": {"shape": "ellipse", "style": "filled", "fillcolor": "#eeeeee",
                 "fontsize": "10"},
    "tensor": {"shape": "ellipse"},
    "bad": {"color": "red", "fontcolor": "red", "penwidth": "2.5"},
}
SHAPE_OPS = {"reshape", "transpose", "broadcast_to", "cast", "identity"}
# a gradient-check status -> (fill colour, DOT class copied into the SVG)
CHECK_STYLE = {"passed": ("#c3e6cb", "check-passed"), "failed": ("#f5c6cb", "check-failed"),
               "not differentiable here": ("#ffe08a", "check-nondiff"),
               "not checked": ("#e2e3e5", "check-unchecked")}
CHECK_SEVERITY = ("failed", "not differentiable here", "passed", "not checked")


# ----------------------------------------------------------------------------- the walk
def _walk(outputs: Sequence[Tensor]) -> tuple[list[Tensor], list[Context]]:
    """Tensors and nodes reachable from `outputs`, in a deterministic depth-first order."""
    tensors: dict[int, Tensor] = {}
    nodes: dict[int, Context] = {}
    stack = list(reversed(outputs))
    while stack:
        tensor = stack.pop()
        if id(tensor) in tensors:
            continue
        tensors[id(tensor)] = tensor
        node = tensor.grad_fn
        if node is not None and id(node) not in nodes:
            nodes[id(node)] = node
            stack.extend(reversed(node.inputs))
    return list(tensors.values()), list(nodes.values())


def _param_names(params: Any) -> dict[int, str]:
    """id(tensor) -> dotted key, from a (nested) dict or list of Tensors."""
    if params is None:
        return {}
    leaves = tree_flatten(params)[0]
    return {id(leaf): key for leaf, key in zip(leaves, tree_keys(params))
            if isinstance(leaf, Tensor)}


def leaf_kind(tensor: Tensor) -> str:
    """How a tensor is drawn and counted: "tensor" (made by an op), "parameter" (a leaf
    that requires grad), "constant" (bool, or an unnamed scalar) or "input"."""
    if tensor.grad_fn is not None:
        return "tensor"
    if tensor.requires_grad:
        return "parameter"
    if tensor.dtype == bool or tensor.size == 1 and tensor.name is None:
        return "constant"
    return "input"


# ----------------------------------------------------------------------------- labels
def _format_value(value: Any) -> str:
    """Op parameters, short: (1, 1) -> 1, (2, 2, 2, 2) -> 2, index tuples as [0:2, array(3,)]."""
    if isinstance(value, np.ndarray):
        return f"array{value.shape}"
    if isinstance(value, tuple) and value:
        if len(value) in (2, 4) and all(isinstance(v, (int, np.integer)) for v in value) \
                and len(set(value)) == 1:
            return str(value[0])
        if any(isinstance(v, (slice, np.ndarray)) or v is None or v is Ellipsis
               for v in value):
            return "[" + ", ".join(_format_index(v) for v in value) + "]"
    return str(value)


def _format_index(value: Any) -> str:
    if isinstance(value, slice):
        parts = ["" if v is None else str(v) for v in (value.start, value.stop, value.step)]
        return ":".join(parts[:2] if value.step is None else parts)
    if value is Ellipsis:
        return "..."
    if value is None:
        return "None"
    return _format_value(value)


def op_label(node: Context) -> str:
    """`conv2d  stride=1 padding=2`, `max_pool2d 2x2/2`, `sum axis=(1,)`."""
    params = node.params
    if node.name in ("max_pool2d", "avg_pool2d") and "kernel" in params:
        (kh, kw), (sh, sw) = params["kernel"], params["stride"]
        text = f"{node.name} {kh}x{kw}/{sh if sh == sw else f'{sh}x{sw}'}"
        pad = params["padding"]
        return text + (f" pad={_format_value(pad)}" if any(pad) else "")
    shown = {k: v for k, v in params.items()
             if k not in ("winner", "divisor", "input_hw", "kernel", "output_hw", "columns")}
    if node.name.startswith("conv2d") or node.name == "local_conv2d":
        shown = {k: v for k, v in shown.items()
                 if not (k == "groups" and v == 1) and not (k == "dilation" and v == (1, 1))}
    text = "  ".join(f"{k}={_format_value(v)}" for k, v in shown.items())
    return f"{node.name}  {text}" if text else node.name


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
    tensors, _ = _walk(outputs)
    grads = [t.grad for t in tensors if t.grad is not None and t.grad.grad_fn is not None]
    if not grads:
        raise ValueError("to_dot(backward=True): no recorded backward graph; call "
                         "backward(create_graph=True) on the output first")
    return grads


@cache
def graph_class() -> type:
    """`Graph`: a graphviz Digraph that Jupyter shows inline with whichever renderer there
    is, the system `dot`, else `graphviz-pure` (`find_renderer`); `RendererNotFound` says
    what to install when there is neither. graphviz is imported here, on first use, so
    that the engine imports without it."""
    import graphviz

    class Graph(graphviz.Digraph):
        def _repr_svg_(self) -> str:
            return render(self.source, "svg").decode("utf-8")

        def _repr_mimebundle_(self, include: Any = None, exclude: Any = None,
                              **kwargs: Any) -> dict:
            return {"image/svg+xml": self._repr_svg_()}

    return Graph


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
    tensors, nodes = _walk(roots)
    options["check"] = _check_results(nodes, check) if check is not None else None
    names = _param_names(params)
    dot = graph_class()("computation_graph", graph_attr={"rankdir": rankdir},
                        node_attr={"fontname": "Helvetica", "fontsize": "11"})
    folded = _folded_chains(nodes, max_nodes) if max_nodes and len(nodes) > max_nodes else None
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
    from .locate import LocateReport, op_name
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
    colour, css_class = CHECK_STYLE[status]
    return {"fillcolor": colour, "class": css_class,
            "tooltip": _dot_text(f"{status}: {where}")}


def _check_note(result: Any) -> str:
    if result.status == "failed":
        return f"\nrel err {result.max_rel_error:.2g} at {result.worst_index}"
    return ""


# ----------------------------------------------------------------------------- folding
MAJOR_OPS = {"conv2d", "conv2d_input_grad", "conv2d_weight_grad", "matmul", "max_pool2d",
             "avg_pool2d", "concatenate", "unfold", "fold"}


def forward_order(roots: list[Tensor]) -> list[Context]:
    """The nodes behind `roots`, each after the nodes that made its inputs."""
    return list(reversed(topological_nodes(roots)))


def _folded_chains(nodes: list[Context], max_nodes: int) -> list[list[Context]]:
    """Blocks of nodes: a block starts at a major op (conv, matmul, pooling, concatenation)
    and takes the ops after it whose graph inputs all come from that block. Shape ops on
    parameters (a bias reshaped, a weight transposed) join the block that uses them."""
    plumbing = {id(n) for n in nodes
                if n.name in SHAPE_OPS and all(t.grad_fn is None for t in n.inputs)}
    block_of: dict[int, int] = {}
    blocks: list[list[Context]] = []
    for node in forward_order([n.output for n in nodes]):
        if id(node) in plumbing:
            continue
        producers = [t.grad_fn for t in node.inputs if t.grad_fn is not None]
        sources = {block_of[id(p)] for p in producers if id(p) not in plumbing}
        if node.name in MAJOR_OPS or len(sources) != 1:
            blocks.append([node])
            block_of[id(node)] = len(blocks) - 1
        else:
            (source,) = sources
            blocks[source].append(node)
            block_of[id(node)] = source
        for producer in producers:
            if id(producer) in plumbing and id(producer) not in block_of:
                block_of[id(producer)] = block_of[id(node)]
                blocks[block_of[id(node)]].insert(0, producer)
    return blocks


def _first_named(block: list[Context]) -> Context:
    return next((n for n in block if n.name not in SHAPE_OPS), block[0])


def _block_label(block: list[Context], show_attrs: bool) -> str:
    head = _first_named(block)
    first = op_label(head) if show_attrs else head.name
    rest = [n.name for n in block if n is not head and n.name not in SHAPE_OPS]
    return " -> ".join([first] + rest)


def _repeats(blocks: list[list[Context]], labels: list[str],
             edges: set[tuple[int, int]]) -> list[list[int]]:
    """Groups of consecutive identical blocks joined by a single edge (a chain of copies)."""
    successors: dict[int, set[int]] = {}
    predecessors: dict[int, set[int]] = {}
    for a, b in edges:
        successors.setdefault(a, set()).add(b)
        predecessors.setdefault(b, set()).add(a)
    groups: list[list[int]] = []
    group_of: dict[int, int] = {}
    for index in range(len(blocks)):
        before = predecessors.get(index, set())
        if len(before) == 1:
            (previous,) = before
            if labels[previous] == labels[index] and successors.get(previous) == {index}:
                groups[group_of[previous]].append(index)
                group_of[index] = group_of[previous]
                continue
        groups.append([index])
        group_of[index] = len(groups) - 1
    return groups


def _draw_folded(dot: graphviz.Digraph, roots: list[Tensor], tensors: list[Tensor],
                 nodes: list[Context], blocks: list[list[Context]], names: dict[int, str],
                 options: dict) -> None:
    block_of = {id(n): k for k, block in enumerate(blocks) for n in block}
    labels = [_block_label(block, options["show_attrs"]) for block in blocks]
    edges = {(block_of[id(t.grad_fn)], block_of[id(n)]) for n in nodes for t in n.inputs
             if t.grad_fn is not None and block_of[id(t.grad_fn)] != block_of[id(n)]}
    groups = _repeats(blocks, labels, edges)
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


# ----------------------------------------------------------------------------- rendering
class RendererNotFound(RuntimeError):
    """Neither Graphviz's `dot` nor `graphviz-pure` is on PATH."""


INSTALL_HINT = ("install a Graphviz renderer: `pip install graphviz-pure` (a self-contained "
                "dot, or `pip install -e \".[render]\"`), or the system package "
                "(`apt-get install graphviz`, `brew install graphviz`)")


def find_renderer() -> str | None:
    """The `dot` program on PATH, else `graphviz-pure` on PATH or beside the running
    Python (a notebook kernel started by full path has its venv's bin off PATH), else
    None."""
    beside_python = str(Path(sys.executable).parent)
    return shutil.which("dot") or shutil.which("graphviz-pure") or \
        shutil.which("graphviz-pure", path=beside_python)


GRAPH_FORMATS = ("svg", "png", "pdf", "dot", "gv")


def graph_format(path: str | os.PathLike, format: str | None = None) -> str:
    """The format `draw_graph` would write `path` in; ValueError for one it cannot write,
    FileNotFoundError naming a missing folder. Commands call it before doing the work."""
    path = Path(path)
    fmt = (format or path.suffix.lstrip(".") or "svg").lower()
    if fmt not in GRAPH_FORMATS:
        raise ValueError(f"draw_graph: cannot write {path}: unsupported format {fmt!r}; use "
                         f"{', '.join(GRAPH_FORMATS)}")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"draw_graph: cannot write {path}: the folder {path.parent} "
                                "does not exist")
    return fmt


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


def render(source: str, fmt: str = "svg", context: str = "render: no Graphviz renderer on "
           "PATH") -> bytes:
    """DOT source rendered to svg, png or pdf bytes by `find_renderer`'s program."""
    renderer = find_renderer()
    if renderer is None:
        raise RendererNotFound(f"{context}. To render, {INSTALL_HINT}")
    if fmt == "pdf" and Path(renderer).name == "graphviz-pure":
        raise RendererNotFound("draw_graph: graphviz-pure cannot write PDF; use .svg or .png, "
                               "or install the system Graphviz for PDF")
    done = subprocess.run([renderer, f"-T{fmt}"], input=source.encode(), check=True,
                          capture_output=True)
    return done.stdout


def retain_grads(*outputs: Tensor) -> None:
    """Keep the gradient of every tensor in the graph (for `show_grads` on a whole graph)."""
    tensors, _ = _walk(outputs)
    for tensor in tensors:
        if tensor.requires_grad:
            tensor.retain_grad()
