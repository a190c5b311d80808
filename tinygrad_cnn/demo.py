"""A planted bug for `tinygrad-cnn gradcheck --demo`: a small conv net with one custom op
whose backward is wrong, so that a newcomer sees the localisation find it in one command.
"""

from __future__ import annotations

import numpy as np

from . import functional as F
from .autograd import Context, Function
from .tensor import Tensor

__all__ = ["LeakyScale", "demo_loss", "demo_inputs"]


class LeakyScale(Function):
    """y = x where x > 0, else 0.1 x: a leaky ReLU written by hand, with a planted bug."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        return np.where(x > 0, x, 0.1 * x)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        positive = ctx.inputs[0].data > 0
        slope = np.where(positive, 1.0, 0.01)   # the bug: the slope below 0 should be 0.1
        return (g * Tensor(slope.astype(g.dtype)),)


def demo_inputs(seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """(params, images (4, 1, 8, 8), labels) in float64."""
    rng = np.random.default_rng(seed)
    params = {"conv.weight": rng.normal(0, 0.4, (4, 1, 3, 3)), "conv.bias": np.zeros(4),
              "fc.weight": rng.normal(0, 0.3, (10, 64)), "fc.bias": np.zeros(10)}
    return params, rng.standard_normal((4, 1, 8, 8)), rng.integers(0, 10, 4)


def demo_loss(params: dict, images: np.ndarray, labels: np.ndarray) -> Tensor:
    """conv -> LeakyScale -> max-pool -> linear -> cross-entropy."""
    x = F.conv2d(images, params["conv.weight"], params["conv.bias"], padding=1)
    x = F.max_pool2d(LeakyScale.apply(x), 2)
    return F.cross_entropy(F.linear(x.flatten(1), params["fc.weight"], params["fc.bias"]),
                           labels)
