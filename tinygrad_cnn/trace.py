"""Debug hooks of the engine: where the user's code created each node, and anomaly mode.

Both are off by default and then cost one attribute check per op (`state.active` in
`Function.apply`) and one per node in backward (`state.anomaly`). When on:

- `tracing()` (used by `locate_gradient_error`) records on every node the ``file:line`` of
  the first stack frame outside the engine and the ops (`ENGINE_FILES`), and a sequence
  number in creation order;
- `detect_anomaly()` does the same and checks every op's output and every gradient for NaN
  and Inf, raising `AnomalyError` at the first op that produced one.
"""

from __future__ import annotations

import os
import sys
import threading
from contextlib import ContextDecorator
from typing import Any

import numpy as np

__all__ = ["AnomalyError", "detect_anomaly", "tracing", "user_site", "state"]

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
# the files that implement ops and the engine: a node's `where` is the first frame outside
# them (so the zoo's models.py and the demo count as user code)
ENGINE_FILES = tuple(os.path.join(PACKAGE_DIR, name) for name in (
    "tensor.py", "autograd.py", "gradmode.py", "graph.py", "transforms.py", "tree.py",
    "trace.py", "checking.py", "locate.py", "gradcheck.py", "viz", "functional" + os.sep,
    "ops" + os.sep))


class _DebugState(threading.local):
    def __init__(self) -> None:
        self.tracing = 0      # nesting depth of tracing() blocks
        self.anomaly = 0      # nesting depth of detect_anomaly() blocks
        self.in_backward = 0  # >0 while a backward formula runs: its ops are not blamed
        self.counter = 0
        self.active = False   # tracing or anomaly: one attribute read per op when off
        self.derived: dict[int, Any] | None = None   # see `following_input`
        self.backward_of: Any = None  # the node whose backward formula is running (tracing)


state = _DebugState()


def following_input(data: Any) -> "_FollowInput":
    """Inside, every array computed from `data` (and from what was computed from it) is
    remembered, whether or not the op was recorded: comparisons, casts to bool or int,
    `detach`, ops run under no_grad. `export` uses it to tell a model's constants from
    values computed from its input outside the recorded graph."""
    return _FollowInput(data)


class _FollowInput:
    def __init__(self, data: Any) -> None:
        self.data = data

    def __enter__(self) -> dict[int, Any]:
        state.derived = {id(self.data): self.data}   # arrays kept alive: ids stay unique
        return state.derived

    def __exit__(self, *exc: object) -> None:
        state.derived = None


def is_derived(array: Any, derived: dict[int, Any]) -> bool:
    """Whether `array`, or an array it is a view of, was computed from the input."""
    while array is not None:
        if id(array) in derived:
            return True
        array = getattr(array, "base", None)
    return False


def on_untracked(out: Any, *operands: Any) -> None:
    """A result made outside `Function.apply` (a comparison): follow the input through it."""
    derived = state.derived
    if derived is not None and any(is_derived(a, derived) for a in operands):
        derived[id(out)] = out


class AnomalyError(FloatingPointError):
    """An op produced NaN or Inf under `detect_anomaly`.

    Attributes: `op`, `phase` ("forward" or "backward"), `where` (the user's file:line that
    created the op), `shape` (of the non-finite array), `count` (its non-finite elements),
    `input_finite` (whether the op's inputs, and in backward the upstream gradient, were
    all finite: True means this op is the source).
    """

    def __init__(self, op: str, phase: str, where: str, shape: tuple[int, ...], count: int,
                 input_finite: bool, detail: str = "", inner_op: str | None = None) -> None:
        self.op, self.phase, self.where = op, phase, where
        self.shape, self.count, self.input_finite = shape, count, input_finite
        self.inner_op = inner_op
        source = "from finite inputs" if input_finite else "from inputs that were already " \
                                                           "non-finite"
        inside = f" (inside it: {inner_op})" if inner_op else ""
        super().__init__(f"{op}{inside} ({where}) produced {count} non-finite value(s) in "
                         f"its {phase}{detail}, shape {shape}, {source}")


FUNCTIONAL_DIR = os.path.join(PACKAGE_DIR, "functional" + os.sep)


def user_site() -> str:
    """``file.py:LINE`` of the innermost stack frame outside the engine and the ops."""
    return call_site()[0]


def call_site() -> tuple[str, str | None]:
    """(``file.py:LINE`` of the innermost frame outside the engine and the ops, the public
    function of `functional` the user called there, if the op runs inside one)."""
    frame = sys._getframe(1)
    called = None
    while frame is not None and frame.f_code.co_filename.startswith(ENGINE_FILES):
        if frame.f_code.co_filename.startswith(FUNCTIONAL_DIR) and \
                not frame.f_code.co_name.startswith("_"):
            called = frame.f_code.co_name
        frame = frame.f_back
    if frame is None:
        return "<tinygrad_cnn>", called
    return _location(frame.f_code.co_filename, frame.f_lineno), called


