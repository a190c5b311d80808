"""The convolution kernels: im2col through strided views into reused work buffers, one
batched BLAS product per batch chunk, and col2im as strided additions (never np.add.at).

`ops/conv.py` registers the primitives built on these; `reference.py` holds the textbook
loops they must agree with. Geometry: a `Window` (kernel, stride, dilation, padding as
(top, bottom, left, right)).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import all_finite, quiet, scratch
from .windows import StridePhases, Window, col2im_add, pad_spatial, window_view

CHUNK_BYTES = 4 << 20        # im2col columns per batch chunk: they stay in cache for the product
WHOLE_BATCH_BYTES = 8 << 20   # up to this, one chunk: its columns are kept for the weight grad


# ----------------------------------------------------------------------------- numpy kernels
def _chunks(n: int, per_item: int, itemsize: int) -> tuple[range, int]:
    """Batch chunk starts and size so that one chunk's columns (`per_item` elements of
    `itemsize` bytes per image) stay about `CHUNK_BYTES`, or the whole batch when its
    columns are at most `WHOLE_BATCH_BYTES` (the forward then keeps them for backward)."""
    item_bytes = max(per_item * itemsize, 1)
    step = max(n, 1) if n * item_bytes <= WHOLE_BATCH_BYTES else \
        max(1, CHUNK_BYTES // item_bytes)
    return range(0, n, step), step


class _Im2col:
    """im2col of batch chunks into reused buffers (no page faults, cache-sized pieces).

    Each chunk is padded into a buffer whose border stays zero, then its windows are copied
    as columns (C*KH*KW, B*OH*width): the batch sits in the columns, so one matrix product
    serves the whole chunk. With stride 1 the columns
    are "wide": width = padded W rather than OW, so that every (C, KH, KW) row is one
    contiguous run of the padded input (garbage in the last W - OW positions of each output
    row, which callers crop or weight by zero); numpy copies long runs many times faster
    than rows of OW elements.
    """

    def __init__(self, x: np.ndarray, window: Window, keep_cols: bool = False) -> None:
        n, c, h, w = x.shape
        self.keep_cols = keep_cols  # columns in a fresh array (kept for backward)
        kernel, padding = window.kernel, window.padding
        self.x, self.kernel, self.stride, self.dilation = x, kernel, window.stride, \
            window.dilation
        self.top, self.left = padding[0], padding[2]
        padded_hw = (h + padding[0] + padding[1], w + padding[2] + padding[3])
        self.out_hw = window.out_size(h, w)
        self.wide = window.stride == (1, 1)
        self.width = padded_hw[1] if self.wide else self.out_hw[1]
        self.starts, self.step = _chunks(n, c * kernel[0] * kernel[1] * self.out_hw[0]
                                         * self.width, x.dtype.itemsize)
        batch = min(self.step, n)
        spare_row = 1 if self.wide else 0  # wide runs of the last row read one row past
        self.padded = scratch.take("im2col.padded", (batch, c, padded_hw[0] + spare_row,
                                                     padded_hw[1]), x.dtype, zero=True) \
            if any(padding) or self.wide else None
        self.cols_shape = (c,) + kernel + (batch, self.out_hw[0], self.width)
        self.cols: np.ndarray | None = None  # allocated by the first chunk

    def chunk(self, start: int) -> np.ndarray:
        """Columns (C*KH*KW, B*OH*width) of images start .. start + B."""
        chunk = self.x[start:start + self.step]
        b, h, w = len(chunk), chunk.shape[2], chunk.shape[3]
        if self.padded is not None:
            self.padded[:b, :, self.top:self.top + h, self.left:self.left + w] = chunk
            chunk = self.padded[:b]
        if self.cols is None:
            self.cols = np.empty(self.cols_shape, dtype=self.x.dtype) if self.keep_cols \
                else scratch.take("im2col.cols", self.cols_shape, self.x.dtype)
        cols = self.cols[:, :, :, :b]
        if self.wide:
            np.copyto(cols, self._wide_view(chunk))
        else:
            view = window_view(chunk, self.kernel, self.stride, self.dilation, self.out_hw)
            np.copyto(cols, view.transpose(1, 2, 3, 0, 4, 5))  # (C, KH, KW, B, OH, OW)
        return cols.reshape(-1, b * self.out_hw[0] * self.width)

    def _wide_view(self, padded: np.ndarray) -> np.ndarray:
        """(C, KH, KW, B, OH, W): element [c, i, j, b, r, q] is the padded input's flat
        element (b, c) at (i*dh + r)*W + j*dw + q."""
        sb, sc, sh, sw = padded.strides
        shape = (padded.shape[1],) + self.kernel + (len(padded), self.out_hw[0], self.width)
        strides = (sc, sh * self.dilation[0], sw * self.dilation[1], sb, sh, sw)
        return as_strided(padded, shape, strides, writeable=False)

    def grad_columns(self, g: np.ndarray, groups: int) -> np.ndarray:
        return grad_columns(g, groups, self.width)


def grad_columns(g: np.ndarray, groups: int, width: int) -> np.ndarray:
    """Upstream gradient of a chunk (B, F, OH, OW) as (G, F/G, B*OH*width), zero in the
    garbage positions of wide columns (width > OW). A work buffer (see `scratch`)."""
    b, f, oh, ow = g.shape
    columns = scratch.take("conv.grad_columns", (f, b, oh, width), g.dtype, zero=width > ow)
    columns[..., :ow] = g.transpose(1, 0, 2, 3)
    return columns.reshape(groups, f // groups, -1)


@quiet
def conv2d_forward(x: np.ndarray, w: np.ndarray, window: Window, groups: int,
                   keep: list | None = None, bias: np.ndarray | None = None) -> np.ndarray:
    """(N, C, H, W) * (F, C/G, KH, KW) (+ bias (F,)) -> (N, F, OH, OW), cross-correlation.

    When the whole batch fits in one chunk and `keep` is a list, the im2col columns are
    appended to it, so that the weight gradient can reuse them (`columns=`).
    """
    n = x.shape[0]
    f, cg, kh, kw = w.shape
    im2col = _Im2col(x, window, keep_cols=keep is not None)
    (oh, ow), width = im2col.out_hw, im2col.width
    weight = w.reshape(groups, f // groups, cg * kh * kw)
    out = np.empty((n, f, oh, ow), dtype=np.result_type(x, w))
    per_filter = np.zeros((f, 1, 1, 1), out.dtype) if bias is None else bias.reshape(f, 1, 1, 1)
    for start in im2col.starts:
        cols = im2col.chunk(start)
        b = cols.shape[1] // (oh * width)
        # (G, F/G, C/G*KH*KW) @ (G, C/G*KH*KW, B*OH*width) -> (G, F/G, B*OH*width)
        result = _product(weight, cols.reshape(groups, cg * kh * kw, -1))
        np.add(result.reshape(f, b, oh, width)[..., :ow], per_filter,
               out=out[start:start + b].transpose(1, 0, 2, 3))
    if keep is not None and len(im2col.starts) == 1:
        keep.append(cols)
    return out


def _product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b into a work buffer (see `scratch`)."""
    out = scratch.take("conv.product", a.shape[:-1] + b.shape[-1:], np.result_type(a, b))
    return np.matmul(a, b, out=out)


