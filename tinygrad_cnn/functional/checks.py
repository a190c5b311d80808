"""Argument checks shared by the functional modules: one place for each rule, each error
naming the function, the argument and the value."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from ..tensor import Tensor, as_tensor

IntPair = int | tuple[int, int]


def _pair(fn: str, arg: str, value: Any, minimum: int) -> tuple[int, int]:
    """An int or (h, w) pair of ints, each at least `minimum`."""
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2:
        raise ValueError(f"{fn}: {arg} must be an int or an (h, w) pair, got {value!r}")
    for item in pair:
        if isinstance(item, bool) or not isinstance(item, numbers.Real):
            raise TypeError(f"{fn}: {arg} must be an int or an (h, w) pair of ints, got "
                            f"{value!r}")
        if not isinstance(item, numbers.Integral):
            raise ValueError(f"{fn}: {arg} must be whole numbers, got {value!r}")
        if item < minimum:
            kind = "positive" if minimum == 1 else "non-negative"
            raise ValueError(f"{fn}: {arg} must be {kind}, got {value!r}")
    return int(pair[0]), int(pair[1])


def _float_tensor(fn: str, arg: str, value: Any) -> Tensor:
    if not isinstance(value, (Tensor, np.ndarray, numbers.Number, list, tuple)):
        raise TypeError(f"{fn}: {arg} must be a Tensor or an array, got {type(value).__name__}")
    tensor = as_tensor(value)
    if tensor.dtype.kind != "f":
        raise TypeError(f"{fn}: {arg} must be floating point, got dtype {tensor.dtype}")
    return tensor


def _batched(fn: str, x: Any) -> tuple[Tensor, bool]:
    """x as (N, C, H, W); a (C, H, W) input is a batch of one (the flag says to unbatch)."""
    x = _float_tensor(fn, "x", x)
    if x.ndim == 3:
        return x.reshape((1,) + x.shape), True
    if x.ndim != 4:
        raise ValueError(f"{fn}: x must be 4-D (N, C, H, W) or 3-D (C, H, W), got shape "
                         f"{x.shape}")
    return x, False


def _common_dtype(*tensors: Tensor | None) -> list[Tensor | None]:
    dtype = np.result_type(*[t.dtype for t in tensors if t is not None])
    return [t.astype(dtype) if t is not None else None for t in tensors]



def _check_groups(fn: str, groups: Any) -> int:
    if isinstance(groups, bool) or not isinstance(groups, numbers.Integral) or groups < 1:
        raise ValueError(f"{fn}: groups must be a positive int, got {groups!r}")
    return int(groups)


def _check_kernel(fn: str, x: Tensor, weight: Tensor) -> None:
    """A kernel with no rows or columns, or an input with no channels, has nothing to
    multiply: PyTorch refuses both as well. The kernel is the weight's last two sizes."""
    if 0 in weight.shape[-2:]:
        raise ValueError(f"{fn}: weight {weight.shape} has an empty {weight.shape[-2]}x"
                         f"{weight.shape[-1]} kernel; kernels need at least one row and "
                         "column")
    if x.shape[1] == 0:
        raise ValueError(f"{fn}: x {x.shape} has no channels; expected at least one")


