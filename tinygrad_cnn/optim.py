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
from typing import Any

import numpy as np

from .autograd import tree_flatten
from .tensor import Buffer, Tensor

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
        if not lr > 0:
            raise ValueError(f"optimizer: lr must be positive, got {lr}")
        self.params: list[Any] = leaves
        self.trained = [not isinstance(leaf, Buffer) for leaf in leaves]
        self.lr = lr
        self.state: list[dict] = [{} for _ in leaves]
        self.steps = 0

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
                new_value = self.update(value, grad.astype(value.dtype, copy=False), state)
                if new_value is not value:   # (an update may work in place)
                    value[...] = new_value

    def state_dict(self) -> dict:
        """The step count and each parameter's state (moments), as arrays: `data.save`
        writes it and `load_state_dict` restores it, so a run resumes exactly."""
        return {"steps": np.int64(self.steps),
                "state": [{key: np.int64(value) if key == "step" else np.array(value)
                           for key, value in state.items()} for state in self.state]}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore what `state_dict` returned (for the same parameters)."""
        states = state_dict.get("state") if isinstance(state_dict, dict) else None
        if not isinstance(states, (list, tuple)) or len(states) != len(self.params):
            count = len(states) if isinstance(states, (list, tuple)) else "no"
            raise ValueError(f"load_state_dict: expected the state of {len(self.params)} "
                             f"parameters, got {count}")
        restored = []
        for index, (param, state) in enumerate(zip(self.params, states)):
            entry = {}
            for key, value in state.items():
                if key == "step":
                    entry[key] = int(value)
                    continue
                value = np.array(value)
                if value.shape not in ((), _array(param).shape):
                    raise ValueError(f"load_state_dict: {key!r} of parameter {index} has "
                                     f"shape {value.shape}, the parameter "
                                     f"{_array(param).shape}")
                entry[key] = value
            restored.append(entry)
        self.state, self.steps = restored, int(state_dict.get("steps", 0))

    def update(self, value: np.ndarray, grad: np.ndarray, state: dict) -> np.ndarray:
        raise NotImplementedError


class SGD(Optimizer):
    """g = grad + wd*p; with momentum b = m*b + g (b = g at first), g = g + m*b (nesterov)
    or b; p = p - lr*g."""

    def __init__(self, params: Any, lr: float, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, lr)
        if nesterov and momentum <= 0:
            raise ValueError("SGD: nesterov needs momentum > 0")
        self.momentum, self.nesterov, self.weight_decay = momentum, nesterov, weight_decay

    def update(self, value: np.ndarray, grad: np.ndarray, state: dict) -> np.ndarray:
        if self.weight_decay:
            grad = grad + self.weight_decay * value
        if self.momentum:
            buffer = state.get("momentum")
            buffer = grad.copy() if buffer is None else self.momentum * buffer + grad
            state["momentum"] = buffer
            grad = grad + self.momentum * buffer if self.nesterov else buffer
        return value - self.lr * grad


class Adam(Optimizer):
    """m = b1*m + (1-b1)*g, v = b2*v + (1-b2)*g^2, p -= lr * m_hat / (sqrt(v_hat) + eps),
    with bias-corrected m_hat, v_hat; weight decay is added to the gradient (coupled)."""

    decoupled = False

    def __init__(self, params: Any, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        super().__init__(params, lr)
        if not all(0 <= b < 1 for b in betas):
            raise ValueError(f"{type(self).__name__}: betas must be in [0, 1), got {betas}")
        self.betas, self.eps, self.weight_decay = betas, eps, weight_decay

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
                 eps: float = 1e-8, weight_decay: float = 1e-2) -> None:
        super().__init__(params, lr, betas, eps, weight_decay)
