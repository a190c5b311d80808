"""Normalization: local response normalization (AlexNet) and batch normalization.

  channel_window_sum    x -> sum over a window of neighbouring channels (its adjoint is
                        the same sum with the window mirrored)
  local_response_norm   x / (k + alpha/size * window sum of x^2)^beta
  batch_norm            (x - mean) / sqrt(var + eps) * weight + bias, with the batch's
                        statistics (training) or given running ones (evaluation)
"""

from __future__ import annotations

import numpy as np

from ..autograd import Context, Function
from ..tensor import Tensor
from .composite import CompositeFunction
from .elementwise import constant
from .registry import Sample, defop


def _window_sum_samples(rng: np.random.Generator) -> list[Sample]:
    return [Sample((rng.standard_normal((2, 5, 2, 3)),), {"before": 2, "after": 1}, "4-D"),
            Sample((rng.standard_normal((1, 3, 4)),), {"before": 0, "after": 2}, "3-D")]


@defop("channel_window_sum", samples=_window_sum_samples)
class ChannelWindowSum(Function):
    """out[:, c] = sum of x[:, c - before .. c + after], channels past the edges being 0."""

    backward_reads = ()

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, *, before: int, after: int) -> np.ndarray:
        out = np.zeros_like(x)
        channels = x.shape[1]
        for shift in range(-before, after + 1):   # out[:, c] += x[:, c + shift]
            lo, hi = max(0, -shift), min(channels, channels - shift)
            if lo < hi:
                out[:, lo:hi] += x[:, lo + shift:hi + shift]
        return out

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        # x[:, c'] appears in out[:, c] for c' - after <= c <= c' + before: the mirror window
        return (ChannelWindowSum.apply(g, before=ctx.params["after"],
                                       after=ctx.params["before"]),)


def _lrn_samples(rng: np.random.Generator) -> list[Sample]:
    params = {"size": 3, "alpha": 0.5, "beta": 0.75, "k": 1.0}
    return [Sample((rng.standard_normal((2, 4, 2, 2)),), params, "4-D, size 3"),
            Sample((rng.standard_normal((1, 5, 3)),), {**params, "size": 4}, "3-D, even size")]


@defop("local_response_norm", samples=_lrn_samples)
class LocalResponseNorm(CompositeFunction):
    """x / (k + alpha/size * sum over `size` neighbouring channels of x^2)^beta."""

    @classmethod
    def definition(cls, x: Tensor, *, size: int, alpha: float, beta: float,
                   k: float) -> Tensor:
        # PyTorch's window: size // 2 channels before, (size - 1) // 2 after, zero-padded
        window = ChannelWindowSum.apply(x * x, before=size // 2, after=(size - 1) // 2)
        return x / (window * (alpha / size) + k) ** beta


def _batch_norm_samples(rng: np.random.Generator) -> list[Sample]:
    x4, x2 = rng.standard_normal((3, 2, 2, 2)), rng.standard_normal((4, 3))
    weight, bias = rng.uniform(0.5, 1.5, 2), rng.standard_normal(2)
    stats = (Tensor(rng.standard_normal(2)), Tensor(rng.uniform(0.5, 2.0, 2)))
    return [Sample((x4, weight, bias) + stats, {"training": True, "eps": 1e-5}, "training"),
            Sample((x4, weight, bias) + stats, {"training": False, "eps": 1e-5}, "evaluation"),
            Sample((x2, rng.uniform(0.5, 1.5, 3), rng.standard_normal(3),
                    Tensor(np.zeros(3)), Tensor(np.ones(3))),
                   {"training": True, "eps": 1e-3}, "(N, C) input")]


@defop("batch_norm", samples=_batch_norm_samples)
class BatchNorm(CompositeFunction):
    """(x - mean) / sqrt(var + eps) * weight + bias over channels (axis 1)."""

    @classmethod
    def definition(cls, x: Tensor, weight: Tensor, bias: Tensor, running_mean: Tensor,
                   running_var: Tensor, *, training: bool, eps: float) -> Tensor:
        axes = (0,) + tuple(range(2, x.ndim))
        shape = (1, -1) + (1,) * (x.ndim - 2)
        if training:   # the batch's statistics, biased variance
            mean = x.mean(axis=axes, keepdims=True)
            centred = x - mean
            var = (centred * centred).mean(axis=axes, keepdims=True)
        else:
            centred = x - running_mean.reshape(shape)
            var = running_var.reshape(shape)
        scale = (var + constant(np.asarray(eps, x.dtype))) ** -0.5
        return centred * scale * weight.reshape(shape) + bias.reshape(shape)
