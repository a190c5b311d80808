"""Convolution as three mutually-adjoint primitives, plus unfold/fold (im2col/col2im).

With T(x, w, g) = <g, conv2d(x, w)>, all three are partial derivatives of one trilinear form:
  conv2d(x, w)             = dT/dg   (N, C, H, W), (F, C/G, KH, KW) -> (N, F, OH, OW)
  conv2d_input_grad(g, w)  = dT/dx   (this is conv_transpose2d)
  conv2d_weight_grad(x, g) = dT/dw
so the backward of each is written with the other two, and derivatives of any order follow.

Geometry: a `Window` (kernel, stride, padding as (top, bottom, left, right), dilation) and
`groups`. The numpy kernels (im2col, BLAS products, col2im) are in `kernels/conv.py`.
"""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np

from ..autograd import Context, Function
from ..kernels.conv import (
    conv2d_forward,
    conv2d_input_grad,
    conv2d_weight_grad,
    fold_forward,
    unfold_forward,
)
from ..kernels.windows import Window
from ..tensor import Tensor
from .lowering import pads, symmetric_input
from .registry import Sample, default_label, defop, format_value


# ----------------------------------------------------------------------------- facts
def window_of(node: Context) -> Window:
    return node.params["window"]


def window_label(params: dict) -> str:
    """`stride=1  padding=2`, with dilation and groups where they are not 1."""
    window, groups = params["window"], params.get("groups", 1)
    shown = {"stride": window.stride, "padding": window.padding}
    if window.dilation != (1, 1):
        shown["dilation"] = window.dilation
    if groups != 1:
        shown["groups"] = groups
    return default_label(shown)


def pool_label(params: dict) -> str:
    """`2x2/2`, `3x3/2 pad=1`: the kernel, the stride and any padding."""
    window = params["window"]
    (kh, kw), (sh, sw) = window.kernel, window.stride
    text = f"{kh}x{kw}/{sh if sh == sw else f'{sh}x{sw}'}"
    return text + (f" pad={format_value(window.padding)}" if any(window.padding) else "")


def _conv_macs(node: Context) -> int:
    """Each output element: C/G*KH*KW multiply-accumulates."""
    return node.output.size * math.prod(node.inputs[1].shape[1:])


def _input_grad_macs(node: Context) -> int:
    """Each element of g: C/G*KH*KW multiply-accumulates."""
    return node.inputs[0].size * math.prod(node.inputs[1].shape[1:])


def _weight_grad_macs(node: Context) -> int:
    """Each element of g: C/G*KH*KW multiply-accumulates."""
    return node.inputs[1].size * math.prod(node.output.shape[1:])


def _conv_onnx(graph: Any, node: Context, inputs: list[str]) -> str:
    window = node.params["window"]
    return graph.add("Conv", inputs, kernel_shape=list(window.kernel),
                     strides=list(window.stride), pads=pads(window.padding),
                     dilations=list(window.dilation), group=node.params["groups"])


def _conv_transpose_onnx(graph: Any, node: Context, inputs: list[str]) -> str:
    """ConvTranspose; output_padding gives the rows and columns past what the windows
    cover (conv_transpose2d's output_padding)."""
    window, (g, w) = node.params["window"], node.inputs
    covered = window.covered(*g.shape[2:])
    extra = [size - cover + sum(window.padding[2 * axis:2 * axis + 2]) for axis, (size, cover)
             in enumerate(zip(node.params["input_hw"], covered))]
    return graph.add("ConvTranspose", inputs, kernel_shape=list(w.shape[2:]),
                     strides=list(window.stride), pads=pads(window.padding),
                     dilations=list(window.dilation), group=node.params["groups"],
                     output_padding=extra)


def _conv_torch(b: Any, node: Context, args: list) -> Any:
    """F.conv2d (an uneven padding applied by F.pad first)"""
    window = node.params["window"]
    x, padding = symmetric_input(b, args[0], window.padding)
    bias = args[2] if len(args) == 3 else None
    return b.call(b.F.conv2d, x, args[1], bias, stride=window.stride, padding=padding,
                  dilation=window.dilation, groups=node.params["groups"])


