"""Optimizers with torch.optim's update rules, over a (nested) dict or list of parameters.

Parameters are Tensors or float numpy arrays (the README's style keeps a dict of arrays);
both are updated in place. ``opt.step()`` reads the Tensors' ``.grad``; ``opt.step(grads)``
takes a structure of gradients matching the parameters instead (the functional style:
``loss, grads = value_and_grad(loss_fn)(params, x, y); opt.step(grads)``). `Buffer`
leaves (batch norm's running statistics) are part of the structure but never updated.
``state_dict()`` / ``load_state_dict()`` save and restore the step count and moments.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from .tensor import Buffer, Tensor
from .tree import tree_flatten, tree_keys

__all__ = ["Optimizer", "SGD", "Adam", "AdamW"]


def _array(param: Any) -> np.ndarray:
    return param.data if isinstance(param, Tensor) else param


class Optimizer:
    """Holds the parameters and their state; subclasses define `update`."""

    def __init__(self, params: Any, lr: float) -> None:
        leaves, self._spec = tree_flatten(params)
        if not leaves:
            raise TypeError("optimizer: params must be a (nested) dict or list of Tensors or "
                            "float numpy arrays, got nothing to train")
        for index, leaf in enumerate(leaves):
            array = _array(leaf)
            if not isinstance(array, np.ndarray):
                raise TypeError(f"optimizer: parameter {index} is a {type(leaf).__name__}; "
                                "params must be Tensors or float numpy arrays")
            if not array.flags.writeable:
                raise TypeError(f"optimizer: parameter {index} is a read-only array; it is "
                                "updated in place, so pass a writable copy (np.array(...))")
            if array.dtype.kind != "f":
                raise TypeError(f"optimizer: parameter {index} has dtype {array.dtype}; only "
                                "floating-point parameters can be trained (convert with "
                                ".astype(np.float32))")
        _check_at_least_zero(type(self).__name__, lr=lr)
        self.params: list[Any] = leaves
        self.keys = tree_keys(params)
        self.trained = [not isinstance(leaf, Buffer) for leaf in leaves]
        self.lr = lr
        self.state: list[dict] = [{} for _ in leaves]
        self.steps = 0

    STATE_KEYS: tuple[str, ...] = ()   # what `update` keeps per parameter
    maximize = False                    # ascend the objective instead (torch.optim's option)

    def zero_grad(self) -> None:
        for param in self.params:
            if isinstance(param, Tensor):
                param.grad = None

    def _gradients(self, grads: Any) -> list[np.ndarray | None]:
        if grads is None:
            if not all(isinstance(p, Tensor) for p, t in zip(self.params, self.trained) if t):
                raise ValueError("optimizer.step(): numpy parameters hold no .grad; pass the "
                                 "gradients, as in opt.step(grads)")
            return [None if not isinstance(p, Tensor) or p.grad is None else p.grad.data
                    for p in self.params]
        leaves, spec = tree_flatten(grads)
        if len(leaves) != len(self.params) or spec != self._spec:
            raise ValueError("optimizer.step(grads): grads must have the structure of the "
                             f"params ({len(self.params)} tensors), got {len(leaves)}")
        arrays = [None if g is None else (g.data if isinstance(g, Tensor) else np.asarray(g))
                  for g in leaves]
        for index, (param, grad) in enumerate(zip(self.params, arrays)):
            if grad is not None and grad.shape != _array(param).shape:
                raise ValueError(f"optimizer.step(grads): gradient {index} has shape "
                                 f"{grad.shape} but its parameter has shape "
                                 f"{_array(param).shape}")
        return arrays

    def step(self, grads: Any = None) -> None:
        """One update, in place, of every trained parameter that has a gradient."""
        gradients = self._gradients(grads)
        self.steps += 1
        for param, grad, state, trained in zip(self.params, gradients, self.state,
                                               self.trained):
            if grad is not None and trained:
                value = _array(param)
                grad = grad.astype(value.dtype, copy=False)
                new_value = self.update(value, -grad if self.maximize else grad, state)
                if new_value is not value:   # (an update may work in place)
                    value[...] = new_value

    def state_dict(self) -> dict:
        """The optimizer's kind, the parameters' keys and shapes, the step count and each
        parameter's state (moments), as arrays: `data.save` writes it and
        `load_state_dict` restores it, so a run resumes exactly."""
        return {"optimizer": np.array(type(self).__name__), "keys": np.array(self.keys),
                "shapes": [np.array(_array(p).shape, np.int64) for p in self.params],
                "steps": np.int64(self.steps),
                "state": [{key: np.int64(value) if key == "step" else np.array(value)
                           for key, value in state.items()} for state in self.state]}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore what `state_dict` returned, for an optimizer of the same kind over
        parameters of the same structure; ValueError, changing nothing, otherwise."""
        self._check_state_of_this_kind(state_dict)
        restored = []
        for index, (param, state) in enumerate(zip(self.params, state_dict["state"])):
            entry = {}
            for key, value in state.items():
                if key not in self.STATE_KEYS:
                    raise ValueError(f"load_state_dict: parameter {index} has state {key!r}, "
                                     f"which {type(self).__name__} does not keep: the state "
                                     "of another optimizer")
                value = int(value) if key == "step" else np.array(value)
                if key != "step" and value.shape not in ((), _array(param).shape):
                    raise ValueError(f"load_state_dict: {key!r} of parameter {index} has "
                                     f"shape {value.shape}, the parameter "
                                     f"{_array(param).shape}")
                entry[key] = value
            restored.append(entry)
        self.state, self.steps = restored, int(state_dict.get("steps", 0))

    def _check_state_of_this_kind(self, state_dict: Any) -> None:
        states = state_dict.get("state") if isinstance(state_dict, dict) else None
        if not isinstance(states, (list, tuple)) or len(states) != len(self.params):
            count = len(states) if isinstance(states, (list, tuple)) else "no"
            raise ValueError(f"load_state_dict: expected the state of {len(self.params)} "
                             f"parameters, got {count}")
        kind = str(state_dict.get("optimizer", type(self).__name__))
        if kind != type(self).__name__:
            raise ValueError(f"load_state_dict: this is the state of {kind}, not of "
                             f"{type(self).__name__}")
        keys = [str(key) for key in np.asarray(state_dict.get("keys", self.keys)).ravel()]
        if len(self.keys) > 0 and keys != self.keys:
            raise ValueError(f"load_state_dict: the state is of parameters {keys[:6]}, these "
                             f"are {self.keys[:6]}")
        for index, shape in enumerate(state_dict.get("shapes") or []):
            if tuple(np.asarray(shape).tolist()) != _array(self.params[index]).shape:
                raise ValueError(f"load_state_dict: parameter {index} ({self.keys[index]!r}) "
                                 f"had shape {tuple(np.asarray(shape).tolist())}, now "
                                 f"{_array(self.params[index]).shape}")

    def update(self, value: np.ndarray, grad: np.ndarray, state: dict) -> np.ndarray:
        raise NotImplementedError


