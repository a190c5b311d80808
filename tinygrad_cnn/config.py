"""What BLAS numpy uses, which kernels it picked, whether faster ones are available, and
how the C allocator is set up.

numpy's bundled OpenBLAS chooses its kernels from the CPU when it loads; on some CPUs with
AVX-512 it picks the AVX2 ("Haswell") kernels. Setting ``OPENBLAS_CORETYPE=SkylakeX`` before
numpy is first imported selects the AVX-512 kernels instead, with identical results.

Allocator: glibc gives every array of 128 KiB or more fresh pages from the OS (mmap) and
returns them on free, so each training step pays a page fault per 4 KiB of every
temporary (about 3 of 10 ms of a LeNet-5 step here). `keep_freed_memory` (called when
tinygrad_cnn is imported, unless ``TINYGRAD_CNN_MALLOC=0``) raises glibc's mmap and trim
thresholds so that freed memory is reused instead, as PyTorch's caching allocators do;
the process keeps its peak heap.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import numpy as np

from .kernels.threads import thread_count

__all__ = ["blas_info", "cpu_has_avx512", "faster_kernels_available", "show_config",
           "keep_freed_memory", "FAST_CORETYPE"]

FAST_CORETYPE = "SkylakeX"


M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3   # glibc's mallopt parameters
_allocator_tuned = False


def keep_freed_memory() -> bool:
    """Ask glibc to serve large arrays from a heap it keeps (no page faults on reuse).
    True if it was set (on glibc, once per process, unless TINYGRAD_CNN_MALLOC=0)."""
    global _allocator_tuned
    if _allocator_tuned or os.environ.get("TINYGRAD_CNN_MALLOC") == "0":
        return _allocator_tuned
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    settings = ((M_MMAP_THRESHOLD, 256 << 20), (M_TRIM_THRESHOLD, 1 << 30),
                (M_TOP_PAD, 64 << 20))
    _allocator_tuned = all(mallopt(option, value) == 1 for option, value in settings)
    return _allocator_tuned


def _openblas_library() -> ctypes.CDLL | None:
    """The OpenBLAS library numpy loaded (found in this process's memory map), if any."""
    maps = Path("/proc/self/maps")
    if not maps.exists():
        return None
    names = {line.split()[-1] for line in maps.read_text().splitlines() if line.strip()}
    paths = {name for name in names if "openblas" in name.lower() and ".so" in name}
    for path in sorted(paths):
        try:
            return ctypes.CDLL(path)
        except OSError:
            continue
    return None


def _core_name() -> str | None:
    library = _openblas_library()
    if library is None:
        return None
    for symbol in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename",
                   "openblas_get_corename64_", "openblas_get_corename"):
        function = getattr(library, symbol, None)
        if function is not None:
            function.restype = ctypes.c_char_p
            return function().decode()
    return None


def cpu_has_avx512() -> bool:
    """True when the CPU reports AVX-512F (read from /proc/cpuinfo; False if unknown)."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        return False
    for line in cpuinfo.read_text().splitlines():
        if line.startswith("flags"):
            return "avx512f" in line.split()
    return False


def blas_info() -> dict:
    """numpy's BLAS: name, version, the kernel set in use, the CPU's AVX-512 support."""
    try:
        build = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except (TypeError, KeyError):
        build = {}
    return {"numpy": np.__version__, "blas": build.get("name", "unknown"),
            "blas_version": build.get("version", "unknown"), "kernels": _core_name(),
            "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
            "avx512": cpu_has_avx512()}


AVX512_KERNELS = ("skylakex", "cooperlake", "sapphirerapids")


def faster_kernels_available(info: dict) -> bool:
    """True when the CPU has AVX-512 but OpenBLAS runs kernels without it."""
    kernels = (info["kernels"] or "").lower()
    return info["avx512"] and bool(kernels) and not kernels.startswith(AVX512_KERNELS)


def _advice(info: dict) -> str:
    if faster_kernels_available(info):
        return (f"This CPU has AVX-512 but OpenBLAS uses its {info['kernels']} kernels: set "
                f"OPENBLAS_CORETYPE={FAST_CORETYPE} before Python starts (export it in your "
                "shell) to use the AVX-512 kernels; results are identical.")
    if info["avx512"]:
        return "OpenBLAS already uses AVX-512 kernels."
    return "This CPU has no AVX-512; the default kernels are the right ones."


class ConfigReport(dict):
    """The BLAS configuration (a dict); str() and the REPL give one line per entry and the
    advice on faster kernels."""

    def __str__(self) -> str:
        lines = [f"{key:>18}: {value}" for key, value in self.items()]
        return "\n".join(lines + [f"{'advice':>18}: {_advice(self)}"])

    __repr__ = __str__


def show_config() -> ConfigReport:
    """The BLAS configuration and what to set for faster kernels (print it in a script)."""
    return ConfigReport({**blas_info(), "keeps freed memory": _allocator_tuned,
                         "pool threads": thread_count()})
