"""An interactive graph viewer in one offline HTML file: `page = tg.view(loss, params=...)`,
then `page.save("graph.html")`, or show it in Jupyter (`page` as a cell's value).

The page shows the forward graph and the backward graph (a toggle; selecting an op
highlights the backward nodes its formula made, and back), folds repeated blocks ("x N",
expanded on click), details of every op and tensor (parameters, where it was called,
shapes, MACs, bytes saved for backward, receptive field; a tensor's statistics,
histogram and heatmaps of its values and gradient), a gradient check on the graph
(`check=`), search, ancestors and descendants, the path from the loss to a parameter, and
the summary table. Everything is inline (the script and style in `viewer/`, the data as
JSON, the pictures as PNG data URIs): the file makes no request.
"""

from __future__ import annotations

import html
import json
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any

from . import trace
from .autograd import Context, grad_of
from .checkpoint import write_atomically
from .folding import block_label, folded_chains, op_label, repeats
from .graph import forward_order, leaf_kind, walk
from .locate import LocateReport
from .ops import spec_of
from .pictures import heatmaps, histogram, statistics
from .receptive import Field, theoretical_fields
from .summary import saved_arrays
from .tensor import Tensor
from .tree import tensor_keys

__all__ = ["view", "Viewer"]

FOLD_ABOVE = 60            # ops: a bigger graph opens folded
CHECK_NAMES = {"passed": "passed", "failed": "failed", "not differentiable here": "nondiff",
               "not checked": "unchecked"}


