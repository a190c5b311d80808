"""Both cores for memory-bound passes: cache-sized slices on a small thread pool.

numpy releases the GIL in copies and ufunc loops on large arrays, so pooling passes split
into slices run on every core, as PyTorch's do. A slice is small enough (`SLICE_BYTES`)
that the several passes a pooling kernel makes over it stay in a core's cache, instead
of streaming the whole batch from memory once per kernel offset (twice as fast, float32
and float64, on this machine). BLAS products are left to BLAS's own threads.
The pool is sized from the cores this process may use; ``TINYGRAD_CNN_THREADS=1`` turns it
off (any other number sets its size). Work buffers (`scratch`) are per thread.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["parallel_batches", "thread_count", "MIN_BYTES", "SLICE_BYTES"]

MIN_BYTES = 1 << 22      # below this many bytes in all, threads cost more than they save
SLICE_BYTES = 1 << 22    # input bytes per slice: its passes stay in a core's L2 cache
_pool: ThreadPoolExecutor | None = None
_pool_pid = 0            # a forked child has none of its parent's threads: it makes its own


def thread_count() -> int:
    setting = os.environ.get("TINYGRAD_CNN_THREADS")
    if setting:
        return max(1, int(setting))
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        os.cpu_count() or 1


def _executor(workers: int) -> ThreadPoolExecutor:
    global _pool, _pool_pid
    if _pool is None or _pool._max_workers != workers or _pool_pid != os.getpid():
        _pool = ThreadPoolExecutor(workers, thread_name_prefix="tinygrad_cnn")
        _pool_pid = os.getpid()
    return _pool


def parallel_batches(work: Callable[[int, int], None], n: int, item_bytes: int) -> None:
    """work(start, stop) over slices covering items 0 .. n, about `SLICE_BYTES` each: on
    this thread when the job is small or there is one core, else on the pool."""
    step = max(1, SLICE_BYTES // max(item_bytes, 1))
    slices = [(start, min(start + step, n)) for start in range(0, n, step)]
    workers = min(thread_count(), len(slices))
    if workers <= 1 or n * item_bytes < MIN_BYTES:
        for start, stop in slices:
            work(start, stop)
        return
    settings = np.geterr()   # the workers follow the caller's floating-point error state

    def run(bounds: tuple[int, int]) -> None:
        with np.errstate(**settings):
            work(*bounds)
    for _ in _executor(workers).map(run, slices):
        pass   # re-raises the first exception of a slice
