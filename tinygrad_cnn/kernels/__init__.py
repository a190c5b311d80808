"""The fast numpy kernels behind the conv and pooling primitives: window machinery
(`windows`), work buffers (`scratch`), im2col + BLAS convolution (`conv`), pooling loops
(`pool`) and the thread pool for memory-bound passes (`threads`). Their specification is
`tinygrad_cnn/reference.py`; the differentiable ops that call them are in `ops/`."""

import functools
from collections.abc import Callable
from typing import Any

import numpy as np


def all_finite(array: np.ndarray) -> bool:
    """No inf or NaN in `array`. Its max is NaN if any element is NaN and inf if one is;
    its min is -inf if one is: two vectorised passes, no BLAS (a dot product would wake
    OpenBLAS's threads, which then spin on the cores the pooling threads need)."""
    if array.size == 0:
        return True
    return bool(np.isfinite(np.max(array)) and np.isfinite(np.min(array)))


def quiet(kernel: Callable[..., Any]) -> Callable[..., Any]:
    """Run `kernel` without numpy's floating-point warnings, as PyTorch's kernels run: an
    inf or NaN flows through the result as the maths says, and intermediate values the
    kernel computes and then discards (the garbage columns of wide im2col, say) must not
    warn about numbers the user never sees."""
    @functools.wraps(kernel)
    def run(*args: Any, **kwargs: Any) -> Any:
        with np.errstate(all="ignore"):
            return kernel(*args, **kwargs)
    return run