class Viewer:
    """One self-contained HTML page: `save(path)`, `html`, and Jupyter's `_repr_html_`."""

    def __init__(self, data: dict, title: str) -> None:
        self.data, self.title = data, title

    @property
    def html(self) -> str:
        folder = resources.files("tinygrad_cnn") / "viewer"
        values = {"title": html.escape(self.title),
                  "style": (folder / "viewer.css").read_text(),
                  "script": (folder / "viewer.js").read_text(),
                  # JSON inside <script>: "</" would end the element, so it is escaped
                  "data": json.dumps(self.data, separators=(",", ":")).replace("</", "<\\/")}
        page = (folder / "viewer.html").read_text()
        return re.sub(r"\{\{(\w+)\}\}", lambda match: values[match.group(1)], page)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the page (atomically); returns the path."""
        path = Path(path)
        text = self.html.encode("utf-8")
        write_atomically(path, lambda file: file.write(text))
        return path

    def _repr_html_(self) -> str:
        """The page in an iframe of its own document (its script runs there)."""
        return (f'<iframe srcdoc="{html.escape(self.html, quote=True)}" '
                'style="width:100%;height:720px;border:1px solid #ccc"></iframe>')


def view(*outputs: Tensor, params: Any = None, check: Any = None,
         title: str | None = None) -> Viewer:
    """The viewer of the graph behind `outputs` (recorded Tensors).

    When the first output is a scalar, the page also holds the gradient of it with respect
    to every tensor of the graph and the backward graph that computes them (recorded here;
    the tensors' `.grad` are not touched). `params` (a dict or list of Tensors) names the
    parameters; `check`, a `LocateReport` (or the report of ``gradcheck(...,
    localize=True)``), colours every op by its own check.
    """
    if not outputs or not all(isinstance(t, Tensor) for t in outputs):
        raise TypeError("view: pass one or more output Tensors")
    if check is not None and not isinstance(check, LocateReport):
        raise TypeError(f"view: check must be the LocateReport of locate_gradient_error, "
                        f"got {type(check).__name__}")
    tensors, nodes = walk(list(outputs))
    names = tensor_keys(params)
    grads, backward = _backward(outputs[0], tensors)
    data = {"title": title or "computation graph", "nodes": [], "blocks": [],
            "summary": [], "checked": check is not None}
    ids = _ids(tensors, nodes, backward)
    results = _check_results(check, nodes)
    budget = [PICTURE_BUDGET, PICTURED]
    for tensor in tensors:
        data["nodes"].append(_tensor_entry(tensor, ids, names, grads.get(id(tensor)),
                                           "forward", budget))
    fields = theoretical_fields(outputs[0]) if outputs[0].grad_fn is not None else {}
    for node in forward_order(list(outputs)):
        entry = _op_entry(node, ids, "forward", results.get(id(node)), fields.get(id(node)))
        data["nodes"].append(entry)
        data["summary"].append(entry["id"])
    for side_node in backward:
        data["nodes"].append(_op_entry(side_node, ids, "backward", None, None))
        for tensor in side_node.inputs:
            if id(tensor) not in ids["seen"]:
                ids["seen"].add(id(tensor))
                data["nodes"].append(_tensor_entry(tensor, ids, names, None, "backward",
                                                   budget))
    data["blocks"] = _blocks(nodes, ids, expanded=len(nodes) <= FOLD_ABOVE)
    return Viewer(data, data["title"])


PICTURE_BUDGET = 3 << 20   # bytes of PNG in one page: past it, tensors get statistics only
PICTURED = 400   # forward tensors with pictures and a histogram, at most (the first walked)


def _backward(out: Tensor, tensors: list[Tensor]) -> tuple[dict[int, Tensor], list[Context]]:
    """The gradients of a scalar output with respect to every tensor of its graph that
    requires grad, and the nodes of the backward graph that computes them."""
    targets = [t for t in tensors if t.requires_grad]
    if out.size != 1 or out.grad_fn is None or not targets:
        return {}, []
    with trace.tracing():
        grads = grad_of(out, targets, retain_graph=True, create_graph=True, allow_unused=True)
    found = {id(t): g for t, g in zip(targets, grads) if g is not None}
    forward_ids = {id(n) for n in walk([out])[1]}
    recorded = [g for g in found.values() if g.grad_fn is not None]
    backward = [n for n in forward_order(recorded) if id(n) not in forward_ids]
    return found, backward


def _ids(tensors: list[Tensor], nodes: list[Context], backward: list[Context]) -> dict:
    ids: dict[Any, Any] = {id(t): f"t{k}" for k, t in enumerate(tensors)}
    ids.update({id(n): f"op{k}" for k, n in enumerate(nodes)})
    ids.update({id(n): f"bop{k}" for k, n in enumerate(backward)})
    ids["seen"] = {id(t) for t in tensors}
    for node in backward:
        ids.setdefault(id(node.output), f"bt{len(ids)}")
    return ids


def _tensor_id(tensor: Tensor, ids: dict) -> str:
    if id(tensor) not in ids:
        ids[id(tensor)] = f"bt{len(ids)}"
    return ids[id(tensor)]


def _check_results(check: LocateReport | None, nodes: list[Context]) -> dict[int, Any]:
    if check is None:
        return {}
    own = {id(result.node): result for result in check.nodes}
    return {id(node): own[id(node)] for node in nodes if id(node) in own}


def _tensor_entry(tensor: Tensor, ids: dict, names: dict[int, str], grad: Tensor | None,
                  side: str, budget: list[int]) -> dict:
    kind = leaf_kind(tensor)
    entry = {"id": _tensor_id(tensor, ids), "kind": "tensor", "op": None,
             "name": names.get(id(tensor)) or tensor.name or "", "leaf": kind,
             "shape": list(tensor.shape), "dtype": str(tensor.dtype), "side": side,
             "check": None, "stats": statistics(tensor.data), "histogram": None,
             "pictures": [], "grad_pictures": []}
    if grad is not None:
        entry["grad_stats"] = statistics(grad.data)
    if side == "forward" and budget[0] > 0 and budget[1] > 0 and tensor.size > 1:
        entry["histogram"] = histogram(tensor.data)
        entry["pictures"] = heatmaps(tensor.data, kind == "parameter")
        if grad is not None:
            entry["grad_pictures"] = heatmaps(grad.data, kind == "parameter")
        budget[0] -= sum(len(p) for p in entry["pictures"] + entry["grad_pictures"])
        budget[1] -= 1
    return entry


def _op_entry(node: Context, ids: dict, side: str, result: Any, field: Any) -> dict:
    spec = spec_of(node)
    inputs = [_tensor_id(t, ids) for t in node.inputs]
    entry = {"id": ids[id(node)], "kind": "op", "op": node.name, "name": op_label(node),
             "shape": list(node.output.shape), "dtype": str(node.output.dtype),
             "side": side, "inputs": inputs, "output": _tensor_id(node.output, ids),
             "where": getattr(node, "where", None) or "",
             "input_shapes": [[list(t.shape), str(t.dtype)] for t in node.inputs],
             "macs": spec.macs_of(node) if spec is not None else 0,
             "saved_bytes": sum(a.nbytes for a in saved_arrays(node)),
             "field": str(field) if isinstance(field, Field) else field,
             "kind_of_op": spec.kind if spec is not None else "custom",
             "check": CHECK_NAMES[result.status] if result is not None else None,
             "partner": ids.get(id(getattr(node, "backward_of", None)))}
    if result is not None and result.status == "failed":
        entry["failure"] = str(result.describe()) if hasattr(result, "describe") else ""
    return entry


def _blocks(nodes: list[Context], ids: dict, expanded: bool) -> list[dict]:
    """The blocks the page folds (a block starts at a window op, a product or a join; runs
    of identical blocks become one "x N" group), open at first when `expanded`."""
    ordered = forward_order([n.output for n in nodes])
    chains = folded_chains(ordered, FOLD_ABOVE)
    labels = [block_label(chain, True) for chain in chains]
    block_of = {id(n): k for k, chain in enumerate(chains) for n in chain}
    edges = {(block_of[id(t.grad_fn)], block_of[id(n)]) for n in ordered for t in n.inputs
             if t.grad_fn is not None and id(t.grad_fn) in block_of
             and block_of[id(t.grad_fn)] != block_of[id(n)]}
    groups = repeats(chains, labels, edges)
    return [{"id": f"b{g}", "label": labels[members[0]], "repeats": len(members),
             "members": [ids[id(n)] for b in members for n in chains[b]],
             "expanded": expanded}
            for g, members in enumerate(groups)]
