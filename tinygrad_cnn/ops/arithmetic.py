"""Arithmetic: + - * / and negation, powers, exp, log and sqrt. Binary ops broadcast as
numpy does; the engine sums gradients back to each input's shape."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..autograd import Context, Function
from ..tensor import Tensor
from .lowering import elementwise, torch_function
from .registry import Sample, defop
from .samples import away_from_zero, binary_samples, normal, positive, unary_samples
from .select import constant, where

ELEMENTWISE = {"kind": "elementwise", "macs": 0}   # the facts every op here shares


def broadcasting(name: str, operation: Callable, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """operation(a, b), numpy's broadcast failure told with the op and both shapes."""
    try:
        return operation(a, b)
    except ValueError:
        raise ValueError(f"{name}: shapes {a.shape} and {b.shape} cannot be broadcast "
                         "together (numpy broadcasting rules: trailing sizes must match or "
                         "be 1)") from None


@defop("add", samples=binary_samples, onnx=elementwise("Add"),
       torch=torch_function("add"), **ELEMENTWISE)
class Add(Function):
    """a + b"""

    backward_reads = ()

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return broadcasting("add", np.add, a, b)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        return g, g


@defop("sub", samples=binary_samples, onnx=elementwise("Sub"),
       torch=torch_function("sub"), **ELEMENTWISE)
class Sub(Function):
    """a - b"""

    backward_reads = ()

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return broadcasting("sub", np.subtract, a, b)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        return g, -g


@defop("mul", samples=binary_samples, onnx=elementwise("Mul"),
       torch=torch_function("mul"), **ELEMENTWISE)
class Mul(Function):
    """a * b"""

    backward_reads = (0, 1)

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return broadcasting("mul", np.multiply, a, b)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        a, b = ctx.inputs
        need_a, need_b = ctx.needs_input_grad
        return (g * b if need_a else None), (g * a if need_b else None)


@defop("div", samples=lambda rng: binary_samples(rng, away_from_zero), onnx=elementwise("Div"),
       torch=torch_function("div"),
       **ELEMENTWISE)
class Div(Function):
    """a / b"""

    backward_reads = (0, 1)

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return broadcasting("div", np.true_divide, a, b)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        a, b = ctx.inputs
        need_a, need_b = ctx.needs_input_grad
        grad_a = g / b if need_a else None
        grad_b = -g * a / (b * b) if need_b else None  # d(a/b)/db = -a / b^2
        return grad_a, grad_b


@defop("neg", samples=unary_samples(), onnx=elementwise("Neg"),
       torch=torch_function("neg"), **ELEMENTWISE)
class Neg(Function):
    """-x"""

    backward_reads = ()

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        return -x

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        return (-g,)


def _pow_samples(rng: np.random.Generator) -> list[Sample]:
    with_zeros = positive(rng, 3, 4)
    with_zeros[0] = 0.0
    return [Sample((with_zeros, Tensor(np.float64(3.0))), label="zero base, cube"),
            Sample((with_zeros, Tensor(np.float64(0.0))), label="zero base, exponent 0"),
            Sample((positive(rng, 3, 4), normal(rng, 3, 4)), label="tensor exponent"),
            Sample((normal(rng, 3, 4), Tensor(np.float64(3.0))), label="cube"),
            Sample((positive(rng, 2, 3), Tensor(np.float64(-0.5))), label="inverse sqrt"),
            Sample((positive(rng, 2, 3), normal(rng, 3)), label="broadcast")]


@defop("pow", samples=_pow_samples, onnx=elementwise("Pow"),
       torch=torch_function("pow"), **ELEMENTWISE)
class Pow(Function):
    """a ** b"""

    backward_reads = (0, 1)
    backward_reads_output = True

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):  # 0^-1 = inf, as PyTorch
            return broadcasting("pow", np.power, a, b)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        a, b = ctx.inputs
        need_a, need_b = ctx.needs_input_grad
        return (_pow_grad_base(g, a, b) if need_a else None,
                _pow_grad_exponent(g, a, b, ctx.output) if need_b else None)


def _pow_grad_base(g: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """d(a^b)/da = b a^(b-1), taken as 0 where b = 0 (PyTorch's convention, a = 0 too).

    A constant exponent gets a base of 1 at those points, so every derivative there is
    the true 0; a learnable one masks the product, as PyTorch does, so the mixed
    derivative at a = b = 0 (1/a, undefined) is NaN rather than a made-up number."""
    zero_exponent = b.data == 0
    if not zero_exponent.any():
        return g * b * a ** (b - 1)
    if not b.requires_grad:
        return g * b * _replaced(a, zero_exponent, 1.0) ** (b - 1)
    return g * where(zero_exponent, constant(np.zeros((), a.dtype)), b * a ** (b - 1))


def _pow_grad_exponent(g: Tensor, a: Tensor, b: Tensor, out: Tensor) -> Tensor:
    """d(a^b)/db = a^b ln a, taken as 0 at a = 0 with b >= 0 (its limit, as PyTorch).

    ln is taken of a base replaced by 1 there, so the derivatives of this gradient are
    the limits as well (d/db a^b ln(a)^2 -> 0) instead of 0 * inf."""
    return g * out * _replaced(a, (a.data == 0) & (b.data >= 0), 1.0).log()


def _replaced(x: Tensor, mask: np.ndarray, value: float) -> Tensor:
    """x with `value` where mask holds (no gradient flows to x there)."""
    if not mask.any():
        return x
    return where(mask, constant(np.asarray(value, x.dtype)), x)


@defop("exp", samples=unary_samples(), onnx=elementwise("Exp"),
       torch=torch_function("exp"), **ELEMENTWISE)
class Exp(Function):
    """e ** x"""

    backward_reads = ()
    backward_reads_output = True

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        return np.exp(x)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        return (g * ctx.output,)


@defop("log", samples=unary_samples(positive), onnx=elementwise("Log"),
       torch=torch_function("log"), **ELEMENTWISE)
class Log(Function):
    """Natural logarithm."""

    backward_reads = (0,)

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):  # log(0) = -inf, as PyTorch
            return np.log(x)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        return (g / ctx.inputs[0],)


@defop("sqrt", samples=unary_samples(positive), onnx=elementwise("Sqrt"),
       torch=torch_function("sqrt"), **ELEMENTWISE)
class Sqrt(Function):
    """Square root."""

    backward_reads = ()
    backward_reads_output = True

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        return np.sqrt(x)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        return (g / (ctx.output * 2),)
