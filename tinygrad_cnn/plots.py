"""The pictures a run leaves (learning curves, first-layer filters, feature maps) and the
receptive-field grid of `tinygrad-cnn receptive-field`, drawn with matplotlib (imported on
first use: it is an optional dependency)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .graph import forward_order
from .ops import is_convolution
from .tensor import Tensor

__all__ = ["write_pictures", "conv_outputs", "plot_conv_stage_fields"]


def _pyplot() -> Any:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def conv_outputs(model: Callable, params: Any, image: np.ndarray) -> list[np.ndarray]:
    """The output of every convolution of `model` for one image (1, C, H, W), in order."""
    params_tensors = {k: Tensor(v.data, requires_grad=True) for k, v in params.items()}
    out = model(params_tensors, image)
    return [node.output.data[0] for node in forward_order([out]) if is_convolution(node)]


def write_pictures(model: Callable, params: Any, history: list[dict], dataset: Any,
                   out: Path) -> None:
    plt = _pyplot()
    _plot_curves(plt, history, out / "curves.png")
    first = next(v for k, v in params.items() if v.ndim == 4).data
    _plot_grid(plt, first[:, 0], f"first-layer filters {first.shape}", out / "filters.png")
    maps = conv_outputs(model, params, dataset.x_test[:1])
    figure, axes = plt.subplots(len(maps) + 1, 1, figsize=(10, 2.2 * (len(maps) + 1)))
    axes[0].imshow(dataset.x_test[0, 0], cmap="gray")
    axes[0].set_title(f"test image (label {dataset.y_test[0]})")
    for row, fmap in enumerate(maps, start=1):
        axes[row].imshow(_tile(fmap), cmap="viridis")
        axes[row].set_title(f"conv layer {row}: {fmap.shape[0]} maps of {fmap.shape[1:]}")
    for axis in axes:
        axis.axis("off")
    figure.tight_layout()
    figure.savefig(out / "feature_maps.png", dpi=100)
    plt.close(figure)


def _tile(maps: np.ndarray) -> np.ndarray:
    """(K, H, W) maps side by side with a 1-pixel gap, each scaled to [0, 1]."""
    low = maps.min(axis=(1, 2), keepdims=True)
    span = np.maximum(maps.max(axis=(1, 2), keepdims=True) - low, 1e-12)
    scaled = np.pad((maps - low) / span, ((0, 0), (0, 0), (0, 1)), constant_values=np.nan)
    return np.concatenate(list(scaled), axis=1)


def _plot_curves(plt: Any, history: list[dict], path: Path) -> None:
    epochs = [row["epoch"] for row in history]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for key, axis in (("loss", left), ("accuracy", right)):
        axis.plot(epochs, [r[f"train_{key}"] for r in history], "o-", label="train")
        axis.plot(epochs, [r[f"test_{key}"] for r in history], "s-", label="test")
        axis.set_xlabel("epoch")
        axis.set_title(key)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _plot_grid(plt: Any, filters: np.ndarray, title: str, path: Path) -> None:
    columns = min(8, len(filters))
    rows = -(-len(filters) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(1.5 * columns, 1.5 * rows + 0.5),
                                squeeze=False)
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index < len(filters):
            axis.imshow(filters[index], cmap="gray")
    figure.suptitle(title)
    figure.savefig(path, dpi=100)
    plt.close(figure)



def plot_conv_stage_fields(columns: list[tuple[str, list]], path: str) -> None:
    """A grid of effective fields (one row per conv stage, one column per model state)
    with the theoretical box drawn over each."""
    plt = _pyplot()
    from matplotlib.patches import Rectangle
    rows = len(columns[0][1])
    figure, axes = plt.subplots(rows, len(columns), figsize=(3.6 * len(columns), 3.2 * rows),
                                squeeze=False)
    for column, (title, stages) in enumerate(columns):
        for row, (label, effective, _, (top, left, bottom, right)) in enumerate(stages):
            ax = axes[row][column]
            ax.imshow(effective, cmap="magma")
            ax.add_patch(Rectangle((left - 0.5, top - 0.5), right - left + 1, bottom - top + 1,
                                   fill=False, edgecolor="cyan", linewidth=1.5))
            ax.set_title(f"{title}\n{label}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    figure.suptitle("effective receptive field (|gradient|, 16 random inputs) and the "
                    "theoretical box", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
