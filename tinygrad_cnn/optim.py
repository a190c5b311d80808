"""Optimizers with torch.optim's update rules, over a (nested) dict or list of Tensors.

``opt.step()`` updates the parameters in place from their ``.grad``; ``opt.step(grads)``
takes a structure of gradients matching the parameters instead (the functional style:
``loss, grads = value_and_grad(loss_fn)(params, x, y); opt.step(grads)``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .autograd import _tree_flatten
from .tensor import Tensor

__all__ = ["Optimizer", "SGD", "Adam", "AdamW"]


class Optimizer:
    """Holds the parameters and their state; subclasses define `update`."""

    def __init__(self, params: Any, lr: float) -> None:
        leaves, self._spec = _tree_flatten(params)
        if not leaves or not all(isinstance(p, Tensor) for p in leaves):
            raise TypeError("optimizer: params must be a dict or list (nested allowed) of "
                            "Tensors; wrap arrays with Tensor(array, requires_grad=True)")
        if not lr > 0:
            raise ValueError(f"optimizer: lr must be positive, got {lr}")
        self.params: list[Tensor] = leaves
        self.lr = lr
        self.state: list[dict] = [{} for _ in leaves]
        self.steps = 0

    def zero_grad(self) -> None:
        for param in self.params:
            param.grad = None

    def _gradients(self, grads: Any) -> list[np.ndarray | None]:
        if grads is None:
            return [None if p.grad is None else p.grad.data for p in self.params]
        leaves, spec = _tree_flatten(grads)
        if len(leaves) != len(self.params) or spec != self._spec:
            raise ValueError("optimizer.step(grads): grads must have the structure of the "
                             f"params ({len(self.params)} tensors), got {len(leaves)}")
        arrays = [None if g is None else (g.data if isinstance(g, Tensor) else np.asarray(g))
                  for g in leaves]
        for param, grad in zip(self.params, arrays):
            if grad is not None and grad.shape != param.shape:
                raise ValueError(f"optimizer.step(grads): a gradient of shape {grad.shape} "
                                 f"for a parameter of shape {param.shape}")
        return arrays

    def step(self, grads: Any = None) -> None:
        """One update of every parameter that has a gradient."""
        self.steps += 1
        for param, grad, state in zip(self.params, self._gradients(grads), self.state):
            if grad is not None:
                param.data[...] = self.update(param.data, grad.astype(param.dtype, copy=False),
                                              state)

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
        if self.weight_decay and self.decoupled:
            value = value * (1 - self.lr * self.weight_decay)
        elif self.weight_decay:
            grad = grad + self.weight_decay * value
        beta1, beta2 = self.betas
        state["step"] = step = state.get("step", 0) + 1
        state["m"] = m = beta1 * state.get("m", 0.0) + (1 - beta1) * grad
        state["v"] = v = beta2 * state.get("v", 0.0) + (1 - beta2) * grad * grad
        m_hat = m / (1 - beta1 ** step)
        v_hat = v / (1 - beta2 ** step)
        return value - self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


class AdamW(Adam):
    """Adam with decoupled weight decay: p = p * (1 - lr*wd) before the Adam step."""

    decoupled = True

    def __init__(self, params: Any, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2) -> None:
        super().__init__(params, lr, betas, eps, weight_decay)
