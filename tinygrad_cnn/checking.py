"""What the checkers share: inputs prepared for finite differences and a gradient flattened
into one vector (`gradcheck`, `locate`), and new inputs like an example, on which the
exporters (`onnx`, `torch`) prove a model before handing it over."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from .autograd import grad_of
from .ops import concatenate
from .tensor import Buffer, Tensor

__all__ = ["prepare_inputs", "flat_gradient", "probe_inputs"]


def prepare_inputs(inputs: Sequence[Any], caller: str
                   ) -> tuple[list[Any], list[int], list[str]]:
    """Copies of the inputs (checked ones as float64 arrays), which are checked, their names."""
    values, checked, names = [], [], []
    for i, value in enumerate(inputs):
        names.append(value.name if isinstance(value, Tensor) and value.name else f"input {i}")
        array = value.data if isinstance(value, Tensor) else np.asarray(value)
        wanted = value.requires_grad if isinstance(value, Tensor) else \
            not isinstance(value, Buffer)
        if array.dtype.kind == "f" and wanted:
            if array.dtype != np.float64:
                warnings.warn(f"{caller}: input {i} is {array.dtype}; finite differences "
                              "need float64, so it is checked as a float64 copy",
                              stacklevel=3)
            checked.append(i)
            values.append(np.array(array, dtype=np.float64))
        else:   # a Buffer is copied here and again for every call: inputs never change
            values.append(np.array(array).view(Buffer) if isinstance(value, Buffer) else array)
    if not checked:
        raise ValueError(f"{caller}: no input to check; pass floating-point numpy arrays or "
                         "Tensors with requires_grad=True")
    return values, checked, names



def flat_gradient(out: Tensor, targets: list[Tensor], g: Tensor) -> Tensor:
    """d<g, out>/d targets, recorded (create_graph), as one vector: the gradients of all
    targets flattened and joined (zeros for a target `out` does not depend on)."""
    grads = grad_of(out, targets, g, create_graph=True, allow_unused=True)
    return concatenate([(grad if grad is not None else Tensor._make(
        np.zeros(t.shape), False, None)).reshape(-1) for grad, t in zip(grads, targets)])


def probe_inputs(example: np.ndarray, dynamic: bool) -> list[np.ndarray]:
    """New inputs like the example: its examples in another order plus noise, at its batch
    size and (for a dynamic batch) at one more."""
    if example.ndim == 0 or example.shape[0] == 0 or example.dtype.kind != "f":
        return []
    rng = np.random.default_rng(0)
    finite = example[np.isfinite(example)]
    scale = float(finite.std()) if finite.size else 1.0
    rows = [np.roll(example, 1, axis=0)]
    if dynamic:
        rows.append(np.concatenate([example, example[:1]])[::-1])
    return [(r + 0.5 * (scale or 1.0) * rng.standard_normal(r.shape)).astype(example.dtype)
            for r in rows]
