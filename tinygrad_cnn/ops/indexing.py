"""Indexing and joining: getitem / index_add, pad, concatenate (each with its adjoint)."""

from __future__ import annotations

import numbers
import operator
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..autograd import Context, Function
from ..tensor import Tensor, as_tensor
from .lowering import NO_BATCH, ExportError, follow_batch, full_index
from .reduce import normalize_axis
from .registry import Sample, defop
from .samples import normal


def _normalize_index(index: Any) -> tuple:
    """The index as a tuple, with Tensors and lists turned into ndarrays."""
    parts = index if isinstance(index, tuple) else (index,)
    normalized = []
    for part in parts:
        if isinstance(part, Tensor):
            part = part.data
        elif isinstance(part, list):
            part = np.asarray(part)
        if isinstance(part, np.ndarray) and part.dtype.kind not in "biu":
            raise IndexError(f"getitem: index arrays must be integer or boolean, got dtype "
                             f"{part.dtype}")
        normalized.append(part)
    return tuple(normalized)


def _is_advanced(index: tuple) -> bool:
    return any(isinstance(part, np.ndarray) for part in index)


def _getitem_samples(rng: np.random.Generator) -> list[Sample]:
    x = normal(rng, 4, 5)
    return [Sample((x,), {"index": (slice(1, 3), slice(None, None, 2))}, "slices"),
            Sample((x,), {"index": (np.array([0, 2, 2, 3]),)}, "repeated rows"),
            Sample((x,), {"index": (np.array([1, 1, 0]), np.array([4, 4, 2]))}, "pairs"),
            Sample((x,), {"index": (x > 0,)}, "boolean mask"),
            Sample((x,), {"index": (2, None, Ellipsis)}, "int, newaxis, ellipsis")]


def _getitem_onnx(graph: Any, node: Context, inputs: list[str]) -> str:
    """Basic indexing: integers and slices (Slice, then Squeeze for the integer axes).
    Negative integers stay negative, so that x[-1] is the last example of any batch."""
    x, index = node.inputs[0], node.params["index"]
    if any(isinstance(i, np.ndarray) or i is None for i in index) or \
            sum(i is Ellipsis for i in index) > 1:
        raise ExportError(f"getitem ({node.where}): only integers and slices export, got "
                          f"index {index}")
    full = full_index(index, x.ndim)
    starts, ends, axes, steps = [], [], [], []
    far = 2 ** 62   # "to the end", whatever the (symbolic) size; ONNX clamps it
    for axis, item in enumerate(full):
        if item == slice(None):
            continue
        if isinstance(item, slice):
            step = 1 if item.step is None else item.step
            start = item.start if item.start is not None else (0 if step > 0 else -1)
            stop = item.stop if item.stop is not None else (far if step > 0 else -far)
        else:
            start, step = int(item), 1
            stop = far if start == -1 else start + 1
        starts.append(start)
        ends.append(stop)
        axes.append(axis)
        steps.append(step)
    follow_batch(graph, node, lambda at: NO_BATCH if not isinstance(full[at], slice) else
                 at - sum(not isinstance(i, slice) for i in full[:at]))
    arrays = [np.array(v, np.int64) for v in (starts, ends, axes, steps)]
    sliced = graph.add("Slice", inputs + [graph.constant(a) for a in arrays]) if axes \
        else graph.add("Identity", inputs)
    dropped = [axis for axis, item in enumerate(full) if not isinstance(item, slice)]
    if dropped:
        return graph.add("Squeeze", [sliced, graph.constant(np.array(dropped, np.int64))])
    return sliced


def _getitem_torch(b: Any, node: Context, args: list) -> Any:
    """x[index], index arrays as buffers"""
    index = tuple(b.constant(part) if isinstance(part, np.ndarray) else part
                  for part in node.params["index"])
    return b.call(operator.getitem, args[0], index)


@defop("getitem", samples=_getitem_samples, kind="select", macs=0, field="whole",
       onnx=_getitem_onnx, torch=_getitem_torch)
class GetItem(Function):
    """x[index]: basic and integer-array indexing; the adjoint of index_add."""

    backward_reads = ()

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, *, index: tuple) -> np.ndarray:
        return x[index]

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        return (IndexAdd.apply(g, shape=ctx.inputs[0].shape, index=ctx.params["index"]),)


def getitem(x: Tensor, index: Any) -> Tensor:
    index = _normalize_index(index)
    try:
        x.data[index]
    except IndexError as error:
        raise IndexError(f"getitem: {error}; tensor shape {x.shape}") from None
    return GetItem.apply(x, index=index)


def _index_add_samples(rng: np.random.Generator) -> list[Sample]:
    rows = np.array([0, 2, 2])
    return [Sample((normal(rng, 3, 5),), {"shape": (4, 5), "index": (rows,)}, "repeats add"),
            Sample((normal(rng, 2, 2),), {"shape": (3, 3), "index": (slice(1, 3),) * 2})]


@defop("index_add", samples=_index_add_samples, kind="select", macs=0, field="whole",
       onnx="it appears in backward graphs only; export the forward model",
       torch="it appears in backward graphs only")
class IndexAdd(Function):
    """zeros(shape) with g added at [index] (repeated indices add up); adjoint of getitem."""

    backward_reads = ()

    @staticmethod
    def forward(ctx: Context, g: np.ndarray, *, shape: tuple[int, ...],
                index: tuple) -> np.ndarray:
        out = np.zeros(shape, dtype=g.dtype)
        if _is_advanced(index):
            np.add.at(out, index, g)
        else:
            out[index] = g  # basic indexing never selects an element twice
        return out

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        return (GetItem.apply(g, index=ctx.params["index"]),)


