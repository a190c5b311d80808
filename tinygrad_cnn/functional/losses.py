"""softmax, log_softmax and the losses, with PyTorch's reductions."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ops.reduce import LogSoftmax, normalize_axis
from ..tensor import Tensor
from .checks import _float_tensor

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

