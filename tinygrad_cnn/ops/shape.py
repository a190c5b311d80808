"""Shape ops, each paired with its adjoint: reshape, transpose, broadcast_to / sum_to,
getitem / index_add, pad, concatenate."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..autograd import Context, Function
from ..tensor import Tensor
from .elementwise import normal
from .reduce import normalize_axis
from .registry import Sample, defop


@defop("reshape", samples=lambda rng: [Sample((normal(rng, 2, 6),), {"shape": (3, 2, 2)})])
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


@defop("transpose", samples=lambda rng: [Sample((normal(rng, 2, 3, 4),), {"axes": (2, 0, 1)})])
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


@defop("broadcast_to", samples=lambda rng: [
    Sample((normal(rng, 3, 1),), {"shape": (2, 3, 4)}),
    Sample((normal(rng),), {"shape": (2, 2)}, "0-d")])
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
    Sample((normal(rng, 2, 3),), {"shape": ()}, "to 0-d")])
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
