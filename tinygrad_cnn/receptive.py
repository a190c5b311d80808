"""Receptive fields: the region of the input one output element can see.

Theoretical, from the geometry of the recorded ops. Along each spatial axis a field is a
set of spans, each (r, j, first): output position i sees input positions
[first + i*j, first + i*j + r - 1]; the field's box is the hull of its spans (branches of
different geometry joined by an op give a field of several spans). A window op (conv,
pool, unfold, local conv) with kernel k, stride s, dilation d and leading padding p maps
every span to

    r' = r + (k - 1) * d * j,    j' = j * s,    first' = first - p * j;

elementwise ops keep the field (an axis broadcast from size 1 gets jump 0: every output
position sees the field of input position 0), ops that join tensors take the union of
their fields, reshapes that keep the last two axes keep it, and ops that mix positions
(other reshapes, transposes, matmul, reductions, concatenation along a spatial axis, batch
norm in training mode, which mixes the whole batch) make it the whole input.

Effective, by autodiff (`receptive_field`): |d out[index] / d x| summed over channels (and
over the batch, for an index of one example), with its bounding box. The theoretical box
always contains the effective field's nonzeros.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .autograd import Context, enable_grad, grad_of, topological_nodes
from .kernels.windows import Window
from .ops import is_convolution, spec_of
from .tensor import Tensor

__all__ = ["Field", "receptive_field", "theoretical_fields", "WHOLE"]

WHOLE = "whole input"

Span = tuple[int, int, int]   # (size r, jump j, first): position i sees [first + i*j, +r)


@dataclass(frozen=True)
class Field:
    """A theoretical receptive field: per spatial axis (h, w), a set of spans."""

    spans: tuple[frozenset[Span], frozenset[Span]]

    @classmethod
    def pixel(cls) -> Field:
        """The field of an input pixel: itself."""
        return cls((frozenset({(1, 1, 0)}), frozenset({(1, 1, 0)})))

    @property
    def size(self) -> tuple[int, int]:
        """The largest span size per axis (the field's size when it has one span)."""
        return tuple(max(r for r, _, _ in axis) for axis in self.spans)

    @property
    def jump(self) -> tuple[int, int]:
        return tuple(max(j for _, j, _ in axis) for axis in self.spans)

    @property
    def first(self) -> tuple[int, int]:
        return tuple(min(f for _, _, f in axis) for axis in self.spans)

    def box(self, index: tuple[int, int], hw: tuple[int, int]
            ) -> tuple[int, int, int, int] | None:
        """(top, left, bottom, right), inclusive, of output (i, j)'s field in an input of
        size hw, clipped to the input; None where the field lies outside it."""
        lows, highs = [], []
        for axis, i, n in zip(self.spans, index, hw):
            lows.append(max(0, min(f + i * j for _, j, f in axis)))
            highs.append(min(n - 1, max(f + i * j + r - 1 for r, j, f in axis)))
        if any(low > high for low, high in zip(lows, highs)):
            return None
        return lows[0], lows[1], highs[0], highs[1]

    def through_window(self, window: Window) -> Field:
        """Every span seen through the window: r + (k-1)*d*j, j*s, first - p*j."""
        lead = (window.padding[0], window.padding[2])
        return Field(tuple(frozenset((r + (k - 1) * d * j, j * s, f - p * j)
                                     for r, j, f in axis)
                           for axis, k, s, d, p in zip(self.spans, window.kernel,
                                                       window.stride, window.dilation, lead)))

    def broadcast(self, axes: tuple[bool, bool]) -> Field:
        """Along each axis marked True the input had size 1: every output sees position 0."""
        return Field(tuple(frozenset((r, 0, f) for r, _, f in axis) if spread else axis
                           for axis, spread in zip(self.spans, axes)))

    def union(self, other: Field) -> Field:
        return Field(tuple(a | b for a, b in zip(self.spans, other.spans)))

    def __str__(self) -> str:
        parts = []
        for h, w in zip(sorted(self.spans[0]), sorted(self.spans[1])):
            jump = h[1] if h[1] == w[1] else f"{h[1]}x{w[1]}"
            parts.append(f"{h[0]}x{w[0]} /{jump}")
        if len(self.spans[0]) != len(self.spans[1]):
            parts = [f"rows {sorted(self.spans[0])}, columns {sorted(self.spans[1])}"]
        return " | ".join(parts)


def _aligned(field: Field, tensor: Tensor, out: Tensor) -> Field:
    """An input's field as seen from the output, through numpy broadcasting."""
    if tensor.ndim < 2:
        return field.broadcast((True, True))
    return field.broadcast(tuple(tensor.shape[a] == 1 and out.shape[a] != 1 for a in (-2, -1)))


def _through(node: Context, fields: list[Any]) -> Any:
    """The field of a node's output from its inputs' fields (None: no spatial meaning)."""
    spatial = [(t, f) for t, f in zip(node.inputs, fields) if f is not None]
    if not spatial:
        return None
    spec = spec_of(node)
    rule = spec.field_of(node) if spec is not None else "whole"
    if any(f == WHOLE for _, f in spatial) or rule == "whole" or node.output.ndim < 2:
        return WHOLE
    if rule == "window":
        field = fields[0]
        return None if field is None else field.through_window(spec.window(node))
    joined = None
    for tensor, field in spatial:
        field = _aligned(field, tensor, node.output)
        joined = field if joined is None else joined.union(field)
    return joined


def theoretical_fields(out: Tensor, images: Tensor | None = None) -> dict[int, Any]:
    """id(node) -> the field of its output (a `Field`, WHOLE, or None for tensors with no
    spatial meaning). The input images are `images`, else the 4-D leaves that do not
    require grad (parameters do)."""
    fields: dict[int, Any] = {}

    def field_of(tensor: Tensor) -> Any:
        if tensor.grad_fn is not None:
            return fields.get(id(tensor.grad_fn))
        is_image = tensor is images if images is not None else \
            tensor.ndim == 4 and not tensor.requires_grad
        return Field.pixel() if is_image else None

    for node in reversed(topological_nodes([out])):
        fields[id(node)] = _through(node, [field_of(t) for t in node.inputs])
    return fields


def receptive_field(f: Callable[[Tensor], Tensor], x: Any, index: tuple[int, ...]
                    ) -> tuple[np.ndarray, tuple[int, int, int, int] | None]:
    """The effective receptive field of one output element: |d out[index] / d x| summed
    over channels, an array of the input's spatial shape (H, W), and its bounding box
    (top, left, bottom, right), inclusive, or None where it is all zero.

    x is (N, C, H, W) (or one (C, H, W) image, given to f as a batch of one). `index` is
    the full index of the output element, as in ``out[index]`` (``(n, c, h, w)`` for a
    batched output); an index one shorter indexes one example's output and is taken at
    every example of the batch, summed (an average over inputs, as the effective field is
    usually defined).
    """
    array = np.asarray(x.data if isinstance(x, Tensor) else x)
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or array.dtype.kind != "f":
        raise ValueError(f"receptive_field: x must be float (N, C, H, W) or (C, H, W), got "
                         f"{array.dtype} of shape {array.shape}")
    images = Tensor(array, requires_grad=True)
    with enable_grad():
        out = f(images)
    index = tuple(int(i) for i in index)
    if len(index) not in (out.ndim, out.ndim - 1):
        raise ValueError(f"receptive_field: index {index} must index the output of shape "
                         f"{out.shape} (or one example's output, {out.shape[1:]})")
    shape = out.shape if len(index) == out.ndim else out.shape[1:]
    if any(not 0 <= i < n for i, n in zip(index, shape)):
        raise ValueError(f"receptive_field: index {index} is outside the output's shape "
                         f"{shape}")
    seed = np.zeros(out.shape, out.dtype)
    seed[index if len(index) == out.ndim else (slice(None),) + index] = 1
    (grad,) = grad_of(out, [images], seed, allow_unused=True)
    field = np.zeros(array.shape[2:]) if grad is None else np.abs(grad.data).sum(axis=(0, 1))
    rows, cols = np.nonzero(field)
    box = (int(rows.min()), int(cols.min()), int(rows.max()), int(cols.max())) \
        if rows.size else None
    return field, box


def conv_stage_fields(model: Callable, params: Any, images: np.ndarray
                      ) -> list[tuple[str, np.ndarray, Field, tuple[int, int, int, int]]]:
    """For each conv of `model` (in forward order): a label, the effective field of its
    centre output over the batch `images`, its theoretical Field and that field's box."""
    inputs = Tensor(images, requires_grad=True)
    with enable_grad():
        out = model(params, inputs)
    fields = theoretical_fields(out, inputs)
    convs = [n for n in reversed(topological_nodes([out])) if is_convolution(n)]
    stages = []
    for number, node in enumerate(convs, 1):
        stage = node.output
        centre = (stage.shape[2] // 2, stage.shape[3] // 2)
        seed = np.zeros(stage.shape, stage.dtype)
        seed[:, :, centre[0], centre[1]] = 1   # every channel of the centre position
        (grad,) = grad_of(stage, [inputs], seed, retain_graph=True, allow_unused=True)
        effective = np.abs(grad.data).sum(axis=(0, 1))
        field = fields[id(node)]
        label = f"conv {number} {tuple(stage.shape[1:])}, centre {centre}: {field}"
        stages.append((label, effective, field, field.box(centre, images.shape[2:])))
    return stages
