"""The pooling kernels: loops over the KH*KW kernel offsets, never over output positions.

Each offset is one contiguous "wide" view of the input split by stride phase (see
`StridePhases`): results are computed on the wide grid and cropped to (OH, OW). Every
(N, C) plane is pooled on its own, so the kernels see (N*C, 1, H, W) and cut it into
cache-sized slices of planes, run on the thread pool (`threads.parallel_batches`): these
passes are memory bound and numpy releases the GIL in them. `ops/pool.py` registers the
primitives built on these; `reference.py` holds the loops they must agree with. Each
public kernel takes the op's `Window`; the loops below it take its pieces, the padding being
`Window.reach` (the extra bottom/right rows and columns of ceil_mode included).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import all_finite, quiet
from .threads import parallel_batches
from .windows import StridePhases, Window


def _planes(array: np.ndarray) -> np.ndarray:
    """(N, C, H, W) as (N*C, 1, H, W): every plane is pooled on its own, so slices of
    planes can be as small as a cache holds, whatever the batch size. A view of a
    C-contiguous array (outputs are written through it), a copy of any other."""
    return array.reshape((array.shape[0] * array.shape[1], 1) + array.shape[2:])


def _offsets(kernel: tuple[int, int]) -> list[tuple[int, int, int]]:
    return [(i * kernel[1] + j, i, j) for i in range(kernel[0]) for j in range(kernel[1])]


def _tiles(array: np.ndarray, kernel: tuple[int, int], out_hw: tuple[int, int]) -> np.ndarray:
    """Non-overlapping windows (stride = kernel, no padding, no dilation) as a writable view
    (KH, KW, N, C, OH, OW): element [i, j, n, c, r, q] is array[n, c, r*KH + i, q*KW + j]."""
    sn, sc, sh, sw = array.strides
    return as_strided(array, kernel + array.shape[:2] + out_hw,
                      (sh, sw, sn, sc, sh * kernel[0], sw * kernel[1]))


def _split_tiles(array: np.ndarray, kernel: tuple[int, int], out_hw: tuple[int, int]
                 ) -> np.ndarray:
    """`_tiles` copied into one contiguous array: numpy runs its loops on contiguous
    operands about ten times faster than on every KW-th element, so one strided copy
    pays for itself when the offsets are read several times. (Writes are the other way
    round: interleaving a contiguous array back costs more than writing each offset.)"""
    return np.ascontiguousarray(_tiles(array, kernel, out_hw))


def _zero_untiled(out: np.ndarray, kernel: tuple[int, int], out_hw: tuple[int, int]) -> None:
    """Zero the last rows and columns of `out` that no tile covers (H % KH, W % KW)."""
    out[:, :, out_hw[0] * kernel[0]:] = 0
    out[:, :, :, out_hw[1] * kernel[1]:] = 0


def _tiled(kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int, int, int],
           dilation: tuple[int, int]) -> bool:
    """Windows that tile the input (2x2/2 pooling, say): read and written in place, with
    no split by stride phase."""
    return tuple(stride) == tuple(kernel) and not any(padding) and tuple(dilation) == (1, 1)


def _max_pool_chunk(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
                    padding: tuple[int, int, int, int], dilation: tuple[int, int],
                    out_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(N, C, H, W) -> max (N, C, OH, OW) and the winning kernel offset i*KW + j of each window.

    Ties go to the first offset in row-major order; a window holding NaN gives NaN and its
    last NaN in row-major order wins; padding (-inf) never wins: a window whose real
    elements are all -inf is won by its first real element (PyTorch's rules).
    """
    out_h, out_w = out_hw
    if _tiled(kernel, stride, padding, dilation):
        tiles = _split_tiles(x, kernel, (out_h, out_w))

        def at(i: int, j: int) -> np.ndarray:
            return tiles[i, j]
    else:
        phases = StridePhases.of(x, padding, stride, -np.inf)

        def at(i: int, j: int) -> np.ndarray:
            return phases.wide_view(i, j, dilation)
    best = at(0, 0).copy()
    winner = np.zeros(best.shape, dtype=np.uint8 if kernel[0] * kernel[1] <= 255 else np.int32)
    better = np.empty(best.shape, dtype=bool)
    better_as_number = better.view(np.uint8) if winner.dtype == np.uint8 else better
    offset_if_better = np.empty_like(winner)
    has_nan = x.size > 0 and bool(np.isnan(np.max(x)))
    for k, i, j in _offsets(kernel)[1:]:
        candidate = at(i, j)
        np.greater(candidate, best, out=better)
        if has_nan:
            better |= np.isnan(candidate)
        np.maximum(best, candidate, out=best)  # NaN propagates, as in numpy
        # offsets come in increasing order, so max(winner, k * better) records the new winner
        np.multiply(better_as_number, winner.dtype.type(k), out=offset_if_better,
                    casting="unsafe")
        np.maximum(winner, offset_if_better, out=winner)
    best, winner = best[:, :, :out_h, :out_w], winner[:, :, :out_h, :out_w]   # crop the wide grid
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




