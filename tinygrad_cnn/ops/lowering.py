"""What the ONNX lowerings declared beside each op share: the error, the batch axis the
exporter follows, and small builders. A lowering is `(graph, node, inputs) -> name`: `graph`
is the exporter's graph under construction (`add(op_type, inputs, **attributes)`,
`constant(array)`, `batch_axis`, `dynamic`, `dtype`), `inputs` the ONNX names of the node's
inputs. Nothing here imports onnx: the exporter does, on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..autograd import Context

__all__ = ["ExportError", "NO_BATCH", "pads", "refuse_batch", "elementwise", "full_index",
           "follow_batch", "batch_of"]

NO_BATCH = -1   # a tensor computed from the input that no longer has a batch axis


class ExportError(ValueError):
    """An op of the graph has no ONNX lowering (or not with these parameters)."""


def pads(padding: tuple[int, int, int, int]) -> list[int]:
    """(top, bottom, left, right) -> ONNX's [top, left, bottom, right]."""
    top, bottom, left, right = padding
    return [top, left, bottom, right]


def refuse_batch(node: Context, what: str) -> ExportError:
    return ExportError(f"{node.name} ({node.where}) {what}: the exported model would hold "
                       "the example's batch size; export with dynamic_batch=False")


def elementwise(op_type: str) -> Callable:
    """The lowering of an op that is one ONNX op of the same inputs."""
    def lower(graph: Any, node: Context, inputs: list[str]) -> str:
        return graph.add(op_type, inputs)
    lower.__doc__ = f"ONNX {op_type}"
    return lower


def full_index(index: tuple, ndim: int) -> tuple:
    """An index with its Ellipsis expanded and trailing slices added, one item per axis."""
    if Ellipsis in index:
        at = index.index(Ellipsis)
        index = index[:at] + (slice(None),) * (ndim - len(index) + 1) + index[at + 1:]
    return index + (slice(None),) * (ndim - len(index))


def batch_of(graph: Any, tensor: Any) -> int | None:
    """Where `tensor`'s batch axis is (NO_BATCH for one not computed from the input, None
    where the exporter lost it)."""
    return graph.batch_axis.get(id(tensor), NO_BATCH)


def follow_batch(graph: Any, node: Context, rule: Callable[[int], int | None]) -> None:
    """Record the batch axis of the node's output from its first input's, by `rule`."""
    axis = batch_of(graph, node.inputs[0])
    if id(node.inputs[0]) in graph.batch_axis:
        graph.batch_axis[id(node.output)] = axis if axis in (None, NO_BATCH) else rule(axis)


def constant_of(graph: Any, value: Any, dtype: Any) -> str:
    return graph.constant(np.array(value, dtype))


# ----------------------------------------------------------------------------- PyTorch
# A PyTorch lowering is `(b, node, args) -> value`: `b` is the bridge's Builder (see
# tinygrad_cnn/torch.py: `b.call`, `b.method`, `b.constant`, `b.submodule`, `b.key`,
# `b.batched`, `b.torch`, `b.F`), `args` the fx values of the node's inputs.
def torch_function(name: str, namespace: str = "torch") -> Callable:
    """The lowering of an op that is one PyTorch function of the same inputs."""
    def lower(b: Any, node: Context, args: list) -> Any:
        module = b.torch if namespace == "torch" else b.F
        return b.call(getattr(module, name), *args)
    lower.__doc__ = f"{namespace}.{name}"
    return lower


def symmetric_input(b: Any, x: Any, padding: tuple[int, int, int, int]) -> tuple[Any, tuple]:
    """(input, (ph, pw)) for a PyTorch window op, which pads both sides alike: an uneven
    (top, bottom, left, right) padding becomes an explicit F.pad first."""
    top, bottom, left, right = padding
    if top == bottom and left == right:
        return x, (top, left)
    return b.call(b.F.pad, x, (left, right, top, bottom)), (0, 0)