@quiet
def conv2d_weight_grad(x: np.ndarray, g: np.ndarray, window: Window, groups: int,
                       columns: np.ndarray | None = None) -> np.ndarray:
    """d<g, conv2d(x, w)>/dw: (N, C, H, W), (N, F, OH, OW) -> (F, C/G, KH, KW).

    `columns`: the im2col of the whole batch kept by `conv2d_forward`, if it has it.
    """
    c = x.shape[1]
    f = g.shape[1]
    kh, kw = window.kernel
    im2col = _Im2col(x, window)
    # wide columns hold input values in their garbage positions, weighted by a zero
    # gradient: an inf or NaN there would make 0 * inf = NaN, so they are zeroed first
    garbage = im2col.width > im2col.out_hw[1] and not all_finite(x)
    total = np.zeros((groups, c // groups * kh * kw, f // groups), dtype=np.result_type(x, g))
    for start in im2col.starts:
        cols = columns if columns is not None else im2col.chunk(start)
        if garbage:
            cols.reshape(cols.shape[0], -1, im2col.width)[..., im2col.out_hw[1]:] = 0
        grad = im2col.grad_columns(g[start:start + im2col.step], groups)
        # (G, C/G*KH*KW, B*OH*width) @ (G, B*OH*width, F/G), summed over chunks
        total += _long_product(cols.reshape(groups, -1, cols.shape[1]), grad.swapaxes(-1, -2))
    return total.swapaxes(-1, -2).reshape(f, c // groups, kh, kw)


LONG_BLOCK = 2048   # the inner length a product of few rows and columns is cut into


def _long_product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(G, M, K) @ (G, K, N) for a small M*N and a long K (the weight gradient of a conv
    with few channels, e.g. LeNet's first layer): BLAS runs such shapes at a fraction of
    its speed, so K is cut into blocks multiplied as one batch and summed (4x faster for
    25 x 57,344 x 6 here)."""
    groups, m, k = a.shape
    n = b.shape[-1]
    blocks = k // LONG_BLOCK
    if m * n > 1024 or blocks < 4:
        return np.matmul(a, b)
    cut = blocks * LONG_BLOCK
    # (G, blocks, M, LONG_BLOCK) @ (G, blocks, LONG_BLOCK, N), summed over the blocks
    head = np.matmul(a[..., :cut].reshape(groups, m, blocks, LONG_BLOCK).swapaxes(1, 2),
                     b[:, :cut].reshape(groups, blocks, LONG_BLOCK, n)).sum(axis=1)
    return head + np.matmul(a[..., cut:], b[:, cut:]) if cut < k else head


@quiet
def conv2d_input_grad(g: np.ndarray, w: np.ndarray, input_hw: tuple[int, int],
                      window: Window, groups: int) -> np.ndarray:
    """d<g, conv2d(x, w)>/dx: (N, F, OH, OW), (F, C/G, KH, KW) -> (N, C, H, W).

    The column gradients w^T g, (C*KH*KW, B*OH*OW) per batch chunk, are summed back by
    col2im. With stride 1, when g has more channels than x (F*H*W > C*OH*OW), the
    convolution of g, padded by d*(K-1) - p, with the flipped kernel (channels swapped per
    group) does the same work with a smaller im2col.
    """
    n, f, oh, ow = g.shape
    _, cg, kh, kw = w.shape
    padding, dilation = window.padding, window.dilation
    full_pad = (dilation[0] * (kh - 1) - padding[0], dilation[0] * (kh - 1) - padding[1],
                dilation[1] * (kw - 1) - padding[2], dilation[1] * (kw - 1) - padding[3])
    exact = (oh + full_pad[0] + full_pad[1] - dilation[0] * (kh - 1),
             ow + full_pad[2] + full_pad[3] - dilation[1] * (kw - 1)) == tuple(input_hw)
    if window.stride != (1, 1) or not exact or not all_finite(w):
        # (the two routes below multiply the weights by zeros where g is padded: with an
        # inf or NaN weight, 0 * inf = NaN would reach elements it does not touch)
        return _col2im_input_grad(g, w, input_hw, window, groups)
    if min(full_pad) >= 0 and f * input_hw[0] * input_hw[1] <= cg * groups * oh * ow:
        flipped = Window(window.kernel, (1, 1), full_pad, dilation)
        return conv2d_forward(g, _flip_kernel(w, groups), flipped, groups)
    return _overlap_add_input_grad(g, w, input_hw, window, groups)


def _flip_kernel(w: np.ndarray, groups: int) -> np.ndarray:
    """(F, C/G, KH, KW) -> (C, F/G, KH, KW), rotated by 180 degrees."""
    f, cg, kh, kw = w.shape
    per_group = w.reshape(groups, f // groups, cg, kh, kw).swapaxes(1, 2)
    return np.ascontiguousarray(per_group[..., ::-1, ::-1]).reshape(groups * cg, f // groups,
                                                                    kh, kw)


def _col2im_input_grad(g: np.ndarray, w: np.ndarray, input_hw: tuple[int, int],
                       window: Window, groups: int) -> np.ndarray:
    """col2im of w^T g, one batch chunk at a time, into the padded input split by stride
    phase (`StridePhases`): the elements of kernel offset (i, j) lie in one phase, so each
    of the KH*KW additions writes rows of OW neighbours instead of every stride-th element."""
    n, f, oh, ow = g.shape
    _, cg, kh, kw = w.shape
    c = cg * groups
    weight_t = w.reshape(groups, f // groups, cg * kh * kw).swapaxes(-1, -2)
    dx = np.empty((n, c) + tuple(input_hw), dtype=np.result_type(g, w))
    starts, step = _chunks(n, c * kh * kw * oh * ow, dx.dtype.itemsize)
    for start in starts:
        grad = grad_columns(g[start:start + step], groups, ow)
        b = grad.shape[-1] // (oh * ow)
        # (G, C/G*KH*KW, F/G) @ (G, F/G, B*OH*OW) -> (G, C/G*KH*KW, B*OH*OW)
        cols = _product(weight_t, grad).reshape(c, kh, kw, b, oh, ow)
        phases = StridePhases((c, b) + tuple(input_hw), window.padding, window.stride, 0.0,
                              dx.dtype)
        for i in range(kh):
            for j in range(kw):
                view = phases.wide_view(i, j, window.dilation)[:, :, :oh, :ow]
                view += cols[:, i, j]
        phases.unpadded(out=dx[start:start + b].transpose(1, 0, 2, 3))
    return dx


def _overlap_add_input_grad(g: np.ndarray, w: np.ndarray, input_hw: tuple[int, int],
                            window: Window, groups: int) -> np.ndarray:
    """Stride 1: col2im as overlap-add of whole padded planes laid end to end.

    g is laid at the top left of zero planes (F, 1 + B, Hp, Wp), the first a margin, and
    cols = w^T g is one product over all of them. With p a flat index into the planes,
      dxp[c, p] = sum_{i,j} cols[(c, i, j), p - i*dh*Wp - j*dw],
    one sum over a strided view. A shift past the left of a row or the top of a plane lands
    on the zeros beyond OW columns or OH rows of the row or plane before
    (Hp = OH + dh*(KH-1), Wp = OW + dw*(KW-1)).
    """
    n, f, oh, ow = g.shape
    _, cg, kh, kw = w.shape
    padding, dilation = window.padding, window.dilation
    c, (top, left) = cg * groups, (padding[0], padding[2])
    hp, wp = input_hw[0] + padding[0] + padding[1], input_hw[1] + padding[2] + padding[3]
    weight_t = w.reshape(groups, f // groups, cg * kh * kw).swapaxes(-1, -2)
    dx = np.empty((n, c) + tuple(input_hw), dtype=np.result_type(g, w))
    starts, step = _chunks(n, c * kh * kw * hp * wp, dx.dtype.itemsize)
    for start in starts:
        chunk = g[start:start + step]
        b = len(chunk)
        planes = scratch.take("conv.planes", (f, 1 + b, hp, wp), g.dtype, zero=True)
        planes[:, 1:, :oh, :ow] = chunk.transpose(1, 0, 2, 3)
        # (G, C/G*KH*KW, F/G) @ (G, F/G, (1 + B)*Hp*Wp)
        cols = _product(weight_t, planes.reshape(groups, f // groups, -1))
        summed = scratch.take("conv.summed", (c, b * hp * wp), cols.dtype)
        _shifted_sum(cols.reshape(c, kh, kw, -1), hp * wp, (dilation[0] * wp, dilation[1]),
                     out=summed)
        dx[start:start + b] = summed.reshape(c, b, hp, wp)[
            :, :, top:top + input_hw[0], left:left + input_hw[1]].transpose(1, 0, 2, 3)
    return dx


def _shifted_sum(cols: np.ndarray, margin: int, shifts: tuple[int, int],
                 out: np.ndarray) -> None:
    """(C, KH, KW, margin + L) -> out (C, L):
    out[c, p] = sum_{i,j} cols[c, i, j, margin + p - i*shifts[0] - j*shifts[1]]."""
    c, kh, kw, size = cols.shape
    assert (kh - 1) * shifts[0] + (kw - 1) * shifts[1] <= margin, "shift past the margin"
    sc, si, sj, item = cols.strides
    view = as_strided(cols[..., margin:], (c, kh, kw, size - margin),
                      (sc, si - shifts[0] * item, sj - shifts[1] * item, item), writeable=False)
    np.sum(view, axis=(1, 2), out=out)


# ----------------------------------------------------------------------------- unfold / fold
@quiet
def unfold_forward(x: np.ndarray, window: Window) -> np.ndarray:
    """im2col: (N, C, H, W) -> (N, C*KH*KW, OH*OW), rows ordered (C, KH, KW) as in PyTorch."""
    n, c, h, width = x.shape
    kernel = window.kernel
    oh, ow = window.out_size(h, width)
    view = window_view(pad_spatial(x, window.padding), kernel, window.stride, window.dilation,
                       (oh, ow))
    return view.reshape(n, c * kernel[0] * kernel[1], oh * ow)


@quiet
def fold_forward(cols: np.ndarray, output_hw: tuple[int, int], window: Window) -> np.ndarray:
    """col2im: (N, C*KH*KW, OH*OW) -> (N, C, H, W), overlapping entries summed."""
    n = cols.shape[0]
    kh, kw = window.kernel
    h, width = output_hw
    top, bottom, left, right = window.padding
    oh, ow = window.out_size(h, width)
    c = cols.shape[1] // (kh * kw)
    xp = np.zeros((n, c, h + top + bottom, width + left + right), dtype=cols.dtype)
    col2im_add(xp, cols.reshape(n, c, kh, kw, oh, ow), window.stride, window.dilation)
    return xp[:, :, top:top + h, left:left + width]
