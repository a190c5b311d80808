"""Elementwise ops. Binary ops broadcast; the engine sums gradients back to each input."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..autograd import Context, Function
from ..kernels import all_finite
from ..tensor import Tensor
from .registry import Sample, defop


def constant(array: Any) -> Tensor:
    """A Tensor outside the graph (masks, weights): gradients do not flow into it."""
    return Tensor._make(np.asarray(array), False, None)


def masked(g: Tensor, mask: np.ndarray) -> Tensor:
    """g where mask holds, else 0: a selection, not a product by the mask, so that an inf
    or NaN in g stays out of the masked elements (0 * inf would be NaN), as in PyTorch's
    backwards of relu, clamp and maximum."""
    return Where.apply(g, constant(np.zeros((), g.dtype)), condition=mask)


def normal(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape)


def positive(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.uniform(0.5, 2.0, shape)


def away_from_zero(rng: np.random.Generator, *shape: int) -> np.ndarray:
    """Values with |v| in [0.1, 2): for ops with a kink at 0."""
    return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.1, 2.0, shape)


def _binary_samples(rng: np.random.Generator, draw: Any = normal) -> list[Sample]:
    return [Sample((draw(rng, 3, 4), draw(rng, 3, 4)), label="same shape"),
            Sample((draw(rng, 2, 3, 4), draw(rng, 4)), label="broadcast trailing"),
            Sample((draw(rng, 3, 1), draw(rng, 1, 4)), label="broadcast both"),
            Sample((draw(rng), draw(rng, 2, 3)), label="0-d with 2-d")]


def _unary_samples(draw: Any = normal) -> Any:
    return lambda rng: [Sample((draw(rng, 3, 4),)), Sample((draw(rng),), label="0-d")]


def broadcast_error(name: str, a: np.ndarray, b: np.ndarray) -> ValueError:
    """numpy's broadcast failure, told with the op and both shapes."""
    return ValueError(f"{name}: shapes {a.shape} and {b.shape} cannot be broadcast together "
                      "(numpy broadcasting rules: trailing sizes must match or be 1)")


@defop("add", samples=_binary_samples)
class Add(Function):
    """a + b"""

    backward_reads = ()

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        try:
            return a + b
        except ValueError:
            raise broadcast_error("add", a, b) from None

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        return g, g


@defop("sub", samples=_binary_samples)
class Sub(Function):
    """a - b"""

    backward_reads = ()

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        try:
            return a - b
        except ValueError:
            raise broadcast_error("sub", a, b) from None

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        return g, -g


@defop("mul", samples=_binary_samples)
class Mul(Function):
    """a * b"""

    backward_reads = (0, 1)

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        try:
            return a * b
        except ValueError:
            raise broadcast_error("mul", a, b) from None

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        a, b = ctx.inputs
        need_a, need_b = ctx.needs_input_grad
        return (g * b if need_a else None), (g * a if need_b else None)


@defop("div", samples=lambda rng: _binary_samples(rng, away_from_zero))
class Div(Function):
    """a / b"""

    backward_reads = (0, 1)

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        try:
            return a / b
        except ValueError:
            raise broadcast_error("div", a, b) from None

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        a, b = ctx.inputs
        need_a, need_b = ctx.needs_input_grad
        grad_a = g / b if need_a else None
        grad_b = -g * a / (b * b) if need_b else None  # d(a/b)/db = -a / b^2
        return grad_a, grad_b


@defop("neg", samples=_unary_samples())
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


@defop("pow", samples=_pow_samples)
class Pow(Function):
    """a ** b"""

    backward_reads = (0, 1)
    backward_reads_output = True

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        try:
            with np.errstate(divide="ignore", invalid="ignore"):  # 0^-1 = inf, as PyTorch
                return a ** b
        except ValueError:
            raise broadcast_error("pow", a, b) from None

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


@defop("exp", samples=_unary_samples())
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


@defop("log", samples=_unary_samples(positive))
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


@defop("sqrt", samples=_unary_samples(positive))
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


@defop("tanh", samples=_unary_samples())
class Tanh(Function):
    """Hyperbolic tangent."""

    backward_reads = ()
    backward_reads_output = True

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        return np.tanh(x)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        out = ctx.output
        return (g * (1 - out * out),)


@defop("sigmoid", samples=_unary_samples())
class Sigmoid(Function):
    """1 / (1 + e^-x), computed without overflow."""

    backward_reads = ()
    backward_reads_output = True

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        return np.exp(-np.logaddexp(0, -x)).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        out = ctx.output
        return (g * out * (1 - out),)


@defop("softplus", samples=_unary_samples())
class Softplus(Function):
    """log(1 + e^x), computed without overflow."""

    backward_reads = (0,)

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        return np.logaddexp(0, x).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        return (g * ctx.inputs[0].sigmoid(),)


