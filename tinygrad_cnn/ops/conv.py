"""Convolution as three mutually-adjoint primitives, plus unfold/fold (im2col/col2im).

With T(x, w, g) = <g, conv2d(x, w)>, all three are partial derivatives of one trilinear form:
  conv2d(x, w)             = dT/dg   (N, C, H, W), (F, C/G, KH, KW) -> (N, F, OH, OW)
  conv2d_input_grad(g, w)  = dT/dx   (this is conv_transpose2d)
  conv2d_weight_grad(x, g) = dT/dw
so the backward of each is written with the other two, and derivatives of any order follow.

Geometry: `stride` and `dilation` are (h, w) pairs, `padding` is (top, bottom, left, right).
The numpy kernels (im2col, BLAS products, col2im) are in `kernels/conv.py`.
"""

from __future__ import annotations

import numpy as np

from ..autograd import Context, Function
from ..kernels.conv import (
    conv2d_forward,
    conv2d_input_grad,
    conv2d_weight_grad,
    fold_forward,
    unfold_forward,
)
from ..tensor import Tensor
from .registry import Sample, defop


# ----------------------------------------------------------------------------- primitives
def _geometry(params: dict) -> dict:
    return {k: params[k] for k in ("stride", "padding", "dilation", "groups")}


def _conv_samples(rng: np.random.Generator) -> list[Sample]:
    def case(x_shape: tuple, w_shape: tuple, label: str, stride=(1, 1), padding=(0, 0, 0, 0),
             dilation=(1, 1), groups=1) -> Sample:
        params = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
        return Sample((rng.standard_normal(x_shape), rng.standard_normal(w_shape)), params,
                      label)

    with_bias = case((2, 3, 4, 5), (2, 3, 2, 2), "with bias", padding=(1, 1, 0, 0))
    with_bias = Sample(with_bias.args + (rng.standard_normal(2),), with_bias.params,
                       with_bias.label)
    return [case((2, 2, 5, 5), (3, 2, 3, 3), "plain"), with_bias,
            case((1, 2, 6, 5), (2, 2, 2, 3), "stride 2, uneven padding", (2, 2), (1, 0, 1, 2)),
            case((1, 4, 5, 5), (4, 2, 3, 2), "groups 2, dilation", (1, 2), (1, 1, 0, 0),
                 (2, 1), 2)]


@defop("conv2d", samples=_conv_samples)
class Conv2d(Function):
    """Cross-correlation of (N, C, H, W) with (F, C/G, KH, KW), plus an optional bias (F,)
    added in the same pass -> (N, F, OH, OW)."""

    backward_reads = (0, 1)

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, w: np.ndarray, *bias: np.ndarray,
                **geometry) -> np.ndarray:
        kept: list = []
        out = conv2d_forward(x, w, **geometry, keep=kept if ctx.recording else None,
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
        grad_w = Conv2dWeightGrad.apply(x, g, kernel=w.shape[2:], columns=columns,
                                        **geometry) if need_w else None
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


@defop("conv2d_input_grad", samples=_input_grad_samples)
class Conv2dInputGrad(Function):
    """Gradient of conv2d with respect to its input: conv_transpose2d of g with w."""

    backward_reads = (0, 1)

    @staticmethod
    def forward(ctx: Context, g: np.ndarray, w: np.ndarray, *, input_hw: tuple[int, int],
                **geometry) -> np.ndarray:
        return conv2d_input_grad(g, w, input_hw, **geometry)

    @staticmethod
    def backward(ctx: Context, u: Tensor) -> tuple:
        g, w = ctx.inputs
        need_g, need_w = ctx.needs_input_grad
        geometry = _geometry(ctx.params)
        grad_g = Conv2d.apply(u, w, **geometry) if need_g else None  # <g, conv(u, w)>
        grad_w = Conv2dWeightGrad.apply(u, g, kernel=w.shape[2:], **geometry) \
            if need_w else None
        return grad_g, grad_w


def _weight_grad_samples(rng: np.random.Generator) -> list[Sample]:
    return [Sample((x, g), {**params, "kernel": w.shape[2:]}, label)
            for x, w, g, params, label in _with_upstream(rng)]


@defop("conv2d_weight_grad", samples=_weight_grad_samples)
class Conv2dWeightGrad(Function):
    """Gradient of conv2d with respect to its weight, from input x and upstream g."""

    backward_reads = (0, 1)

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, g: np.ndarray, *, kernel: tuple[int, int],
                columns: np.ndarray | None = None, **geometry) -> np.ndarray:
        return conv2d_weight_grad(x, g, kernel, **geometry, columns=columns)

    @staticmethod
    def backward(ctx: Context, v: Tensor) -> tuple:
        x, g = ctx.inputs
        need_x, need_g = ctx.needs_input_grad
        geometry = _geometry(ctx.params)
        grad_x = Conv2dInputGrad.apply(g, v, input_hw=x.shape[2:], **geometry) \
            if need_x else None
        grad_g = Conv2d.apply(x, v, **geometry) if need_g else None  # <g, conv(x, v)>
        return grad_x, grad_g


# ----------------------------------------------------------------------------- unfold / fold
def _window_params(params: dict) -> dict:
    return {k: params[k] for k in ("kernel", "stride", "padding", "dilation")}


def _unfold_samples(rng: np.random.Generator) -> list[Sample]:
    params = {"kernel": (2, 3), "stride": (2, 1), "padding": (1, 0, 1, 1), "dilation": (1, 2)}
    return [Sample((rng.standard_normal((2, 2, 5, 4)),), params, "overlapping, dilated")]


@defop("unfold", samples=_unfold_samples)
class Unfold(Function):
    """im2col: sliding windows of (N, C, H, W) as columns (N, C*KH*KW, OH*OW)."""

    backward_reads = ()

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, **window) -> np.ndarray:
        return unfold_forward(x, **window)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        return (Fold.apply(g, output_hw=ctx.inputs[0].shape[2:], **_window_params(ctx.params)),)


def _fold_samples(rng: np.random.Generator) -> list[Sample]:
    (sample,) = _unfold_samples(rng)
    cols = unfold_forward(sample.args[0], **sample.params)
    return [Sample((rng.standard_normal(cols.shape),), {**sample.params, "output_hw": (5, 4)},
                   "overlapping, dilated")]


@defop("fold", samples=_fold_samples)
class Fold(Function):
    """col2im: columns (N, C*KH*KW, OH*OW) summed back into (N, C, H, W)."""

    backward_reads = ()

    @staticmethod
    def forward(ctx: Context, cols: np.ndarray, *, output_hw: tuple[int, int],
                **window) -> np.ndarray:
        return fold_forward(cols, output_hw, **window)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        return (Unfold.apply(g, **_window_params(ctx.params)),)
