"""Pooling primitives on stride-phase views, each paired with its adjoint.

  max_pool2d          x -> max of each window, remembering which element won
  max_pool2d_scatter  g -> g routed back to the winners (the max-pool backward)
  max_pool2d_gather   u -> u read at the winners (adjoint of the scatter)
  avg_pool2d          x -> window sums / divisor
  avg_pool2d_spread   g -> g / divisor spread over each window (its adjoint)

`padding` is (top, bottom, left, right): the functional layer adds the extra bottom/right rows
that ceil_mode windows reach. The numpy loops are in `kernels/pool.py`.
"""

from __future__ import annotations

import numpy as np

from ..autograd import Context, Function
from ..kernels.pool import (
    avg_pool_forward,
    avg_pool_spread,
    max_pool_forward,
    max_pool_gather,
    max_pool_scatter,
)
from ..tensor import Tensor
from .registry import Sample, defop


def _max_pool_samples(rng: np.random.Generator) -> list[Sample]:
    def case(shape: tuple, label: str, kernel=(2, 2), stride=(2, 2), padding=(0, 0, 0, 0),
             dilation=(1, 1)) -> Sample:
        params = {"kernel": kernel, "stride": stride, "padding": padding, "dilation": dilation}
        return Sample((rng.permutation(np.prod(shape)).reshape(shape) * 0.1,), params, label)

    return [case((2, 2, 4, 4), "2x2 stride 2"),
            case((1, 2, 5, 6), "3x3 stride 2 padding 1, overlapping", (3, 3), (2, 2), (1, 1, 1, 1)),
            case((1, 1, 7, 5), "3x2 dilation 2, ceil extra row", (3, 2), (2, 1), (1, 2, 0, 0),
                 (2, 1))]


def _window_params(params: dict) -> dict:
    return {k: params[k] for k in ("kernel", "stride", "padding", "dilation")}


@defop("max_pool2d", samples=_max_pool_samples)
class MaxPool2d(Function):
    """Max over windows; the gradient of a window goes to one maximal element."""

    backward_reads = ()

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, **window) -> np.ndarray:
        out, winner = max_pool_forward(x, **window)
        ctx.save_for_backward(winner)
        return out

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        (winner,) = ctx.saved
        return (MaxPool2dScatter.apply(g, winner=winner, input_hw=ctx.inputs[0].shape[2:],
                                       **_window_params(ctx.params)),)


def _scatter_samples(rng: np.random.Generator) -> list[Sample]:
    samples = []
    for s in _max_pool_samples(rng):
        out, winner = max_pool_forward(s.args[0], **s.params)
        params = {**s.params, "winner": winner, "input_hw": s.args[0].shape[2:]}
        samples.append(Sample((rng.standard_normal(out.shape),), params, s.label))
    return samples


@defop("max_pool2d_scatter", samples=_scatter_samples)
class MaxPool2dScatter(Function):
    """(N, C, OH, OW) -> (N, C, H, W): each value added at its window's winning element."""

    backward_reads = ()

    @staticmethod
    def forward(ctx: Context, g: np.ndarray, *, winner: np.ndarray, input_hw: tuple[int, int],
                kernel: tuple[int, int], stride: tuple[int, int],
                padding: tuple[int, int, int, int], dilation: tuple[int, int]) -> np.ndarray:
        return max_pool_scatter(g, winner, input_hw, kernel, stride, padding, dilation)

    @staticmethod
    def backward(ctx: Context, u: Tensor) -> tuple:
        params = dict(ctx.params)
        del params["input_hw"]
        return (MaxPool2dGather.apply(u, **params),)


def _gather_samples(rng: np.random.Generator) -> list[Sample]:
    samples = []
    for s in _max_pool_samples(rng):
        _, winner = max_pool_forward(s.args[0], **s.params)
        samples.append(Sample((rng.standard_normal(s.args[0].shape),),
                              {**s.params, "winner": winner}, s.label))
    return samples


@defop("max_pool2d_gather", samples=_gather_samples)
class MaxPool2dGather(Function):
    """(N, C, H, W) -> (N, C, OH, OW): each window's value at its winning element."""

    backward_reads = ()

    @staticmethod
    def forward(ctx: Context, u: np.ndarray, *, winner: np.ndarray, kernel: tuple[int, int],
                stride: tuple[int, int], padding: tuple[int, int, int, int],
                dilation: tuple[int, int]) -> np.ndarray:
        return max_pool_gather(u, winner, kernel, stride, padding, dilation)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        return (MaxPool2dScatter.apply(g, input_hw=ctx.inputs[0].shape[2:], **ctx.params),)


# ----------------------------------------------------------------------------- average
def _avg_samples(rng: np.random.Generator) -> list[Sample]:
    def case(shape: tuple, label: str, kernel=(2, 2), stride=(2, 2), padding=(0, 0, 0, 0),
             divisor: float | np.ndarray = 4.0) -> Sample:
        params = {"kernel": kernel, "stride": stride, "padding": padding, "divisor": divisor}
        return Sample((rng.standard_normal(shape),), params, label)

    border = np.array([[4.0, 6.0], [6.0, 9.0]])  # 3x3 windows clipped at the padding
    return [case((2, 2, 4, 4), "2x2 stride 2"),
            case((1, 2, 3, 3), "3x3 stride 2 padding 1, overlapping", (3, 3), (2, 2),
                 (1, 1, 1, 1), border)]


def _avg_params(params: dict) -> dict:
    return {k: params[k] for k in ("kernel", "stride", "padding", "divisor")}


@defop("avg_pool2d", samples=_avg_samples)
class AvgPool2d(Function):
    """Window sums divided by a divisor per output position (PyTorch's border rules)."""

    backward_reads = ()

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, **params) -> np.ndarray:
        return avg_pool_forward(x, **params)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        return (AvgPool2dSpread.apply(g, input_hw=ctx.inputs[0].shape[2:], **ctx.params),)


def _spread_samples(rng: np.random.Generator) -> list[Sample]:
    samples = []
    for s in _avg_samples(rng):
        out = avg_pool_forward(s.args[0], **s.params)
        samples.append(Sample((rng.standard_normal(out.shape),),
                              {**s.params, "input_hw": s.args[0].shape[2:]}, s.label))
    return samples


@defop("avg_pool2d_spread", samples=_spread_samples)
class AvgPool2dSpread(Function):
    """(N, C, OH, OW) -> (N, C, H, W): g / divisor added over each window (the adjoint)."""

    backward_reads = ()

    @staticmethod
    def forward(ctx: Context, g: np.ndarray, *, input_hw: tuple[int, int],
                kernel: tuple[int, int], stride: tuple[int, int],
                padding: tuple[int, int, int, int], divisor: float | np.ndarray) -> np.ndarray:
        return avg_pool_spread(g, input_hw, kernel, stride, padding, divisor)

    @staticmethod
    def backward(ctx: Context, u: Tensor) -> tuple:
        return (AvgPool2d.apply(u, **_avg_params(ctx.params)),)
