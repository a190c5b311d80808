"""linear, flatten, relu and dropout."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .. import ops
from ..ops.select import Dropout
from ..tensor import Tensor, as_tensor
from .checks import _float_tensor


def linear(x: Any, weight: Any, bias: Any = None) -> Tensor:
    """x @ weight.T + bias, PyTorch's layout: x (..., in), weight (out, in), bias (out,)."""
    x = _float_tensor("linear", "x", x)
    weight = _float_tensor("linear", "weight", weight)
    if weight.ndim != 2 or x.ndim < 1 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: x {x.shape} needs weight of shape (out_features, "
                         f"{x.shape[-1] if x.ndim else '?'}), got {weight.shape}")
    out = x @ weight.T
    if bias is not None:
        bias = _float_tensor("linear", "bias", bias)
        if bias.shape != (weight.shape[0],):
            raise ValueError(f"linear: bias must have shape ({weight.shape[0]},), got "
                             f"{bias.shape}")
        out = out + bias
    return out


def flatten(x: Any, start_axis: int = 0, end_axis: int = -1) -> Tensor:
    """Merge axes start_axis..end_axis into one, as torch.flatten."""
    return ops.flatten(as_tensor(x), start_axis, end_axis)


def relu(x: Any) -> Tensor:
    """max(x, 0)."""
    return ops.ReLU.apply(as_tensor(x))


def dropout(x: Any, p: float = 0.5, training: bool = True,
            rng: np.random.Generator | None = None) -> Tensor:
    """Inverted dropout: zero each element with probability p, scale the rest by 1/(1-p)."""
    x = as_tensor(x)
    if not isinstance(p, numbers.Real) or not 0 <= p <= 1:
        raise ValueError(f"dropout: p must be a probability in [0, 1], got {p!r}")
    if not training or p == 0:
        return x
    rng = np.random.default_rng() if rng is None else rng
    keep = rng.random(x.shape) >= p if p < 1 else np.zeros(x.shape, bool)
    mask = (keep / (1 - p)).astype(x.dtype) if p < 1 else keep.astype(x.dtype)
    return Dropout.apply(x, p=float(p), mask=mask)


