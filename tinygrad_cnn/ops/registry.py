"""The one registry of differentiable ops: name -> Function and its gradcheck samples.

Tests, docs and the CLI read `REGISTRY`; nothing else lists the ops.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..autograd import Function

__all__ = ["Sample", "OpSpec", "REGISTRY", "defop"]


@dataclass(frozen=True)
class Sample:
    """One gradcheck case: positional inputs (float arrays are checked) and parameters."""

    args: tuple
    params: dict = field(default_factory=dict)
    label: str = ""


@dataclass(frozen=True)
class OpSpec:
    name: str
    function: type[Function]
    samples: Callable[[np.random.Generator], list[Sample]]
    doc: str

    def __call__(self, *args: Any, **params: Any) -> Any:
        return self.function.apply(*args, **params)


REGISTRY: dict[str, OpSpec] = {}


def defop(name: str, samples: Callable[[np.random.Generator], list[Sample]]
          ) -> Callable[[type[Function]], type[Function]]:
    """Class decorator: name a Function and register it with its gradcheck samples."""

    def register(function: type[Function]) -> type[Function]:
        if name in REGISTRY:
            raise ValueError(f"defop: an op named {name!r} is already registered")
        function.name = name
        doc = (function.__doc__ or "").strip().splitlines()
        REGISTRY[name] = OpSpec(name, function, samples, doc[0] if doc else "")
        return function

    return register
