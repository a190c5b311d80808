"""User-facing CNN functions with the semantics of torch.nn.functional.

Each function validates its arguments once (clear errors with the shapes and the size
arithmetic), normalizes the geometry and calls the registered primitives in `ops`.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from . import ops
from .kernels.pool import max_pool_forward
from .kernels.windows import output_size
from .ops.conv import Conv2d, Conv2dInputGrad, Fold, Unfold
from .ops.local_conv import LocalConv2d
from .ops.norm import BatchNorm, LocalResponseNorm
from .ops.pool import AvgPool2d, MaxPool2d
from .ops.reduce import LogSoftmax, normalize_axis
from .tensor import Tensor, as_tensor

__all__ = ["conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d",
           "global_avg_pool2d", "unfold", "fold", "linear", "flatten", "relu", "dropout",
           "softmax", "log_softmax", "nll_loss", "cross_entropy", "mse_loss",
           "binary_cross_entropy_with_logits", "local_conv2d", "local_response_norm",
           "batch_norm", "output_size"]

IntPair = int | tuple[int, int]


# ----------------------------------------------------------------------------- checks
def _pair(fn: str, arg: str, value: Any, minimum: int) -> tuple[int, int]:
    """An int or (h, w) pair of ints, each at least `minimum`."""
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2:
        raise ValueError(f"{fn}: {arg} must be an int or an (h, w) pair, got {value!r}")
    for item in pair:
        if isinstance(item, bool) or not isinstance(item, numbers.Real):
            raise TypeError(f"{fn}: {arg} must be an int or an (h, w) pair of ints, got "
                            f"{value!r}")
        if not isinstance(item, numbers.Integral):
            raise ValueError(f"{fn}: {arg} must be whole numbers, got {value!r}")
        if item < minimum:
            kind = "positive" if minimum == 1 else "non-negative"
            raise ValueError(f"{fn}: {arg} must be {kind}, got {value!r}")
    return int(pair[0]), int(pair[1])


def _float_tensor(fn: str, arg: str, value: Any) -> Tensor:
    if not isinstance(value, (Tensor, np.ndarray, numbers.Number, list, tuple)):
        raise TypeError(f"{fn}: {arg} must be a Tensor or an array, got {type(value).__name__}")
    tensor = as_tensor(value)
    if tensor.dtype.kind != "f":
        raise TypeError(f"{fn}: {arg} must be floating point, got dtype {tensor.dtype}")
    return tensor


def _batched(fn: str, x: Any) -> tuple[Tensor, bool]:
    """x as (N, C, H, W); a (C, H, W) input is a batch of one (the flag says to unbatch)."""
    x = _float_tensor(fn, "x", x)
    if x.ndim == 3:
        return x.reshape((1,) + x.shape), True
    if x.ndim != 4:
        raise ValueError(f"{fn}: x must be 4-D (N, C, H, W) or 3-D (C, H, W), got shape "
                         f"{x.shape}")
    return x, False


def _common_dtype(*tensors: Tensor | None) -> list[Tensor | None]:
    dtype = np.result_type(*[t.dtype for t in tensors if t is not None])
    return [t.astype(dtype) if t is not None else None for t in tensors]


def _check_fits(fn: str, sizes: tuple[int, ...], kernel: tuple[int, int],
                stride: tuple[int, int], pads: list[tuple[int, int]],
                dilation: tuple[int, int], outs: list[int], rounding: str = "floor") -> None:
    """Raise if an output size is below 1, showing the formula with the numbers."""
    for axis, size, k, s, (before, after), d, out in zip(
            ("height", "width"), sizes, kernel, stride, pads, dilation, outs):
        if out >= 1:
            continue
        pad_text = f"2*{before}" if before == after else f"{before}+{after}"
        padded = "x".join(str(n + b + a) for n, (b, a) in zip(sizes, pads))
        dilated = f" (dilation {dilation[0]}x{dilation[1]})" if dilation != (1, 1) else ""
        raise ValueError(f"{fn}: output {axis} would be {rounding}(({size} + {pad_text} - "
                         f"{d}*({k}-1) - 1)/{s}) + 1 = {out}; the {kernel[0]}x{kernel[1]} "
                         f"kernel{dilated} does not fit the padded {padded} input")


# ----------------------------------------------------------------------------- convolution
def _conv_padding(padding: Any, kernel: tuple[int, int], dilation: tuple[int, int],
                  stride: tuple[int, int]) -> tuple[int, int, int, int]:
    """(top, bottom, left, right); "same" puts the odd extra row/column at the bottom/right."""
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0, 0, 0
        if padding != "same":
            raise ValueError(f"conv2d: padding must be an int, a pair, 'valid' or 'same', got "
                             f"{padding!r}")
        if stride != (1, 1):
            raise ValueError(f"conv2d: padding='same' needs stride 1, got stride {stride}")
        totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return totals[0] // 2, totals[0] - totals[0] // 2, totals[1] // 2, \
            totals[1] - totals[1] // 2
    ph, pw = _pair("conv2d", "padding", padding, 0)
    return ph, ph, pw, pw


def _check_groups(fn: str, groups: Any) -> int:
    if isinstance(groups, bool) or not isinstance(groups, numbers.Integral) or groups < 1:
        raise ValueError(f"{fn}: groups must be a positive int, got {groups!r}")
    return int(groups)


def _check_kernel(fn: str, x: Tensor, weight: Tensor) -> None:
    """A kernel with no rows or columns, or an input with no channels, has nothing to
    multiply: PyTorch refuses both as well. The kernel is the weight's last two sizes."""
    if 0 in weight.shape[-2:]:
        raise ValueError(f"{fn}: weight {weight.shape} has an empty {weight.shape[-2]}x"
                         f"{weight.shape[-1]} kernel; kernels need at least one row and "
                         "column")
    if x.shape[1] == 0:
        raise ValueError(f"{fn}: x {x.shape} has no channels; expected at least one")


