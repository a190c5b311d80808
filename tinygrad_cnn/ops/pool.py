"""Pooling primitives on stride-phase views, each paired with its adjoint.

  max_pool2d          x -> max of each window, remembering which element won
  max_pool2d_scatter  g -> g routed back to the winners (the max-pool backward)
  max_pool2d_gather   x -> x read at the winners (adjoint of the scatter)
  avg_pool2d          x -> window sums / divisor
  avg_pool2d_spread   g -> g / divisor spread over each window (its adjoint)

Each takes the `Window` the functional layer built (kernel, stride, padding, dilation,
ceil_mode). The numpy loops are in `kernels/pool.py`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..autograd import Context, Function
from ..kernels.pool import (
    avg_pool_forward,
    avg_pool_spread,
    max_pool_forward,
    max_pool_gather,
    max_pool_scatter,
)
from ..kernels.windows import Window
from ..tensor import Tensor
from .conv import BACKWARD_ONLY, pool_label, window_of
from .lowering import pads, symmetric_input
from .registry import Sample, defop


def _max_pool_samples(rng: np.random.Generator) -> list[Sample]:
    def case(shape: tuple, label: str, kernel=(2, 2), stride=(2, 2), padding=(0, 0, 0, 0),
             dilation=(1, 1)) -> Sample:
        params = {"window": Window(kernel, stride, padding, dilation)}
        return Sample((rng.permutation(np.prod(shape)).reshape(shape) * 0.1,), params, label)

    return [case((2, 2, 4, 4), "2x2 stride 2"),
            case((1, 2, 5, 6), "3x3 stride 2 padding 1, overlapping", (3, 3), (2, 2), (1, 1, 1, 1)),
            case((1, 1, 7, 5), "3x2 dilation 2, ceil extra row", (3, 2), (2, 1), (1, 2, 0, 0),
                 (2, 1))]


def _pool_input(graph: Any, node: Context, inputs: list[str], fill: float
                ) -> tuple[str, list[int]]:
    """The pool's input and its pads attribute. ONNX Runtime loads no pool whose pad is as
    large as the kernel (ceil_mode's extra rows can make it so): such pads become an
    explicit Pad node with `fill`, and the pool pads nothing."""
    window = node.params["window"]
    top, bottom, left, right = padding = window.reach(*node.inputs[0].shape[2:])
    kh, kw = window.kernel
    if max(top, bottom) < kh and max(left, right) < kw:
        return inputs[0], pads(padding)
    widths = graph.constant(np.array([0, 0, top, left, 0, 0, bottom, right], np.int64))
    value = graph.constant(np.array(fill, node.inputs[0].dtype))
    return graph.add("Pad", [inputs[0], widths, value]), [0, 0, 0, 0]


def _max_pool_onnx(graph: Any, node: Context, inputs: list[str]) -> str:
    window = node.params["window"]
    source, padding = _pool_input(graph, node, inputs, -np.inf)
    return graph.add("MaxPool", [source], kernel_shape=list(window.kernel),
                     strides=list(window.stride), pads=padding,
                     dilations=list(window.dilation), ceil_mode=0)


def _avg_pool_onnx(graph: Any, node: Context, inputs: list[str]) -> str:
    """AveragePool divides every window by KH*KW (pads counted as zeros); PyTorch's divisor
    per output position then rescales: out = pooled * KH*KW / divisor."""
    window = node.params["window"]
    source, padding = _pool_input(graph, node, inputs, 0.0)
    pooled = graph.add("AveragePool", [source], kernel_shape=list(window.kernel),
                       strides=list(window.stride), pads=padding, count_include_pad=1,
                       ceil_mode=0)
    area = window.kernel[0] * window.kernel[1]
    divisor = np.asarray(node.params["divisor"], dtype=node.output.dtype)
    if divisor.ndim == 0 and divisor == area:
        return pooled
    return graph.add("Mul", [pooled, graph.constant((area / divisor).astype(divisor.dtype))])


def _max_pool_torch(b: Any, node: Context, args: list) -> Any:
    """F.max_pool2d (an uneven padding applied by F.pad with -inf first)"""
    window = node.params["window"]
    top, bottom, left, right = window.padding
    x, padding = args[0], (top, left)
    if top != bottom or left != right:
        x = b.call(b.F.pad, x, (left, right, top, bottom), value=-np.inf)
        padding = (0, 0)
    return b.call(b.F.max_pool2d, x, window.kernel, window.stride, padding, window.dilation,
                  ceil_mode=window.ceil_mode)


def _avg_pool_torch(b: Any, node: Context, args: list) -> Any:
    """F.avg_pool2d with the op's count_include_pad and divisor_override"""
    window = node.params["window"]
    x, padding = symmetric_input(b, args[0], window.padding)
    if padding == (0, 0) and any(window.padding):
        raise ValueError(f"avg_pool2d ({node.where}): PyTorch pads both sides alike, got "
                         f"padding {window.padding}")
    return b.call(b.F.avg_pool2d, x, window.kernel, window.stride, padding,
                  ceil_mode=window.ceil_mode,
                  count_include_pad=node.params.get("count_include_pad", True),
                  divisor_override=node.params.get("divisor_override"))


@defop("max_pool2d", samples=_max_pool_samples, kind="window", macs=0, window=window_of,
       onnx=_max_pool_onnx, torch=_max_pool_torch, label=pool_label)
class MaxPool2d(Function):
    """Max over windows; the gradient of a window goes to one maximal element."""

    backward_reads = ()

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, *, window: Window) -> np.ndarray:
        out, winner = max_pool_forward(x, window)
        ctx.save_for_backward(winner)
        return out

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        (winner,) = ctx.saved
        return (MaxPool2dScatter.apply(g, winner=winner, input_hw=ctx.inputs[0].shape[2:],
                                       window=ctx.params["window"]),)


