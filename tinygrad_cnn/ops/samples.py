"""Inputs for the ops' gradcheck samples: float64 draws, away from kinks where it matters."""

from __future__ import annotations

from typing import Any

import numpy as np

from .registry import Sample


def normal(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape)


def positive(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.uniform(0.5, 2.0, shape)


def away_from_zero(rng: np.random.Generator, *shape: int) -> np.ndarray:
    """Values with |v| in [0.1, 2): for ops with a kink at 0."""
    return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.1, 2.0, shape)


def binary_samples(rng: np.random.Generator, draw: Any = normal) -> list[Sample]:
    """Two operands: equal shapes, and the three ways numpy broadcasts."""
    return [Sample((draw(rng, 3, 4), draw(rng, 3, 4)), label="same shape"),
            Sample((draw(rng, 2, 3, 4), draw(rng, 4)), label="broadcast trailing"),
            Sample((draw(rng, 3, 1), draw(rng, 1, 4)), label="broadcast both"),
            Sample((draw(rng), draw(rng, 2, 3)), label="0-d with 2-d")]


def unary_samples(draw: Any = normal) -> Any:
    """A sample generator of one operand: a matrix and a 0-d array."""
    return lambda rng: [Sample((draw(rng, 3, 4),)), Sample((draw(rng),), label="0-d")]