def _check_conv_shapes(x: Tensor, weight: Tensor, bias: Tensor | None, groups: int) -> None:
    if weight.ndim != 4:
        raise ValueError(f"conv2d: weight must be 4-D (F, C/groups, KH, KW), got shape "
                         f"{weight.shape}")
    _check_groups("conv2d", groups)
    _check_kernel("conv2d", x, weight)
    n_channels, n_filters = x.shape[1], weight.shape[0]
    if n_channels % groups or n_filters % groups:
        raise ValueError(f"conv2d: channels ({n_channels}) and filters ({n_filters}) must "
                         f"both be divisible by groups={groups}")
    if n_channels != weight.shape[1] * groups:
        raise ValueError(f"conv2d: x has {n_channels} channels but weight expects "
                         f"{weight.shape[1] * groups} ({weight.shape[1]} per group x groups="
                         f"{groups}); x {x.shape}, weight {weight.shape}")
    if bias is not None and bias.shape != (n_filters,):
        raise ValueError(f"conv2d: bias must have shape ({n_filters},) (one per filter), got "
                         f"{bias.shape}")


def conv2d(x: Any, weight: Any, bias: Any = None, stride: IntPair = 1,
           padding: IntPair | str = 0, dilation: IntPair = 1, groups: int = 1) -> Tensor:
    """2-D cross-correlation, as torch.nn.functional.conv2d.

    Parameters
    ----------
    x : (N, C, H, W) or (C, H, W)
    weight : (F, C/groups, KH, KW)
    bias : (F,), optional
    stride, dilation : int or (h, w)
    padding : int, (h, w), "valid" or "same" (stride 1 only)

    Returns
    -------
    (N, F, OH, OW) with OH = floor((H + 2*ph - dh*(KH-1) - 1) / sh) + 1 (likewise OW).

    >>> import numpy as np
    >>> x = np.arange(25.0).reshape(1, 1, 5, 5)
    >>> conv2d(x, np.ones((1, 1, 3, 3)), padding=1, stride=2).shape
    (1, 1, 3, 3)
    """
    x, unbatch = _batched("conv2d", x)
    weight = _float_tensor("conv2d", "weight", weight)
    bias = None if bias is None else _float_tensor("conv2d", "bias", bias)
    _check_conv_shapes(x, weight, bias, groups)
    stride = _pair("conv2d", "stride", stride, 1)
    dilation = _pair("conv2d", "dilation", dilation, 1)
    kernel = weight.shape[2:]
    pad4 = _conv_padding(padding, kernel, dilation, stride)
    pads = [pad4[:2], pad4[2:]]
    outs = [output_size(size, k, s, pad, d)
            for size, pad, k, s, d in zip(x.shape[2:], pads, kernel, stride, dilation)]
    _check_fits("conv2d", x.shape[2:], kernel, stride, pads, dilation, outs)
    x, weight, bias = _common_dtype(x, weight, bias)
    out = Conv2d.apply(x, weight, *([] if bias is None else [bias]), stride=stride,
                       padding=pad4, dilation=dilation, groups=int(groups))
    return out.reshape(out.shape[1:]) if unbatch else out