def _scatter_samples(rng: np.random.Generator) -> list[Sample]:
    samples = []
    for s in _max_pool_samples(rng):
        out, winner = max_pool_forward(s.args[0], s.params["window"])
        params = {**s.params, "winner": winner, "input_hw": s.args[0].shape[2:]}
        samples.append(Sample((rng.standard_normal(out.shape),), params, s.label))
    return samples


@defop("max_pool2d_scatter", samples=_scatter_samples, kind="adjoint", macs=0, field="keep",
       onnx=BACKWARD_ONLY, torch="it appears in backward graphs only",
       label=pool_label)
class MaxPool2dScatter(Function):
    """(N, C, OH, OW) -> (N, C, H, W): each value added at its window's winning element."""

    backward_reads = ()

    @staticmethod
    def forward(ctx: Context, g: np.ndarray, *, winner: np.ndarray, input_hw: tuple[int, int],
                window: Window) -> np.ndarray:
        return max_pool_scatter(g, winner, input_hw, window)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        return (MaxPool2dGather.apply(g, winner=ctx.params["winner"],
                                      window=ctx.params["window"]),)


def _gather_samples(rng: np.random.Generator) -> list[Sample]:
    samples = []
    for s in _max_pool_samples(rng):
        _, winner = max_pool_forward(s.args[0], s.params["window"])
        samples.append(Sample((rng.standard_normal(s.args[0].shape),),
                              {**s.params, "winner": winner}, s.label))
    return samples


@defop("max_pool2d_gather", samples=_gather_samples, kind="adjoint", macs=0, field="whole",
       onnx=BACKWARD_ONLY, torch="it appears in backward graphs only",
       label=pool_label)
class MaxPool2dGather(Function):
    """(N, C, H, W) -> (N, C, OH, OW): each window's value at its winning element."""

    backward_reads = ()

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, *, winner: np.ndarray, window: Window
                ) -> np.ndarray:
        return max_pool_gather(x, winner, window)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        return (MaxPool2dScatter.apply(g, input_hw=ctx.inputs[0].shape[2:], **ctx.params),)


# ----------------------------------------------------------------------------- average
def _avg_samples(rng: np.random.Generator) -> list[Sample]:
    def case(shape: tuple, label: str, kernel=(2, 2), stride=(2, 2), padding=(0, 0, 0, 0),
             divisor: float | np.ndarray = 4.0, count_include_pad: bool = True) -> Sample:
        params = {"window": Window(kernel, stride, padding), "divisor": divisor,
                  "count_include_pad": count_include_pad, "divisor_override": None}
        return Sample((rng.standard_normal(shape),), params, label)

    border = np.array([[4.0, 6.0], [6.0, 9.0]])  # 3x3 windows clipped at the input
    return [case((2, 2, 4, 4), "2x2 stride 2"),
            case((1, 2, 4, 4), "3x3 stride 2 padding 1, overlapping", (3, 3), (2, 2),
                 (1, 1, 1, 1), border, count_include_pad=False)]


@defop("avg_pool2d", samples=_avg_samples, kind="window", macs=0, window=window_of,
       onnx=_avg_pool_onnx, torch=_avg_pool_torch, label=pool_label)
class AvgPool2d(Function):
    """Window sums divided by a divisor per output position (PyTorch's border rules)."""

    backward_reads = ()

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, *, window: Window, divisor: float | np.ndarray,
                count_include_pad: bool = True, divisor_override: int | None = None
                ) -> np.ndarray:
        # divisor is what count_include_pad and divisor_override make of the window (see
        # functional.avg_pool2d); they are kept to name the op as PyTorch does
        return avg_pool_forward(x, window, divisor)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        return (AvgPool2dSpread.apply(g, input_hw=ctx.inputs[0].shape[2:], **ctx.params),)


def _spread_samples(rng: np.random.Generator) -> list[Sample]:
    samples = []
    for s in _avg_samples(rng):
        out = avg_pool_forward(s.args[0], s.params["window"], s.params["divisor"])
        samples.append(Sample((rng.standard_normal(out.shape),),
                              {**s.params, "input_hw": s.args[0].shape[2:]}, s.label))
    return samples


@defop("avg_pool2d_spread", samples=_spread_samples, kind="adjoint", macs=0, field="keep",
       onnx=BACKWARD_ONLY, torch="it appears in backward graphs only",
       label=pool_label)
class AvgPool2dSpread(Function):
    """(N, C, OH, OW) -> (N, C, H, W): g / divisor added over each window (the adjoint)."""

    backward_reads = ()

    @staticmethod
    def forward(ctx: Context, g: np.ndarray, *, input_hw: tuple[int, int], window: Window,
                divisor: float | np.ndarray, count_include_pad: bool = True,
                divisor_override: int | None = None) -> np.ndarray:
        return avg_pool_spread(g, input_hw, window, divisor)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        params = dict(ctx.params)
        del params["input_hw"]
        return (AvgPool2d.apply(g, **params),)
