"""Weight initializers with PyTorch's formulas, drawn from a `numpy.random.Generator`.

fan_in = C*KH*KW for a conv weight (F, C, KH, KW) and `in` for a linear weight (out, in);
fan_out = F*KH*KW and `out`.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["fans", "calculate_gain", "kaiming_normal", "kaiming_uniform", "xavier_uniform",
           "zeros"]


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight shape."""
    if len(shape) < 2:
        raise ValueError(f"fans: a weight needs at least 2 dimensions, got shape {shape}")
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def calculate_gain(nonlinearity: str, a: float = 0.0) -> float:
    """sqrt(2) for relu, sqrt(2 / (1 + a^2)) for leaky_relu, 1 for linear."""
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        return math.sqrt(2.0 / (1 + a * a))
    if nonlinearity in ("linear", "sigmoid", "conv2d"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    raise ValueError(f"calculate_gain: unknown nonlinearity {nonlinearity!r}")


def _fan(shape: tuple[int, ...], mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = fans(shape)
    return fan_in if mode == "fan_in" else fan_out


def kaiming_normal(shape: tuple[int, ...], rng: np.random.Generator, a: float = 0.0,
                   mode: str = "fan_in", nonlinearity: str = "relu",
                   dtype: np.dtype = np.float32) -> np.ndarray:
    """N(0, std^2) with std = gain / sqrt(fan)."""
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(shape, mode))
    return rng.normal(0.0, std, shape).astype(dtype)


def kaiming_uniform(shape: tuple[int, ...], rng: np.random.Generator, a: float = 0.0,
                    mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                    dtype: np.dtype = np.float32) -> np.ndarray:
    """U(-b, b) with b = gain * sqrt(3 / fan); with a = sqrt(5) this is PyTorch's default
    for conv and linear weights, b = 1 / sqrt(fan_in)."""
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / _fan(shape, mode))
    return rng.uniform(-bound, bound, shape).astype(dtype)


def xavier_uniform(shape: tuple[int, ...], rng: np.random.Generator, gain: float = 1.0,
                   dtype: np.dtype = np.float32) -> np.ndarray:
    """U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = fans(shape)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-bound, bound, shape).astype(dtype)


def zeros(shape: tuple[int, ...], rng: np.random.Generator | None = None,
          dtype: np.dtype = np.float32) -> np.ndarray:
    """All zeros (takes an rng only for a uniform signature)."""
    return np.zeros(shape, dtype=dtype)
