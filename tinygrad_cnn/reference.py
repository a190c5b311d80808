"""The slow, readable versions: read these first.

Textbook loop implementations of convolution and pooling (one output position and one filter
at a time, in the style of the CS231n notes), with the usual bugs fixed: ties in max pooling
send the gradient to one element only, padding counts as -inf for max pooling, strides need
not divide the input, ceil_mode and PyTorch's average divisors are honoured.

They are the independent reference for the tests, the baseline of the benchmark and the
worked examples of the docs. Shapes: x (N, C, H, W), w (F, C/groups, KH, KW), b (F,).
`padding` is (top, bottom, left, right); `stride`, `dilation` and `kernel` are (h, w) pairs.
"""

from __future__ import annotations

import math

import numpy as np

Pair = tuple[int, int]
Pad4 = tuple[int, int, int, int]


def conv_output_size(size: int, kernel: int, stride: int, pad_total: int, dilation: int) -> int:
    """floor((size + pad_total - dilation*(kernel-1) - 1) / stride) + 1"""
    return (size + pad_total - dilation * (kernel - 1) - 1) // stride + 1


def conv_forward_naive(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: Pair,
                       padding: Pad4, dilation: Pair = (1, 1), groups: int = 1) -> np.ndarray:
    """out[n, f, i, j] = b[f] + sum_{c, p, q} xpad[n, c, i*sh + p*dh, j*sw + q*dw] * w[f, c, p, q]
    where c runs over the channels of f's group."""
    n_batch, _, height, width = x.shape
    n_filters, group_channels, kh, kw = w.shape
    top, bottom, left, right = padding
    xpad = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    out_h = conv_output_size(height, kh, stride[0], top + bottom, dilation[0])
    out_w = conv_output_size(width, kw, stride[1], left + right, dilation[1])
    filters_per_group = n_filters // groups
    out = np.zeros((n_batch, n_filters, out_h, out_w), dtype=np.result_type(x, w))
    for n in range(n_batch):
        for f in range(n_filters):
            first_channel = (f // filters_per_group) * group_channels
            channels = slice(first_channel, first_channel + group_channels)
            for i in range(out_h):
                for j in range(out_w):
                    rows = slice(i * stride[0], i * stride[0] + dilation[0] * (kh - 1) + 1,
                                 dilation[0])
                    cols = slice(j * stride[1], j * stride[1] + dilation[1] * (kw - 1) + 1,
                                 dilation[1])
                    out[n, f, i, j] = np.sum(xpad[n, channels, rows, cols] * w[f])
            if b is not None:
                out[n, f] += b[f]
    return out


def conv_backward_naive(dout: np.ndarray, x: np.ndarray, w: np.ndarray, stride: Pair,
                        padding: Pad4, dilation: Pair = (1, 1), groups: int = 1
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients (dx, dw, db) of sum(dout * conv_forward_naive(x, w, b)): every output
    position hands dout back to the window it read and the filter it used."""
    n_batch, _, height, width = x.shape
    n_filters, group_channels, kh, kw = w.shape
    top, bottom, left, right = padding
    xpad = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    dxpad = np.zeros_like(xpad, dtype=np.result_type(x, dout))
    dw = np.zeros_like(w, dtype=np.result_type(w, dout))
    filters_per_group = n_filters // groups
    for n in range(n_batch):
        for f in range(n_filters):
            first_channel = (f // filters_per_group) * group_channels
            channels = slice(first_channel, first_channel + group_channels)
            for i in range(dout.shape[2]):
                for j in range(dout.shape[3]):
                    rows = slice(i * stride[0], i * stride[0] + dilation[0] * (kh - 1) + 1,
                                 dilation[0])
                    cols = slice(j * stride[1], j * stride[1] + dilation[1] * (kw - 1) + 1,
                                 dilation[1])
                    dw[f] += dout[n, f, i, j] * xpad[n, channels, rows, cols]
                    dxpad[n, channels, rows, cols] += dout[n, f, i, j] * w[f]
    dx = dxpad[:, :, top:top + height, left:left + width]
    return dx, dw, dout.sum(axis=(0, 2, 3))


def pool_output_size(size: int, kernel: int, stride: int, pad: int, dilation: int,
                     ceil_mode: bool) -> int:
    """floor (or ceil) of (size + 2*pad - dilation*(kernel-1) - 1) / stride, plus 1; with
    ceil_mode the last window must start inside the input or the left padding."""
    span = (size + 2 * pad - dilation * (kernel - 1) - 1) / stride
    out = (math.ceil(span) if ceil_mode else math.floor(span)) + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _window_positions(start: int, kernel: int, dilation: int, size: int) -> list[int]:
    """Input indices a window starting at `start` reads, leaving out the padding."""
    return [start + k * dilation for k in range(kernel) if 0 <= start + k * dilation < size]


def max_pool_forward_naive(x: np.ndarray, kernel: Pair, stride: Pair, padding: Pair,
                           dilation: Pair = (1, 1), ceil_mode: bool = False
                           ) -> tuple[np.ndarray, np.ndarray]:
    """Max of each window (padding is -inf) and the (row, col) of its first maximum in
    row-major order (of its last NaN, if it holds any), as an array (N, C, OH, OW, 2);
    (-1, -1) for a window that only covers padding (`F.max_pool2d` refuses those)."""
    n_batch, channels, height, width = x.shape
    out_h = pool_output_size(height, kernel[0], stride[0], padding[0], dilation[0], ceil_mode)
    out_w = pool_output_size(width, kernel[1], stride[1], padding[1], dilation[1], ceil_mode)
    out = np.empty((n_batch, channels, out_h, out_w), dtype=x.dtype)
    where = np.zeros((n_batch, channels, out_h, out_w, 2), dtype=np.int64)
    for n in range(n_batch):
        for c in range(channels):
            for i in range(out_h):
                for j in range(out_w):
                    best, best_at = -np.inf, None
                    rows = _window_positions(i * stride[0] - padding[0], kernel[0],
                                             dilation[0], height)
                    cols = _window_positions(j * stride[1] - padding[1], kernel[1],
                                             dilation[1], width)
                    for r in rows:
                        for q in cols:
                            value = x[n, c, r, q]
                            if best_at is None or value > best or np.isnan(value):
                                best, best_at = value, (r, q)
                    out[n, c, i, j] = best
                    where[n, c, i, j] = (-1, -1) if best_at is None else best_at
    return out, where


def max_pool_backward_naive(dout: np.ndarray, x: np.ndarray, kernel: Pair, stride: Pair,
                            padding: Pair, dilation: Pair = (1, 1),
                            ceil_mode: bool = False) -> np.ndarray:
    """Each window's gradient goes to its one maximum; overlapping windows accumulate."""
    _, where = max_pool_forward_naive(x, kernel, stride, padding, dilation, ceil_mode)
    dx = np.zeros_like(x, dtype=np.result_type(x, dout))
    n_batch, channels, out_h, out_w = dout.shape
    for n in range(n_batch):
        for c in range(channels):
            for i in range(out_h):
                for j in range(out_w):
                    r, q = where[n, c, i, j]
                    if r >= 0:
                        dx[n, c, r, q] += dout[n, c, i, j]
    return dx


def avg_pool_divisor(start: int, kernel: int, size: int, pad: int,
                     count_include_pad: bool) -> int:
    """How many rows (or columns) a window starting at `start` divides by, as PyTorch."""
    end = min(start + kernel, size + pad)
    if count_include_pad:
        return end - start
    return min(end, size) - max(start, 0)


def avg_pool_forward_naive(x: np.ndarray, kernel: Pair, stride: Pair, padding: Pair,
                           ceil_mode: bool = False, count_include_pad: bool = True,
                           divisor_override: int | None = None) -> np.ndarray:
    """Sum of each window's input elements over its divisor."""
    n_batch, channels, height, width = x.shape
    out_h = pool_output_size(height, kernel[0], stride[0], padding[0], 1, ceil_mode)
    out_w = pool_output_size(width, kernel[1], stride[1], padding[1], 1, ceil_mode)
    out = np.zeros((n_batch, channels, out_h, out_w), dtype=x.dtype)
    for i in range(out_h):
        for j in range(out_w):
            top, left = i * stride[0] - padding[0], j * stride[1] - padding[1]
            rows = _window_positions(top, kernel[0], 1, height)
            cols = _window_positions(left, kernel[1], 1, width)
            divisor = divisor_override or (
                avg_pool_divisor(top, kernel[0], height, padding[0], count_include_pad)
                * avg_pool_divisor(left, kernel[1], width, padding[1], count_include_pad))
            window = x[:, :, rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
            out[:, :, i, j] = window.sum(axis=(2, 3)) / divisor
    return out


def avg_pool_backward_naive(dout: np.ndarray, x: np.ndarray, kernel: Pair, stride: Pair,
                            padding: Pair, ceil_mode: bool = False,
                            count_include_pad: bool = True,
                            divisor_override: int | None = None) -> np.ndarray:
    """Each window spreads dout / divisor evenly over the input elements it read."""
    _, _, height, width = x.shape
    dx = np.zeros_like(x, dtype=np.result_type(x, dout))
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            top, left = i * stride[0] - padding[0], j * stride[1] - padding[1]
            rows = _window_positions(top, kernel[0], 1, height)
            cols = _window_positions(left, kernel[1], 1, width)
            divisor = divisor_override or (
                avg_pool_divisor(top, kernel[0], height, padding[0], count_include_pad)
                * avg_pool_divisor(left, kernel[1], width, padding[1], count_include_pad))
            dx[:, :, rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] += \
                dout[:, :, i, j][:, :, None, None] / divisor
    return dx


# ----------------------------------------------------------------------------- textbook layers
def local_conv_forward_naive(x: np.ndarray, w: np.ndarray, b: np.ndarray | None,
                             stride: Pair, padding: Pair, dilation: Pair = (1, 1)
                             ) -> np.ndarray:
    """A locally connected layer, w (OH, OW, F, C, KH, KW), b (F, OH, OW):
    out[n, f, i, j] = b[f, i, j] + sum_{c, p, q} xpad[n, c, i*sh + p*dh, j*sw + q*dw]
    * w[i, j, f, c, p, q] (the filter depends on the position (i, j))."""
    out_h, out_w, n_filters, channels, kh, kw = w.shape
    xpad = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    out = np.zeros((x.shape[0], n_filters, out_h, out_w), dtype=np.result_type(x, w))
    for n in range(x.shape[0]):
        for f in range(n_filters):
            for i in range(out_h):
                for j in range(out_w):
                    total = 0.0 if b is None else b[f, i, j]
                    for c in range(channels):
                        for p in range(kh):
                            for q in range(kw):
                                total += xpad[n, c, i * stride[0] + p * dilation[0],
                                              j * stride[1] + q * dilation[1]] * w[i, j, f, c, p, q]
                    out[n, f, i, j] = total
    return out


def local_response_norm_naive(x: np.ndarray, size: int, alpha: float, beta: float,
                              k: float) -> np.ndarray:
    """out[n, c, ...] = x[n, c, ...] / (k + alpha/size * sum_{c'} x[n, c', ...]^2)^beta,
    c' from c - size//2 to c + (size-1)//2, channels past the edges counting as 0."""
    out = np.empty_like(x)
    channels = x.shape[1]
    for c in range(channels):
        total = np.zeros_like(x[:, 0])
        for other in range(c - size // 2, c + (size - 1) // 2 + 1):
            if 0 <= other < channels:
                total += x[:, other] ** 2
        out[:, c] = x[:, c] / (k + alpha / size * total) ** beta
    return out


def batch_norm_naive(x: np.ndarray, mean: np.ndarray, var: np.ndarray, weight: np.ndarray,
                     bias: np.ndarray, eps: float) -> np.ndarray:
    """out[n, c, ...] = (x[n, c, ...] - mean[c]) / sqrt(var[c] + eps) * weight[c] + bias[c]."""
    out = np.empty_like(x)
    for c in range(x.shape[1]):
        out[:, c] = (x[:, c] - mean[c]) / math.sqrt(var[c] + eps) * weight[c] + bias[c]
    return out


def batch_statistics_naive(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per channel: the mean, the biased variance (to normalise with) and the unbiased one
    (for the running statistics), by summing over every other axis."""
    values = np.moveaxis(x, 1, 0).reshape(x.shape[1], -1)
    count = values.shape[1]
    mean = np.array([sum(row) / count for row in values])
    squares = np.array([sum((v - m) ** 2 for v in row) for row, m in zip(values, mean)])
    return mean, squares / count, squares / (count - 1)
