"""Local response normalization and batch normalization (with its running statistics)."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .. import ops
from ..ops.norm import BatchNorm, LocalResponseNorm
from ..tensor import Tensor
from .checks import _float_tensor


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
                          training=bool(training), eps=float(eps), momentum=float(momentum))
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