def conv_transpose2d(x: Any, weight: Any, bias: Any = None, stride: IntPair = 1,
                     padding: IntPair = 0, output_padding: IntPair = 0, groups: int = 1,
                     dilation: IntPair = 1) -> Tensor:
    """Transposed convolution (the gradient of conv2d with respect to its input).

    x is (N, C_in, H, W), weight (C_in, C_out/groups, KH, KW); the output is
    (N, C_out, OH, OW) with OH = (H-1)*sh - 2*ph + dh*(KH-1) + output_padding_h + 1.
    """
    x, unbatch = _batched("conv_transpose2d", x)
    weight = _float_tensor("conv_transpose2d", "weight", weight)
    bias = None if bias is None else _float_tensor("conv_transpose2d", "bias", bias)
    if weight.ndim != 4 or weight.shape[0] != x.shape[1]:
        raise ValueError(f"conv_transpose2d: weight must be 4-D (C_in={x.shape[1]}, "
                         f"C_out/groups, KH, KW); x {x.shape}, weight {weight.shape}")
    groups = _check_groups("conv_transpose2d", groups)
    _check_kernel("conv_transpose2d", x, weight)
    stride = _pair("conv_transpose2d", "stride", stride, 1)
    dilation = _pair("conv_transpose2d", "dilation", dilation, 1)
    ph, pw = _pair("conv_transpose2d", "padding", padding, 0)
    extra = _pair("conv_transpose2d", "output_padding", output_padding, 0)
    for e, s, d in zip(extra, stride, dilation):
        if e >= max(s, d):
            raise ValueError(f"conv_transpose2d: output_padding {extra} must be smaller than "
                             f"the stride {stride} or the dilation {dilation} (per axis, "
                             "as in PyTorch)")
    out_hw = tuple((size - 1) * s - 2 * p + d * (k - 1) + e + 1 for size, s, p, d, k, e in zip(
        x.shape[2:], stride, (ph, pw), dilation, weight.shape[2:], extra))
    if min(out_hw) < 1:
        raise ValueError(f"conv_transpose2d: output size {out_hw} is empty for x {x.shape}, "
                         f"weight {weight.shape}, stride {stride}, padding {(ph, pw)}")
    n_out = weight.shape[1] * groups
    if bias is not None and bias.shape != (n_out,):
        raise ValueError(f"conv_transpose2d: bias must have shape ({n_out},), got {bias.shape}")
    if x.shape[1] % groups:
        raise ValueError(f"conv_transpose2d: {x.shape[1]} input channels are not divisible "
                         f"by groups={groups}")
    x, weight, bias = _common_dtype(x, weight, bias)
    # output_padding e: the first min(e, p) extra rows are inside the cropped padding (the
    # input gradient of a conv whose bottom padding is p - e reaches them); rows past that
    # receive nothing and are zeros.
    inside = [min(e, p) for e, p in zip(extra, (ph, pw))]
    reached_hw = tuple(size - e + e_in for size, e, e_in in zip(out_hw, extra, inside))
    out = Conv2dInputGrad.apply(x, weight, input_hw=reached_hw, stride=stride,
                                padding=(ph, ph - inside[0], pw, pw - inside[1]),
                                dilation=dilation, groups=groups)
    if reached_hw != out_hw:
        out = ops.pad(out, ((0, 0), (0, 0), (0, out_hw[0] - reached_hw[0]),
                            (0, out_hw[1] - reached_hw[1])))
    if bias is not None:
        out = out + bias.reshape(1, -1, 1, 1)
    return out.reshape(out.shape[1:]) if unbatch else out


