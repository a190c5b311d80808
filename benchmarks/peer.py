"""PyTorch as the benchmarks' peer (optional, never a dependency), and interleaved timing.

PyTorch's CPU build runs its ops on an OpenMP thread pool whose idle threads keep spinning
on the cores for a while after each op (the OpenMP default wait policy). Interleaved with
our steps in the same process, that spinning takes one of the two cores away from the
numpy/OpenBLAS work that follows. OMP_WAIT_POLICY=PASSIVE (unless the caller set it) makes
those threads sleep when idle; PyTorch's own times are the same or shorter with it here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np


def import_torch(threads: int = 2, passive: bool = True):
    """The torch module set to `threads` threads, or None when it is not installed.
    `passive`: idle OpenMP threads sleep (for interleaving with our steps)."""
    if passive:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read when torch loads OpenMP
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    return torch


def interleaved_medians(steps: list, repeats: int, warmup: int = 1) -> list[float]:
    """Median milliseconds of each step, run alternately `repeats` times after warm-ups."""
    times = [[] for _ in steps]
    for _ in range(warmup):
        for step in steps:
            step()
    for _ in range(repeats):
        for k, step in enumerate(steps):
            start = time.perf_counter()
            step()
            times[k].append(time.perf_counter() - start)
    return [1e3 * float(np.median(t)) for t in times]


def alone_rounds(script: str, arguments: dict[str, list[str]], rounds: int = 3
                 ) -> dict[str, list[str]]:
    """What `script` prints when run in a fresh process per framework (the keys of
    `arguments`, each with its command-line arguments), `rounds` times alternately: each
    framework alone, the way users run code."""
    outputs: dict[str, list[str]] = {name: [] for name in arguments}
    for _ in range(rounds):
        for name, args in arguments.items():
            command = [sys.executable, os.path.abspath(script), *args]
            outputs[name].append(subprocess.run(command, capture_output=True, text=True,
                                                check=True).stdout)
    return outputs
