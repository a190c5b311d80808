"""conv2d, conv_transpose2d, unfold/fold and the locally connected layer: checks, then one
`Window` built per call for the registered primitives."""

from __future__ import annotations

from typing import Any

from .. import ops
from ..kernels.windows import Window
from ..ops.conv import Conv2d, Conv2dInputGrad, Fold, Unfold
from ..ops.local_conv import LocalConv2d
from ..tensor import Tensor
from .checks import (
    IntPair,
    _batched,
    _check_groups,
    _check_kernel,
    _common_dtype,
    _float_tensor,
    _pair,
)


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
    window = Window(kernel, stride, _conv_padding(padding, kernel, dilation, stride), dilation)
    window.check_fits("conv2d", *x.shape[2:])
    x, weight, bias = _common_dtype(x, weight, bias)
    out = Conv2d.apply(x, weight, *([] if bias is None else [bias]), window=window,
                       groups=int(groups))
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
    window = Window(weight.shape[2:], stride, (ph, ph - inside[0], pw, pw - inside[1]),
                    dilation)
    out = Conv2dInputGrad.apply(x, weight, input_hw=reached_hw, window=window, groups=groups)
    if reached_hw != out_hw:
        out = ops.pad(out, ((0, 0), (0, 0), (0, out_hw[0] - reached_hw[0]),
                            (0, out_hw[1] - reached_hw[1])))
    if bias is not None:
        out = out + bias.reshape(1, -1, 1, 1)
    return out.reshape(out.shape[1:]) if unbatch else out


# ----------------------------------------------------------------------------- unfold / fold
def _window(fn: str, kernel_size: Any, dilation: Any, padding: Any, stride: Any) -> Window:
    """The Window of unfold/fold's arguments (symmetric padding, as in PyTorch)."""
    ph, pw = _pair(fn, "padding", padding, 0)
    return Window(_pair(fn, "kernel_size", kernel_size, 1), _pair(fn, "stride", stride, 1),
                  (ph, ph, pw, pw), _pair(fn, "dilation", dilation, 1))


def unfold(x: Any, kernel_size: IntPair, dilation: IntPair = 1, padding: IntPair = 0,
           stride: IntPair = 1) -> Tensor:
    """im2col, as torch.nn.functional.unfold: (N, C, H, W) -> (N, C*KH*KW, L), L = OH*OW;
    an unbatched (C, H, W) gives (C*KH*KW, L)."""
    x, unbatch = _batched("unfold", x)
    window = _window("unfold", kernel_size, dilation, padding, stride)
    window.check_fits("unfold", *x.shape[2:])
    out = Unfold.apply(x, window=window)
    return out.reshape(out.shape[1:]) if unbatch else out


def fold(x: Any, output_size: IntPair, kernel_size: IntPair, dilation: IntPair = 1,
         padding: IntPair = 0, stride: IntPair = 1) -> Tensor:
    """col2im, as torch.nn.functional.fold: (N, C*KH*KW, L) -> (N, C, H, W), overlaps summed."""
    x = _float_tensor("fold", "x", x)
    window = _window("fold", kernel_size, dilation, padding, stride)
    output_hw = _pair("fold", "output_size", output_size, 1)
    kernel_area = window.kernel[0] * window.kernel[1]
    blocks = window.check_fits("fold", *output_hw)
    if x.ndim != 3 or x.shape[1] % kernel_area or x.shape[2] != blocks[0] * blocks[1]:
        raise ValueError(f"fold: x must be (N, C*{kernel_area}, {blocks[0] * blocks[1]}) for "
                         f"output_size {output_hw} and kernel {window.kernel}, got shape "
                         f"{x.shape}")
    return Fold.apply(x, output_hw=output_hw, window=window)


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
    window = Window(kernel, stride, (ph, ph, pw, pw), dilation)
    outs = window.check_fits("local_conv2d", *x.shape[2:])
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
    out = LocalConv2d.apply(x, weight, *([] if bias is None else [bias]), window=window)
    return out.reshape(out.shape[1:]) if unbatch else out