@quiet
def max_pool_forward(x: np.ndarray, window: Window) -> tuple[np.ndarray, np.ndarray]:
    """(N, C, H, W) -> max (N, C, OH, OW) and the winning kernel offset i*KW + j of each
    window (see `_max_pool_chunk` for the rules), batch chunks on the thread pool."""
    kernel, stride, dilation = window.kernel, window.stride, window.dilation
    padding, out_hw = window.reach(*x.shape[2:]), window.out_size(*x.shape[2:])
    out = np.empty(x.shape[:2] + out_hw, x.dtype)
    winner = np.empty(out.shape, np.uint8 if kernel[0] * kernel[1] <= 255 else np.int32)
    x_planes, out_planes, winner_planes = _planes(x), _planes(out), _planes(winner)

    def work(start: int, stop: int) -> None:
        out_planes[start:stop], winner_planes[start:stop] = _max_pool_chunk(
            x_planes[start:stop], kernel, stride, padding, dilation, out_hw)
    parallel_batches(work, len(x_planes), x_planes[:1].nbytes)
    return out, winner


def _route(out: np.ndarray, values: np.ndarray, won: np.ndarray, finite: bool) -> None:
    """out = values where won, else 0. A product by the mask is fastest, but 0 * inf is
    NaN: with non-finite values the masked copy keeps them where they belong."""
    if finite:
        np.multiply(values, won, out=out)
    else:
        out.fill(0)
        np.copyto(out, values, where=won)


@quiet
def max_pool_scatter(g: np.ndarray, winner: np.ndarray, input_hw: tuple[int, int],
                     window: Window) -> np.ndarray:
    """(N, C, OH, OW) -> (N, C, H, W): each value added at its window's winning element,
    and only there (an inf or NaN in g never reaches the other elements)."""
    kernel, stride, dilation = window.kernel, window.stride, window.dilation
    padding = window.reach(*input_hw)
    result = np.empty(g.shape[:2] + tuple(input_hw), g.dtype)
    finite = all_finite(g)
    g, winner, out = _planes(g), _planes(winner), _planes(result)
    if _tiled(kernel, stride, padding, dilation):   # each element in at most one window
        def tiled(start: int, stop: int) -> None:
            part = out[start:stop]
            _zero_untiled(part, kernel, winner.shape[2:])   # the tiles are all written
            tiles = _tiles(part, kernel, winner.shape[2:])
            for k, i, j in _offsets(kernel):
                _route(tiles[i, j], g[start:stop], winner[start:stop] == k, finite)
        parallel_batches(tiled, len(g), out[:1].nbytes)
        return result

    def work(start: int, stop: int) -> None:
        chunk = g[start:stop]
        phases = StridePhases(chunk.shape[:2] + tuple(input_hw), padding, stride, 0.0, g.dtype)
        no_offset = kernel[0] * kernel[1]  # marks the garbage positions: they route nothing
        g_wide, winner_wide = phases.widen(chunk), phases.widen(winner[start:stop], no_offset)
        routed = np.empty(g_wide.shape, dtype=g.dtype)   # g where offset k won, else 0
        for k, i, j in _offsets(kernel):
            _route(routed, g_wide, winner_wide == k, finite)
            view = phases.wide_view(i, j, dilation)
            view += routed
        phases.unpadded(out=out[start:stop])
    parallel_batches(work, len(g), out[:1].nbytes)
    return result


