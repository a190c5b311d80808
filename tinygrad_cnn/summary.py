"""`summary`: a table of a model's ops, in the order they run, with their output shapes,
parameters, multiply-accumulates, the memory each keeps for backward and the theoretical
receptive field of their output. Prints in a terminal; shows as HTML in Jupyter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .autograd import Context, enable_grad
from .folding import moves_only, op_label
from .graph import forward_order, leaf_kind
from .ops import spec_of
from .receptive import Field, theoretical_fields
from .tensor import Tensor

__all__ = ["summary", "saved_arrays", "SummaryTable"]


def _multiply_accumulates(node: Context) -> int:
    """The op's MACs as its spec counts them (0 for a user's own Function)."""
    spec = spec_of(node)
    return spec.macs_of(node) if spec is not None else 0


def saved_arrays(node: Context) -> list[np.ndarray]:
    """The arrays a node keeps for its backward: what its forward saved, arrays among its
    parameters (pooling winners, masks), and the input and output values its backward
    reads (`Function.backward_reads`, `backward_reads_output`)."""
    arrays = [a for a in (node.saved or ()) if isinstance(a, np.ndarray)]
    arrays += [v for v in node.params.values() if isinstance(v, np.ndarray)]
    reads = node.fn.backward_reads
    indices = range(len(node.inputs)) if reads is None else reads
    arrays += [node.inputs[i].data for i in indices if i < len(node.inputs)]
    if node.fn.backward_reads_output:
        arrays.append(node.output.data)
    unique = {id(a): a for a in arrays}
    return list(unique.values())


def summary(f: Callable, *args: Any, file: Any = None) -> list[dict]:
    """Call f(*args) once and tabulate its ops in order: op, output shape, parameters
    (tensors that require grad, counted at the op that first uses them, through shape
    ops), multiply-accumulates of conv and matmul, the bytes each op keeps for backward
    (`saved_arrays`) and the theoretical receptive field of its output (size (h, w) and
    jump, see `receptive.py`). Returns the rows (dicts) with a final "total" row, whose
    saved bytes count each array once: a `SummaryTable`, whose str() is the text table
    (shown by the REPL; `print` it in a script, or pass `file=`) and which Jupyter shows
    as HTML.

    Floating numpy arrays among `args` are the model's inputs: they are traced (so ops
    applied to them before any parameter have rows too) and are not counted as params."""
    args = tuple(Tensor(a, requires_grad=True, name="input")
                 if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a for a in args)
    inputs = [a for a in args if isinstance(a, Tensor) and a.name == "input"]
    with enable_grad():
        out = f(*args)
    if not isinstance(out, Tensor):
        raise TypeError(f"summary: the function must return a Tensor, got {type(out).__name__}")
    rows, counted, carried, kept = [], {id(t) for t in inputs}, {}, {}
    fields = theoretical_fields(out, inputs[0] if len(inputs) == 1 else None)
    for node in forward_order([out]):
        arrays = saved_arrays(node)
        kept.update((id(a), a) for a in arrays)
        params = 0
        for t in node.inputs:
            if leaf_kind(t) == "parameter" and id(t) not in counted:
                counted.add(id(t))
                params += t.size
            params += carried.pop(id(t), 0)
        if moves_only(node) and all(t.grad_fn is None and not any(t is i for i in inputs)
                                          for t in node.inputs):
            carried[id(node.output)] = params  # a reshaped parameter: count it at its user
            continue
        field = fields[id(node)]
        rows.append({"op": op_label(node), "output_shape": tuple(node.output.shape),
                     "params": params, "macs": _multiply_accumulates(node),
                     "saved_bytes": sum(a.nbytes for a in arrays),
                     "receptive_field": field.size if isinstance(field, Field) else field,
                     "jump": field.jump if isinstance(field, Field) else None,
                     "field": field})
    rows.append({"op": "total", "output_shape": tuple(out.shape),
                 "params": sum(r["params"] for r in rows), "macs": sum(r["macs"] for r in rows),
                 "saved_bytes": sum(a.nbytes for a in kept.values()),
                 "receptive_field": None, "jump": None, "field": None})
    table = SummaryTable(rows)
    if file is not None:
        file.write(str(table) + "\n")
    return table


class SummaryTable(list):
    """The rows of `summary` (dicts); str() and the REPL give the text table, Jupyter an
    HTML table."""

    def __str__(self) -> str:
        return _text_table(self)

    __repr__ = __str__

    COLUMNS = (("op", "op"), ("output_shape", "output shape"), ("params", "params"),
               ("macs", "MACs"), ("saved_bytes", "saved"), ("field", "receptive field"))

    def _repr_html_(self) -> str:
        import html
        head = "".join(f"<th>{title}</th>" for _, title in self.COLUMNS)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(row, key))}</td>"
                                        for key, _ in self.COLUMNS) + "</tr>" for row in self)
        return f"<table><tr>{head}</tr>{body}</table>"


def _cell(row: dict, key: str) -> str:
    value = row[key]
    if key in ("params", "macs"):
        return f"{value:,}"
    if key == "saved_bytes":
        return _bytes(value)
    if key == "field":
        return "" if value is None else "all" if value == "whole input" else str(value)
    return str(value)


def _text_table(rows: list[dict]) -> str:
    width = max(len(r["op"]) for r in rows)
    rule = "-" * (width + 74)
    lines = [f"{'op':<{width}}  {'output shape':<18} {'params':>10} {'MACs':>14} "
             f"{'saved':>10}  {'receptive field':<15}", rule]
    for row in rows:
        if row["op"] == "total":
            lines.append(rule)
        field = _cell(row, "field")
        lines.append(f"{row['op']:<{width}}  {str(row['output_shape']):<18} "
                     f"{row['params']:>10,} {row['macs']:>14,} "
                     f"{_bytes(row['saved_bytes']):>10}  {field:<15}".rstrip())
    return "\n".join(lines)


def _bytes(count: float) -> str:
    """1023 B, 1.5 KB, 2.0 MB (MB the largest unit)."""
    if count < 1024:
        return f"{count:.0f} B"
    kilobytes = count / 1024
    return f"{kilobytes:.1f} KB" if kilobytes < 1024 else f"{kilobytes / 1024:.1f} MB"
