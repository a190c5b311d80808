"""Pooling with PyTorch's rules: max, average (its divisors), adaptive and global."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .. import ops
from ..kernels.pool import max_pool_forward
from ..kernels.windows import Window
from ..ops.pool import AvgPool2d, MaxPool2d
from ..tensor import Tensor
from .checks import IntPair, _batched, _pair


# ----------------------------------------------------------------------------- pooling
def _pool_window(fn: str, x: Tensor, kernel_size: Any, stride: Any, padding: Any,
                 dilation: Any, ceil_mode: bool) -> Window:
    """The pool's Window, checked: padding at most half the kernel, an output of at least
    one window, and no window made of padding alone (PyTorch's rules)."""
    kernel = _pair(fn, "kernel_size", kernel_size, 1)
    stride = kernel if stride is None or stride == [] else _pair(fn, "stride", stride, 1)
    pad = _pair(fn, "padding", padding, 0)
    dilation = _pair(fn, "dilation", dilation, 1)
    if pad[0] > kernel[0] // 2 or pad[1] > kernel[1] // 2:
        raise ValueError(f"{fn}: padding {pad} must be at most half the kernel size {kernel} "
                         "(padding <= kernel_size // 2, as in PyTorch)")
    window = Window(kernel, stride, (pad[0], pad[0], pad[1], pad[1]), dilation,
                    bool(ceil_mode))
    out_hw = window.check_fits(fn, *x.shape[2:])
    _check_windows_reach_input(fn, x.shape[2:], kernel, stride, pad, dilation, out_hw)
    return window


def _check_windows_reach_input(fn: str, sizes: tuple[int, ...], kernel: tuple[int, int],
                               stride: tuple[int, int], pad: tuple[int, int],
                               dilation: tuple[int, int], out_hw: list[int]) -> None:
    """With dilation, a window can step over the whole input and hold only padding; its
    result would be made up (PyTorch returns an index outside the input), so refuse it.
    A window starting at `start` first reaches the input at tap i = max(0, ceil(-start/d))."""
    for axis, size, k, s, p, d, out in zip(("row", "column"), sizes, kernel, stride, pad,
                                           dilation, out_hw):
        start = np.arange(out) * s - p
        first = start + np.maximum(0, -(start // d)) * d
        empty = (first >= size) | (first > start + (k - 1) * d)
        if empty.any():
            i = int(np.argmax(empty))
            taps = list(range(int(start[i]), int(start[i]) + (k - 1) * d + 1, d))
            raise ValueError(f"{fn}: output {axis} {i}'s window covers only padding ({axis}s "
                             f"{taps} of an input of size {size}, padding {p}, dilation {d}); "
                             "use less padding or dilation")


def max_pool2d(x: Any, kernel_size: IntPair, stride: IntPair | None = None,
               padding: IntPair = 0, dilation: IntPair = 1, ceil_mode: bool = False,
               return_indices: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """Max over sliding windows, as torch.nn.functional.max_pool2d.

    x is (N, C, H, W) or (C, H, W); padding counts as -inf. The output is (N, C, OH, OW) with
    OH = floor((H + 2*ph - dh*(KH-1) - 1) / sh) + 1 (ceil with ceil_mode). The gradient of a
    window goes to its first maximal element in row-major order. With return_indices, also
    returns the flat index h*W + w of each maximum in its input plane (int64).
    """
    x, unbatch = _batched("max_pool2d", x)
    window = _pool_window("max_pool2d", x, kernel_size, stride, padding, dilation, ceil_mode)
    out = MaxPool2d.apply(x, window=window)
    if return_indices:  # the winners of this very call: saved by the node, else recomputed
        winner = out.grad_fn.saved[0] if out.grad_fn is not None else \
            max_pool_forward(x.data, window)[1]
        indices = Tensor(_max_indices(x.data, winner, window))
    if unbatch:
        out = out.reshape(out.shape[1:])
        indices = indices.reshape(indices.shape[1:]) if return_indices else None
    return (out, indices) if return_indices else out


def _max_indices(x: np.ndarray, winner: np.ndarray, window: Window) -> np.ndarray:
    """Flat input-plane index h*W + w of each window's winner (its kernel offset)."""
    winner = winner.astype(np.int64)
    kw, (sh, sw), (dh, dw) = window.kernel[1], window.stride, window.dilation
    top, left = window.padding[0], window.padding[2]
    out_hw = window.out_size(*x.shape[2:])
    rows = np.arange(out_hw[0])[:, None] * sh - top + (winner // kw) * dh
    cols = np.arange(out_hw[1])[None, :] * sw - left + (winner % kw) * dw
    return (rows * x.shape[3] + cols).astype(np.int64)


def _avg_divisor(x: Tensor, window: Window, count_include_pad: bool) -> np.ndarray:
    """Per output position: the window area clipped to the padded input (count_include_pad)
    or to the input itself, as PyTorch computes it."""
    per_axis = []
    for size, k, s, p, out in zip(x.shape[2:], window.kernel, window.stride,
                                  window.padding[::2], window.out_size(*x.shape[2:])):
        start = np.arange(out) * s - p
        end = np.minimum(start + k, size + p)
        if count_include_pad:
            per_axis.append(end - start)
        else:
            per_axis.append(np.minimum(end, size) - np.maximum(start, 0))
    return np.outer(*per_axis).astype(x.dtype)


def avg_pool2d(x: Any, kernel_size: IntPair, stride: IntPair | None = None,
               padding: IntPair = 0, ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: int | None = None) -> Tensor:
    """Mean over sliding windows, as torch.nn.functional.avg_pool2d.

    The divisor of a window is its area within the padded input (count_include_pad=True) or
    within the input (False), windows reaching past the padding (ceil_mode) being clipped;
    divisor_override replaces it. Output size as in max_pool2d (dilation 1).
    """
    x, unbatch = _batched("avg_pool2d", x)
    window = _pool_window("avg_pool2d", x, kernel_size, stride, padding, 1, ceil_mode)
    if divisor_override is not None:
        if isinstance(divisor_override, bool) or not isinstance(divisor_override,
                                                                numbers.Integral):
            raise TypeError(f"avg_pool2d: divisor_override must be an int, got "
                            f"{divisor_override!r}")
        if divisor_override <= 0:
            raise ValueError(f"avg_pool2d: divisor_override must be positive, got "
                             f"{divisor_override}")
        divisor: float | np.ndarray = float(divisor_override)
    else:
        divisor = _avg_divisor(x, window, count_include_pad)
    out = AvgPool2d.apply(x, window=window, divisor=divisor,
                          count_include_pad=bool(count_include_pad),
                          divisor_override=divisor_override)
    return out.reshape(out.shape[1:]) if unbatch else out


def adaptive_avg_pool2d(x: Any, output_size: int | tuple[int | None, int | None]) -> Tensor:
    """Average over PyTorch's adaptive windows: output cell i of an axis of size H averages
    rows floor(i*H/OH) to ceil((i+1)*H/OH) - 1."""
    x, unbatch = _batched("adaptive_avg_pool2d", x)
    if 0 in x.shape[1:]:
        raise ValueError(f"adaptive_avg_pool2d: x {x.shape} is empty in its channel or "
                         "spatial sizes; every window needs at least one element")
    sizes = output_size if isinstance(output_size, (tuple, list)) else (output_size,) * 2
    sizes = tuple(x.shape[2 + i] if s is None else s for i, s in enumerate(sizes))
    out_h, out_w = _pair("adaptive_avg_pool2d", "output_size", sizes, 1)
    h, w = x.shape[2:]
    if h % out_h == 0 and w % out_w == 0:
        out = avg_pool2d(x, (h // out_h, w // out_w))
    else:
        rows = [(i * h // out_h, -(-(i + 1) * h // out_h)) for i in range(out_h)]
        cols = [(j * w // out_w, -(-(j + 1) * w // out_w)) for j in range(out_w)]
        cells = [x[:, :, r0:r1, c0:c1].mean(axis=(2, 3)) for r0, r1 in rows for c0, c1 in cols]
        out = ops.stack(cells, axis=-1).reshape(x.shape[:2] + (out_h, out_w))
    return out.reshape(out.shape[1:]) if unbatch else out


def global_avg_pool2d(x: Any, keepdims: bool = False) -> Tensor:
    """Mean over H and W: (N, C, H, W) -> (N, C), or (N, C, 1, 1) with keepdims."""
    x, unbatch = _batched("global_avg_pool2d", x)
    out = x.mean(axis=(2, 3), keepdims=keepdims)
    return out.reshape(out.shape[1:]) if unbatch else out


