"""Ops that move or convert values without arithmetic: reshape, transpose, broadcast_to and
its adjoint sum_to, cast, identity. (Indexing, padding and concatenation are in
`indexing.py`.)"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..autograd import Context, Function
from ..tensor import Tensor
from .lowering import NO_BATCH, batch_of, elementwise, follow_batch, refuse_batch
from .reduce import normalize_axis
from .registry import Sample, defop
from .samples import normal, unary_samples


def _reshape_field(node: Context) -> str:
    """A reshape that keeps the last two axes keeps the field; any other mixes positions."""
    x, out = node.inputs[0], node.output
    return "keep" if x.ndim >= 2 and out.ndim >= 2 and x.shape[-2:] == out.shape[-2:] \
        else "whole"


def _reshape_onnx(graph: Any, node: Context, inputs: list[str]) -> str:
    """Reshape; with a dynamic batch, the batch axis must stay axis 0, copied (0)."""
    before, after = node.inputs[0].shape, node.output.shape
    shape = list(after)
    batch = batch_of(graph, node.inputs[0])
    if graph.dynamic and batch != NO_BATCH:
        if batch != 0 or not shape or shape[0] != before[0]:
            raise refuse_batch(node, f"reshapes {before} -> {after} across the batch axis "
                                     f"(axis {batch})")
        shape[0] = 0                        # ONNX: copy the (symbolic) batch size
    follow_batch(graph, node, lambda axis: 0 if axis == 0 and after and after[0] == before[0]
                 else None)
    return graph.add("Reshape", inputs + [graph.constant(np.array(shape, np.int64))])


def _reshape_torch(b: Any, node: Context, args: list) -> Any:
    """torch.reshape, the batch size left to PyTorch (-1)"""
    before, after = node.inputs[0].shape, list(node.output.shape)
    if b.batched(node.inputs[0]):
        if not after or after[0] != before[0]:
            raise ValueError(f"reshape ({node.where}): {before} -> {tuple(after)} moves the "
                             "batch axis; the module would hold the example's batch size")
        after[0] = -1
    return b.call(b.torch.reshape, args[0], tuple(after))


@defop("reshape", samples=lambda rng: [Sample((normal(rng, 2, 6),), {"shape": (3, 2, 2)})],
       kind="shape", macs=0, field=_reshape_field, onnx=_reshape_onnx, torch=_reshape_torch)
class Reshape(Function):
    """The same elements in another shape (row-major order)."""

    backward_reads = ()

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, *, shape: tuple[int, ...]) -> np.ndarray:
        return x.reshape(shape)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        return (g.reshape(ctx.inputs[0].shape),)


def reshape(x: Tensor, shape: Any) -> Tensor:
    shape = (shape,) if isinstance(shape, numbers.Integral) else tuple(shape)
    try:
        target = _resolve_shape(x, shape)
    except ValueError as error:
        raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} "
                         f"({x.size} elements) into shape {shape}") from error
    if target == x.shape:
        return x
    return Reshape.apply(x, shape=target)


def _resolve_shape(x: Tensor, shape: tuple) -> tuple[int, ...]:
    """The shape with -1 filled in, as numpy would (raises ValueError if it cannot)."""
    return np.broadcast_to(np.empty((), dtype=np.int8), (x.size,)).reshape(shape).shape


def flatten(x: Tensor, start_axis: int = 0, end_axis: int = -1) -> Tensor:
    """Merge axes start_axis..end_axis into one, as torch.flatten."""
    if x.ndim == 0:
        return x.reshape(1)
    start, end = (normalize_axis("flatten", a, x.ndim)[0] for a in (start_axis, end_axis))
    if start > end:
        raise ValueError(f"flatten: start_axis {start_axis} comes after end_axis {end_axis} "
                         f"for a tensor of shape {x.shape}")
    merged = math.prod(x.shape[start:end + 1])
    return x.reshape(x.shape[:start] + (merged,) + x.shape[end + 1:])


def _transpose_onnx(graph: Any, node: Context, inputs: list[str]) -> str:
    axes = list(node.params["axes"])
    follow_batch(graph, node, axes.index)
    return graph.add("Transpose", inputs, perm=axes)


@defop("transpose", samples=lambda rng: [Sample((normal(rng, 2, 3, 4),), {"axes": (2, 0, 1)})],
       kind="shape", macs=0, field="whole", onnx=_transpose_onnx,
       torch=lambda b, node, args: b.call(b.torch.permute, args[0], node.params["axes"]))
class Transpose(Function):
    """Axes permuted (numpy semantics)."""

    backward_reads = ()

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, *, axes: tuple[int, ...]) -> np.ndarray:
        return x.transpose(axes)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        return (g.transpose(tuple(np.argsort(ctx.params["axes"]).tolist())),)


def transpose(x: Tensor, axes: Sequence[int] | None = None) -> Tensor:
    if axes is None:
        axes = tuple(range(x.ndim))[::-1]
    axes = tuple(axes)
    if len(axes) != x.ndim:
        raise ValueError(f"transpose: axes {axes} are not a permutation of the {x.ndim} axes "
                         f"of a tensor of shape {x.shape}")
    normalize_axis("transpose", axes, x.ndim)  # raises on a bad type, range or repeat
    axes = tuple(int(a) % x.ndim for a in axes)
    if axes == tuple(range(x.ndim)):
        return x
    return Transpose.apply(x, axes=axes)


def swap_last_axes(x: Tensor) -> Tensor:
    axes = list(range(x.ndim))
    axes[-2:] = axes[-1], axes[-2]
    return transpose(x, axes)


def _expand_sizes(node: Context) -> list[int]:
    """Tensor.expand's sizes: -1 along the axes that keep their size (a batch among them)."""
    before, after = node.inputs[0].shape, node.params["shape"]
    padded = (None,) * (len(after) - len(before)) + tuple(before)
    return [-1 if b == a else a for b, a in zip(padded, after)]


