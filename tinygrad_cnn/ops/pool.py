"""Pooling primitives, each paired with its adjoint, computed in two separable passes.

  max_pool2d          x -> max of each window, remembering which element won
  max_pool2d_scatter  g -> g routed back to the winners (the max-pool backward)
  max_pool2d_gather   u -> u read at the winners (adjoint of the scatter)
  avg_pool2d          x -> window sums / divisor
  avg_pool2d_spread   g -> g / divisor spread over each window (its adjoint)

A window is KH rows of KW columns, so every pass is a loop over kernel offsets, never over
output positions: first along the columns of every padded row, giving (N, C, Hp, OW), then
along the rows of that, giving (N, C, OH, OW). For a column stride above 1 the padded input
is first split by column phase (`StridePhases`), so the column pass reads contiguous rows.
A max-pool winner is the pair (row offset i of each window, column offset j of each row):
the first maximum in row-major order is in the first row holding the window's maximum, at
that row's first maximal column.

`padding` is (top, bottom, left, right): the functional layer adds the extra bottom/right rows
that ceil_mode windows reach.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..autograd import Context, Function
from ..tensor import Tensor
from .conv import StridePhases
from .registry import Sample, defop

Winner = tuple[np.ndarray, np.ndarray]  # (row offset (N, C, OH, OW), column offset (N, C, Hp, OW))


def _out_hw(h: int, w: int, kernel: tuple[int, int], stride: tuple[int, int],
            padding: tuple[int, int, int, int], dilation: tuple[int, int]) -> tuple[int, int]:
    return ((h + padding[0] + padding[1] - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1,
            (w + padding[2] + padding[3] - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1)


def window_rows(per_row: np.ndarray, kernel_h: int, stride_h: int, dilation_h: int,
                out_h: int) -> list[np.ndarray]:
    """Per row offset i: a (N, C, OH, OW) view with [.., oh, ow] = per_row[.., oh*sh + i*dh, ow]."""
    return [per_row[:, :, i * dilation_h:i * dilation_h + stride_h * (out_h - 1) + 1:stride_h]
            for i in range(kernel_h)]


class _Passes:
    """The views the two passes read: column offsets of every padded row, then row offsets."""

    def __init__(self, shape: tuple[int, ...], kernel: tuple[int, int],
                 stride: tuple[int, int], padding: tuple[int, int, int, int],
                 dilation: tuple[int, int]) -> None:
        self.kernel, self.stride, self.padding, self.dilation = kernel, stride, padding, dilation
        self.out_hw = _out_hw(*shape[2:], kernel, stride, padding, dilation)
        self.padded_h = shape[2] + padding[0] + padding[1]

    def columns(self, phases: StridePhases) -> list[np.ndarray]:
        """Per column offset j: (N, C, Hp, OW) with element [.., r, ow] = xp[.., r, ow*sw + j*dw]."""
        return [phases.offset_view(0, j, self.dilation, (self.padded_h, self.out_hw[1]))
                for j in range(self.kernel[1])]

    def rows(self, per_row: np.ndarray) -> list[np.ndarray]:
        return window_rows(per_row, self.kernel[0], self.stride[0], self.dilation[0],
                           self.out_hw[0])

    def column_phases(self, x: np.ndarray | None, shape: tuple[int, ...], fill: float,
                      dtype: np.dtype) -> StridePhases:
        stride = (1, self.stride[1])
        if x is None:
            return StridePhases(shape, self.padding, stride, fill, dtype)
        return StridePhases.of(x, self.padding, stride, fill)


def _running_max(candidates: Sequence[np.ndarray], has_nan: bool) -> tuple[np.ndarray, np.ndarray]:
    """Elementwise max of the candidates and the index of the first one that reaches it
    (NaN counts as the maximum, as in numpy)."""
    best = candidates[0].copy()
    winner = np.zeros(best.shape, dtype=np.int8 if len(candidates) < 128 else np.int16)
    better = np.empty(best.shape, dtype=bool)
    index_if_better = np.empty_like(winner)
    for index, candidate in enumerate(candidates[1:], start=1):
        np.greater(candidate, best, out=better)
        if has_nan:
            better |= np.isnan(candidate) & ~np.isnan(best)
        np.maximum(best, candidate, out=best)
        # indices come in increasing order, so max(winner, index * better) is the first winner
        np.multiply(better, index, out=index_if_better, casting="unsafe")
        np.maximum(winner, index_if_better, out=winner)
    return best, winner


def _select(choice: np.ndarray, values: Sequence[np.ndarray]) -> np.ndarray:
    """values[choice] elementwise: sum_k (choice == k) * values[k]."""
    out = np.zeros(choice.shape, dtype=np.result_type(*values))
    chosen = np.empty(choice.shape, dtype=out.dtype)
    for index, value in enumerate(values):
        np.equal(choice, index, out=chosen, casting="unsafe")
        chosen *= value
        out += chosen
    return out


def max_pool_forward(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
                     padding: tuple[int, int, int, int], dilation: tuple[int, int]
                     ) -> tuple[np.ndarray, Winner]:
    """(N, C, H, W) -> max (N, C, OH, OW) and the winner (row offsets, column offsets).

    Ties go to the first element in row-major order; a window holding NaN gives NaN (as numpy).
    """
    passes = _Passes(x.shape, kernel, stride, padding, dilation)
    has_nan = x.size > 0 and bool(np.isnan(np.max(x)))
    phases = passes.column_phases(x, x.shape, -np.inf, x.dtype)
    row_max, column_winner = _running_max(passes.columns(phases), has_nan)
    best, row_winner = _running_max(passes.rows(row_max), has_nan)
    return best, (row_winner, column_winner)


def winner_offsets(winner: Winner, kernel: tuple[int, int], stride: tuple[int, int],
                   dilation: tuple[int, int]) -> np.ndarray:
    """The winning kernel offset i*KW + j of each window, (N, C, OH, OW)."""
    row_winner, column_winner = winner
    rows = window_rows(column_winner.astype(np.int64), kernel[0], stride[0], dilation[0],
                       row_winner.shape[2])
    return row_winner.astype(np.int64) * kernel[1] + _select(row_winner, rows)


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

    @staticmethod
    def forward(ctx: Context, g: np.ndarray, *, winner: Winner, input_hw: tuple[int, int],
                kernel: tuple[int, int], stride: tuple[int, int],
                padding: tuple[int, int, int, int], dilation: tuple[int, int]) -> np.ndarray:
        shape = g.shape[:2] + tuple(input_hw)
        passes = _Passes(shape, kernel, stride, padding, dilation)
        row_winner, column_winner = winner
        per_row = np.zeros(g.shape[:2] + (passes.padded_h, g.shape[3]), dtype=g.dtype)
        _route(g, row_winner, passes.rows(per_row))
        phases = passes.column_phases(None, shape, 0.0, g.dtype)
        _route(per_row, column_winner, passes.columns(phases))
        return phases.unpadded()

    @staticmethod
    def backward(ctx: Context, u: Tensor) -> tuple:
        params = dict(ctx.params)
        del params["input_hw"]
        return (MaxPool2dGather.apply(u, **params),)


def _route(values: np.ndarray, choice: np.ndarray, targets: Sequence[np.ndarray]) -> None:
    """targets[choice] += values, elementwise (the adjoint of `_select`)."""
    chosen = np.empty(values.shape, dtype=values.dtype)
    for index, target in enumerate(targets):
        np.equal(choice, index, out=chosen, casting="unsafe")
        chosen *= values
        target += chosen


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

    @staticmethod
    def forward(ctx: Context, u: np.ndarray, *, winner: Winner, kernel: tuple[int, int],
                stride: tuple[int, int], padding: tuple[int, int, int, int],
                dilation: tuple[int, int]) -> np.ndarray:
        passes = _Passes(u.shape, kernel, stride, padding, dilation)
        row_winner, column_winner = winner
        per_row = _select(column_winner, passes.columns(passes.column_phases(u, u.shape, 0.0,
                                                                             u.dtype)))
        return _select(row_winner, passes.rows(per_row))

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
    passes = _Passes(x.shape, kernel, stride, padding, (1, 1))
    per_row = _total(passes.columns(passes.column_phases(x, x.shape, 0.0, x.dtype)))
    total = _total(passes.rows(per_row))
    total /= np.asarray(divisor, dtype=x.dtype)
    return total


def _total(parts: Sequence[np.ndarray]) -> np.ndarray:
    total = parts[0].copy()
    for part in parts[1:]:
        total += part
    return total


@defop("avg_pool2d", samples=_avg_samples)
class AvgPool2d(Function):
    """Window sums divided by a divisor per output position (PyTorch's border rules)."""

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

    @staticmethod
    def forward(ctx: Context, g: np.ndarray, *, input_hw: tuple[int, int],
                kernel: tuple[int, int], stride: tuple[int, int],
                padding: tuple[int, int, int, int], divisor: float | np.ndarray) -> np.ndarray:
        shape = g.shape[:2] + tuple(input_hw)
        passes = _Passes(shape, kernel, stride, padding, (1, 1))
        per_row = np.zeros(g.shape[:2] + (passes.padded_h, g.shape[3]), dtype=g.dtype)
        share = g / np.asarray(divisor, dtype=g.dtype)
        for rows in passes.rows(per_row):
            rows += share
        phases = passes.column_phases(None, shape, 0.0, g.dtype)
        for columns in passes.columns(phases):
            columns += per_row
        return phases.unpadded()

    @staticmethod
    def backward(ctx: Context, u: Tensor) -> tuple:
        return (AvgPool2d.apply(u, **_avg_params(ctx.params)),)
