"""User-facing CNN functions with the semantics of torch.nn.functional.

Each function validates its arguments once (clear errors with the shapes and the size
arithmetic), builds the op's geometry (a `Window` for the sliding-window ops) and calls the
registered primitives in `ops`:

  checks.py   argument checks shared by the others
  conv.py     conv2d, conv_transpose2d, unfold, fold, local_conv2d
  pool.py     max_pool2d, avg_pool2d, adaptive_avg_pool2d, global_avg_pool2d
  layers.py   linear, flatten, relu, dropout
  norm.py     local_response_norm, batch_norm
  losses.py   softmax, log_softmax, nll_loss, cross_entropy, mse_loss,
              binary_cross_entropy_with_logits
"""

from __future__ import annotations

from ..kernels.windows import Window
from .conv import conv2d, conv_transpose2d, fold, local_conv2d, unfold
from .layers import dropout, flatten, linear, relu
from .losses import (
    binary_cross_entropy_with_logits,
    cross_entropy,
    log_softmax,
    mse_loss,
    nll_loss,
    softmax,
)
from .norm import batch_norm, local_response_norm
from .pool import adaptive_avg_pool2d, avg_pool2d, global_avg_pool2d, max_pool2d

__all__ = ["conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d",
           "global_avg_pool2d", "unfold", "fold", "linear", "flatten", "relu", "dropout",
           "softmax", "log_softmax", "nll_loss", "cross_entropy", "mse_loss",
           "binary_cross_entropy_with_logits", "local_conv2d", "local_response_norm",
           "batch_norm", "output_size"]


def output_size(size: int, kernel: int, stride: int = 1, padding: tuple[int, int] = (0, 0),
                dilation: int = 1) -> int:
    """Windows along one axis, the output size of conv2d, unfold and the pools:
    floor((size + before + after - dilation*(kernel-1) - 1) / stride) + 1."""
    return Window((kernel, 1), (stride, 1), (*padding, 0, 0), (dilation, 1)).out_size(size, 1)[0]
