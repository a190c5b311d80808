"""`Tensor`: an ndarray with a gradient and a link to the op that made it.

Every operator and method here calls a registered op from `tinygrad_cnn.ops`; the Tensor
itself holds data and graph links only.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

__all__ = ["Tensor", "as_tensor", "Buffer", "buffer"]

_NUMERIC_KINDS = "biuf"


def _to_array(data: Any, dtype: Any = None) -> np.ndarray:
    """Python floats and lists become float32 (as in PyTorch); ndarrays keep their dtype."""
    if isinstance(data, np.ndarray):
        array = data if dtype is None else data.astype(dtype, copy=False)
    else:
        array = np.asarray(data, dtype=dtype)
        if dtype is None and array.dtype == np.float64 and not isinstance(data, np.generic):
            array = array.astype(np.float32)
    if array.dtype.kind not in _NUMERIC_KINDS:
        raise TypeError(f"Tensor: expected numeric data (bool, int or float), got "
                        f"{type(data).__name__} with dtype {array.dtype}")
    return array


class Tensor:
    """An n-dimensional array that records the ops applied to it.

    Parameters
    ----------
    data : array_like
        A numpy array keeps its dtype; Python floats and lists become float32.
    requires_grad : bool
        Record ops on this tensor so that gradients flow to it (float dtypes only).
    dtype : numpy dtype, optional
    name : str, optional
        Shown in graphs and gradcheck reports.

    >>> x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> (x * x).sum().backward()
    >>> x.grad.numpy()
    array([2., 4., 6.], dtype=float32)
    """

    __slots__ = ("data", "grad", "requires_grad", "grad_fn", "name", "retains_grad",
                 "__weakref__")
    __array_ufunc__ = None  # numpy defers to Tensor's reflected operators

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None,
                 name: str | None = None) -> None:
        if isinstance(data, Tensor):
            data = data.data
        self.data = _to_array(data, dtype)
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"Tensor: requires_grad=True needs a floating dtype, got "
                            f"{self.data.dtype}; pass dtype=np.float32 or float64")
        self.requires_grad = bool(requires_grad)
        self.grad: Tensor | None = None
        self.grad_fn = None
        self.name = name
        self.retains_grad = False

    @classmethod
    def _make(cls, data: np.ndarray, requires_grad: bool, grad_fn: Any) -> Tensor:
        """Fast internal constructor for op results (no checks)."""
        tensor = object.__new__(cls)
        tensor.data = data
        tensor.requires_grad = requires_grad
        tensor.grad_fn = grad_fn
        tensor.grad = None
        tensor.name = None
        tensor.retains_grad = False
        return tensor

    # ------------------------------------------------------------------ attributes
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def T(self) -> Tensor:
        return self.transpose()

    def numpy(self) -> np.ndarray:
        return self.data

    def item(self) -> float:
        return self.data.item()

    def detach(self) -> Tensor:
        """The same data, cut from the graph."""
        return Tensor._make(self.data, False, None)

    def zero_grad(self) -> None:
        self.grad = None

    def retain_grad(self) -> None:
        """Keep this non-leaf tensor's gradient in ``.grad`` after backward (as PyTorch)."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad() on a tensor that does not require grad")
        self.retains_grad = True

    def graph(self, **options: Any) -> Any:
        """The recorded graph behind this tensor as a graphviz Digraph (see `viz.to_dot`)."""
        from .viz import to_dot
        return to_dot(self, **options)

    def backward(self, gradient: Any = None, retain_graph: bool | None = None,
                 create_graph: bool = False) -> None:
        """Accumulate the gradient of this tensor into ``.grad`` of the leaves.

        `gradient` is required unless the tensor has one element. Without `retain_graph`
        the saved arrays are freed; with `create_graph` the backward pass is recorded so the
        gradients can be differentiated again.
        """
        _autograd.backward(self, gradient, retain_graph, create_graph)

    def __repr__(self) -> str:
        body = np.array2string(self.data, precision=4, separator=", ", threshold=20)
        extra = f", grad_fn=<{self.grad_fn.name}>" if self.grad_fn is not None else (
            ", requires_grad=True" if self.requires_grad else "")
        name = f", name={self.name!r}" if self.name else ""
        return f"Tensor({body}, shape={self.shape}, dtype={self.dtype}{extra}{name})"

    def __len__(self) -> int:
        return len(self.data)

    def __bool__(self) -> bool:
        return bool(self.data)

    def __float__(self) -> float:
        return float(self.data)

    __hash__ = object.__hash__

    # ------------------------------------------------------------------ arithmetic
    def _other(self, other: Any) -> Tensor | None:
        if isinstance(other, Tensor):
            return other
        if isinstance(other, numbers.Number):  # a Python scalar takes this tensor's dtype
            dtype = self.data.dtype if self.data.dtype.kind == "f" or isinstance(
                other, numbers.Integral) else np.float32
            return Tensor._make(np.asarray(other, dtype=dtype), False, None)
        if isinstance(other, (np.ndarray, np.generic, list, tuple)):
            return as_tensor(other)
        return None

    def _binary(self, op: Any, other: Any, reflected: bool = False) -> Tensor:
        if other.__class__ is not Tensor:
            other = self._other(other)
            if other is None:
                return NotImplemented
        if reflected:
            return op.apply(other, self)
        return op.apply(self, other)

    def __add__(self, other: Any) -> Tensor:
        if other.__class__ is Tensor:  # the common case, one call shorter
            return _apply_add(self, other)
        return self._binary(_ops.Add, other)

    def __radd__(self, other: Any) -> Tensor:
        return self._binary(_ops.Add, other, True)

    def __sub__(self, other: Any) -> Tensor:
        if other.__class__ is Tensor:  # the common case, one call shorter
            return _apply_sub(self, other)
        return self._binary(_ops.Sub, other)

    def __rsub__(self, other: Any) -> Tensor:
        return self._binary(_ops.Sub, other, True)

    def __mul__(self, other: Any) -> Tensor:
        if other.__class__ is Tensor:  # the common case, one call shorter
            return _apply_mul(self, other)
        return self._binary(_ops.Mul, other)

    def __rmul__(self, other: Any) -> Tensor:
        return self._binary(_ops.Mul, other, True)

    def __truediv__(self, other: Any) -> Tensor:
        if other.__class__ is Tensor:  # the common case, one call shorter
            return _apply_div(self, other)
        return self._binary(_ops.Div, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return self._binary(_ops.Div, other, True)

    def __pow__(self, other: Any) -> Tensor:
        return self._binary(_ops.Pow, other)

    def __rpow__(self, other: Any) -> Tensor:
        return self._binary(_ops.Pow, other, True)

    def __matmul__(self, other: Any) -> Tensor:
        return self._binary(_ops.MatMul, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return self._binary(_ops.MatMul, other, True)

    def __neg__(self) -> Tensor:
        return _ops.Neg.apply(self)

    def __pos__(self) -> Tensor:
        return self

    def __getitem__(self, index: Any) -> Tensor:
        return _ops.getitem(self, index)

    # comparisons give boolean Tensors, outside the graph
    def _compare(self, ufunc: Any, other: Any) -> Tensor:
        other_data = other.data if isinstance(other, Tensor) else other
        result = ufunc(self.data, other_data)
        if _trace.state.active:
            _trace.on_untracked(result, self.data, other_data)
        return Tensor._make(result, False, None)

    def __lt__(self, other: Any) -> Tensor:
        return self._compare(np.less, other)

    def __le__(self, other: Any) -> Tensor:
        return self._compare(np.less_equal, other)

    def __gt__(self, other: Any) -> Tensor:
        return self._compare(np.greater, other)

    def __ge__(self, other: Any) -> Tensor:
        return self._compare(np.greater_equal, other)

    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return self._compare(np.equal, other)

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return self._compare(np.not_equal, other)

    # ------------------------------------------------------------------ elementwise
    def exp(self) -> Tensor:
        return _ops.Exp.apply(self)

    def log(self) -> Tensor:
        return _ops.Log.apply(self)

    def sqrt(self) -> Tensor:
        return _ops.Sqrt.apply(self)

    def tanh(self) -> Tensor:
        return _ops.Tanh.apply(self)

    def sigmoid(self) -> Tensor:
        return _ops.Sigmoid.apply(self)

    def relu(self) -> Tensor:
        return _ops.ReLU.apply(self)

    def softplus(self) -> Tensor:
        return _ops.Softplus.apply(self)

    def abs(self) -> Tensor:
        return _ops.Abs.apply(self)

    def maximum(self, other: Any) -> Tensor:
        return self._binary(_ops.Maximum, other)

    def clip(self, min: float | None = None, max: float | None = None) -> Tensor:
        return _ops.clip(self, min, max)

    def astype(self, dtype: Any) -> Tensor:
        if np.dtype(dtype) == self.dtype:
            return self
        return _ops.Cast.apply(self, dtype=np.dtype(dtype))

    # ------------------------------------------------------------------ reductions
    def sum(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        return _ops.reduce_sum(self, axis, keepdims)

    def mean(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        return _ops.mean(self, axis, keepdims)

    def max(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        return _ops.reduce_max(self, axis, keepdims)

    def min(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        return _ops.reduce_min(self, axis, keepdims)

    # ------------------------------------------------------------------ shapes
    def reshape(self, *shape: Any) -> Tensor:
        return _ops.reshape(self, shape[0] if len(shape) == 1 else shape)

    def transpose(self, *axes: Any) -> Tensor:
        return _ops.transpose(self, axes[0] if len(axes) == 1 else (axes or None))

    def flatten(self, start_axis: int = 0, end_axis: int = -1) -> Tensor:
        return _ops.flatten(self, start_axis, end_axis)

    def expand(self, *shape: Any) -> Tensor:
        return _ops.broadcast_to(self, shape[0] if len(shape) == 1 else shape)

    def broadcast_to(self, shape: tuple[int, ...]) -> Tensor:
        return _ops.broadcast_to(self, shape)

    def sum_to(self, shape: tuple[int, ...]) -> Tensor:
        return _ops.sum_to(self, shape)

    def pad(self, pad_width: Any, value: float = 0.0) -> Tensor:
        return _ops.pad(self, pad_width, value)

    # ------------------------------------------------------------------ CNN ops
    def conv2d(self, weight: Any, bias: Any = None, **options: Any) -> Tensor:
        """See `tinygrad_cnn.functional.conv2d`."""
        return _functional.conv2d(self, weight, bias, **options)

    def max_pool2d(self, kernel_size: Any, **options: Any) -> Any:
        """See `tinygrad_cnn.functional.max_pool2d`."""
        return _functional.max_pool2d(self, kernel_size, **options)

    def avg_pool2d(self, kernel_size: Any, **options: Any) -> Tensor:
        """See `tinygrad_cnn.functional.avg_pool2d`."""
        return _functional.avg_pool2d(self, kernel_size, **options)


class Buffer(np.ndarray):
    """Model state that is not trained, such as batch norm's running statistics: an ndarray
    that `grad`/`value_and_grad` pass through without a gradient (its entry in the grads
    is None), that optimizers leave alone, and that `save`/`load` keep as a Buffer."""


def buffer(data: Any, dtype: Any = np.float32) -> Buffer:
    """A new `Buffer` holding a copy of `data` (float32 unless `dtype` says otherwise).

    >>> running_mean = buffer(np.zeros(3))
    >>> isinstance(running_mean, np.ndarray), running_mean.dtype
    (True, dtype('float32'))
    """
    return np.array(data, dtype=dtype).view(Buffer)


def as_tensor(data: Any, dtype: Any = None) -> Tensor:
    """`data` itself if it is a Tensor (of that dtype), else a constant Tensor."""
    if isinstance(data, Tensor):
        return data if dtype is None or data.dtype == dtype else data.astype(dtype)
    return Tensor._make(_to_array(data, dtype), False, None)


from . import autograd as _autograd  # noqa: E402
from . import functional as _functional  # noqa: E402
from . import ops as _ops  # noqa: E402
from . import trace as _trace  # noqa: E402  (the engine and ops need Tensor first)

# the bound `apply` of the arithmetic ops, looked up once (Tensor operators are the hot path)
_apply_add, _apply_sub, _apply_mul, _apply_div = (
    _ops.Add.apply, _ops.Sub.apply, _ops.Mul.apply, _ops.Div.apply)
