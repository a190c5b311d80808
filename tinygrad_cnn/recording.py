"""Running a model once to record its graph, as the exporters (`onnx`, `torch`) and the
viewer's CLI do: on copies of its params (recording must not change the caller's arrays,
and batch norm in training mode updates its running statistics), following every array
computed from the input, so that a value the graph would freeze can be refused."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import trace
from .gradmode import enable_grad
from .tensor import Buffer, Tensor
from .tree import tree_flatten, tree_keys, tree_unflatten

__all__ = ["Recording", "record", "copied", "as_dtype"]


@dataclass
class Recording:
    """What one run left: the output and input Tensors, the params' dotted keys and the
    leaves the run used (Tensors that require grad, Buffers), the leaves' values from
    before the run, and the arrays computed from the input (`trace.following_input`)."""

    out: Tensor
    x: Tensor
    keys: list[str]
    leaves: list[Any]
    initial: list[np.ndarray]
    derived: dict[int, Any]


def as_dtype(array: np.ndarray, dtype: Any) -> np.ndarray:
    """Floating arrays in `dtype` (None keeps them); Buffers stay Buffers."""
    if dtype is None or array.dtype.kind != "f" or array.dtype == dtype:
        return array
    converted = array.astype(dtype)
    return converted.view(Buffer) if isinstance(array, Buffer) else converted


def _copy(leaf: Any, dtype: Any) -> Any:
    """A param leaf as a copy in `dtype`: a Buffer stays a Buffer, the rest are arrays."""
    if isinstance(leaf, Buffer):
        return np.array(as_dtype(leaf, dtype)).view(Buffer)
    array = leaf.data if isinstance(leaf, Tensor) else np.asarray(leaf)
    return np.array(as_dtype(array, dtype))


def copied(params: Any, dtype: Any = None) -> Any:
    """The params' tree with every leaf copied (in `dtype`), for a run that must not
    touch the caller's arrays."""
    values, spec = tree_flatten(params)
    return tree_unflatten(spec, [_copy(leaf, dtype) for leaf in values])


def record(f: Callable, params: Any, example: Any, *, caller: str, error: type[Exception],
           dtype: Any = None, options: dict | None = None) -> Recording:
    """Run ``f(params, x, **options)`` once on copies of the params, recording and tracing.

    Raises `error` naming the key of a param that is not floating point, and TypeError
    when f does not return a Tensor."""
    values, spec = tree_flatten(params)
    keys = tree_keys(params)
    for key, leaf in zip(keys, values):
        array = leaf.data if isinstance(leaf, Tensor) else np.asarray(leaf)
        if array.dtype.kind != "f":
            raise error(f"{caller}: param {key!r} has dtype {array.dtype} "
                        f"({type(leaf).__name__}); params must be floating arrays (Tensors, "
                        "numpy arrays or Buffers): pass integer constants to the model "
                        "another way, or as floats")
    leaves = [copy if isinstance(copy, Buffer) else Tensor(copy, requires_grad=True)
              for copy in (_copy(leaf, dtype) for leaf in values)]
    initial = [np.array(leaf) if isinstance(leaf, Buffer) else leaf.data for leaf in leaves]
    data = example.data if isinstance(example, Tensor) else np.asarray(example)
    x = Tensor(np.array(as_dtype(data, dtype)), requires_grad=True)
    with enable_grad(), trace.tracing(), trace.following_input(x.data) as derived:
        out = f(tree_unflatten(spec, leaves), x, **(options or {}))
    if not isinstance(out, Tensor):
        raise TypeError(f"{caller}: the model must return a Tensor, got {type(out).__name__}")
    return Recording(out, x, keys, leaves, initial, derived)