def _check_at_least_zero(name: str, **values: float) -> None:
    """ValueError, as torch.optim words it, for a hyperparameter below 0 (or NaN); TypeError
    for one that is not a number."""
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name}: {key} must be a number, got {value!r}")
        if not value >= 0:
            raise ValueError(f"{name}: invalid {key} value {value}; it must be >= 0")


class SGD(Optimizer):
    """g = -grad (maximize) or grad; g += wd*p; with momentum b = m*b + (1-dampening)*g
    (b = g at first), g = g + m*b (nesterov) or b; p = p - lr*g. As torch.optim.SGD."""

    STATE_KEYS = ("momentum",)

    def __init__(self, params: Any, lr: float = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False,
                 *, maximize: bool = False) -> None:
        super().__init__(params, lr)
        _check_at_least_zero("SGD", momentum=momentum, weight_decay=weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: nesterov needs momentum > 0 and zero dampening, got "
                             f"momentum={momentum}, dampening={dampening}")
        self.momentum, self.dampening, self.nesterov = momentum, dampening, nesterov
        self.weight_decay, self.maximize = weight_decay, maximize

    def update(self, value: np.ndarray, grad: np.ndarray, state: dict) -> np.ndarray:
        if self.weight_decay:
            grad = grad + self.weight_decay * value
        if self.momentum:
            buffer = state.get("momentum")
            buffer = grad.copy() if buffer is None else \
                self.momentum * buffer + (1 - self.dampening) * grad
            state["momentum"] = buffer
            grad = grad + self.momentum * buffer if self.nesterov else buffer
        return value - self.lr * grad


class Adam(Optimizer):
    """m = b1*m + (1-b1)*g, v = b2*v + (1-b2)*g^2 (g = -grad with maximize), p -= lr * m_hat
    / (sqrt(v_hat) + eps), bias-corrected; amsgrad uses the running max of v; weight decay is
    added to the gradient (coupled). As torch.optim.Adam."""

    decoupled = False
    STATE_KEYS = ("step", "m", "v", "v_max")

    def __init__(self, params: Any, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        super().__init__(params, lr)
        name = type(self).__name__
        _check_at_least_zero(name, eps=eps, weight_decay=weight_decay)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2 or not all(
                isinstance(b, numbers.Real) and 0 <= b < 1 for b in betas):
            raise ValueError(f"{name}: betas must be in [0, 1), got {betas}")
        self.betas, self.eps, self.weight_decay = betas, eps, weight_decay
        self.amsgrad, self.maximize = amsgrad, maximize

    def update(self, value: np.ndarray, grad: np.ndarray, state: dict) -> np.ndarray:
        """In place: p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)."""
        if self.weight_decay and self.decoupled:
            value *= 1 - self.lr * self.weight_decay
        elif self.weight_decay:
            grad = grad + self.weight_decay * value
        beta1, beta2 = self.betas
        state["step"] = step = state.get("step", 0) + 1
        m, v = (_moment(state, key, value) for key in ("m", "v"))
        m *= beta1
        m += (1 - beta1) * grad
        v *= beta2
        v += (1 - beta2) * grad * grad
        if self.amsgrad:
            v_max = _moment(state, "v_max", value)
            np.maximum(v_max, v, out=v_max)
            v = v_max
        denominator = np.sqrt(v)
        denominator /= math.sqrt(1 - beta2 ** step)
        denominator += self.eps
        step_size = self.lr / (1 - beta1 ** step)
        value -= step_size * m / denominator
        return value


def _moment(state: dict, key: str, value: np.ndarray) -> np.ndarray:
    """The moment array `key` of a parameter, of its shape and dtype (zeros at first)."""
    moment = state.get(key)
    if not isinstance(moment, np.ndarray) or moment.shape != value.shape or \
            moment.dtype != value.dtype or not moment.flags.writeable:
        moment = np.broadcast_to(np.asarray(0.0 if moment is None else moment,
                                            dtype=value.dtype), value.shape).copy()
        state[key] = moment
    return moment


class AdamW(Adam):
    """Adam with decoupled weight decay: p = p * (1 - lr*wd) before the Adam step."""

    decoupled = True

    def __init__(self, params: Any, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)
