"""Work buffers that the numpy kernels reuse from call to call, one per role and thread.

A fresh array of a few MB costs a page fault per 4 KiB page the first time it is written
(several ms on a virtual machine), and numpy's allocator hands back fresh pages often enough
that a conv step spent most of its time faulting. The kernels therefore take their
temporaries (padded inputs, im2col columns, product results) from here: each role keeps
one buffer, grown to the largest size asked for. Nothing taken from here is ever returned
to a caller or saved for backward, and no kernel holding a role calls another that takes
the same role.
"""

from __future__ import annotations

import math
import threading

import numpy as np


class _Buffers(threading.local):
    def __init__(self) -> None:
        self.by_role: dict[str, np.ndarray] = {}


_buffers = _Buffers()


def take(role: str, shape: tuple[int, ...], dtype: np.dtype, zero: bool = False
         ) -> np.ndarray:
    """A C-contiguous array of `shape` on this thread's buffer for `role` (uninitialised
    unless `zero`). It stays valid until the next `take` of the same role on this thread."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    buffer = _buffers.by_role.get(role)
    if buffer is None or buffer.nbytes < nbytes:
        buffer = _buffers.by_role[role] = np.empty(max(nbytes, 1), dtype=np.uint8)
    out = buffer[:nbytes].view(dtype).reshape(shape)
    if zero:
        out.fill(0)
    return out


def clear() -> None:
    """Free this thread's work buffers (they are made again when next needed)."""
    _buffers.by_role.clear()


def held_bytes() -> int:
    """Bytes of work buffers this thread holds."""
    return sum(buffer.nbytes for buffer in _buffers.by_role.values())
