"""Grad mode: whether ops record the graph (`no_grad`, `enable_grad`, `set_grad_enabled`,
as in PyTorch), and how deep in grad transforms the running code is. Thread-local: the
only global state of the engine."""

from __future__ import annotations

import threading
from contextlib import ContextDecorator

__all__ = ["no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled"]


class _GradMode(threading.local):
    """Thread-local grad mode: whether ops record a graph, and how deep in grad transforms."""

    def __init__(self) -> None:
        self.enabled = True
        self.transform_depth = 0


_mode = _GradMode()


def is_grad_enabled() -> bool:
    """True when ops record the graph (the default)."""
    return _mode.enabled


class set_grad_enabled(ContextDecorator):
    """Context manager and decorator that sets grad mode on or off for its block."""

    def __init__(self, mode: bool) -> None:
        self.mode = bool(mode)
        self._previous: list[bool] = []

    def __enter__(self) -> set_grad_enabled:
        self._previous.append(_mode.enabled)
        _mode.enabled = self.mode
        return self

    def __exit__(self, *exc: object) -> None:
        _mode.enabled = self._previous.pop()


class no_grad(set_grad_enabled):
    """Ops inside record no graph and save nothing: ``with no_grad(): ...`` or ``@no_grad()``."""

    def __init__(self) -> None:
        super().__init__(False)


class enable_grad(set_grad_enabled):
    """Turns recording back on inside a `no_grad` block."""

    def __init__(self) -> None:
        super().__init__(True)