def _location(filename: str, line: int) -> str:
    """``file.py:LINE``, or ``In [5], line 14`` for a notebook cell IPython numbered."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    cells = getattr(getattr(shell, "compile", None), "_filename_map", None)
    if isinstance(cells, dict) and filename in cells:
        return f"In [{cells[filename]}], line {line}"
    return f"{os.path.basename(filename)}:{line}"


def _nan_count(array: np.ndarray) -> int:
    if array.dtype.kind not in "fc" or array.size == 0:
        return 0
    return int(np.count_nonzero(np.isnan(array)))


def _names(ctx: Any) -> tuple[str, str | None]:
    """(the op to name first, the inner op): the composite the user called, if any."""
    called = getattr(ctx, "called", None)
    if called is not None and called != ctx.name:
        return called, ctx.name
    return ctx.name, None


def _non_finite(array: np.ndarray) -> int:
    if array.dtype.kind not in "fc" or array.size == 0:
        return 0
    return int(array.size - np.count_nonzero(np.isfinite(array)))


def on_forward(ctx: Any, arrays: list[np.ndarray], out: np.ndarray) -> None:
    """Called by `Function.apply` while tracing or in anomaly mode."""
    ctx.where, ctx.called = call_site()
    ctx.backward_of = state.backward_of   # the forward node whose backward made this one
    ctx.sequence = state.counter
    state.counter += 1
    derived = state.derived
    if derived is not None and (
            any(is_derived(a, derived) for a in arrays) or
            any(is_derived(v, derived) for v in ctx.params.values()
                if isinstance(v, np.ndarray))):
        derived[id(out)] = out
    if not state.anomaly or state.in_backward:
        return
    # as PyTorch: a forward is flagged only where it made NaN or Inf from finite inputs
    count = _non_finite(out)
    if count and all(_non_finite(a) == 0 for a in arrays):
        op, inner = _names(ctx)
        raise AnomalyError(op, "forward", ctx.where, out.shape, count, True, inner_op=inner)


class formula_of:
    """While tracing: the ops a backward formula records remember its forward node
    (`ctx.backward_of`), so a viewer can link the two graphs."""

    def __init__(self, node: Any) -> None:
        self.node = node

    def __enter__(self) -> None:
        self.previous, state.backward_of = state.backward_of, self.node

    def __exit__(self, *exc: object) -> None:
        state.backward_of = self.previous


def on_backward(node: Any, g: Any, input_grads: tuple) -> None:
    """Called for every node in backward in anomaly mode, with what its backward returned:
    a NaN in a gradient is flagged (an infinite gradient, such as sqrt's at 0, is not:
    PyTorch's rule)."""
    for index, grad in enumerate(input_grads):
        if grad is None:
            continue
        array = grad.data if hasattr(grad, "data") else np.asarray(grad)
        count = _nan_count(array)
        if count:
            finite = _non_finite(g.data) == 0 and \
                all(_non_finite(t.data) == 0 for t in node.inputs)
            op, inner = _names(node)
            raise AnomalyError(op, "backward", node.where or "<created outside "
                               "detect_anomaly>", array.shape, count, finite,
                               f" (the gradient of input {index})", inner)


def on_accumulate(node: Any, index: int, parts: tuple, total: Any) -> None:
    """Called in anomaly mode when two gradients of one tensor are added in backward: an
    overflow (or inf - inf) there is flagged in the backward phase of the node whose
    gradient completed the sum."""
    count = _non_finite(total.data)
    if count and all(_non_finite(p.data) == 0 for p in parts):
        op, inner = _names(node)
        raise AnomalyError(op, "backward", node.where or "<created outside detect_anomaly>",
                           total.shape, count, True,
                           f" (adding up the gradient of input {index})", inner)


class _Counter(ContextDecorator):
    field = ""

    def __enter__(self) -> _Counter:
        setattr(state, self.field, getattr(state, self.field) + 1)
        state.active = bool(state.tracing or state.anomaly)
        return self

    def __exit__(self, *exc: object) -> None:
        setattr(state, self.field, getattr(state, self.field) - 1)
        state.active = bool(state.tracing or state.anomaly)


class tracing(_Counter):
    """Nodes created inside record `where` and `sequence` (for localisation)."""

    field = "tracing"


class detect_anomaly(_Counter):
    """Context manager and decorator: raise `AnomalyError` at the first op whose forward
    made NaN or Inf from finite inputs, or whose backward returned a NaN gradient (PyTorch's
    rules), naming the op (the `functional` function the user called, then the op inside
    it), the phase and the line of the user's code that created it. Thread-local; blocks
    nest.

    >>> import numpy as np, tinygrad_cnn as tg
    >>> x = tg.Tensor(np.array([0.0, 1.0]), requires_grad=True)
    >>> try:
    ...     with tg.detect_anomaly():
    ...         (x.sqrt() * np.array([0.0, 1.0])).sum().backward()   # 0 * inf at 0
    ... except tg.AnomalyError as error:
    ...     print(error.op, error.phase, error.count, error.input_finite)
    sqrt backward 1 True
    """

    field = "anomaly"


class backward_formula(_Counter):
    """While a node's backward formula runs, its inner ops are not checked on their own."""

    field = "in_backward"
