"""Both cores for memory-bound passes: batch chunks on a small thread pool.

numpy releases the GIL in copies and ufunc loops on large arrays, so pooling passes split
by batch run on every core, as PyTorch's do. BLAS products are left to BLAS's own threads.
The pool is sized from the cores this process may use; ``TINYGRAD_CNN_THREADS=1`` turns it
off (any other number sets its size). Work buffers (`scratch`) are per thread.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

__all__ = ["parallel_batches", "thread_count", "MIN_ELEMENTS"]

MIN_ELEMENTS = 1 << 20   # below this many elements in all, threads cost more than they save
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


def parallel_batches(work: Callable[[int, int], None], n: int, per_item: int) -> None:
    """work(start, stop) over batch slices covering 0 .. n: one call on this thread when
    the job is small or there is one core, else one slice per thread."""
    workers = min(thread_count(), n)
    if workers <= 1 or n * per_item < MIN_ELEMENTS:
        work(0, n)
        return
    bounds = [n * k // workers for k in range(workers + 1)]
    futures = [_executor(workers).submit(work, a, b) for a, b in zip(bounds, bounds[1:])
               if b > a]
    for future in futures:
        future.result()
