"""Matrix product with numpy semantics (1-D operands, batched N-D with broadcasting)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..autograd import Context, Function
from ..tensor import Tensor
from .lowering import NO_BATCH, batch_of, torch_function
from .registry import Sample, defop
from .samples import normal
from .shape import swap_last_axes


def _matmul_samples(rng: np.random.Generator) -> list[Sample]:
    return [Sample((normal(rng, 3, 4), normal(rng, 4, 2)), label="2-D"),
            Sample((normal(rng, 4), normal(rng, 4)), label="1-D @ 1-D"),
            Sample((normal(rng, 4), normal(rng, 2, 4, 3)), label="1-D @ batched"),
            Sample((normal(rng, 2, 3, 4), normal(rng, 4)), label="batched @ 1-D"),
            Sample((normal(rng, 2, 1, 3, 4), normal(rng, 3, 4, 2)), label="broadcast batch")]


def check_matmul_shapes(a_shape: tuple[int, ...], b_shape: tuple[int, ...]) -> None:
    if not a_shape or not b_shape:
        raise ValueError(f"matmul: operands must have at least 1 dimension, got shapes "
                         f"{a_shape} and {b_shape}")
    inner_a, inner_b = a_shape[-1], b_shape[-2] if len(b_shape) > 1 else b_shape[0]
    if inner_a != inner_b:
        raise ValueError(f"matmul: shapes {a_shape} and {b_shape} are not aligned: "
                         f"{inner_a} (last axis of a) != {inner_b} "
                         f"({'first' if len(b_shape) == 1 else 'second-to-last'} axis of b)")
    try:
        np.broadcast_shapes(a_shape[:-2], b_shape[:-2])
    except ValueError:
        raise ValueError(f"matmul: batch shapes {a_shape[:-2]} and {b_shape[:-2]} of "
                         f"operands {a_shape} and {b_shape} cannot be broadcast") from None


def _matmul_macs(node: Context) -> int:
    """One multiply-accumulate per output element per contracted element."""
    return int(node.output.size * node.inputs[0].shape[-1])


def _matmul_onnx(graph: Any, node: Context, inputs: list[str]) -> str:
    """MatMul; the batch axis follows broadcasting unless a product contracts over it."""
    batched = [(t, batch_of(graph, t)) for t in node.inputs if id(t) in graph.batch_axis]
    contracted = [t.ndim - 1 if t is node.inputs[0] else t.ndim - 2 for t, _ in batched]
    if any(axis is None or (axis != NO_BATCH and (t.ndim < 2 or axis == c))
           for (t, axis), c in zip(batched, contracted)):
        graph.batch_axis[id(node.output)] = None
    return graph.add("MatMul", inputs)


@defop("matmul", samples=_matmul_samples, kind="linalg", macs=_matmul_macs,
       onnx=_matmul_onnx, torch=torch_function("matmul"))
class MatMul(Function):
    """a @ b"""

    backward_reads = (0, 1)

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        try:
            return np.matmul(a, b)
        except ValueError:
            check_matmul_shapes(a.shape, b.shape)
            raise

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        a, b = ctx.inputs
        need_a, need_b = ctx.needs_input_grad
        if a.ndim == 2 and b.ndim == 2:  # the common case: no promotion, no batch
            return (g @ b.T if need_a else None), (a.T @ g if need_b else None)
        # promote 1-D operands to matrices as numpy does: (K,) @ ... is (1, K) @ ...
        a_matrix = a if a.ndim > 1 else a.reshape(1, -1)
        b_matrix = b if b.ndim > 1 else b.reshape(-1, 1)
        batch = np.broadcast_shapes(a_matrix.shape[:-2], b_matrix.shape[:-2])
        g_matrix = g.reshape(batch + (a_matrix.shape[-2], b_matrix.shape[-1]))
        grad_a = (g_matrix @ swap_last_axes(b_matrix)).sum_to(a_matrix.shape).reshape(a.shape) \
            if need_a else None
        grad_b = (swap_last_axes(a_matrix) @ g_matrix).sum_to(b_matrix.shape).reshape(b.shape) \
            if need_b else None
        return grad_a, grad_b
