"""Normalization: local response normalization (AlexNet) and batch normalization.

  channel_window_sum    x -> sum over a window of neighbouring channels (its adjoint is
                        the same sum with the window mirrored)
  local_response_norm   x / (k + alpha/size * window sum of x^2)^beta
  batch_norm            (x - mean) / sqrt(var + eps) * weight + bias, with the batch's
                        statistics (training) or given running ones (evaluation)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..autograd import Context, Function
from ..tensor import Tensor
from .composite import CompositeFunction
from .lowering import ExportError
from .registry import Sample, defop
from .select import constant


def _window_sum_samples(rng: np.random.Generator) -> list[Sample]:
    return [Sample((rng.standard_normal((2, 5, 2, 3)),), {"before": 2, "after": 1}, "4-D"),
            Sample((rng.standard_normal((1, 3, 4)),), {"before": 0, "after": 2}, "3-D")]


@defop("channel_window_sum", samples=_window_sum_samples, kind="norm", macs=0, field="keep",
       onnx="it is exported as part of local_response_norm only",
       torch="it is lowered as part of local_response_norm only")
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


def _lrn_onnx(graph: Any, node: Context, inputs: list[str]) -> str:
    """ONNX's LRN (4-D, odd sizes); otherwise the window sum of squares as a Conv."""
    params, x = node.params, node.inputs[0]
    size, alpha, beta, k = params["size"], params["alpha"], params["beta"], params["k"]
    if size % 2 and x.ndim == 4:
        return graph.add("LRN", inputs, size=size, alpha=alpha, beta=beta, bias=k)
    # an even window is placed differently in ONNX's LRN: sum the squares with a Conv
    channels, rest = x.shape[1], list(x.shape[2:])
    squares = graph.add("Mul", [inputs[0], inputs[0]])
    stacked = graph.add("Reshape", [squares, graph.constant(np.array([0, 1, channels, -1],
                                                                     np.int64))])
    ones = graph.constant(np.ones((1, 1, size, 1), x.dtype))
    window = graph.add("Conv", [stacked, ones], kernel_shape=[size, 1],
                       pads=[size // 2, 0, (size - 1) // 2, 0])
    window = graph.add("Reshape", [window, graph.constant(np.array([0, channels] + rest,
                                                                   np.int64))])
    scaled = graph.add("Mul", [window, graph.constant(np.array(alpha / size, x.dtype))])
    shifted = graph.add("Add", [scaled, graph.constant(np.array(k, x.dtype))])
    power = graph.add("Pow", [shifted, graph.constant(np.array(beta, x.dtype))])
    return graph.add("Div", [inputs[0], power])


def _lrn_torch(b: Any, node: Context, args: list) -> Any:
    """F.local_response_norm"""
    params = node.params
    return b.call(b.F.local_response_norm, args[0], params["size"], alpha=params["alpha"],
                  beta=params["beta"], k=params["k"])


@defop("local_response_norm", samples=_lrn_samples, kind="norm", macs=0, field="keep",
       onnx=_lrn_onnx, torch=_lrn_torch)
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


def _batch_norm_onnx(graph: Any, node: Context, inputs: list[str]) -> str:
    if node.params["training"]:
        raise ExportError(f"batch_norm ({node.where}) in training mode: export the model in "
                          "evaluation mode (train=False)")
    return graph.add("BatchNormalization", inputs, epsilon=node.params["eps"])


def _batch_norm_prefix(b: Any, node: Context) -> str | None:
    """The key prefix of the params (weight, bias, running_mean, running_var), when they
    are named as PyTorch names a batch norm module's, else None."""
    keys = [b.key(t) for t in node.inputs[1:]]
    if keys[0] is None or not keys[0].endswith(".weight"):
        return None
    prefix = keys[0][:-len(".weight")]
    names = [f"{prefix}.{name}" for name in ("weight", "bias", "running_mean", "running_var")]
    return prefix if keys == names else None


def _batch_norm_torch(b: Any, node: Context, args: list) -> Any:
    """nn.BatchNorm1d/2d holding the params (train() and eval() switch it), or
    F.batch_norm when the params are not named as a module's"""
    params, x = node.params, node.inputs[0]
    prefix = _batch_norm_prefix(b, node)
    if prefix is None:
        return b.call(b.F.batch_norm, args[0], args[3], args[4], args[1], args[2],
                      training=params["training"], momentum=params.get("momentum", 0.1),
                      eps=params["eps"])
    held = b.root.get_submodule(prefix)
    kind = b.torch.nn.BatchNorm2d if x.ndim == 4 else b.torch.nn.BatchNorm1d
    module = kind(x.shape[1], eps=params["eps"], momentum=params.get("momentum", 0.1),
                  dtype=held.weight.dtype)
    module.weight, module.bias = held.weight, held.bias
    module.running_mean, module.running_var = held.running_mean, held.running_var
    module.train(params["training"])
    return b.submodule(prefix, module, args[0])


def _batch_norm_field(node: Context) -> str:
    """keep in evaluation; whole in training, whose statistics mix the batch."""
    return "whole" if node.params["training"] else "keep"


@defop("batch_norm", samples=_batch_norm_samples, kind="norm", macs=0,
       field=_batch_norm_field,
       onnx=_batch_norm_onnx, torch=_batch_norm_torch)
class BatchNorm(CompositeFunction):
    """(x - mean) / sqrt(var + eps) * weight + bias over channels (axis 1)."""

    @classmethod
    def definition(cls, x: Tensor, weight: Tensor, bias: Tensor, running_mean: Tensor,
                   running_var: Tensor, *, training: bool, eps: float,
                   momentum: float = 0.1) -> Tensor:
        # momentum: how the caller updates the running statistics (outside the graph, see
        # functional.batch_norm); kept to name the op as PyTorch does
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
