"""Find the wrong gradient: check every op of a recorded graph on its own inputs.

`locate_gradient_error(f, inputs)` runs `f` once on float64 copies of the inputs while
tracing (so each node knows the user's ``file:line`` that created it), then checks every
op node alone: for a random upstream gradient u, the analytic vector-Jacobian product of
the node against central differences of <u, op(x)>, for every differentiable input, with
the node's inputs (as float64) and parameters as recorded. ``order=2`` checks each node's
backward as a function of its inputs and u. The first node whose own check fails is the
culprit; a correct op is never blamed for

- a kink: where the two one-sided differences disagree, the op is not differentiable
  (relu or abs at 0, tied maxima); such elements are not compared, and a node with no
  other failure is reported as "not differentiable here" (see docs/ops.md#tie-rule);
- round-off: a failure is repeated over a sweep of step sizes; an error that falls to
  within tolerance for some step is "round-off" (a float32 computation inside), one that
  never does is a "bug".
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import trace
from .autograd import Context, enable_grad, grad_of, topological_nodes
from .checking import flat_gradient, prepare_inputs
from .ops import spec_of
from .tensor import Tensor

__all__ = ["locate_gradient_error", "LocateReport", "NodeReport", "FULL_ELEMENTS",
           "SAMPLED_ELEMENTS", "EPS_SWEEP"]

FULL_ELEMENTS = 256     # inputs up to this size are checked element by element
SAMPLED_ELEMENTS = 48   # larger ones: this many random elements...
DIRECTIONS = 2          # ...plus this many random directions over the whole input
EPS_SWEEP = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8)
# a check status -> its colour in tables and graphs
STATUS_COLOURS = {"passed": "#c3e6cb", "failed": "#f5c6cb",
                  "not differentiable here": "#ffe08a", "not checked": "#e2e3e5"}


@dataclass
class NodeReport:
    """The check of one op node on its own recorded inputs."""

    op: str
    params: dict
    where: str
    status: str
    node: Context | None = field(default=None, repr=False)
    input_index: int | None = None
    input_shape: tuple[int, ...] | None = None
    worst_index: tuple[int, ...] | None = None
    analytic: float | None = None
    numeric: float | None = None
    max_abs_error: float = 0.0
    max_rel_error: float = 0.0
    diagnosis: str | None = None
    reason: str | None = None
    eps_sweep: list[tuple[float, float]] = field(default_factory=list)

    def describe(self) -> str:
        """One sentence: what failed where, with the numbers."""
        head = f"{self.op} at {self.where}"
        if self.status == "failed":
            sweep = ", ".join(f"{eps:g}: {err:.2g}" for eps, err in self.eps_sweep)
            return (f"{head}: gradient of input {self.input_index} (shape "
                    f"{self.input_shape}) is wrong at element {self.worst_index}: analytic "
                    f"{self.analytic:.8g}, numeric {self.numeric:.8g} (max rel error "
                    f"{self.max_rel_error:.3g}); diagnosis {self.diagnosis} (error by eps: "
                    f"{sweep})")
        if self.status == "not differentiable here":
            return (f"{head}: not differentiable at element {self.worst_index} of input "
                    f"{self.input_index} (the one-sided differences disagree)")
        if self.status == "not checked":
            return f"{head}: not checked ({self.reason})"
        return f"{head}: passed"


@dataclass
class LocateReport:
    """Per-node results of `locate_gradient_error`, in forward order."""

    nodes: list[NodeReport]
    output: Tensor
    order: int

    @property
    def passed(self) -> bool:
        return not any(n.status == "failed" for n in self.nodes)

    @property
    def culprit(self) -> NodeReport | None:
        """The first failing node in forward order, a bug before round-off."""
        failed = [n for n in self.nodes if n.status == "failed"]
        bugs = [n for n in failed if n.diagnosis == "bug"]
        return (bugs or failed or [None])[0]

    def rows(self) -> list[tuple[str, str, str, str, str]]:
        return [(str(k), n.op, n.where, n.status if n.diagnosis is None
                 else f"{n.status} ({n.diagnosis})",
                 f"{n.max_rel_error:.2g}" if n.status != "not checked" else "")
                for k, n in enumerate(self.nodes)]

    def notes(self) -> list[str]:
        notes = []
        if self.culprit is not None:
            notes.append(f"culprit: {self.culprit.describe()}")
        if any(n.status == "not differentiable here" for n in self.nodes):
            notes.append("some ops were evaluated where they are not differentiable (a kink "
                         "or tied maxima, see the tie rule in docs/ops.md): a function-level "
                         "check may disagree there although every op is right")
        return notes

    def __str__(self) -> str:
        header = ("node", "op", "where", "status", "max rel err")
        rows = [header] + self.rows()
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
                 for row in rows]
        lines.insert(1, "-" * len(lines[0]))
        title = f"gradient localisation, order {self.order}: " + \
            ("every op passed" if self.passed else "FAILED")
        return "\n".join([title] + lines + self.notes())

    def _repr_html_(self) -> str:
        cells = "".join(f"<th>{h}</th>" for h in ("node", "op", "where", "status",
                                                   "max rel err"))
        body = "".join(
            f"<tr style='background:{STATUS_COLOURS[n.status]}'>" +
            "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
            for n, row in zip(self.nodes, self.rows()))
        notes = "".join(f"<p>{html.escape(note)}</p>" for note in self.notes())
        return f"<table><tr>{cells}</tr>{body}</table>{notes}"


# ----------------------------------------------------------------------------- one node
def _as_float64(tensor: Tensor) -> np.ndarray:
    data = tensor.data
    return np.array(data, dtype=np.float64) if data.dtype.kind == "f" else data


def _node_function(node: Context, order: int, differentiable: list[int]
                   ) -> Callable[..., Tensor]:
    """The node's op as a function of its inputs; for order 2, its backward as a function
    of (inputs..., u), flattened into one vector."""
    def op(*xs: Tensor) -> Tensor:
        return node.fn.apply(*xs, **node.params)

    if order == 1:
        return op

    def first_gradient(*args: Tensor) -> Tensor:
        xs, g = list(args[:-1]), args[-1]
        for i in differentiable:  # probes pass plain values: differentiate them anyway
            if not xs[i].requires_grad:
                xs[i] = Tensor._make(xs[i].data, True, None)
        with enable_grad():
            return flat_gradient(op(*xs), [xs[i] for i in differentiable], g)
    return first_gradient


def _probe(function: Callable, values: list[np.ndarray], upstream: np.ndarray,
           index: int, direction: np.ndarray, steps: tuple[float, ...]) -> list[np.ndarray]:
    """The op's output (as float64) with input `index` moved by step * direction, for each
    step."""
    base = values[index]
    outputs = []
    for step in steps:
        values[index] = base + step * direction
        out = function(*[Tensor._make(v, False, None) for v in values])
        outputs.append((np.asarray(out.data, np.float64), out.dtype))
    values[index] = base
    return outputs


def _dot(upstream: np.ndarray, output: tuple[np.ndarray, Any]) -> float:
    return float(np.sum(upstream * output[0]))


def _noise(upstream: np.ndarray, first: tuple, second: tuple, step: float,
           moved: np.ndarray | None = None) -> float:
    """How far round-off can move (<u, first> - <u, second>) / step. Each output element the
    step moves (`moved`, else those that differ) is rounded to the output's dtype, and the
    float64 sums of <u, out> round too:
    |error| <= 4 (eps(dtype) sum_moved |u| |out| + eps(float64) sum |u| |out|) / step
    (4: a margin for the rounding inside the op)."""
    a, b = first[0], second[0]
    size = np.maximum(np.abs(a), np.abs(b)) * np.abs(upstream)
    moved = a != b if moved is None else moved
    kind = np.dtype(first[1])
    ulp = np.finfo(kind if kind.kind == "f" else np.float64).eps
    total = ulp * float(np.sum(size[moved])) + np.finfo(np.float64).eps * float(np.sum(size))
    return 4 * total / step


def _directional(function, values, upstream, index, direction, eps, moved=None
                 ) -> tuple[float, float]:
    """(central difference along `direction`, its round-off bound)."""
    plus, minus = _probe(function, values, upstream, index, direction, (eps, -eps))
    return (_dot(upstream, plus) - _dot(upstream, minus)) / (2 * eps), \
        _noise(upstream, plus, minus, 2 * eps, moved)


GROUP_SIZE = 1024       # larger inputs: random directions on disjoint groups this large


def _random_signs(rng: np.random.Generator, shape: Any) -> np.ndarray:
    """Random values of magnitude 0.5 to 1.5 and random sign: no element is near zero, so a
    wrong element always shows (a normal draw can all but hide one)."""
    values = rng.choice([-1.0, 1.0], shape) * rng.uniform(0.5, 1.5, shape)
    return np.asarray(values, np.float64).reshape(shape)


def _directions(size: int, shape: tuple[int, ...], rng: np.random.Generator):
    """(direction, element index or None) pairs: every element of a small input, else a
    random sample of elements, random directions on disjoint groups of elements covering
    the whole input (one wrong element stands out within its group) and a few random
    directions over the whole input."""
    if size <= FULL_ELEMENTS:
        picks = range(size)
    else:
        picks = np.sort(rng.choice(size, SAMPLED_ELEMENTS, replace=False))
    for flat in picks:
        direction = np.zeros(size)
        direction[flat] = 1.0
        yield direction.reshape(shape), tuple(int(i) for i in np.unravel_index(flat, shape))
    if size > FULL_ELEMENTS:
        groups = max(2, -(-size // GROUP_SIZE))
        for group in np.array_split(rng.permutation(size), groups):
            direction = np.zeros(size)
            direction[group] = _random_signs(rng, group.size)
            yield direction.reshape(shape), None
        for _ in range(DIRECTIONS):
            yield rng.standard_normal(shape), None


def _violation(analytic, direction, numeric, noise, atol, rtol) -> tuple[float, float]:
    """(the analytic directional derivative, its error over the tolerance)."""
    expected = float(np.sum(analytic * direction))
    error = abs(expected - numeric) if np.isfinite(expected) or expected == numeric \
        else np.inf
    return expected, error / (atol + rtol * abs(numeric) + noise)


def _bisect(function, values, upstream, index, analytic, direction, eps, atol, rtol
            ) -> tuple[tuple[int, ...], np.ndarray]:
    """The element of a failing direction's support that carries the error: halve the
    support, keep the half whose own check fails worse, until one element is left."""
    flat = direction.ravel()
    support = np.flatnonzero(flat)
    while support.size > 1:
        halves = np.array_split(support, 2)
        scores = []
        for half in halves:
            part = np.zeros_like(flat)
            part[half] = flat[half]
            part = part.reshape(direction.shape)
            numeric, noise = _directional(function, values, upstream, index, part, eps)
            scores.append(_violation(analytic, part, numeric, noise, atol, rtol)[1])
        support = halves[int(np.argmax(scores))]
    unit = np.zeros_like(flat)
    unit[support[0]] = 1.0
    element = tuple(int(i) for i in np.unravel_index(support[0], direction.shape))
    return element, unit.reshape(direction.shape)


def _check_input(function, values, upstream, index, analytic, rng, eps, atol, rtol):
    """All probes of one input: (worst (violation, analytic, numeric, element, direction)
    or None, max abs error, max rel error, kink elements). A probe whose one-sided
    differences (f(x+e) - f(x))/e and (f(x) - f(x-e))/e disagree by more than round-off
    can explain is a kink: not counted. A failing direction over many elements is
    bisected down to the element that carries the error."""
    shape = values[index].shape
    (centre,) = _probe(function, values, upstream, index, np.zeros(shape), (0.0,))
    worst, kinks = None, []
    max_abs = max_rel = 0.0
    for direction, element in _directions(values[index].size, shape, rng):
        plus, minus = _probe(function, values, upstream, index, direction, (eps, -eps))
        forward = (_dot(upstream, plus) - _dot(upstream, centre)) / eps
        backward = (_dot(upstream, centre) - _dot(upstream, minus)) / eps
        round_off = _noise(upstream, plus, centre, eps) + _noise(upstream, centre, minus, eps)
        if abs(forward - backward) > atol + rtol * max(abs(forward), abs(backward)) + \
                round_off:
            kinks.append(element)
            continue
        numeric = (_dot(upstream, plus) - _dot(upstream, minus)) / (2 * eps)
        expected, violation = _violation(analytic, direction, numeric, 0.0, atol, rtol)
        error = abs(expected - numeric)
        max_abs = max(max_abs, error)
        max_rel = max(max_rel, error / max(abs(numeric), 1e-12))
        if worst is None or violation > worst[0]:
            worst = (violation, expected, numeric, element, direction)
    if worst is not None and worst[0] > 1 and worst[3] is None:
        element, unit = _bisect(function, values, upstream, index, analytic, worst[4], eps,
                                atol, rtol)
        numeric, _ = _directional(function, values, upstream, index, unit, eps)
        worst = (worst[0], float(np.sum(analytic * unit)), numeric, element, unit)
    return worst, max_abs, max_rel, kinks


def _diagnose(function, values, upstream, index, direction, analytic_value, atol, rtol):
    """'round-off' if some step size brings the numeric value within tolerance, or if at
    every step the error is within what round-off of the op's output dtype explains (a
    float32 value of 1e4 moves in steps of 1e-3: finite differences cannot see its
    derivative); else 'bug'. With the error at each step."""
    sweep, explained = [], True
    # the output elements the direction moves, seen at the largest step (a small one may
    # move none of them: a float32 value of 1e4 stays put under a step of 1e-6)
    plus, minus = _probe(function, values, upstream, index, direction, (EPS_SWEEP[0],
                                                                       -EPS_SWEEP[0]))
    moved = plus[0] != minus[0]
    if not moved.any():   # no step is seen at the output's precision: any element may move
        moved = np.ones_like(moved)
    for eps in EPS_SWEEP:
        numeric, noise = _directional(function, values, upstream, index, direction, eps,
                                      moved)
        error = abs(analytic_value - numeric)
        sweep.append((eps, error))
        explained = explained and error <= atol + rtol * abs(analytic_value) + noise
    fits = any(err <= atol + rtol * abs(analytic_value) for _, err in sweep)
    return ("round-off" if fits or explained else "bug"), sweep


def op_name(node: Context) -> str:
    """The registered name of the node's op, or its Function class's name."""
    return node.fn.name if spec_of(node) is not None else node.fn.__name__


def _check_node(node: Context, order: int, eps: float, atol: float, rtol: float,
                rng: np.random.Generator) -> NodeReport:
    report = NodeReport(op_name(node), dict(node.params), node.where or "?", "passed", node)
    values = [_as_float64(t) for t in node.inputs]
    differentiable = [i for i, t in enumerate(node.inputs)
                      if t.requires_grad and t.dtype.kind == "f"]
    if not differentiable:
        report.status = "not checked"
        report.reason = "integer input" if any(t.dtype.kind in "biu" for t in node.inputs) \
            else "no grad needed"
        return report
    checked = differentiable
    if order == 2:
        out_shape = node.fn.apply(*[Tensor._make(v, False, None) for v in values],
                                  **node.params).shape
        values.append(rng.standard_normal(out_shape))
        checked = differentiable + [len(values) - 1]
    function = _node_function(node, order, differentiable)
    tensors = [Tensor._make(v, i in checked, None) for i, v in enumerate(values)]
    with enable_grad():
        out = function(*tensors)
    upstream = _random_signs(rng, out.shape)
    grads = grad_of(out, [tensors[i] for i in checked], upstream, allow_unused=True) \
        if out.requires_grad else [None] * len(checked)
    for index, grad in zip(checked, grads):
        analytic = np.zeros(values[index].shape) if grad is None else \
            np.asarray(grad.data, np.float64)
        worst, max_abs, max_rel, kinks = _check_input(function, values, upstream, index,
                                                      analytic, rng, eps, atol, rtol)
        report.max_abs_error = max(report.max_abs_error, max_abs)
        report.max_rel_error = max(report.max_rel_error, max_rel)
        if worst is not None and worst[0] > 1:
            _, expected, numeric, element, direction = worst
            diagnosis, sweep = _diagnose(function, values, upstream, index, direction,
                                         expected, atol, rtol)
            replaces = report.status != "failed" or (diagnosis == "bug" and
                                                      report.diagnosis != "bug")
            if replaces:
                report.status, report.diagnosis, report.eps_sweep = "failed", diagnosis, sweep
                report.input_index, report.input_shape = index, values[index].shape
                report.worst_index, report.analytic, report.numeric = element, expected, numeric
        elif kinks and report.status == "passed":
            report.status = "not differentiable here"
            report.input_index, report.input_shape = index, values[index].shape
            report.worst_index = kinks[0]
    return report


# ----------------------------------------------------------------------------- public
def locate_gradient_error(f: Callable, inputs: Sequence[Any], *, eps: float = 1e-6,
                          atol: float = 1e-5, rtol: float = 1e-3, order: int = 1,
                          seed: int = 0) -> LocateReport:
    """Check every op node of `f`'s graph on its own inputs and name the first wrong one.

    `f` and `inputs` are as for `gradcheck`: floating arrays and Tensors with
    requires_grad=True are differentiated (as float64 copies; the user's arrays are never
    changed), others pass through. Returns a `LocateReport`: ``report.culprit`` is the
    first failing node in forward order (None if every op passed), ``print(report)`` shows
    a table, and ``to_dot(report.output, check=report)`` colours the graph by the result.
    """
    if order not in (1, 2):
        raise ValueError(f"locate_gradient_error: order must be 1 or 2, got {order!r}")
    values, checked, names = prepare_inputs(inputs, "locate_gradient_error")
    tensors = [Tensor(v, requires_grad=i in checked, name=names[i] if i in checked else None)
               for i, v in enumerate(values)]
    with enable_grad(), trace.tracing():
        out = f(*tensors)
    if not isinstance(out, Tensor):
        raise TypeError(f"locate_gradient_error: the function must return a Tensor, got "
                        f"{type(out).__name__}")
    nodes = sorted(topological_nodes([out]), key=lambda node: node.sequence)
    rng = np.random.default_rng(seed)
    reports = [_check_node(node, order, eps, atol, rtol, rng) for node in nodes]
    return LocateReport(reports, out, order)
