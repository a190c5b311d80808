"""Pooling primitives on stride-phase views, each paired with its adjoint.

  max_pool2d          x -> max of each window, remembering which element won
  max_pool2d_scatter  g -> g routed back to the winners (the max-pool backward)
  max_pool2d_gather   u -> u read at the winners (adjoint of the scatter)
  avg_pool2d          x -> window sums / divisor
  avg_pool2d_spread   g -> g / divisor spread over each window (its adjoint)

`padding` is (top, bottom, left, right): the functional layer adds the extra bottom/right rows
that ceil_mode windows reach. Pooling loops over the KH*KW kernel offsets, never over output
positions, and each offset is one contiguous "wide" view of the input split by stride phase
(see `StridePhases`): results are computed on the wide grid and cropped to (OH, OW).
"""

from __future__ import annotations

import numpy as np

from ..autograd import Context, Function
from ..tensor import Tensor
from .registry import Sample, defop
from .windows import StridePhases


def _offsets(kernel: tuple[int, int]) -> list[tuple[int, int, int]]:
    return [(i * kernel[1] + j, i, j) for i in range(kernel[0]) for j in range(kernel[1])]


def _out_hw(h: int, w: int, kernel: tuple[int, int], stride: tuple[int, int],
            padding: tuple[int, int, int, int], dilation: tuple[int, int]) -> tuple[int, int]:
    return ((h + padding[0] + padding[1] - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1,
            (w + padding[2] + padding[3] - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1)


def max_pool_forward(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
                     padding: tuple[int, int, int, int], dilation: tuple[int, int]
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(N, C, H, W) -> max (N, C, OH, OW) and the winning kernel offset i*KW + j of each window.

    Ties go to the first offset in row-major order; a window holding NaN gives NaN and its
    last NaN in row-major order wins; padding (-inf) never wins: a window whose real
    elements are all -inf is won by its first real element (PyTorch's rules).
    """
    out_h, out_w = _out_hw(*x.shape[2:], kernel, stride, padding, dilation)
    phases = StridePhases.of(x, padding, stride, -np.inf)
    best = phases.wide_view(0, 0, dilation).copy()
    winner = np.zeros(best.shape, dtype=np.uint8 if kernel[0] * kernel[1] <= 255 else np.int32)
    better = np.empty(best.shape, dtype=bool)
    better_as_number = better.view(np.uint8) if winner.dtype == np.uint8 else better
    offset_if_better = np.empty_like(winner)
    has_nan = x.size > 0 and bool(np.isnan(np.max(x)))
    for k, i, j in _offsets(kernel)[1:]:
        candidate = phases.wide_view(i, j, dilation)
        np.greater(candidate, best, out=better)
        if has_nan:
            better |= np.isnan(candidate)
        np.maximum(best, candidate, out=best)  # NaN propagates, as in numpy
        # offsets come in increasing order, so max(winner, k * better) records the new winner
        np.multiply(better_as_number, winner.dtype.type(k), out=offset_if_better,
                    casting="unsafe")
        np.maximum(winner, offset_if_better, out=winner)
    best, winner = best[:, :, :out_h, :out_w].copy(), winner[:, :, :out_h, :out_w].copy()
    if padding[0] or padding[2]:
        _first_real_wins_empty_windows(best, winner, kernel, stride, padding, dilation)
    return best, winner


def _first_real_wins_empty_windows(best: np.ndarray, winner: np.ndarray,
                                   kernel: tuple[int, int], stride: tuple[int, int],
                                   padding: tuple[int, int, int, int],
                                   dilation: tuple[int, int]) -> None:
    """Where a window's maximum is -inf, a top/left padding cell may have won the tie: give
    the window to its first real element, the first row i and column j with
    start + i*d >= 0, i.e. i = max(0, ceil(-start / d))."""
    stuck = best == -np.inf
    if not stuck.any():
        return
    out_h, out_w = best.shape[2:]
    first_row = np.maximum(0, -((np.arange(out_h) * stride[0] - padding[0]) // dilation[0]))
    first_col = np.maximum(0, -((np.arange(out_w) * stride[1] - padding[2]) // dilation[1]))
    first_real = first_row[:, None] * kernel[1] + first_col[None, :]
    np.copyto(winner, np.broadcast_to(first_real, winner.shape).astype(winner.dtype),
              where=stuck)


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
        phases = StridePhases(g.shape[:2] + tuple(input_hw), padding, stride, 0.0, g.dtype)
        no_offset = kernel[0] * kernel[1]  # marks the garbage positions: they route nothing
        g_wide, winner_wide = phases.widen(g), phases.widen(winner, no_offset)
        is_winner = np.empty(g_wide.shape, dtype=g.dtype)  # 1.0 where offset k won, else 0.0
        for k, i, j in _offsets(kernel):
            np.equal(winner_wide, k, out=is_winner, casting="unsafe")
            is_winner *= g_wide
            view = phases.wide_view(i, j, dilation)
            view += is_winner
        return phases.unpadded()

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
        phases = StridePhases.of(u, padding, stride)
        winner_wide = phases.widen(winner, kernel[0] * kernel[1])
        out = np.zeros(winner_wide.shape, dtype=u.dtype)
        is_winner = np.empty(winner_wide.shape, dtype=u.dtype)
        for k, i, j in _offsets(kernel):
            np.equal(winner_wide, k, out=is_winner, casting="unsafe")
            is_winner *= phases.wide_view(i, j, dilation)
            out += is_winner
        return out[:, :, :winner.shape[2], :winner.shape[3]].copy()

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


def avg_pool_forward(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
                     padding: tuple[int, int, int, int], divisor: float | np.ndarray
                     ) -> np.ndarray:
    """(N, C, H, W) -> window sums / divisor, (N, C, OH, OW); divisor is a scalar or (OH, OW)."""
    out_h, out_w = _out_hw(*x.shape[2:], kernel, stride, padding, (1, 1))
    phases = StridePhases.of(x, padding, stride)
    total = phases.wide_view(0, 0, (1, 1)).copy()
    for _, i, j in _offsets(kernel)[1:]:
        total += phases.wide_view(i, j, (1, 1))
    return total[:, :, :out_h, :out_w] / np.asarray(divisor, dtype=x.dtype)


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
        phases = StridePhases(g.shape[:2] + tuple(input_hw), padding, stride, 0.0, g.dtype)
        share = phases.widen(g / np.asarray(divisor, dtype=g.dtype))  # zero past (OH, OW)
        for _, i, j in _offsets(kernel):
            view = phases.wide_view(i, j, (1, 1))
            view += share
        return phases.unpadded()

    @staticmethod
    def backward(ctx: Context, u: Tensor) -> tuple:
        return (AvgPool2d.apply(u, **_avg_params(ctx.params)),)
