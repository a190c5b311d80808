"""The fast numpy kernels behind the conv and pooling primitives: window machinery
(`windows`), work buffers (`scratch`), im2col + BLAS convolution (`conv`), pooling loops
(`pool`) and the thread pool for memory-bound passes (`threads`). Their specification is
`tinygrad_cnn/reference.py`; the differentiable ops that call them are in `ops/`."""

import numpy as np


def all_finite(array: np.ndarray) -> bool:
    """No inf or NaN in `array`. Its max is NaN if any element is NaN and inf if one is;
    its min is -inf if one is: two vectorised passes, no BLAS (a dot product would wake
    OpenBLAS's threads, which then spin on the cores the pooling threads need)."""
    if array.size == 0:
        return True
    return bool(np.isfinite(np.max(array)) and np.isfinite(np.min(array)))
