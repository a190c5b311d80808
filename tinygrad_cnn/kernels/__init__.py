"""The fast numpy kernels behind the conv and pooling primitives: window machinery
(`windows`), work buffers (`scratch`), im2col + BLAS convolution (`conv`), pooling loops
(`pool`) and the thread pool for memory-bound passes (`threads`). Their specification is
`tinygrad_cnn/reference.py`; the differentiable ops that call them are in `ops/`."""

import numpy as np


def all_finite(array: np.ndarray) -> bool:
    """No inf or NaN in `array`: one fast pass (a dot product of a contiguous array with
    itself is inf or NaN if any element is; so is a sum). A huge finite array whose pass
    overflows answers False, which only costs the caller its slower, exact path."""
    if array.flags.c_contiguous and array.dtype.kind == "f" and array.size:
        flat = array.reshape(-1)
        with np.errstate(over="ignore", invalid="ignore"):
            return bool(np.isfinite(np.dot(flat, flat)))
    return bool(np.isfinite(np.sum(array)))
