"""Ops defined by Tensor ops but recorded as one node: `CompositeFunction`.

Batch norm, local response normalization and locally connected layers are a few lines of
Tensor ops each. As one node they read as one op in graphs, summaries, localisation
reports and ONNX exports, and their parameters (eps, size, geometry) stay attached.

- forward: the definition evaluated on the raw arrays, recording nothing;
- backward: the definition recorded again on the node's inputs and its vector-Jacobian
  product taken with `grad_of`; with ``create_graph`` that product stays connected to the
  inputs and to `g`, so second derivatives need nothing more (the price: backward
  recomputes the forward once).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..autograd import Context, Function, enable_grad, grad_of, is_grad_enabled, no_grad
from ..tensor import Tensor

__all__ = ["CompositeFunction"]


class CompositeFunction(Function):
    """Subclass and write ``definition(*inputs: Tensor, **params) -> Tensor``."""

    @classmethod
    def definition(cls, *inputs: Tensor, **params: Any) -> Tensor:
        raise NotImplementedError

    @classmethod
    def forward(cls, ctx: Context, *arrays: np.ndarray, **params: Any) -> np.ndarray:
        with no_grad():
            return cls.definition(*[Tensor._make(a, False, None) for a in arrays],
                                  **params).data

    @classmethod
    def backward(cls, ctx: Context, g: Tensor) -> tuple:
        wanted = [i for i, t in enumerate(ctx.inputs) if t.requires_grad]
        create_graph = is_grad_enabled()
        # without create_graph, fresh leaves keep grad_of from walking the outer graph
        inputs = list(ctx.inputs) if create_graph else \
            [Tensor._make(t.data, t.requires_grad, None) for t in ctx.inputs]
        with enable_grad():
            out = cls.definition(*inputs, **ctx.params)
            grads = grad_of(out, [inputs[i] for i in wanted], g, create_graph=create_graph,
                            allow_unused=True)
        result: list[Tensor | None] = [None] * len(inputs)
        for index, grad in zip(wanted, grads):
            result[index] = grad
        return tuple(result)
