"""Function transforms in the spirit of JAX: `value_and_grad`, `grad` (with `argnums` and
`has_aux`), `jacobian` and `hvp`, over pytrees of parameters (`tree.py`). Nested
transforms differentiate each other's results: higher derivatives follow."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .autograd import grad_of
from .gradmode import _mode, enable_grad
from .ops import Identity, stack
from .tensor import Buffer, Tensor, as_tensor
from .tree import tree_flatten, tree_unflatten

__all__ = ["value_and_grad", "grad", "jacobian", "hvp"]


class _InsideTransform:
    def __enter__(self) -> None:
        _mode.transform_depth += 1

    def __exit__(self, *exc: object) -> None:
        _mode.transform_depth -= 1


def inside_transform() -> _InsideTransform:
    return _InsideTransform()



def _differentiable_leaf(value: Any, where: str) -> Tensor:
    """A fresh Tensor to differentiate with respect to.

    Inside another transform, a Tensor that requires grad stays connected to the outer graph
    (through an identity node), so the outer transform can differentiate the result again.
    """
    if isinstance(value, Tensor) and value.requires_grad and _mode.transform_depth > 0:
        return Identity.apply(value)
    data = value.data if isinstance(value, Tensor) else np.asarray(value)
    if data.dtype.kind != "f":
        raise TypeError(f"grad: {where} must be floating point to be differentiated, got "
                        f"dtype {data.dtype}; convert it with .astype(np.float32)")
    return Tensor._make(data, True, None)


def _check_scalar_output(out: Any, has_aux: bool) -> Tensor:
    if not isinstance(out, Tensor):
        hint = " (with has_aux=True, return (loss, aux))" if has_aux else ""
        raise TypeError(f"grad: the function must return a Tensor{hint}, got "
                        f"{type(out).__name__}")
    if out.size != 1:
        raise ValueError(f"grad: the function must return a scalar, got shape {out.shape}; "
                         "reduce it (e.g. .sum()) or use jacobian")
    return out


def value_and_grad(f: Any, argnums: int | Sequence[int] = 0, has_aux: bool = False) -> Any:
    """A function returning ``(f(*args), d f / d args[argnums])``, in the spirit of JAX.

    `f` takes Tensors, arrays or nested dicts/lists/tuples of them and returns a scalar
    Tensor (or ``(scalar, aux)`` with `has_aux`). The gradients mirror the structure of the
    differentiated arguments (a tuple of them when `argnums` is a tuple); `Buffer` leaves
    (state that is not trained) are passed through as they are and get None. With
    `has_aux` the result is ``((value, aux), grads)``.

    >>> import numpy as np
    >>> value, grads = value_and_grad(lambda p: (p["w"] ** 2).sum())({"w": np.ones(2)})
    >>> grads["w"].numpy()
    array([2., 2.])
    """
    single = isinstance(argnums, int)
    positions = (argnums,) if single else tuple(argnums)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        for position in positions:
            if not -len(args) <= position < len(args):
                raise ValueError(f"grad: argnums {argnums!r} refers to argument {position}, "
                                 f"but the function was called with {len(args)} arguments")
        args = list(args)
        specs, targets = [], []
        for position in positions:
            leaves, spec = tree_flatten(args[position])
            fresh = [v if isinstance(v, Buffer) else _differentiable_leaf(v, f"argument "
                                                                          f"{position}")
                     for v in leaves]
            args[position] = tree_unflatten(spec, fresh)
            specs.append(spec)
            targets.append(fresh)
        nested = _mode.transform_depth > 0
        with enable_grad(), inside_transform():
            result = f(*args, **kwargs)
        out, aux = result if has_aux else (result, None)
        if has_aux and not (isinstance(result, tuple) and len(result) == 2):
            raise TypeError("grad: with has_aux=True the function must return (loss, aux)")
        out = _check_scalar_output(out, has_aux)
        flat = [t for group in targets for t in group]
        differentiated = [t for t in flat if isinstance(t, Tensor)]
        grads = grad_of(out, differentiated, create_graph=nested, allow_unused=True) \
            if out.requires_grad else [None] * len(differentiated)
        by_id = {id(t): g if g is not None else Tensor._make(np.zeros_like(t.data), False,
                                                             None)
                 for t, g in zip(differentiated, grads)}
        grads_iter = iter([by_id.get(id(t)) for t in flat])   # None for buffers
        trees = tuple(tree_unflatten(spec, [next(grads_iter) for _ in group])
                      for spec, group in zip(specs, targets))
        value = out if nested else out.detach()
        grads_out = trees[0] if single else trees
        return ((value, aux), grads_out) if has_aux else (value, grads_out)

    return wrapped


def grad(f: Any, argnums: int | Sequence[int] = 0, has_aux: bool = False) -> Any:
    """A function returning d f / d args[argnums] (with `has_aux`: ``(grads, aux)``).

    Transforms nest: ``grad(grad(f))(x)`` is the second derivative of a scalar function.

    >>> import numpy as np
    >>> grad(grad(lambda x: x ** 3))(np.float64(2.0)).item()  # d2/dx2 x^3 = 6x
    12.0
    """
    value_and_grad_f = value_and_grad(f, argnums, has_aux)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if has_aux:
            (_, aux), grads = value_and_grad_f(*args, **kwargs)
            return grads, aux
        return value_and_grad_f(*args, **kwargs)[1]

    return wrapped


def jacobian(f: Any, argnums: int = 0) -> Any:
    """A function returning the Jacobian of `f` at args[argnums], shape out.shape + x.shape.

    Reverse mode, one vector-Jacobian product per output element.
    """

    def wrapped(*args: Any) -> Tensor:
        args = list(args)
        x = _differentiable_leaf(args[argnums], f"argument {argnums}")
        args[argnums] = x
        nested = _mode.transform_depth > 0
        with enable_grad(), inside_transform():
            out = f(*args)
        if not isinstance(out, Tensor):
            raise TypeError(f"jacobian: the function must return a Tensor, got "
                            f"{type(out).__name__}")
        rows = []
        for i in range(out.size):
            basis = np.zeros(out.size, dtype=out.dtype)
            basis[i] = 1
            (row,) = grad_of(out, [x], basis.reshape(out.shape), retain_graph=True,
                             create_graph=nested, allow_unused=True) \
                if out.requires_grad else [None]
            rows.append(row if row is not None else Tensor._make(np.zeros_like(x.data),
                                                                 False, None))
        return stack(rows).reshape(out.shape + x.shape)

    return wrapped


def hvp(f: Any, x: Any, v: Any) -> Tensor:
    """The Hessian of scalar `f` at `x` times `v`: d/dx <grad f(x), v>."""
    v_tensor = as_tensor(v)
    return grad(lambda y: (grad(f)(y) * v_tensor).sum())(x)
