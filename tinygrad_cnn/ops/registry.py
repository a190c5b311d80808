"""The one registry of differentiable ops: name -> an `OpSpec` holding the Function, its
gradcheck samples and every fact the tools need about it.

Tests, docs, the CLI and the tools (viz, summary, receptive fields, ONNX export, the
PyTorch bridge, the viewer) read `REGISTRY`; nothing else lists the ops.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..autograd import Context, Function
from ..kernels.windows import Window

__all__ = ["Sample", "OpSpec", "REGISTRY", "defop", "KINDS", "FIELDS", "spec_of",
           "is_convolution"]

# what an op does to its input, in a word: viz folds and labels by it, summary hides the
# ops that only move values, the viewer colours by it
KINDS = ("elementwise",   # value by value, numpy broadcasting
         "shape",         # moves or converts values, no arithmetic (reshape, transpose, cast)
         "select",        # picks or places values (indexing, padding, where)
         "join",          # puts tensors side by side (concatenate)
         "reduce",        # combines values along axes
         "linalg",        # matrix products
         "window",        # sliding windows: conv, pools, unfold
         "adjoint",       # the backward of a window op (conv input/weight grads, fold, scatter)
         "norm")          # normalizations
# how an op's output sees the input image, for receptive fields: "window" composes the op's
# Window, "keep" joins its inputs' fields, "whole" sees everything
FIELDS = ("window", "keep", "whole")
FIELD_OF_KIND = {"elementwise": "keep", "reduce": "whole", "linalg": "whole",
                 "window": "window"}


@dataclass(frozen=True)
class Sample:
    """One gradcheck case: positional inputs (float arrays are checked) and parameters."""

    args: tuple
    params: dict = field(default_factory=dict)
    label: str = ""


def default_label(params: dict) -> str:
    """`key=value` for every parameter, values short (see `format_value`)."""
    return "  ".join(f"{key}={format_value(value)}" for key, value in params.items())


def format_value(value: Any) -> str:
    """Op parameters, short: (1, 1) -> 1, (2, 2, 2, 2) -> 2, index tuples as
    [0:2, array(3,)], arrays as array(shape)."""
    if isinstance(value, np.ndarray):
        return f"array{value.shape}"
    if isinstance(value, tuple) and value:
        if len(value) in (2, 4) and all(isinstance(v, (int, np.integer)) for v in value) \
                and len(set(value)) == 1:
            return str(value[0])
        if any(isinstance(v, (slice, np.ndarray)) or v is None or v is Ellipsis
               for v in value):
            return "[" + ", ".join(_format_index(v) for v in value) + "]"
    return str(value)


def _format_index(value: Any) -> str:
    if isinstance(value, slice):
        parts = ["" if v is None else str(v) for v in (value.start, value.stop, value.step)]
        return ":".join(parts[:2] if value.step is None else parts)
    if value is Ellipsis:
        return "..."
    if value is None:
        return "None"
    return format_value(value)


@dataclass(frozen=True)
class OpSpec:
    """Everything about one op, as declared by `defop`: `kind` (one of KINDS); `macs`, a
    count or a function of the node (multiply-accumulates of one call); `window(node)`,
    its Window (window ops); `field`, one of FIELDS or a function of the node giving one;
    `onnx`, the lowering `(graph, node, inputs) -> name` or why there is none; `torch`, the
    PyTorch lowering or why there is none (None: not declared); `label(params)`, its
    parameters as graphs show them."""

    name: str
    function: type[Function]
    samples: Callable[[np.random.Generator], list[Sample]]
    doc: str
    kind: str
    macs: int | Callable[[Context], int] | None
    window: Callable[[Context], Window] | None
    field: str | Callable[[Context], str] | None
    onnx: Callable | str | None
    torch: Callable | str | None
    label: Callable[[dict], str]

    def __call__(self, *args: Any, **params: Any) -> Any:
        return self.function.apply(*args, **params)

    @property
    def exports(self) -> bool:
        return callable(self.onnx)

    def macs_of(self, node: Context) -> int:
        return int(self.macs(node) if callable(self.macs) else self.macs or 0)

    def field_of(self, node: Context) -> str:
        return self.field(node) if callable(self.field) else self.field


REGISTRY: dict[str, OpSpec] = {}


def defop(name: str, samples: Callable[[np.random.Generator], list[Sample]], *, kind: str,
          macs: int | Callable[[Context], int] | None = None,
          window: Callable[[Context], Window] | None = None,
          field: str | Callable[[Context], str] | None = None,
          onnx: Callable | str | None = None, torch: Callable | str | None = None,
          label: Callable[[dict], str] | None = None
          ) -> Callable[[type[Function]], type[Function]]:
    """Class decorator: name a Function and register it with its samples and facts.
    `field` defaults by kind (FIELD_OF_KIND); `onnx`/`torch` are lowerings or the reason
    there is none. tests/test_registry_facts.py checks that every op declares them all."""
    if kind not in KINDS:
        raise ValueError(f"defop {name!r}: kind must be one of {KINDS}, got {kind!r}")
    field = field if field is not None else FIELD_OF_KIND.get(kind)
    if field is not None and not callable(field) and field not in FIELDS:
        raise ValueError(f"defop {name!r}: field must be one of {FIELDS}, got {field!r}")

    def register(function: type[Function]) -> type[Function]:
        if name in REGISTRY:
            raise ValueError(f"defop: an op named {name!r} is already registered")
        function.name = name
        doc = (function.__doc__ or "").strip().splitlines()
        REGISTRY[name] = OpSpec(name, function, samples, doc[0] if doc else "", kind, macs,
                                window, field, onnx, torch, label or default_label)
        return function

    return register


def spec_of(node: Context) -> OpSpec | None:
    """The spec of a recorded node's op (None for a user's own Function, even one whose
    name is a registered op's)."""
    spec = REGISTRY.get(node.name)
    return spec if spec is not None and spec.function is node.fn else None


def is_convolution(node: Context) -> bool:
    """A window op with weights (conv2d, local_conv2d), as opposed to pooling or unfold."""
    spec = spec_of(node)
    return spec is not None and spec.kind == "window" and spec.macs_of(node) > 0