@quiet
def max_pool_gather(u: np.ndarray, winner: np.ndarray, window: Window) -> np.ndarray:
    """(N, C, H, W) -> (N, C, OH, OW): each window's value at its winning element."""
    kernel, stride, dilation = window.kernel, window.stride, window.dilation
    padding = window.reach(*u.shape[2:])
    result = np.zeros(winner.shape, u.dtype)
    finite = all_finite(u)
    u, winner, out = _planes(u), _planes(winner), _planes(result)
    if _tiled(kernel, stride, padding, dilation):
        def tiled(start: int, stop: int) -> None:
            tiles = _split_tiles(u[start:stop], kernel, winner.shape[2:])
            picked = np.empty(out[start:stop].shape, u.dtype)
            for k, i, j in _offsets(kernel):
                _route(picked, tiles[i, j], winner[start:stop] == k, finite)
                out[start:stop] += picked
        parallel_batches(tiled, len(u), u[:1].nbytes)
        return result

    def work(start: int, stop: int) -> None:
        phases = StridePhases.of(u[start:stop], padding, stride)
        winner_wide = phases.widen(winner[start:stop], kernel[0] * kernel[1])
        total = np.zeros(winner_wide.shape, dtype=u.dtype)
        picked = np.empty(winner_wide.shape, dtype=u.dtype)
        for k, i, j in _offsets(kernel):
            _route(picked, phases.wide_view(i, j, dilation), winner_wide == k, finite)
            total += picked
        out[start:stop] = total[:, :, :winner.shape[2], :winner.shape[3]]
    parallel_batches(work, len(u), u[:1].nbytes)
    return result


@quiet
def avg_pool_forward(x: np.ndarray, window: Window, divisor: float | np.ndarray
                     ) -> np.ndarray:
    """(N, C, H, W) -> window sums / divisor, (N, C, OH, OW); divisor is a scalar or (OH, OW).
    The window's dilation is 1."""
    kernel, stride, padding = window.kernel, window.stride, window.reach(*x.shape[2:])
    out_h, out_w = window.out_size(*x.shape[2:])
    result = np.empty(x.shape[:2] + (out_h, out_w), x.dtype)
    divisor = np.asarray(divisor, dtype=x.dtype)
    x, out = _planes(x), _planes(result)
    if _tiled(kernel, stride, padding, (1, 1)):
        def tiled(start: int, stop: int) -> None:
            # rows first (whole rows, read contiguously), then every KW-th column of their
            # sums: KH + KW - 2 additions on shrinking arrays instead of KH*KW - 1
            (kh, kw), chunk, part = kernel, x[start:stop], out[start:stop]
            rows = chunk[:, :, 0:out_h * kh:kh].copy()
            for i in range(1, kh):
                rows += chunk[:, :, i:out_h * kh:kh]
            np.copyto(part, rows[..., 0:out_w * kw:kw])
            for j in range(1, kw):
                part += rows[..., j:out_w * kw:kw]
            part /= divisor
        parallel_batches(tiled, len(x), x[:1].nbytes)
        return result

    def work(start: int, stop: int) -> None:
        phases = StridePhases.of(x[start:stop], padding, stride)
        total = phases.wide_view(0, 0, (1, 1)).copy()
        for _, i, j in _offsets(kernel)[1:]:
            total += phases.wide_view(i, j, (1, 1))
        np.divide(total[:, :, :out_h, :out_w], divisor, out=out[start:stop])
    parallel_batches(work, len(x), x[:1].nbytes)
    return result


@quiet
def avg_pool_spread(g: np.ndarray, input_hw: tuple[int, int], window: Window,
                    divisor: float | np.ndarray) -> np.ndarray:
    """(N, C, OH, OW) -> (N, C, H, W): g / divisor added over each window (the adjoint)."""
    kernel, stride, padding = window.kernel, window.stride, window.reach(*input_hw)
    result = np.empty(g.shape[:2] + tuple(input_hw), g.dtype)
    divisor = np.asarray(divisor, dtype=g.dtype)
    g, out = _planes(g), _planes(result)
    if _tiled(kernel, stride, padding, (1, 1)):   # each element in at most one window
        def tiled(start: int, stop: int) -> None:
            part = out[start:stop]
            _zero_untiled(part, kernel, g.shape[2:])   # the tiles are all written
            share = g[start:stop] / divisor
            tiles = _tiles(part, kernel, g.shape[2:])
            for _, i, j in _offsets(kernel):
                tiles[i, j] = share
        parallel_batches(tiled, len(g), out[:1].nbytes)
        return result

    def work(start: int, stop: int) -> None:
        chunk = g[start:stop]
        phases = StridePhases(chunk.shape[:2] + tuple(input_hw), padding, stride, 0.0, g.dtype)
        share = phases.widen(chunk / divisor)  # zero past (OH, OW)
        for _, i, j in _offsets(kernel):
            view = phases.wide_view(i, j, (1, 1))
            view += share
        phases.unpadded(out=out[start:stop])
    parallel_batches(work, len(g), out[:1].nbytes)
    return result
