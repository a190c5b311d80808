"""Reductions over numpy-style `axis` (int, tuple or None) with `keepdims`."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from ..autograd import Context, Function
from ..tensor import Tensor
from .lowering import NO_BATCH, batch_of, follow_batch, refuse_batch
from .registry import Sample, defop
from .samples import normal
from .select import constant

Axis = int | tuple[int, ...] | None


def normalize_axis(name: str, axis: Any, ndim: int) -> tuple[int, ...] | None:
    """`axis` as a sorted tuple of non-negative ints (None stays None), or a clear error."""
    if axis is None:
        return None
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    result = []
    for a in axes:
        if not isinstance(a, numbers.Integral) or isinstance(a, bool):
            raise TypeError(f"{name}: axis must be an int or a tuple of ints, got {axis!r}")
        if not -ndim <= a < max(ndim, 1):
            raise ValueError(f"{name}: axis {a} is out of range for a tensor with {ndim} "
                             f"dimensions (valid: {-ndim} to {ndim - 1})")
        result.append(int(a) % max(ndim, 1))
    if len(set(result)) != len(result):
        raise ValueError(f"{name}: axis {axis!r} repeats an axis")
    return tuple(sorted(result))


def kept_shape(shape: tuple[int, ...], axis: tuple[int, ...] | None) -> tuple[int, ...]:
    """The reduced shape with keepdims=True."""
    if axis is None:
        return (1,) * len(shape)
    return tuple(1 if i in axis else n for i, n in enumerate(shape))


def _dropped_shape(shape: tuple[int, ...], axis: tuple[int, ...] | None) -> tuple[int, ...]:
    """The reduced shape with keepdims=False."""
    return () if axis is None else tuple(n for i, n in enumerate(shape) if i not in axis)


def _reduce_samples(rng: np.random.Generator) -> list[Sample]:
    x = normal(rng, 2, 3, 4)
    return [Sample((x,), {"axis": None, "keepdims": False}, "all"),
            Sample((x,), {"axis": (1,), "keepdims": False}, "middle axis"),
            Sample((x,), {"axis": (0, 2), "keepdims": True}, "two axes, keepdims")]


def _reduce_onnx(op_type: str):
    """ReduceSum/Max/Min over the op's axes; with a dynamic batch, never over the batch."""
    def lower(graph: Any, node: Context, inputs: list[str]) -> str:
        x, axis, keep = node.inputs[0], node.params["axis"], node.params["keepdims"]
        axes = list(range(x.ndim)) if axis is None else list(axis)
        batch = batch_of(graph, x)
        if graph.dynamic and batch != NO_BATCH and (batch is None or batch in axes):
            raise refuse_batch(node, "reduces over the batch axis (a mean there divides by "
                                     "the batch size)" if batch is not None else
                               "reduces a tensor whose batch axis was moved where the "
                               "exporter cannot follow it")
        follow_batch(graph, node, lambda at: at if keep else at - sum(a < at for a in axes))
        if op_type == "ReduceSum":   # its axes are an input from opset 13
            return graph.add(op_type, inputs + [graph.constant(np.array(axes, np.int64))],
                             keepdims=int(keep))
        return graph.add(op_type, inputs, axes=axes, keepdims=int(keep))
    return lower


def _reduce_torch(name: str) -> Any:
    """torch.sum / amax / amin over the op's axes (all of them for axis=None)."""
    def lower(b: Any, node: Context, args: list) -> Any:
        axis = node.params["axis"]
        dims = tuple(range(node.inputs[0].ndim)) if axis is None else axis
        return b.call(getattr(b.torch, name), args[0], dim=dims,
                      keepdim=node.params["keepdims"])
    lower.__doc__ = f"torch.{name}"
    return lower


REDUCE = {"kind": "reduce", "macs": 0}


@defop("sum", samples=_reduce_samples, onnx=_reduce_onnx("ReduceSum"),
       torch=_reduce_torch("sum"), **REDUCE)
