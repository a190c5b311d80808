"""Locally connected layer: a convolution whose filters are not shared between positions."""

from __future__ import annotations

import numpy as np

from ..tensor import Tensor
from .composite import CompositeFunction
from .conv import Unfold
from .registry import Sample, defop


def _local_conv_samples(rng: np.random.Generator) -> list[Sample]:
    geometry = {"kernel": (2, 2), "stride": (1, 1), "padding": (0, 0, 0, 0),
                "dilation": (1, 1)}
    strided = {"kernel": (3, 2), "stride": (2, 1), "padding": (1, 1, 0, 0),
               "dilation": (1, 2)}
    return [Sample((rng.standard_normal((2, 2, 3, 3)), rng.standard_normal((2, 2, 3, 2, 2, 2)),
                    rng.standard_normal((3, 2, 2))), geometry, "2x2, bias"),
            Sample((rng.standard_normal((1, 1, 4, 4)), rng.standard_normal((2, 2, 2, 1, 3, 2))),
                   strided, "stride, padding, dilation, no bias")]


@defop("local_conv2d", samples=_local_conv_samples)
class LocalConv2d(CompositeFunction):
    """(N, C, H, W) with a filter (F, C, KH, KW) per output position -> (N, F, OH, OW)."""

    @classmethod
    def definition(cls, x: Tensor, weight: Tensor, *bias: Tensor, kernel: tuple[int, int],
                   stride: tuple[int, int], padding: tuple[int, int, int, int],
                   dilation: tuple[int, int]) -> Tensor:
        out_h, out_w, filters = weight.shape[:3]
        positions = out_h * out_w
        cols = Unfold.apply(x, kernel=kernel, stride=stride, padding=padding,
                            dilation=dilation)                    # (N, C*KH*KW, L)
        cols = cols.transpose((2, 0, 1))                          # (L, N, C*KH*KW)
        filters_by_position = weight.reshape((positions, filters, -1)).transpose((0, 2, 1))
        out = cols @ filters_by_position                          # (L, N, F): one product
        out = out.transpose((1, 2, 0)).reshape((x.shape[0], filters, out_h, out_w))
        return out + bias[0] if bias else out