def _conv_transpose_torch(b: Any, node: Context, args: list) -> Any:
    """F.conv_transpose2d; output_padding makes the rows past the cropped padding (or, when
    PyTorch cannot say it so, the full transposed conv cropped to the op's padding)"""
    window, g = node.params["window"], node.inputs[0]
    top, _, left, _ = window.padding
    full = window.covered(*g.shape[2:])          # the rows and columns before any crop
    extra = tuple(size - (cover - 2 * pad) for size, cover, pad in
                  zip(node.params["input_hw"], full, (top, left)))
    common = {"stride": window.stride, "groups": node.params["groups"],
              "dilation": window.dilation}
    if all(0 <= e < max(s, d) for e, s, d in zip(extra, window.stride, window.dilation)):
        return b.call(b.F.conv_transpose2d, args[0], args[1], padding=(top, left),
                      output_padding=extra, **common)
    out = b.call(b.F.conv_transpose2d, args[0], args[1], **common)
    height, width = node.params["input_hw"]
    short = (max(0, left + width - full[1]), max(0, top + height - full[0]))
    if any(short):
        out = b.call(b.F.pad, out, (0, short[0], 0, short[1]))
    return b.call(operator.getitem, out, (slice(None), slice(None), slice(top, top + height),
                                          slice(left, left + width)))


def _unfold_torch(b: Any, node: Context, args: list) -> Any:
    """F.unfold"""
    window = node.params["window"]
    x, padding = symmetric_input(b, args[0], window.padding)
    return b.call(b.F.unfold, x, window.kernel, dilation=window.dilation, padding=padding,
                  stride=window.stride)


def _fold_torch(b: Any, node: Context, args: list) -> Any:
    """F.fold (an uneven padding: folded into the padded size, then cropped)"""
    window = node.params["window"]
    top, bottom, left, right = window.padding
    height, width = node.params["output_hw"]
    common = {"dilation": window.dilation, "stride": window.stride}
    if top == bottom and left == right:
        return b.call(b.F.fold, args[0], (height, width), window.kernel, padding=(top, left),
                      **common)
    padded = (height + top + bottom, width + left + right)
    out = b.call(b.F.fold, args[0], padded, window.kernel, padding=(0, 0), **common)
    return b.call(operator.getitem, out, (slice(None), slice(None), slice(top, top + height),
                                          slice(left, left + width)))


BACKWARD_ONLY = "it appears in backward graphs only; export the forward model"


# ----------------------------------------------------------------------------- primitives
def _geometry(params: dict) -> dict:
    """The window and groups of a conv node, to pass to its partners."""
    return {"window": params["window"], "groups": params["groups"]}


def _conv_samples(rng: np.random.Generator) -> list[Sample]:
    def case(x_shape: tuple, w_shape: tuple, label: str, stride=(1, 1), padding=(0, 0, 0, 0),
             dilation=(1, 1), groups=1) -> Sample:
        window = Window(w_shape[2:], stride, padding, dilation)
        return Sample((rng.standard_normal(x_shape), rng.standard_normal(w_shape)),
                      {"window": window, "groups": groups}, label)

    with_bias = case((2, 3, 4, 5), (2, 3, 2, 2), "with bias", padding=(1, 1, 0, 0))
    with_bias = Sample(with_bias.args + (rng.standard_normal(2),), with_bias.params,
                       with_bias.label)
    return [case((2, 2, 5, 5), (3, 2, 3, 3), "plain"), with_bias,
            case((1, 2, 6, 5), (2, 2, 2, 3), "stride 2, uneven padding", (2, 2), (1, 0, 1, 2)),
            case((1, 4, 5, 5), (4, 2, 3, 2), "groups 2, dilation", (1, 2), (1, 1, 0, 0),
                 (2, 1), 2)]


@defop("conv2d", samples=_conv_samples, kind="window", macs=_conv_macs, window=window_of,
       onnx=_conv_onnx, torch=_conv_torch, label=window_label)
class Conv2d(Function):
    """Cross-correlation of (N, C, H, W) with (F, C/G, KH, KW), plus an optional bias (F,)
    added in the same pass -> (N, F, OH, OW)."""

    backward_reads = (0, 1)

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, w: np.ndarray, *bias: np.ndarray,
                window: Window, groups: int) -> np.ndarray:
        kept: list = []
        out = conv2d_forward(x, w, window, groups, keep=kept if ctx.recording else None,
                             bias=bias[0] if bias else None)
        ctx.save_for_backward(*kept)  # the im2col of x, when small enough to keep
        return out

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        x, w = ctx.inputs[:2]
        need_x, need_w = ctx.needs_input_grad[:2]
        grad_bias = (g.sum(axis=(0, 2, 3)),) if len(ctx.inputs) == 3 else ()
        geometry = _geometry(ctx.params)
        grad_x = Conv2dInputGrad.apply(g, w, input_hw=x.shape[2:], **geometry) \
            if need_x else None
        columns = ctx.saved[0] if ctx.saved else None
        grad_w = Conv2dWeightGrad.apply(x, g, columns=columns, **geometry) if need_w else None
        return (grad_x, grad_w) + grad_bias