class Sum(Function):
    """Sum over `axis`."""

    backward_reads = ()

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, *, axis: tuple | None,
                keepdims: bool) -> np.ndarray:
        return np.sum(x, axis=axis, keepdims=keepdims)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        x = ctx.inputs[0]
        g = g.reshape(kept_shape(x.shape, ctx.params["axis"]))
        return (g.broadcast_to(x.shape),)


class _Extreme(Function):
    """max or min; the gradient is split evenly among tied extremes (as torch.amax)."""

    backward_reads = ()

    pick: Any = None

    @classmethod
    def forward(cls, ctx: Context, x: np.ndarray, *, axis: tuple | None,
                keepdims: bool) -> np.ndarray:
        out = cls.pick(x, axis=axis, keepdims=True)
        is_extreme = x == out
        ctx.save_for_backward(is_extreme / is_extreme.sum(axis=axis, keepdims=True))
        return out if keepdims else out.reshape(_dropped_shape(x.shape, axis))

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        x = ctx.inputs[0]
        (share,) = ctx.saved
        g = g.reshape(kept_shape(x.shape, ctx.params["axis"]))
        return (g.broadcast_to(x.shape) * constant(share.astype(x.dtype, copy=False)),)


@defop("max", samples=_reduce_samples, onnx=_reduce_onnx("ReduceMax"),
       torch=_reduce_torch("amax"), **REDUCE)
class Max(_Extreme):
    """Maximum over `axis`."""

    pick = staticmethod(np.max)


@defop("min", samples=_reduce_samples, onnx=_reduce_onnx("ReduceMin"),
       torch=_reduce_torch("amin"), **REDUCE)
class Min(_Extreme):
    """Minimum over `axis`."""

    pick = staticmethod(np.min)


def _log_softmax_samples(rng: np.random.Generator) -> list[Sample]:
    return [Sample((normal(rng, 3, 4),), {"axis": 1}), Sample((normal(rng, 2, 3, 2),),
                                                          {"axis": 0}, "first axis")]


def _log_softmax_onnx(graph: Any, node: Context, inputs: list[str]) -> str:
    return graph.add("LogSoftmax", inputs, axis=node.params["axis"])


@defop("log_softmax", samples=_log_softmax_samples, onnx=_log_softmax_onnx,
       torch=lambda b, node, args: b.call(b.F.log_softmax, args[0], dim=node.params["axis"]),
       **REDUCE)
class LogSoftmax(Function):
    """x - logsumexp(x) along `axis`, with logsumexp = m + log(sum(exp(x - m))), m = max x."""

    backward_reads = ()
    backward_reads_output = True

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, *, axis: int) -> np.ndarray:
        shifted = x - np.max(x, axis=axis, keepdims=True)
        return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        # d/dx_j of sum_i g_i (x_i - lse(x)) = g_j - softmax_j * sum_i g_i
        softmax = ctx.output.exp()
        return (g - softmax * g.sum(axis=ctx.params["axis"], keepdims=True),)


def _check_nonempty(name: str, x: Tensor, axis: tuple | None) -> None:
    sizes = x.shape if axis is None else [x.shape[a] for a in axis]
    if 0 in sizes:
        raise ValueError(f"{name}: cannot reduce over an empty axis; shape {x.shape}, "
                         f"axis {axis}")


def reduce_sum(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    return Sum.apply(x, axis=normalize_axis("sum", axis, x.ndim), keepdims=bool(keepdims))


def reduce_max(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    axis = normalize_axis("max", axis, x.ndim)
    _check_nonempty("max", x, axis)
    return Max.apply(x, axis=axis, keepdims=bool(keepdims))


def reduce_min(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    axis = normalize_axis("min", axis, x.ndim)
    _check_nonempty("min", x, axis)
    return Min.apply(x, axis=axis, keepdims=bool(keepdims))


def mean(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Sum divided by the number of reduced elements; NaN over an empty axis (0/0, as
    PyTorch), without a warning."""
    axis = normalize_axis("mean", axis, x.ndim)
    count = x.size if axis is None else math.prod(x.shape[a] for a in axis)
    return Sum.apply(x, axis=axis, keepdims=bool(keepdims)) * (1.0 / count if count else math.nan)
