"""What BLAS numpy uses, which kernels it picked, and whether faster ones are available.

numpy's bundled OpenBLAS chooses its kernels from the CPU when it loads; on some CPUs with
AVX-512 it picks the AVX2 ("Haswell") kernels. Setting ``OPENBLAS_CORETYPE=SkylakeX`` before
numpy is first imported selects the AVX-512 kernels instead, with identical results.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import numpy as np

__all__ = ["blas_info", "cpu_has_avx512", "faster_kernels_available", "show_config",
           "FAST_CORETYPE"]

FAST_CORETYPE = "SkylakeX"


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


def show_config() -> dict:
    """Print and return the BLAS configuration and what to set for faster kernels."""
    info = blas_info()
    for key, value in info.items():
        print(f"{key:>18}: {value}")
    print(f"{'advice':>18}: {_advice(info)}")
    return info
