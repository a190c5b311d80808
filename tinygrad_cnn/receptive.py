"""Receptive fields: the region of the input one output element can see.

Theoretical, from the geometry of the recorded ops: per spatial axis the field's size r,
its jump j (the distance in input pixels between neighbouring outputs) and the input
position `first` where the field of output 0 starts. A window op (conv, pool, unfold,
local conv) with kernel k, stride s, dilation d and leading padding p gives

    r' = r + (k - 1) * d * j,    j' = j * s,    first' = first - p * j;

elementwise ops keep the field, ops that join tensors take the widest, and ops that mix
positions (reshape, matmul, reductions over space) make it the whole input.

Effective, by autodiff (`receptive_field`): |d out[index] / d x| summed over channels and
over a batch of inputs, with its bounding box.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .autograd import Context, enable_grad, grad_of, topological_nodes
from .tensor import Tensor

__all__ = ["Field", "receptive_field", "theoretical_fields", "WHOLE"]

WINDOW_OPS = {"conv2d", "max_pool2d", "avg_pool2d", "unfold", "local_conv2d"}
KEEPS_FIELD = {"add", "sub", "mul", "div", "neg", "pow", "exp", "log", "sqrt", "tanh",
               "sigmoid", "softplus", "relu", "abs", "maximum", "clip", "cast", "identity",
               "where", "batch_norm", "local_response_norm", "channel_window_sum",
               "concatenate", "broadcast_to", "max_pool2d_scatter", "avg_pool2d_spread"}
WHOLE = "whole input"


@dataclass(frozen=True)
class Field:
    """A theoretical receptive field: size (h, w), jump (h, w), first (h, w)."""

    size: tuple[int, int]
    jump: tuple[int, int]
    first: tuple[int, int]

    def box(self, index: tuple[int, int], hw: tuple[int, int]) -> tuple[int, int, int, int]:
        """(top, left, bottom, right), inclusive, of output (i, j)'s field in an input of
        size hw, clipped to the input."""
        starts = [f + i * j for f, i, j in zip(self.first, index, self.jump)]
        top, left = (max(0, s) for s in starts)
        bottom, right = (min(n - 1, s + r - 1) for s, r, n in zip(starts, self.size, hw))
        return top, left, bottom, right

    def __str__(self) -> str:
        jump = self.jump[0] if self.jump[0] == self.jump[1] else f"{self.jump[0]}x{self.jump[1]}"
        return f"{self.size[0]}x{self.size[1]} /{jump}"


def _window(node: Context) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int],
                                    tuple[int, int]]:
    """(kernel, stride, dilation, leading padding) of a window op."""
    params = node.params
    kernel = tuple(node.inputs[1].shape[2:]) if node.name == "conv2d" else params["kernel"]
    padding = params.get("padding", (0, 0, 0, 0))
    return kernel, params["stride"], params.get("dilation", (1, 1)), (padding[0], padding[2])


def _through(node: Context, fields: list[Any]) -> Any:
    """The field of a node's output from its inputs' fields (None: no spatial meaning)."""
    spatial = [f for f in fields if f is not None]
    if not spatial:
        return None
    if WHOLE in spatial or node.name not in WINDOW_OPS | KEEPS_FIELD:
        return WHOLE
    if node.name in WINDOW_OPS:
        field = fields[0]
        if field is None:
            return None
        kernel, stride, dilation, lead = _window(node)
        return Field(tuple(r + (k - 1) * d * j for r, k, d, j in
                           zip(field.size, kernel, dilation, field.jump)),
                     tuple(j * s for j, s in zip(field.jump, stride)),
                     tuple(f - p * j for f, p, j in zip(field.first, lead, field.jump)))
    return Field(tuple(max(f.size[a] for f in spatial) for a in (0, 1)),
                 tuple(max(f.jump[a] for f in spatial) for a in (0, 1)),
                 tuple(min(f.first[a] for f in spatial) for a in (0, 1)))


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
        return Field((1, 1), (1, 1), (0, 0)) if is_image else None

    for node in reversed(topological_nodes([out])):
        fields[id(node)] = _through(node, [field_of(t) for t in node.inputs])
    return fields


def receptive_field(f: Callable[[Tensor], Tensor], x: Any, index: tuple[int, ...]
                    ) -> tuple[np.ndarray, tuple[int, int, int, int] | None]:
    """The effective receptive field of output element `index`: |d out[n][index] / d x|
    summed over channels and over the batch (an average over inputs, as the effective
    field is usually defined), an array of the input's spatial shape (H, W), and its
    bounding box (top, left, bottom, right), inclusive, or None where it is all zero.

    x is (N, C, H, W) (or one (C, H, W) image); `index` indexes one example's output.
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
    index = tuple(index)
    if len(index) != out.ndim - 1:
        raise ValueError(f"receptive_field: index {index} must index one example's output "
                         f"of shape {out.shape[1:]}")
    if any(not 0 <= i < n for i, n in zip(index, out.shape[1:])):
        raise ValueError(f"receptive_field: index {index} is outside one example's output "
                         f"of shape {out.shape[1:]}")
    seed = np.zeros(out.shape, out.dtype)
    seed[(slice(None),) + index] = 1
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
    convs = [n for n in reversed(topological_nodes([out])) if n.name == "conv2d"]
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


def plot_conv_stage_fields(columns: list[tuple[str, list]], path: str) -> None:
    """A grid of effective fields (one row per conv stage, one column per model state)
    with the theoretical box drawn over each."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle
    rows = len(columns[0][1])
    figure, axes = plt.subplots(rows, len(columns), figsize=(3.6 * len(columns), 3.2 * rows),
                                squeeze=False)
    for column, (title, stages) in enumerate(columns):
        for row, (label, effective, _, (top, left, bottom, right)) in enumerate(stages):
            ax = axes[row][column]
            ax.imshow(effective, cmap="magma")
            ax.add_patch(Rectangle((left - 0.5, top - 0.5), right - left + 1, bottom - top + 1,
                                   fill=False, edgecolor="cyan", linewidth=1.5))
            ax.set_title(f"{title}\n{label}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    figure.suptitle("effective receptive field (|gradient|, 16 random inputs) and the "
                    "theoretical box", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