def _pad_samples(rng: np.random.Generator) -> list[Sample]:
    return [Sample((normal(rng, 2, 3),), {"pad_width": ((1, 0), (2, 1)), "value": 0.0}),
            Sample((normal(rng, 2, 2),), {"pad_width": ((0, 0), (1, 1)), "value": -1.5})]


def _pad_onnx(graph: Any, node: Context, inputs: list[str]) -> str:
    begins, ends = zip(*node.params["pad_width"])
    return graph.add("Pad", inputs + [graph.constant(np.array(begins + ends, np.int64)),
                                      graph.constant(np.array(node.params["value"],
                                                              node.output.dtype))])


def _pad_torch(b: Any, node: Context, args: list) -> Any:
    """F.pad, (before, after) pairs from the last axis to the first"""
    widths = tuple(w for pair in reversed(node.params["pad_width"]) for w in pair)
    return b.call(b.F.pad, args[0], widths, value=node.params["value"])


@defop("pad", samples=_pad_samples, kind="select", macs=0, field="whole", onnx=_pad_onnx,
       torch=_pad_torch)
class Pad(Function):
    """x surrounded by a constant: pad_width is ((before, after),) per axis, as numpy."""

    backward_reads = ()

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, *, pad_width: tuple, value: float) -> np.ndarray:
        return np.pad(x, pad_width, mode="constant", constant_values=value)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        shape = ctx.inputs[0].shape
        index = tuple(slice(before, before + n)
                      for (before, _), n in zip(ctx.params["pad_width"], shape))
        return (GetItem.apply(g, index=index),)


def pad(x: Tensor, pad_width: Any, value: float = 0.0) -> Tensor:
    """Constant padding; `pad_width` as in numpy.pad (an int, a pair, or a pair per axis)."""
    try:
        widths = np.broadcast_to(np.asarray(pad_width), (x.ndim, 2))
    except ValueError:
        raise ValueError(f"pad: pad_width {pad_width!r} does not fit a tensor with {x.ndim} "
                         "dimensions; give (before, after) per axis") from None
    if widths.dtype.kind not in "iu" or (widths < 0).any():
        raise ValueError(f"pad: pad_width must be non-negative integers, got {pad_width!r}")
    widths = tuple((int(b), int(a)) for b, a in widths)
    return Pad.apply(x, pad_width=widths, value=float(value))


def _concat_samples(rng: np.random.Generator) -> list[Sample]:
    return [Sample((normal(rng, 2, 3), normal(rng, 2, 1), normal(rng, 2, 2)), {"axis": 1}),
            Sample((normal(rng, 1, 3), normal(rng, 2, 3)), {"axis": 0})]


def _concat_field(node: Context) -> str:
    """Channels side by side keep the field; a spatial axis mixes positions."""
    out = node.output
    return "whole" if out.ndim < 2 or node.params["axis"] % out.ndim >= out.ndim - 2 \
        else "keep"


def _concat_onnx(graph: Any, node: Context, inputs: list[str]) -> str:
    return graph.add("Concat", inputs, axis=node.params["axis"])


@defop("concatenate", samples=_concat_samples, kind="join", macs=0, field=_concat_field,
       onnx=_concat_onnx,
       torch=lambda b, node, args: b.call(b.torch.cat, list(args), dim=node.params["axis"]))
class Concatenate(Function):
    """Tensors joined along an existing axis."""

    backward_reads = ()

    @staticmethod
    def forward(ctx: Context, *xs: np.ndarray, axis: int) -> np.ndarray:
        return np.concatenate(xs, axis=axis)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        axis = ctx.params["axis"]
        grads, start = [], 0
        for tensor in ctx.inputs:
            stop = start + tensor.shape[axis]
            index = (slice(None),) * axis + (slice(start, stop),)
            grads.append(GetItem.apply(g, index=index))
            start = stop
        return tuple(grads)


def concatenate(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Join tensors along `axis` (numpy.concatenate)."""
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("concatenate: needs at least one tensor")
    if not isinstance(axis, numbers.Integral):
        raise TypeError(f"concatenate: axis must be an int, got {axis!r}")
    first = tensors[0]
    axis = normalize_axis("concatenate", axis, first.ndim)[0]
    for t in tensors[1:]:
        if t.ndim != first.ndim or t.shape[:axis] + t.shape[axis + 1:] != \
                first.shape[:axis] + first.shape[axis + 1:]:
            raise ValueError(f"concatenate: shapes {[u.shape for u in tensors]} must match "
                             f"on every axis except axis {axis}")
    return Concatenate.apply(*tensors, axis=axis)


def stack(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Join same-shaped tensors along a new axis (numpy.stack)."""
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("stack: needs at least one tensor")
    shapes = {t.shape for t in tensors}
    if len(shapes) != 1:
        raise ValueError(f"stack: all tensors must have the same shape, got "
                         f"{[t.shape for t in tensors]}")
    ndim = tensors[0].ndim + 1
    axis = normalize_axis("stack", axis, ndim)[0]
    shape = tensors[0].shape
    expanded = [t.reshape(shape[:axis] + (1,) + shape[axis:]) for t in tensors]
    return Concatenate.apply(*expanded, axis=axis)