def _broadcast_onnx(graph: Any, node: Context, inputs: list[str]) -> str:
    """Expand, by 1 along the axes that keep their size (so a batch axis stays symbolic)."""
    before, after = node.inputs[0].shape, node.params["shape"]
    padded = (1,) * (len(after) - len(before)) + tuple(before)
    shape = [1 if b == a else a for b, a in zip(padded, after)]
    return graph.add("Expand", inputs + [graph.constant(np.array(shape, np.int64))])


@defop("broadcast_to", samples=lambda rng: [
    Sample((normal(rng, 3, 1),), {"shape": (2, 3, 4)}),
    Sample((normal(rng),), {"shape": (2, 2)}, "0-d")],
    kind="shape", macs=0, field="keep", onnx=_broadcast_onnx,
    torch=lambda b, node, args: b.method("expand", args[0], *_expand_sizes(node)))
class BroadcastTo(Function):
    """x repeated along new leading axes and size-1 axes; adjoint of sum_to."""

    backward_reads = ()

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, *, shape: tuple[int, ...]) -> np.ndarray:
        return np.broadcast_to(x, shape)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        return (g.sum_to(ctx.inputs[0].shape),)


def broadcast_to(x: Tensor, shape: Any) -> Tensor:
    shape = (shape,) if isinstance(shape, numbers.Integral) else tuple(int(n) for n in shape)
    try:
        fits = np.broadcast_shapes(x.shape, shape) == shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"broadcast_to: cannot broadcast a tensor of shape {x.shape} to "
                         f"shape {shape}")
    if shape == x.shape:
        return x
    return BroadcastTo.apply(x, shape=shape)


@defop("sum_to", samples=lambda rng: [
    Sample((normal(rng, 2, 3, 4),), {"shape": (3, 1)}),
    Sample((normal(rng, 2, 3),), {"shape": ()}, "to 0-d")],
    kind="reduce", macs=0, onnx="it appears in backward graphs only; export the forward model",
    torch="it appears in backward graphs only")
class SumTo(Function):
    """Sum over the axes that broadcasting to x's shape would add; adjoint of broadcast_to."""

    backward_reads = ()

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, *, shape: tuple[int, ...]) -> np.ndarray:
        lead = x.ndim - len(shape)
        axes = tuple(range(lead)) + tuple(
            lead + i for i, n in enumerate(shape) if n == 1 and x.shape[lead + i] != 1)
        out = x.sum(axis=axes, keepdims=True) if axes else x
        return out.reshape(shape)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        return (g.broadcast_to(ctx.inputs[0].shape),)


def sum_to(x: Tensor, shape: tuple[int, ...]) -> Tensor:
    shape = tuple(shape)
    if shape == x.shape:
        return x
    try:
        fits = len(shape) <= x.ndim and np.broadcast_shapes(shape, x.shape) == x.shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"sum_to: shape {shape} does not broadcast to {x.shape}")
    return SumTo.apply(x, shape=shape)


def _cast_torch(b: Any, node: Context, args: list) -> Any:
    """Tensor.to(dtype)"""
    dtype = b.torch.from_numpy(np.empty(0, node.params["dtype"])).dtype
    return b.method("to", args[0], dtype)


def _cast_onnx(graph: Any, node: Context, inputs: list[str]) -> str:
    from onnx import helper
    return graph.add("Cast", inputs, to=helper.np_dtype_to_tensor_dtype(node.params["dtype"]))


@defop("cast", samples=lambda rng: [Sample((normal(rng, 3, 4),), {"dtype": np.dtype("f8")})],
       kind="shape", macs=0, field="keep", onnx=_cast_onnx, torch=_cast_torch)
class Cast(Function):
    """x converted to another dtype; the gradient is converted back."""

    backward_reads = ()

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, *, dtype: np.dtype) -> np.ndarray:
        return x.astype(dtype)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        return (g.astype(ctx.inputs[0].dtype),)


@defop("identity", samples=unary_samples(), kind="shape", macs=0, field="keep",
       onnx=elementwise("Identity"), torch=lambda b, node, args: args[0])
class Identity(Function):
    """x itself, as a new node of the graph."""

    backward_reads = ()

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        return x

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        return (g,)
