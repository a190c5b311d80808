"""Activations and bounds: tanh, sigmoid, softplus, relu, abs, maximum, clip. Kinks take
PyTorch's conventions (said on each op); gradients are routed through masks, so an inf or
NaN upstream never reaches the elements a mask drops."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..autograd import Context, Function
from ..tensor import Tensor
from .arithmetic import ELEMENTWISE, broadcasting
from .lowering import elementwise, torch_function
from .registry import Sample, defop
from .samples import away_from_zero, binary_samples, unary_samples
from .select import constant, masked


@defop("tanh", samples=unary_samples(), onnx=elementwise("Tanh"),
       torch=torch_function("tanh"), **ELEMENTWISE)
class Tanh(Function):
    """Hyperbolic tangent."""

    backward_reads = ()
    backward_reads_output = True

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        return np.tanh(x)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        out = ctx.output
        return (g * (1 - out * out),)


@defop("sigmoid", samples=unary_samples(), onnx=elementwise("Sigmoid"),
       torch=torch_function("sigmoid"), **ELEMENTWISE)
class Sigmoid(Function):
    """1 / (1 + e^-x), computed without overflow."""

    backward_reads = ()
    backward_reads_output = True

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        return np.exp(-np.logaddexp(0, -x)).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        out = ctx.output
        return (g * out * (1 - out),)


@defop("softplus", samples=unary_samples(), onnx=elementwise("Softplus"),
       torch=torch_function("softplus", "F"), **ELEMENTWISE)
class Softplus(Function):
    """log(1 + e^x), computed without overflow."""

    backward_reads = (0,)

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        return np.logaddexp(0, x).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        return (g * ctx.inputs[0].sigmoid(),)


@defop("relu", samples=unary_samples(away_from_zero), onnx=elementwise("Relu"),
       torch=torch_function("relu"), **ELEMENTWISE)
class ReLU(Function):
    """max(x, 0); its derivative at 0 is taken as 0, at NaN as 1 (as PyTorch's: the
    gradient passes wherever the output is not 0)."""

    backward_reads = ()

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        out = np.maximum(x, 0)
        ctx.save_for_backward(out != 0)
        return out

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        (mask,) = ctx.saved
        return (masked(g, mask),)


@defop("abs", samples=unary_samples(away_from_zero), onnx=elementwise("Abs"),
       torch=torch_function("abs"), **ELEMENTWISE)
class Abs(Function):
    """|x|; its derivative at 0 is taken as 0, and at NaN as 0 too (PyTorch's sgn)."""

    backward_reads = (0,)

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        return np.abs(x)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        return (g * constant(np.nan_to_num(np.sign(ctx.inputs[0].data), nan=0.0)),)


@defop("maximum", samples=lambda rng: binary_samples(rng, away_from_zero),
       onnx=elementwise("Max"),
       torch=torch_function("maximum"), **ELEMENTWISE)
class Maximum(Function):
    """Elementwise max(a, b); where a == b the gradient is split in halves, and where
    either is NaN both get all of it (PyTorch's rule: a's share is 0 only where a < b)."""

    backward_reads = ()

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        out = broadcasting("maximum", np.maximum, a, b)
        tie = 0.5 * (a == b)
        ctx.save_for_backward(1 - tie - (a < b), 1 - tie - (a > b))
        return out

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        share_a, share_b = (share.astype(g.dtype, copy=False) for share in ctx.saved)
        return (masked(g * constant(share_a), share_a != 0),
                masked(g * constant(share_b), share_b != 0))


def _clip_onnx(graph: Any, node: Context, inputs: list[str]) -> str:
    bounds = [graph.constant(np.array(bound, node.output.dtype)) if bound is not None else ""
              for bound in (node.params["low"], node.params["high"])]
    return graph.add("Clip", inputs + bounds)


def _clip_torch(b: Any, node: Context, args: list) -> Any:
    """torch.clamp"""
    return b.call(b.torch.clamp, args[0], min=node.params["low"], max=node.params["high"])


def _clip_samples(rng: np.random.Generator) -> list[Sample]:
    x = away_from_zero(rng, 3, 4)
    return [Sample((x,), {"low": -0.05, "high": 0.05}, "both bounds"),
            Sample((x,), {"low": -0.05, "high": None}, "lower bound only")]


@defop("clip", samples=_clip_samples, onnx=_clip_onnx, torch=_clip_torch, **ELEMENTWISE)
class Clip(Function):
    """x limited to [low, high]; the gradient passes where low <= x <= high."""

    backward_reads = ()

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, *, low: float | None,
                high: float | None) -> np.ndarray:
        inside = np.ones(x.shape, dtype=bool)
        if low is not None:
            inside &= x >= low
        if high is not None:
            inside &= x <= high
        ctx.save_for_backward(inside)
        return np.clip(x, low, high).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        (inside,) = ctx.saved
        return (masked(g, inside),)


def clip(x: Tensor, low: float | None = None, high: float | None = None) -> Tensor:
    if low is None and high is None:
        raise ValueError("clip: give at least one of min and max")
    if low is not None and high is not None and low > high:
        raise ValueError(f"clip: min={low} is greater than max={high}")
    return Clip.apply(x, low=low, high=high)
