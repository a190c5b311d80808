"""Constants outside the graph and elementwise selection (`where`, and the masks that
relu, clip and maximum route their gradients through)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..autograd import Context, Function
from ..kernels import all_finite
from ..tensor import Tensor
from .registry import Sample, defop
from .samples import normal


def constant(array: Any) -> Tensor:
    """A Tensor outside the graph (masks, weights): gradients do not flow into it."""
    return Tensor._make(np.asarray(array), False, None)


def masked(g: Tensor, mask: np.ndarray) -> Tensor:
    """g where mask holds, else 0: a selection, not a product by the mask, so that an inf
    or NaN in g stays out of the masked elements (0 * inf would be NaN), as in PyTorch's
    backwards of relu, clamp and maximum."""
    return Where.apply(g, constant(np.zeros((), g.dtype)), condition=mask)


def _where_samples(rng: np.random.Generator) -> list[Sample]:
    condition = rng.random((3, 4)) < 0.5
    return [Sample((normal(rng, 3, 4), normal(rng, 3, 4)), {"condition": condition}),
            Sample((normal(rng, 4), normal(rng, 3, 1)), {"condition": condition},
                   "broadcast all three")]


def _where_onnx(graph: Any, node: Context, inputs: list[str]) -> str:
    return graph.add("Where", [graph.constant(node.params["condition"])] + inputs)


def _where_torch(b: Any, node: Context, args: list) -> Any:
    """torch.where, the condition a buffer"""
    return b.call(b.torch.where, b.constant(node.params["condition"]), *args)


@defop("where", samples=_where_samples, kind="select", macs=0, field="keep",
       onnx=_where_onnx, torch=_where_torch)
class Where(Function):
    """x where condition holds, else y (broadcast together, as numpy.where)."""

    backward_reads = ()

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, y: np.ndarray, *,
                condition: np.ndarray) -> np.ndarray:
        try:
            if y.ndim == 0 and y == 0 and all_finite(x):
                # x * condition, branch-free: numpy's where branches on every element and
                # runs 20x slower on an irregular mask (relu's); with inf or NaN in x the
                # product would be NaN where x is dropped, so those take the where
                return np.multiply(x, condition, dtype=np.result_type(x, y))
            return np.where(condition, x, y)
        except ValueError:
            raise ValueError(f"where: condition {condition.shape}, x {x.shape} and y "
                             f"{y.shape} cannot be broadcast together") from None

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        condition = ctx.params["condition"]
        zero = constant(np.zeros((), g.dtype))
        need_x, need_y = ctx.needs_input_grad
        return (Where.apply(g, zero, condition=condition) if need_x else None,
                Where.apply(zero, g, condition=condition) if need_y else None)


def where(condition: Any, x: Any, y: Any) -> Tensor:
    """Elementwise choice, as torch.where: x where `condition` is true, else y.

    The gradient flows to x where the condition holds and to y elsewhere; a NaN or inf in
    the branch not taken never reaches the other one.
    """
    mask = condition.data if isinstance(condition, Tensor) else np.asarray(condition)
    if mask.dtype != bool:
        raise TypeError(f"where: condition must be a boolean array, got dtype {mask.dtype}")
    return Where.apply(x, y, condition=mask)


def _dropout_samples(rng: np.random.Generator) -> list[Sample]:
    keep = rng.random((3, 4)) >= 0.3
    return [Sample((normal(rng, 3, 4),), {"p": 0.3, "mask": keep / 0.7})]


def _dropout_torch(b: Any, node: Context, args: list) -> Any:
    """nn.Dropout: a fresh mask per call in train(), the identity in eval()"""
    b.count += 1
    return b.submodule(f"dropout_{b.count}", b.torch.nn.Dropout(node.params["p"]), args[0])


@defop("dropout", samples=_dropout_samples, kind="elementwise", macs=0, torch=_dropout_torch,
       onnx="it draws a random mask in training; export the model in evaluation mode, "
            "where dropout records no op")
class Dropout(Function):
    """Inverted dropout: x times a mask of 0 (probability p) and 1/(1-p), drawn by the
    caller (`functional.dropout`)."""

    backward_reads = ()

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, *, p: float, mask: np.ndarray) -> np.ndarray:
        return x * mask.astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        return (g * constant(ctx.params["mask"].astype(g.dtype, copy=False)),)
