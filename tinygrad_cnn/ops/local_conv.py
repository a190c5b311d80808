"""Locally connected layer: a convolution whose filters are not shared between positions."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..autograd import Context
from ..kernels.windows import Window
from ..tensor import Tensor
from .composite import CompositeFunction
from .conv import Unfold, window_label, window_of
from .lowering import symmetric_input
from .registry import Sample, defop


def _local_conv_samples(rng: np.random.Generator) -> list[Sample]:
    geometry = {"window": Window((2, 2))}
    strided = {"window": Window((3, 2), (2, 1), (1, 1, 0, 0), (1, 2))}
    return [Sample((rng.standard_normal((2, 2, 3, 3)), rng.standard_normal((2, 2, 3, 2, 2, 2)),
                    rng.standard_normal((3, 2, 2))), geometry, "2x2, bias"),
            Sample((rng.standard_normal((1, 1, 4, 4)), rng.standard_normal((2, 2, 2, 1, 3, 2))),
                   strided, "stride, padding, dilation, no bias")]


def _local_conv_macs(node: Context) -> int:
    """Each output element: C*KH*KW multiply-accumulates (its own filter)."""
    return node.output.size * math.prod(node.inputs[1].shape[3:])


def _local_conv_torch(b: Any, node: Context, args: list) -> Any:
    """F.unfold, then one filter per position: einsum("nkl,lfk->nfl")"""
    window = node.params["window"]
    x, padding = symmetric_input(b, args[0], window.padding)
    out_h, out_w, filters = node.inputs[1].shape[:3]
    cols = b.call(b.F.unfold, x, window.kernel, dilation=window.dilation, padding=padding,
                  stride=window.stride)                                  # (N, C*KH*KW, L)
    weight = b.call(b.torch.reshape, args[1], (out_h * out_w, filters, -1))
    out = b.call(b.torch.einsum, "nkl,lfk->nfl", cols, weight)
    out = b.call(b.torch.reshape, out, (-1, filters, out_h, out_w))
    return b.call(b.torch.add, out, args[2]) if len(args) == 3 else out


@defop("local_conv2d", samples=_local_conv_samples, kind="window", macs=_local_conv_macs,
       torch=_local_conv_torch,
       window=window_of, onnx="ONNX has no locally connected layer", label=window_label)
class LocalConv2d(CompositeFunction):
    """(N, C, H, W) with a filter (F, C, KH, KW) per output position -> (N, F, OH, OW)."""

    @classmethod
    def definition(cls, x: Tensor, weight: Tensor, *bias: Tensor, window: Window) -> Tensor:
        out_h, out_w, filters = weight.shape[:3]
        positions = out_h * out_w
        cols = Unfold.apply(x, window=window)                     # (N, C*KH*KW, L)
        cols = cols.transpose((2, 0, 1))                          # (L, N, C*KH*KW)
        filters_by_position = weight.reshape((positions, filters, -1)).transpose((0, 2, 1))
        out = cols @ filters_by_position                          # (L, N, F): one product
        out = out.transpose((1, 2, 0)).reshape((x.shape[0], filters, out_h, out_w))
        return out + bias[0] if bias else out