# ----------------------------------------------------------------------------- pooling
def _pool_geometry(fn: str, x: Tensor, kernel_size: Any, stride: Any, padding: Any,
                   dilation: Any, ceil_mode: bool) -> dict:
    """Kernel, stride, dilation, (top, bottom, left, right) padding and output size.

    Output per axis: floor_or_ceil((H + 2p - d*(K-1) - 1) / s) + 1; with ceil_mode the last
    window must start inside the input or the left padding (PyTorch's rule). The bottom/right
    padding grows to what the last window reaches.
    """
    kernel = _pair(fn, "kernel_size", kernel_size, 1)
    stride = kernel if stride is None or stride == [] else _pair(fn, "stride", stride, 1)
    pad = _pair(fn, "padding", padding, 0)
    dilation = _pair(fn, "dilation", dilation, 1)
    if pad[0] > kernel[0] // 2 or pad[1] > kernel[1] // 2:
        raise ValueError(f"{fn}: padding {pad} must be at most half the kernel size {kernel} "
                         "(padding <= kernel_size // 2, as in PyTorch)")
    out_hw = []
    for size, k, s, p, d in zip(x.shape[2:], kernel, stride, pad, dilation):
        span = size + 2 * p - d * (k - 1) - 1
        out = (-(-span // s) if ceil_mode else span // s) + 1
        if ceil_mode and out >= 1 and (out - 1) * s >= size + p:
            out -= 1
        out_hw.append(out)
    _check_fits(fn, x.shape[2:], kernel, stride, [(p, p) for p in pad], dilation, out_hw,
                "ceil" if ceil_mode else "floor")
    _check_windows_reach_input(fn, x.shape[2:], kernel, stride, pad, dilation, out_hw)
    pad4 = []
    for size, k, s, p, d, out in zip(x.shape[2:], kernel, stride, pad, dilation, out_hw):
        reach = (out - 1) * s + d * (k - 1) + 1  # the last window's end, past any padding
        pad4 += [p, max(reach - size - p, 0)]
    return {"kernel": kernel, "stride": stride, "dilation": dilation, "padding": tuple(pad4),
            "out_hw": tuple(out_hw)}


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
    geometry = _pool_geometry("max_pool2d", x, kernel_size, stride, padding, dilation,
                              ceil_mode)
    out_hw = geometry.pop("out_hw")
    out = MaxPool2d.apply(x, **geometry)
    if return_indices:  # the winners of this very call: saved by the node, else recomputed
        winner = out.grad_fn.saved[0] if out.grad_fn is not None else \
            max_pool_forward(x.data, **geometry)[1]
        indices = Tensor(_max_indices(x.data, winner, geometry, out_hw))
    if unbatch:
        out = out.reshape(out.shape[1:])
        indices = indices.reshape(indices.shape[1:]) if return_indices else None
    return (out, indices) if return_indices else out


def _max_indices(x: np.ndarray, winner: np.ndarray, geometry: dict,
                 out_hw: tuple[int, int]) -> np.ndarray:
    """Flat input-plane index h*W + w of each window's winner (its kernel offset)."""
    winner = winner.astype(np.int64)
    kw, (sh, sw), (dh, dw) = geometry["kernel"][1], geometry["stride"], geometry["dilation"]
    top, left = geometry["padding"][0], geometry["padding"][2]
    rows = np.arange(out_hw[0])[:, None] * sh - top + (winner // kw) * dh
    cols = np.arange(out_hw[1])[None, :] * sw - left + (winner % kw) * dw
    return (rows * x.shape[3] + cols).astype(np.int64)


def _avg_divisor(x: Tensor, geometry: dict, count_include_pad: bool) -> np.ndarray:
    """Per output position: the window area clipped to the padded input (count_include_pad)
    or to the input itself, as PyTorch computes it."""
    per_axis = []
    for size, k, s, p, out in zip(x.shape[2:], geometry["kernel"], geometry["stride"],
                                  geometry["padding"][::2], geometry["out_hw"]):
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
    geometry = _pool_geometry("avg_pool2d", x, kernel_size, stride, padding, 1, ceil_mode)
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
        divisor = _avg_divisor(x, geometry, count_include_pad)
    out = AvgPool2d.apply(x, kernel=geometry["kernel"], stride=geometry["stride"],
                          padding=geometry["padding"], divisor=divisor)
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


# ----------------------------------------------------------------------------- unfold / fold
def _window_geometry(fn: str, kernel_size: Any, dilation: Any, padding: Any,
                     stride: Any) -> dict:
    ph, pw = _pair(fn, "padding", padding, 0)
    return {"kernel": _pair(fn, "kernel_size", kernel_size, 1),
            "dilation": _pair(fn, "dilation", dilation, 1), "padding": (ph, ph, pw, pw),
            "stride": _pair(fn, "stride", stride, 1)}


def _window_count(fn: str, hw: tuple[int, int], window: dict) -> tuple[int, int]:
    pads = [window["padding"][:2], window["padding"][2:]]
    counts = [output_size(size, k, s, pad, d) for size, pad, k, s, d in zip(
        hw, pads, window["kernel"], window["stride"], window["dilation"])]
    _check_fits(fn, hw, window["kernel"], window["stride"], pads, window["dilation"], counts)
    return counts[0], counts[1]


def unfold(x: Any, kernel_size: IntPair, dilation: IntPair = 1, padding: IntPair = 0,
           stride: IntPair = 1) -> Tensor:
    """im2col, as torch.nn.functional.unfold: (N, C, H, W) -> (N, C*KH*KW, L), L = OH*OW;
    an unbatched (C, H, W) gives (C*KH*KW, L)."""
    x, unbatch = _batched("unfold", x)
    window = _window_geometry("unfold", kernel_size, dilation, padding, stride)
    _window_count("unfold", x.shape[2:], window)
    out = Unfold.apply(x, **window)
    return out.reshape(out.shape[1:]) if unbatch else out


def fold(x: Any, output_size: IntPair, kernel_size: IntPair, dilation: IntPair = 1,
         padding: IntPair = 0, stride: IntPair = 1) -> Tensor:
    """col2im, as torch.nn.functional.fold: (N, C*KH*KW, L) -> (N, C, H, W), overlaps summed."""
    x = _float_tensor("fold", "x", x)
    window = _window_geometry("fold", kernel_size, dilation, padding, stride)
    output_hw = _pair("fold", "output_size", output_size, 1)
    kernel_area = window["kernel"][0] * window["kernel"][1]
    blocks = _window_count("fold", output_hw, window)
    if x.ndim != 3 or x.shape[1] % kernel_area or x.shape[2] != blocks[0] * blocks[1]:
        raise ValueError(f"fold: x must be (N, C*{kernel_area}, {blocks[0] * blocks[1]}) for "
                         f"output_size {output_hw} and kernel {window['kernel']}, got shape "
                         f"{x.shape}")
    return Fold.apply(x, output_hw=output_hw, **window)


# ----------------------------------------------------------------------------- layers
def linear(x: Any, weight: Any, bias: Any = None) -> Tensor:
    """x @ weight.T + bias, PyTorch's layout: x (..., in), weight (out, in), bias (out,)."""
    x = _float_tensor("linear", "x", x)
    weight = _float_tensor("linear", "weight", weight)
    if weight.ndim != 2 or x.ndim < 1 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: x {x.shape} needs weight of shape (out_features, "
                         f"{x.shape[-1] if x.ndim else '?'}), got {weight.shape}")
    out = x @ weight.T
    if bias is not None:
        bias = _float_tensor("linear", "bias", bias)
        if bias.shape != (weight.shape[0],):
            raise ValueError(f"linear: bias must have shape ({weight.shape[0]},), got "
                             f"{bias.shape}")
        out = out + bias
    return out


def flatten(x: Any, start_axis: int = 0, end_axis: int = -1) -> Tensor:
    """Merge axes start_axis..end_axis into one, as torch.flatten."""
    return ops.flatten(as_tensor(x), start_axis, end_axis)


def relu(x: Any) -> Tensor:
    """max(x, 0)."""
    return ops.ReLU.apply(as_tensor(x))


def dropout(x: Any, p: float = 0.5, training: bool = True,
            rng: np.random.Generator | None = None) -> Tensor:
    """Inverted dropout: zero each element with probability p, scale the rest by 1/(1-p)."""
    x = as_tensor(x)
    if not isinstance(p, numbers.Real) or not 0 <= p <= 1:
        raise ValueError(f"dropout: p must be a probability in [0, 1], got {p!r}")
    if not training or p == 0:
        return x
    if p == 1:
        return x * 0.0
    rng = np.random.default_rng() if rng is None else rng
    keep = rng.random(x.shape) >= p
    return x * ops.constant((keep / (1 - p)).astype(x.dtype))


# ----------------------------------------------------------------------------- textbook layers
def local_conv2d(x: Any, weight: Any, bias: Any = None, stride: IntPair = 1,
                 padding: IntPair = 0, dilation: IntPair = 1) -> Tensor:
    """A locally connected layer: a convolution whose filters are not shared, every output
    position (i, j) having its own filter weight[i, j].

    x (N, C, H, W) or (C, H, W); weight (OH, OW, F, C, KH, KW); bias (F, OH, OW), optional.
    OH and OW follow conv2d's formula, floor((H + 2*ph - dh*(KH-1) - 1) / sh) + 1, and
    must match the weight's first two sizes. Returns (N, F, OH, OW).
    """
    x, unbatch = _batched("local_conv2d", x)
    weight = _float_tensor("local_conv2d", "weight", weight)
    bias = None if bias is None else _float_tensor("local_conv2d", "bias", bias)
    if weight.ndim != 6:
        raise ValueError(f"local_conv2d: weight must be 6-D (OH, OW, F, C, KH, KW), got "
                         f"shape {weight.shape}")
    stride = _pair("local_conv2d", "stride", stride, 1)
    dilation = _pair("local_conv2d", "dilation", dilation, 1)
    ph, pw = _pair("local_conv2d", "padding", padding, 0)
    kernel = weight.shape[4:]
    _check_kernel("local_conv2d", x, weight)
    if weight.shape[3] != x.shape[1]:
        raise ValueError(f"local_conv2d: x has {x.shape[1]} channels but weight expects "
                         f"{weight.shape[3]}; x {x.shape}, weight {weight.shape}")
    pads = [(ph, ph), (pw, pw)]
    outs = [output_size(n, k, s, p, d) for n, k, s, p, d in zip(x.shape[2:], kernel, stride,
                                                                  pads, dilation)]
    _check_fits("local_conv2d", x.shape[2:], kernel, stride, pads, dilation, outs)
    if tuple(weight.shape[:2]) != tuple(outs):
        raise ValueError(
            f"local_conv2d: weight has {weight.shape[0]}x{weight.shape[1]} positions but the "
            f"output is {outs[0]}x{outs[1]}: floor(({x.shape[2]} + 2*{ph} - {dilation[0]}*("
            f"{kernel[0]}-1) - 1)/{stride[0]}) + 1 = {outs[0]} rows and floor(({x.shape[3]} + "
            f"2*{pw} - {dilation[1]}*({kernel[1]}-1) - 1)/{stride[1]}) + 1 = {outs[1]} "
            f"columns; weight must be ({outs[0]}, {outs[1]}, F, {x.shape[1]}, KH, KW)")
    expected_bias = (weight.shape[2], outs[0], outs[1])
    if bias is not None and bias.shape != expected_bias:
        raise ValueError(f"local_conv2d: bias must have shape {expected_bias} (F, OH, OW), "
                         f"got {bias.shape}")
    x, weight, bias = _common_dtype(x, weight, bias)
    out = LocalConv2d.apply(x, weight, *([] if bias is None else [bias]), kernel=kernel,
                            stride=stride, padding=(ph, ph, pw, pw), dilation=dilation)
    return out.reshape(out.shape[1:]) if unbatch else out


def local_response_norm(x: Any, size: int, alpha: float = 1e-4, beta: float = 0.75,
                        k: float = 1.0) -> Tensor:
    """Local response normalization across channels, as in AlexNet and
    torch.nn.functional.local_response_norm:

        out[:, c] = x[:, c] / (k + alpha/size * sum_{c'} x[:, c']^2)^beta

    the sum running over channels c - size//2 .. c + (size-1)//2 (zero past the edges).
    x is (N, C, ...) with at least 3 dimensions (a 3-D input is (N, C, L), as in PyTorch).
    """
    x = _float_tensor("local_response_norm", "x", x)
    if x.ndim < 3:
        raise ValueError(f"local_response_norm: x must be (N, C, ...) with at least 3 "
                         f"dimensions, got shape {x.shape}")
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
        raise ValueError(f"local_response_norm: size must be a positive int, got {size!r}")
    return LocalResponseNorm.apply(x, size=int(size), alpha=float(alpha), beta=float(beta),
                                   k=float(k))


def _running_stat(name: str, stat: Any, channels: int, training: bool) -> np.ndarray | None:
    """The array behind a running statistic (updated in place in training), checked before
    either statistic is written."""
    if stat is None:
        return None
    array = stat.data if isinstance(stat, Tensor) else stat
    if not isinstance(array, np.ndarray) or array.dtype.kind != "f":
        raise TypeError(f"batch_norm: {name} must be a float numpy array, Buffer or Tensor "
                        f"(it is updated in place), got {type(stat).__name__}")
    if array.shape != (channels,):
        raise ValueError(f"batch_norm: {name} has shape {array.shape} but x has {channels} "
                         f"channels; expected ({channels},)")
    if training and not array.flags.writeable:
        raise ValueError(f"batch_norm: {name} is read-only, but training updates it in "
                         "place; pass a writable array (np.array(...)) or training=False")
    return array


def batch_norm(x: Any, running_mean: Any, running_var: Any, weight: Any = None,
               bias: Any = None, training: bool = False, momentum: float = 0.1,
               eps: float = 1e-5) -> Tensor:
    """Batch normalization over axis 1, as torch.nn.functional.batch_norm.

    x (N, C) or (N, C, H, W). Training: normalise with the batch's mean and biased variance,
    then update running_mean and running_var in place (arrays, Buffers or Tensors; either
    may be None) with momentum: stat = (1 - momentum) * stat + momentum * batch value, the
    variance unbiased (n / (n - 1)). Evaluation: normalise with the running statistics.
    weight and bias (C,) scale and shift (default 1 and 0).
    """
    x = _float_tensor("batch_norm", "x", x)
    for name, value in (("momentum", momentum), ("eps", eps)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or value < 0:
            raise ValueError(f"batch_norm: {name} must be a non-negative number, got "
                             f"{value!r}")
    if x.ndim < 2:
        raise ValueError(f"batch_norm: x must be (N, C) or (N, C, H, W), got shape {x.shape}")
    channels = x.shape[1]
    mean_array = _running_stat("running_mean", running_mean, channels, training)
    var_array = _running_stat("running_var", running_var, channels, training)
    if not training and (mean_array is None or var_array is None):
        raise ValueError("batch_norm: evaluation (training=False) needs running_mean and "
                         "running_var")
    if training and not eps > 0:
        raise ValueError(f"batch_norm: eps must be positive during training, got {eps}")
    count = x.size // max(channels, 1)
    if training and count == 1:
        raise ValueError(f"batch_norm: training needs more than one value per channel, got "
                         f"x of shape {x.shape}")
    weight = ops.constant(np.ones(channels, x.dtype)) if weight is None else \
        _float_tensor("batch_norm", "weight", weight)
    bias = ops.constant(np.zeros(channels, x.dtype)) if bias is None else \
        _float_tensor("batch_norm", "bias", bias)
    for name, tensor in (("weight", weight), ("bias", bias)):
        if tensor.shape != (channels,):
            raise ValueError(f"batch_norm: {name} must have shape ({channels},), got "
                             f"{tensor.shape}")
    stats = [ops.constant(np.asarray(a if a is not None else np.zeros(channels), x.dtype))
             for a in (mean_array, var_array)]
    if x.size == 0:   # an empty batch: an empty output, the running statistics unchanged
        training = False
    out = BatchNorm.apply(x, weight.astype(x.dtype), bias.astype(x.dtype), *stats,
                          training=bool(training), eps=float(eps))
    if training:
        _update_running_stats(x.data, mean_array, var_array, momentum)
    return out


def _update_running_stats(x: np.ndarray, mean: np.ndarray | None, var: np.ndarray | None,
                          momentum: float) -> None:
    axes = (0,) + tuple(range(2, x.ndim))
    count = x.size // x.shape[1]
    if mean is not None:
        mean *= 1 - momentum
        mean += momentum * np.asarray(x.mean(axis=axes), mean.dtype)
    if var is not None:
        var *= 1 - momentum
        var += momentum * np.asarray(x.var(axis=axes) * count / (count - 1), var.dtype)


# ----------------------------------------------------------------------------- losses
_REDUCTIONS = ("mean", "sum", "none")


def _reduce(fn: str, losses: Tensor, reduction: str) -> Tensor:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{fn}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if reduction == "none":
        return losses
    return losses.mean() if reduction == "mean" else losses.sum()


def softmax(x: Any, axis: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along `axis`, computed as exp(log_softmax(x)): no overflow."""
    return log_softmax(x, axis).exp()


def log_softmax(x: Any, axis: int = -1) -> Tensor:
    """x - logsumexp(x) along `axis`, stable for any magnitude (see ops.LogSoftmax)."""
    x = _float_tensor("log_softmax", "x", x)
    (axis,) = normalize_axis("log_softmax", axis, x.ndim)
    return LogSoftmax.apply(x, axis=axis)


def _check_targets(fn: str, scores: Tensor, target: Any) -> np.ndarray:
    """Integer class targets (N,) in [0, C) for scores (N, C)."""
    labels = target.data if isinstance(target, Tensor) else np.asarray(target)
    if scores.ndim != 2:
        raise ValueError(f"{fn}: expected scores of shape (N, C), got {scores.shape}")
    if labels.dtype.kind not in "iu":
        raise TypeError(f"{fn}: target must hold integer class indices, got dtype "
                        f"{labels.dtype}")
    if labels.shape != (scores.shape[0],):
        raise ValueError(f"{fn}: target has shape {labels.shape} but the scores have batch "
                         f"size {scores.shape[0]}; expected shape ({scores.shape[0]},)")
    if labels.size and (labels.min() < 0 or labels.max() >= scores.shape[1]):
        bad = labels[(labels < 0) | (labels >= scores.shape[1])]
        raise ValueError(f"{fn}: target labels must be in [0, {scores.shape[1]}) for "
                         f"{scores.shape[1]} classes, got {sorted(set(bad.tolist()))[:5]}")
    return labels.astype(np.intp, copy=False)


def nll_loss(log_probs: Any, target: Any, reduction: str = "mean") -> Tensor:
    """-log_probs[i, target[i]], reduced: log_probs (N, C), target (N,) integers."""
    log_probs = _float_tensor("nll_loss", "log_probs", log_probs)
    labels = _check_targets("nll_loss", log_probs, target)
    picked = log_probs[np.arange(len(labels)), labels]
    return _reduce("nll_loss", -picked, reduction)


def cross_entropy(logits: Any, target: Any, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """Softmax cross-entropy with integer targets, as torch.nn.functional.cross_entropy.

    loss_i = -(1 - e) log p[i, y_i] - (e / C) sum_c log p[i, c], with e = label_smoothing.
    logits (N, C), target (N,) -> scalar (or (N,) with reduction="none").
    """
    logits = _float_tensor("cross_entropy", "logits", logits)
    labels = _check_targets("cross_entropy", logits, target)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got "
                         f"{label_smoothing}")
    log_probs = log_softmax(logits, axis=1)
    losses = -log_probs[np.arange(len(labels)), labels]
    if label_smoothing:
        smooth = -log_probs.mean(axis=1)
        losses = losses * (1 - label_smoothing) + smooth * label_smoothing
    return _reduce("cross_entropy", losses, reduction)


def _check_same_shape(fn: str, prediction: Tensor, target: Tensor) -> None:
    if prediction.shape != target.shape:
        raise ValueError(f"{fn}: input has shape {prediction.shape} but target has shape "
                         f"{target.shape}; they must match")


def mse_loss(prediction: Any, target: Any, reduction: str = "mean") -> Tensor:
    """(prediction - target)^2, reduced."""
    prediction = _float_tensor("mse_loss", "input", prediction)
    target = _float_tensor("mse_loss", "target", target)
    _check_same_shape("mse_loss", prediction, target)
    difference = prediction - target
    return _reduce("mse_loss", difference * difference, reduction)


def binary_cross_entropy_with_logits(logits: Any, target: Any,
                                     reduction: str = "mean") -> Tensor:
    """-[y log sigmoid(x) + (1-y) log(1 - sigmoid(x))] = softplus(x) - x*y, stable."""
    logits = _float_tensor("binary_cross_entropy_with_logits", "logits", logits)
    target = _float_tensor("binary_cross_entropy_with_logits", "target", target)
    _check_same_shape("binary_cross_entropy_with_logits", logits, target)
    return _reduce("binary_cross_entropy_with_logits", logits.softplus() - logits * target,
                   reduction)
