"""A tensor at a glance, for the viewer: its statistics, a histogram, and heatmaps (PNG data
URIs, drawn by matplotlib when it is installed): the channels of an activation, the filters
of a conv weight, a matrix as it is, each down-sampled to at most MAX_SIDE pixels."""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np

__all__ = ["statistics", "histogram", "heatmaps"]

MAX_SIDE = 96      # pixels per side of one heatmap
MAX_TILES = 16     # channels or filters shown per tensor
BINS = 24


def statistics(array: np.ndarray) -> dict[str, Any]:
    """min, max, mean, std over the finite values; NaN and Inf counts; the fraction of 0s."""
    values = np.asarray(array, dtype=np.float64).ravel() if array.dtype.kind in "fiub" \
        else np.zeros(0)
    finite = values[np.isfinite(values)]
    stats: dict[str, Any] = {"size": int(array.size), "nan": int(np.isnan(values).sum()),
                             "inf": int(np.isinf(values).sum()),
                             "zeros": float((values == 0).mean()) if values.size else 0.0}
    for name, reduce in (("min", np.min), ("max", np.max), ("mean", np.mean), ("std", np.std)):
        stats[name] = _short(reduce(finite)) if finite.size else None
    return stats


def _short(value: float) -> float:
    """Six significant digits: what a panel shows, and a page a third the size."""
    return float(f"{float(value):.6g}")


def histogram(array: np.ndarray) -> dict[str, Any] | None:
    """BINS counts over the finite values' range [low, high] (equal bins)."""
    if array.dtype.kind not in "fiu" or array.size == 0:
        return None
    values = np.asarray(array, dtype=np.float64).ravel()
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None
    counts, edges = np.histogram(finite, bins=BINS)
    return {"counts": counts.tolist(), "low": _short(edges[0]), "high": _short(edges[-1])}


def _tiles(array: np.ndarray, weight: bool) -> list[np.ndarray]:
    """2-D planes to draw: a conv weight's filters (first input channel), an activation's
    channels (first example), a matrix, or a vector as one row."""
    data = np.asarray(array, dtype=np.float64)
    if data.ndim == 4:
        planes = data[:, 0] if weight else data[0]
        return list(planes[:MAX_TILES])
    if data.ndim == 3:
        return list(data[:MAX_TILES])
    if data.ndim == 2:
        return [data]
    return [data.reshape(1, -1)] if data.ndim == 1 else []


def _downsampled(plane: np.ndarray) -> np.ndarray:
    """At most MAX_SIDE per side (strided), and at least 16 (repeated), for the eye."""
    step = [max(1, -(-n // MAX_SIDE)) for n in plane.shape]
    small = plane[::step[0], ::step[1]]
    grow = [max(1, 16 // n) for n in small.shape]
    return np.repeat(np.repeat(small, grow[0], axis=0), grow[1], axis=1)


def _png(plane: np.ndarray, cmap: str) -> str:
    from matplotlib.image import imsave
    finite = np.where(np.isfinite(plane), plane, np.nan)
    low, high = np.nanmin(finite), np.nanmax(finite)
    if cmap == "RdBu_r":   # signed values: 0 is white
        bound = max(abs(low), abs(high)) or 1.0
        low, high = -bound, bound
    buffer = io.BytesIO()
    imsave(buffer, np.nan_to_num(finite, nan=low), cmap=cmap, vmin=low,
           vmax=high if high > low else low + 1, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def heatmaps(array: np.ndarray, weight: bool) -> list[str]:
    """PNG data URIs of the tensor's planes (none without matplotlib, or for a scalar)."""
    if array.dtype.kind != "f" or array.size < 2 or not np.isfinite(array).any():
        return []
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return []
    cmap = "RdBu_r" if weight or (np.nanmin(array) < 0 < np.nanmax(array)) else "viridis"
    return [_png(_downsampled(plane), cmap) for plane in _tiles(array, weight)]
