"""Compare autodiff with central differences, and say exactly where they disagree.

The inputs checked are floating-point numpy arrays and Tensors with ``requires_grad=True``;
the others (integer labels, constant Tensors) are passed through unchanged. The analytic
Jacobian is assembled from vector-Jacobian products, one per output element; outputs with
more than `MAX_ROWS` elements are checked through `PROJECTIONS` random upstream gradients
instead, which still catches a backward that ignores its input.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .autograd import enable_grad, grad_of, no_grad
from .checking import flat_gradient, prepare_inputs
from .locate import locate_gradient_error
from .tensor import Buffer, Tensor

__all__ = ["GradcheckError", "GradReport", "InputReport", "numerical_grad", "gradcheck",
           "gradgradcheck", "check_gradients"]

MAX_ROWS = 256
PROJECTIONS = 4


class GradcheckError(AssertionError):
    """Raised by `gradcheck` when analytic and numeric gradients disagree; with
    ``localize=True``, `report` holds the `LocateReport` of the per-op check."""

    report: Any = None


@dataclass
class InputReport:
    """How the gradient with respect to one input compares."""

    index: int
    name: str
    shape: tuple[int, ...]
    max_abs_error: float
    max_rel_error: float
    worst_index: tuple[int, ...]
    worst_output: tuple[int, ...] | str
    analytic: float
    numeric: float
    passed: bool

    def describe(self, atol: float, rtol: float) -> str:
        return (f"input {self.index} ({self.name!r}, shape {self.shape}): analytic and "
                f"numeric gradients differ at element {self.worst_index} for output "
                f"{self.worst_output}: analytic {self.analytic:.8g}, numeric "
                f"{self.numeric:.8g}; max abs error {self.max_abs_error:.3g}, max rel error "
                f"{self.max_rel_error:.3g} (atol {atol:g}, rtol {rtol:g})")


@dataclass
class GradReport:
    """Per-input results of `check_gradients`; ``str(report)`` is a table."""

    inputs: list[InputReport]
    atol: float
    rtol: float

    @property
    def passed(self) -> bool:
        return all(row.passed for row in self.inputs)

    def failures(self) -> list[InputReport]:
        return [row for row in self.inputs if not row.passed]

    def _repr_html_(self) -> str:
        import html
        titles = ("input", "shape", "max abs err", "max rel err", "worst index", "result")
        head = "".join(f"<th>{t}</th>" for t in titles)
        rows = "".join(
            f"<tr style='background:{'#d4edda' if row.passed else '#f8d7da'}'>" + "".join(
                f"<td>{html.escape(str(cell))}</td>" for cell in (
                    f"{row.index}: {row.name}", row.shape, f"{row.max_abs_error:.3g}",
                    f"{row.max_rel_error:.3g}", row.worst_index,
                    "ok" if row.passed else "FAIL")) + "</tr>" for row in self.inputs)
        return f"<table><tr>{head}</tr>{rows}</table>"

    def __str__(self) -> str:
        header = f"{'input':<18} {'shape':<16} {'max abs err':>12} {'max rel err':>12} " \
                 f"{'worst index':<16} result"
        lines = [header, "-" * len(header)]
        for row in self.inputs:
            lines.append(f"{row.index}:{row.name[:16]:<16} {str(row.shape):<16} "
                         f"{row.max_abs_error:>12.3g} {row.max_rel_error:>12.3g} "
                         f"{str(row.worst_index):<16} {'ok' if row.passed else 'FAIL'}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------- helpers
def _call(f: Callable, values: list[Any], checked: list[int],
          requires_grad: bool) -> tuple[Tensor, list[Tensor]]:
    tensors = [Tensor._make(v.copy() if isinstance(v, Buffer) else v,
                            requires_grad and i in checked, None)
               for i, v in enumerate(values)]
    out = f(*tensors)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: the function must return a Tensor, got "
                        f"{type(out).__name__}")
    return out, [tensors[i] for i in checked]


def _evaluate(f: Callable, values: list[Any], checked: list[int], graph: bool) -> np.ndarray:
    context = enable_grad() if graph else no_grad()
    with context:
        out, _ = _call(f, values, checked, graph)
    return np.array(out.data, dtype=np.float64).ravel()  # a copy: outputs may alias inputs


def _numerical_jacobians(f: Callable, values: list[Any], checked: list[int], eps: float,
                         graph: bool, columns_of: list[np.ndarray] | None = None
                         ) -> list[np.ndarray]:
    """Central differences: column j of J_i is (f(x + eps e_j) - f(x - eps e_j)) / 2 eps,
    for every element j of each input (or the elements listed in `columns_of`)."""
    jacobians = []
    for k, i in enumerate(checked):
        flat = values[i].reshape(-1)  # a view: perturbing it perturbs values[i]
        columns = []
        for j in (range(flat.size) if columns_of is None else columns_of[k]):
            original = flat[j]
            flat[j] = original + eps
            plus = _evaluate(f, values, checked, graph)
            flat[j] = original - eps
            minus = _evaluate(f, values, checked, graph)
            flat[j] = original
            columns.append((plus - minus) / (2 * eps))
        jacobians.append(np.stack(columns, axis=1) if columns else np.zeros((0, 0)))
    return jacobians


def _upstream_vectors(out_size: int, rng: np.random.Generator) -> np.ndarray:
    """Rows of the identity (the full Jacobian) or a few random projections if too many."""
    if out_size <= MAX_ROWS:
        return np.eye(out_size)
    return rng.standard_normal((PROJECTIONS, out_size))


def _analytic_rows(f: Callable, values: list[Any], checked: list[int],
                   vectors: np.ndarray) -> list[np.ndarray]:
    """Row k of result i is vectors[k] @ J_i, from one vector-Jacobian product."""
    with enable_grad():
        out, tensors = _call(f, values, checked, True)
    rows: list[list[np.ndarray]] = [[] for _ in checked]
    for vector in vectors:
        upstream = vector.reshape(out.shape).astype(out.dtype)
        grads = grad_of(out, tensors, upstream, retain_graph=True, allow_unused=True) \
            if out.requires_grad \
            else [None] * len(tensors)
        for k, (tensor, g) in enumerate(zip(tensors, grads)):
            row = np.zeros(tensor.size) if g is None else np.asarray(g.data, np.float64)
            rows[k].append(row.reshape(-1))
    return [np.array(r).reshape(len(vectors), -1) for r in rows]


def _compare(index: int, name: str, shape: tuple[int, ...], analytic: np.ndarray,
             numeric: np.ndarray, vectors: np.ndarray, out_shape: tuple[int, ...],
             atol: float, rtol: float, columns: np.ndarray) -> InputReport:
    abs_error = np.abs(analytic - numeric)
    rel_error = abs_error / np.maximum(np.abs(numeric), 1e-12)
    violation = abs_error / (atol + rtol * np.abs(numeric))
    if violation.size == 0:
        return InputReport(index, name, shape, 0.0, 0.0, (), (), 0.0, 0.0, True)
    worst = np.unravel_index(np.nanargmax(np.nan_to_num(violation, nan=np.inf)),
                             violation.shape)
    row, column = int(worst[0]), int(worst[1])
    full = vectors.shape[0] == vectors.shape[1] and np.array_equal(vectors, np.eye(len(vectors)))
    output = tuple(int(k) for k in np.unravel_index(row, out_shape)) if full \
        else f"projection {row}"
    passed = bool(np.all(violation <= 1)) and not np.isnan(analytic).any()
    return InputReport(index, name, shape, float(abs_error.max()), float(rel_error.max()),
                       tuple(int(k) for k in np.unravel_index(columns[column], shape)), output,
                       float(analytic[worst]), float(numeric[worst]), passed)


# ----------------------------------------------------------------------------- public
def check_gradients(f: Callable, inputs: Sequence[Any], *, eps: float = 1e-6,
                    atol: float = 1e-5, rtol: float = 1e-3, seed: int = 0,
                    elements: int | None = None, _graph: bool = False,
                    _caller: str = "check_gradients") -> GradReport:
    """Compare the analytic and numeric Jacobians of `f` for every floating input.

    Returns a `GradReport` with, per input, the max abs/rel error, the worst element and
    whether ``|analytic - numeric| <= atol + rtol * |numeric|`` holds everywhere. With
    `elements`, only that many randomly chosen elements of each larger input are perturbed
    (finite differences cost two evaluations of f per element).
    """
    values, checked, names = prepare_inputs(inputs, _caller)
    out_shape = _evaluate_shape(f, values, checked, _graph)
    rng = np.random.default_rng(seed)
    vectors = _upstream_vectors(int(np.prod(out_shape)), rng)
    columns = [np.arange(values[i].size) if elements is None or values[i].size <= elements
               else np.sort(rng.choice(values[i].size, elements, replace=False))
               for i in checked]
    numeric = _numerical_jacobians(f, values, checked, eps, _graph, columns)
    analytic = _analytic_rows(f, values, checked, vectors)
    rows = [_compare(i, names[i], values[i].shape, analytic[k][:, columns[k]],
                     vectors @ numeric[k], vectors, out_shape, atol, rtol, columns[k])
            for k, i in enumerate(checked)]
    return GradReport(rows, atol, rtol)


def _evaluate_shape(f: Callable, values: list[Any], checked: list[int],
                    graph: bool) -> tuple[int, ...]:
    with enable_grad() if graph else no_grad():
        out, _ = _call(f, values, checked, graph)
    return out.shape


def _verdict(report: GradReport, raise_exception: bool, caller: str) -> bool:
    if report.passed:
        return True
    if raise_exception:
        details = "\n".join(row.describe(report.atol, report.rtol) for row in report.failures())
        raise GradcheckError(f"{caller}: {details}")
    return False


def gradcheck(f: Callable, inputs: Sequence[Any], *, eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3, raise_exception: bool = True, localize: bool = False) -> bool:
    """True if autodiff matches central differences for every floating input of `f`.

    On a mismatch raises `GradcheckError` naming the input, the worst element, the analytic
    and numeric values there and the errors (or returns False with raise_exception=False).
    With `localize`, a mismatch also runs `locate_gradient_error`: the error names the op
    whose own gradient is wrong and where the user's code created it (``error.report``);
    if the only disagreement comes from ops evaluated at a kink, the check passes with a
    warning saying so.

    >>> import numpy as np
    >>> gradcheck(lambda x: (x * x).sum(), [np.array([1.0, 2.0])])
    True
    """
    report = check_gradients(f, inputs, eps=eps, atol=atol, rtol=rtol, _caller="gradcheck")
    if localize and not report.passed:
        return _localized_verdict(f, inputs, report, 1, eps, atol, rtol, raise_exception)
    return _verdict(report, raise_exception, "gradcheck")


def gradgradcheck(f: Callable, inputs: Sequence[Any], *, eps: float = 1e-6, atol: float = 1e-5,
                  rtol: float = 1e-3, raise_exception: bool = True, seed: int = 0,
                  localize: bool = False) -> bool:
    """gradcheck of the gradient function: second derivatives of `f`.

    Checks ``(x, u) -> d<u, f(x)>/dx`` with a random upstream `u`, with respect to both the
    inputs and `u`. `localize` checks each op's backward on its own, as in `gradcheck`.
    """
    values, checked, _ = prepare_inputs(inputs, "gradgradcheck")
    with no_grad():
        out_shape = _call(f, values, checked, False)[0].shape
    upstream = np.random.default_rng(seed).standard_normal(out_shape)

    def first_gradient(*args: Tensor) -> Tensor:
        xs, g = args[:-1], args[-1]
        return flat_gradient(f(*xs), [xs[i] for i in checked], g)

    report = check_gradients(first_gradient, list(inputs) + [upstream], eps=eps, atol=atol,
                             rtol=rtol, seed=seed, _graph=True, _caller="gradgradcheck")
    if localize and not report.passed:
        return _localized_verdict(f, inputs, report, 2, eps, atol, rtol, raise_exception)
    return _verdict(report, raise_exception, "gradgradcheck")


def _localized_verdict(f: Callable, inputs: Sequence[Any], report: GradReport, order: int,
                       eps: float, atol: float, rtol: float, raise_exception: bool) -> bool:
    """The verdict on a failed end-to-end check, from the per-op check of the same graph."""
    caller = "gradcheck" if order == 1 else "gradgradcheck"
    located = locate_gradient_error(f, inputs, eps=eps, atol=atol, rtol=rtol, order=order)
    kinks = [n for n in located.nodes if n.status == "not differentiable here"]
    if located.passed and kinks:
        warnings.warn(f"{caller}: the end-to-end check disagreed, but every op's own check "
                      "passed and " + "; ".join(n.describe() for n in kinks) +
                      ": the function is not differentiable at this point", stacklevel=3)
        return True
    if not raise_exception:
        return False
    details = "\n".join(row.describe(report.atol, report.rtol) for row in report.failures())
    culprit = located.culprit
    blame = f"the wrong op is {culprit.describe()}" if culprit is not None else \
        "no single op's own check fails: look at how the ops are combined"
    error = GradcheckError(f"{caller}: {blame}\nend to end: {details}")
    error.report = located
    raise error


def numerical_grad(f: Callable, inputs: Sequence[Any], eps: float = 1e-6,
                   gradient: Any = None) -> list[np.ndarray]:
    """Central-difference gradient of `f` (float64), one array per floating input.

    `f` must return a scalar unless `gradient` (the upstream, shaped like the output) is
    given, in which case the result is d<gradient, f>/dx.
    """
    values, checked, _ = prepare_inputs(inputs, "numerical_grad")
    out_shape = _evaluate_shape(f, values, checked, False)
    if gradient is None:
        if int(np.prod(out_shape)) != 1:
            raise ValueError(f"numerical_grad: f returned shape {out_shape}; pass gradient= "
                             "(an array of that shape) or reduce the output to a scalar")
        gradient = np.ones(out_shape)
    upstream = np.asarray(gradient, dtype=np.float64).reshape(-1)
    jacobians = _numerical_jacobians(f, values, checked, eps, False)
    return [(upstream @ jacobian).reshape(values[i].shape)
            for i, jacobian in zip(checked, jacobians)]