def _with_upstream(rng: np.random.Generator) -> list[tuple]:
    """The conv samples with a random upstream gradient g: (x, w, g, params, label)."""
    cases = []
    for s in _conv_samples(rng):
        x, w = s.args[:2]
        g = rng.standard_normal(conv2d_forward(x, w, **s.params).shape)
        cases.append((x, w, g, s.params, s.label))
    return cases


def _input_grad_samples(rng: np.random.Generator) -> list[Sample]:
    return [Sample((g, w), {**params, "input_hw": x.shape[2:]}, label)
            for x, w, g, params, label in _with_upstream(rng)]


@defop("conv2d_input_grad", samples=_input_grad_samples, kind="adjoint",
       macs=_input_grad_macs,
       field="whole", onnx=_conv_transpose_onnx, torch=_conv_transpose_torch,
       label=window_label)
class Conv2dInputGrad(Function):
    """Gradient of conv2d with respect to its input: conv_transpose2d of g with w."""

    backward_reads = (0, 1)

    @staticmethod
    def forward(ctx: Context, out_grad: np.ndarray, w: np.ndarray, *,
                input_hw: tuple[int, int], window: Window, groups: int) -> np.ndarray:
        return conv2d_input_grad(out_grad, w, input_hw, window, groups)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        # out_grad is the conv's output gradient: T(g, w, out_grad) is the trilinear form
        out_grad, w = ctx.inputs
        need_out_grad, need_w = ctx.needs_input_grad
        geometry = _geometry(ctx.params)
        grad_out_grad = Conv2d.apply(g, w, **geometry) if need_out_grad else None
        grad_w = Conv2dWeightGrad.apply(g, out_grad, **geometry) if need_w else None
        return grad_out_grad, grad_w


def _weight_grad_samples(rng: np.random.Generator) -> list[Sample]:
    return [Sample((x, g), params, label) for x, w, g, params, label in _with_upstream(rng)]


@defop("conv2d_weight_grad", samples=_weight_grad_samples, kind="adjoint",
       macs=_weight_grad_macs,
       field="whole", onnx=BACKWARD_ONLY, torch="it appears in backward graphs only",
       label=window_label)
class Conv2dWeightGrad(Function):
    """Gradient of conv2d with respect to its weight, from input x and upstream g."""

    backward_reads = (0, 1)

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, out_grad: np.ndarray, *, window: Window,
                groups: int, columns: np.ndarray | None = None) -> np.ndarray:
        return conv2d_weight_grad(x, out_grad, window, groups, columns=columns)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        x, out_grad = ctx.inputs
        need_x, need_out_grad = ctx.needs_input_grad
        geometry = _geometry(ctx.params)
        grad_x = Conv2dInputGrad.apply(out_grad, g, input_hw=x.shape[2:], **geometry) \
            if need_x else None
        grad_out_grad = Conv2d.apply(x, g, **geometry) if need_out_grad else None
        return grad_x, grad_out_grad


# ----------------------------------------------------------------------------- unfold / fold
def _unfold_samples(rng: np.random.Generator) -> list[Sample]:
    params = {"window": Window((2, 3), (2, 1), (1, 0, 1, 1), (1, 2))}
    return [Sample((rng.standard_normal((2, 2, 5, 4)),), params, "overlapping, dilated")]


@defop("unfold", samples=_unfold_samples, kind="window", macs=0, window=window_of,
       onnx="ONNX has no im2col op", torch=_unfold_torch, label=window_label)
class Unfold(Function):
    """im2col: sliding windows of (N, C, H, W) as columns (N, C*KH*KW, OH*OW)."""

    backward_reads = ()

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, *, window: Window) -> np.ndarray:
        return unfold_forward(x, window)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        return (Fold.apply(g, output_hw=ctx.inputs[0].shape[2:], window=ctx.params["window"]),)


def _fold_samples(rng: np.random.Generator) -> list[Sample]:
    (sample,) = _unfold_samples(rng)
    cols = unfold_forward(sample.args[0], **sample.params)
    return [Sample((rng.standard_normal(cols.shape),), {**sample.params, "output_hw": (5, 4)},
                   "overlapping, dilated")]


@defop("fold", samples=_fold_samples, kind="adjoint", macs=0, field="whole",
       onnx="ONNX has no col2im op before opset 18", torch=_fold_torch, label=window_label)
class Fold(Function):
    """col2im: columns (N, C*KH*KW, OH*OW) summed back into (N, C, H, W)."""

    backward_reads = ()

    @staticmethod
    def forward(ctx: Context, cols: np.ndarray, *, output_hw: tuple[int, int],
                window: Window) -> np.ndarray:
        return fold_forward(cols, output_hw, window)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        return (Unfold.apply(g, window=ctx.params["window"]),)