@defop("relu", samples=_unary_samples(away_from_zero))
class ReLU(Function):
    """max(x, 0); its derivative at 0 is taken as 0, at NaN as 1 (as PyTorch's: the
    gradient passes wherever the output is not 0)."""

    backward_reads = ()

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        out = np.maximum(x, 0)
        ctx.save_for_backward(out != 0)
        return out

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        (mask,) = ctx.saved
        return (masked(g, mask),)


@defop("abs", samples=_unary_samples(away_from_zero))
class Abs(Function):
    """|x|; its derivative at 0 is taken as 0, and at NaN as 0 too (PyTorch's sgn)."""

    backward_reads = (0,)

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        return np.abs(x)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        return (g * constant(np.nan_to_num(np.sign(ctx.inputs[0].data), nan=0.0)),)


@defop("maximum", samples=lambda rng: _binary_samples(rng, away_from_zero))
class Maximum(Function):
    """Elementwise max(a, b); where a == b the gradient is split in halves, and where
    either is NaN both get all of it (PyTorch's rule: a's share is 0 only where a < b)."""

    backward_reads = ()

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        try:
            out = np.maximum(a, b)
        except ValueError:
            raise broadcast_error("maximum", a, b) from None
        tie = 0.5 * (a == b)
        ctx.save_for_backward(1 - tie - (a < b), 1 - tie - (a > b))
        return out

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        share_a, share_b = (share.astype(g.dtype, copy=False) for share in ctx.saved)
        return (masked(g * constant(share_a), share_a != 0),
                masked(g * constant(share_b), share_b != 0))


def _clip_samples(rng: np.random.Generator) -> list[Sample]:
    x = away_from_zero(rng, 3, 4)
    return [Sample((x,), {"low": -0.05, "high": 0.05}, "both bounds"),
            Sample((x,), {"low": -0.05, "high": None}, "lower bound only")]


@defop("clip", samples=_clip_samples)
class Clip(Function):
    """x limited to [low, high]; the gradient passes where low <= x <= high."""

    backward_reads = ()

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, *, low: float | None,
                high: float | None) -> np.ndarray:
        inside = np.ones(x.shape, dtype=bool)
        if low is not None:
            inside &= x >= low
        if high is not None:
            inside &= x <= high
        ctx.save_for_backward(inside)
        return np.clip(x, low, high).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        (inside,) = ctx.saved
        return (masked(g, inside),)


def clip(x: Tensor, low: float | None = None, high: float | None = None) -> Tensor:
    if low is None and high is None:
        raise ValueError("clip: give at least one of min and max")
    if low is not None and high is not None and low > high:
        raise ValueError(f"clip: min={low} is greater than max={high}")
    return Clip.apply(x, low=low, high=high)


@defop("cast", samples=lambda rng: [Sample((normal(rng, 3, 4),), {"dtype": np.dtype("f8")})])
class Cast(Function):
    """x converted to another dtype; the gradient is converted back."""

    backward_reads = ()

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, *, dtype: np.dtype) -> np.ndarray:
        return x.astype(dtype)

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        return (g.astype(ctx.inputs[0].dtype),)


@defop("identity", samples=_unary_samples())
class Identity(Function):
    """x itself, as a new node of the graph."""

    backward_reads = ()

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        return x

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        return (g,)


def _where_samples(rng: np.random.Generator) -> list[Sample]:
    condition = rng.random((3, 4)) < 0.5
    return [Sample((normal(rng, 3, 4), normal(rng, 3, 4)), {"condition": condition}),
            Sample((normal(rng, 4), normal(rng, 3, 1)), {"condition": condition},
                   "broadcast all three")]


@defop("where", samples=_where_samples)
class Where(Function):
    """x where condition holds, else y (broadcast together, as numpy.where)."""

    backward_reads = ()

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, y: np.ndarray, *,
                condition: np.ndarray) -> np.ndarray:
        try:
            if y.ndim == 0 and y == 0 and all_finite(x):
                # x * condition, branch-free: numpy's where branches on every element and
                # runs 20x slower on an irregular mask (relu's); with inf or NaN in x the
                # product would be NaN where x is dropped, so those take the where
                return np.multiply(x, condition, dtype=np.result_type(x, y))
            return np.where(condition, x, y)
        except ValueError:
            raise ValueError(f"where: condition {condition.shape}, x {x.shape} and y "
                             f"{y.shape} cannot be broadcast together") from None

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        condition = ctx.params["condition"]
        zero = constant(np.zeros((), g.dtype))
        need_x, need_y = ctx.needs_input_grad
        return (Where.apply(g, zero, condition=condition) if need_x else None,
                Where.apply(zero, g, condition=condition) if need_y else None)


def where(condition: Any, x: Any, y: Any) -> Tensor:
    """Elementwise choice, as torch.where: x where `condition` is true, else y.

    The gradient flows to x where the condition holds and to y elsewhere; a NaN or inf in
    the branch not taken never reaches the other one.
    """
    mask = condition.data if isinstance(condition, Tensor) else np.asarray(condition)
    if mask.dtype != bool:
        raise TypeError(f"where: condition must be a boolean array, got dtype {mask.dtype}")
    return Where.apply(x, y, condition=mask)
