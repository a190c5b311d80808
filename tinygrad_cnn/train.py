"""Training a model of the zoo on digits, MNIST or Fashion-MNIST, and what it leaves behind.

`fit` is the loop (value_and_grad, an optimizer, batches); `run` adds data loading, the
per-epoch table and the output directory: params.npz, metrics.json/.csv, curves.png,
filters.png, feature_maps.png, graph.svg and graph.html (the interactive viewer).
"""

from __future__ import annotations

import inspect
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import data as datasets
from . import functional as F
from . import optim, trace
from .autograd import no_grad
from .models import get_model, model_name
from .plots import conv_outputs, write_pictures  # noqa: F401  (conv_outputs: public)
from .runstate import (  # noqa: F401  (CHECKPOINT, TrainingInterrupted: public here too)
    CHECKPOINT,
    DEFAULT_LR,
    OPTIMIZERS,
    Run,
    TrainingInterrupted,
    json_text,
    resumed_run,
    save_state,
    write_metrics,
)
from .tensor import Tensor
from .transforms import value_and_grad
from .view import view
from .viz import RendererNotFound, draw_graph

__all__ = ["Dataset", "load_dataset", "fit", "evaluate", "run", "OPTIMIZERS"]

@dataclass
class Dataset:
    """Standardized float32 images (N, 1, H, W) and int64 labels, split in train and test."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int = 10

    @property
    def image_size(self) -> int:
        return self.x_train.shape[-1]


def _standardize(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, std = float(train.mean()), float(train.std()) or 1.0
    return ((train - mean) / std).astype(np.float32), ((test - mean) / std).astype(np.float32)


def from_arrays(name: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                y_test: np.ndarray) -> Dataset:
    """A Dataset from raw images (N, H, W) or (N, 1, H, W) of any scale and integer labels."""
    as_images = [a.reshape(len(a), 1, *a.shape[-2:]).astype(np.float32)
                 for a in (x_train, x_test)]
    train, test = _standardize(*as_images)
    return Dataset(name, train, y_train.astype(np.int64), test, y_test.astype(np.int64))


DATASET_NAMES = ("digits", "mnist", "fashion-mnist", "mnist-t10k")


def load_dataset(name: str, seed: int = 0, root: str | None = None) -> Dataset:
    """digits (1,797 8x8 images, 360 held out at random), mnist, fashion-mnist, or
    mnist-t10k: MNIST's 10,000 test images alone, the first 8,000 to train on and the last
    2,000 held out (for machines that have only that file)."""
    if name == "digits":
        images, labels = datasets.load_digits()
        order = np.random.default_rng(seed).permutation(len(images))
        test, train = order[:360], order[360:]
        return from_arrays(name, images[train], labels[train], images[test], labels[test])
    if name == "mnist-t10k":
        images, labels = datasets.load_mnist(root, "test")
        return from_arrays(name, images[:8000], labels[:8000], images[8000:], labels[8000:])
    loaders = {"mnist": datasets.load_mnist, "fashion-mnist": datasets.load_fashion_mnist}
    if name not in loaders:
        raise ValueError(f"unknown dataset {name!r}; choose {', '.join(DATASET_NAMES)}")
    x_train, y_train = loaders[name](root, "train")
    x_test, y_test = loaders[name](root, "test")
    return from_arrays(name, x_train, y_train, x_test, y_test)


# ----------------------------------------------------------------------------- the loop
def evaluate(model: Callable, params: Any, x: np.ndarray, y: np.ndarray,
             batch_size: int = 500) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over (x, y), without recording a graph."""
    total_loss, correct = 0.0, 0
    with no_grad():
        for start in range(0, len(x), batch_size):
            logits = model(params, x[start:start + batch_size])
            labels = y[start:start + batch_size]
            total_loss += F.cross_entropy(logits, labels, reduction="sum").item()
            correct += int((logits.data.argmax(axis=1) == labels).sum())
    return total_loss / len(x), correct / len(x)


def _loss_and_accuracy(model: Callable, rng: np.random.Generator) -> Callable:
    """The training loss (dropout on, batch statistics) and the batch's accuracy."""
    def loss_fn(params: Any, x: np.ndarray, y: np.ndarray) -> tuple[Tensor, float]:
        logits = model(params, x, train=True, rng=rng)
        return F.cross_entropy(logits, y), float((logits.data.argmax(axis=1) == y).mean())
    return loss_fn


def fit(model: Callable, params: Any, dataset: Dataset, epochs: int, batch_size: int,
        optimizer: optim.Optimizer, seed: int = 0, progress: bool = True,
        max_steps: int | None = None, report: Callable[[dict], None] | None = None,
        rng: np.random.Generator | None = None, first_epoch: int = 1,
        seconds: float = 0.0) -> list[dict]:
    """Train epochs `first_epoch` .. `epochs` (or `max_steps` steps); one metrics dict per
    epoch. `rng` (default: seeded with `seed`) shuffles and draws dropout; passing the
    generator of an earlier run, at the epoch it stopped, continues that run exactly."""
    rng = np.random.default_rng(seed) if rng is None else rng
    step = value_and_grad(_loss_and_accuracy(model, rng), has_aux=True)
    history, steps, start = [], 0, time.perf_counter() - seconds
    for epoch in range(first_epoch, epochs + 1):
        losses, accuracies, counts = [], [], []
        batches = datasets.batches(dataset.x_train, dataset.y_train, batch_size, True, rng)
        bar = _progress(batches, len(dataset.x_train), batch_size, epoch, epochs, progress)
        for x, y in bar:
            (loss, accuracy), grads = step(params, x, y)
            optimizer.step(grads)
            losses.append(loss.item())
            accuracies.append(accuracy)
            counts.append(len(y))
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}",
                                acc=f"{np.average(accuracies, weights=counts):.3f}")
            steps += 1
            if max_steps is not None and steps >= max_steps:
                break
        test_loss, test_accuracy = evaluate(model, params, dataset.x_test, dataset.y_test)
        row = {"epoch": epoch, "train_loss": float(np.average(losses, weights=counts)),
               "train_accuracy": float(np.average(accuracies, weights=counts)),
               "test_loss": test_loss, "test_accuracy": test_accuracy,
               "seconds": time.perf_counter() - start}
        history.append(row)
        if report:
            report(row)
        if max_steps is not None and steps >= max_steps:
            break
    return history


def _progress(batches: Any, n: int, batch_size: int, epoch: int, epochs: int,
              enabled: bool) -> Any:
    if not enabled:
        return batches
    try:
        from tqdm import tqdm
    except ImportError:
        return batches
    return tqdm(batches, total=-(-n // batch_size), desc=f"epoch {epoch}/{epochs}",
                leave=False, unit="batch")


# ----------------------------------------------------------------------------- outputs
def print_header() -> None:
    print(f"{'epoch':>5} {'train loss':>11} {'train acc':>10} {'test loss':>10} "
          f"{'test acc':>9} {'time s':>7}")


def print_row(row: dict, header: bool = False) -> None:
    if header:
        print_header()
    print(f"{row['epoch']:>5} {row['train_loss']:>11.4f} {row['train_accuracy']:>10.4f} "
          f"{row['test_loss']:>10.4f} {row['test_accuracy']:>9.4f} {row['seconds']:>7.1f}")


def write_graph(model: Callable, params: Any, dataset: Dataset, out: Path) -> str:
    """graph.svg of the model and its loss (graph.dot when no renderer is installed), and
    graph.html, the interactive viewer of the same graph."""
    with trace.tracing():   # the viewer shows where each op was called
        loss = F.cross_entropy(model(params, dataset.x_test[:2]), dataset.y_test[:2])
    view(loss, params=params, title=f"{dataset.name}: the model and its loss").save(
        out / "graph.html")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # folding a large graph is expected here
            return str(draw_graph(loss, path=out / "graph.svg", params=params, max_nodes=40))
    except RendererNotFound as error:
        return f"{out / 'graph.dot'} ({error.args[0].split('. To render')[0]})"


# ----------------------------------------------------------------------------- run
def prepare_output(out: str | None) -> Path:
    """The output directory (default runs/<timestamp>), checked writable by creating it and
    a file in it, then removing what the check created: the first finished epoch creates
    it for good, so a run that fails early leaves nothing behind."""
    path = Path(out) if out else Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    created = []
    try:
        for folder in reversed([path, *path.parents]):
            if not folder.exists():
                folder.mkdir()
                created.append(folder)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise PermissionError(f"cannot write to output directory {path}: "
                              f"{error.strerror}") from None
    finally:
        for folder in reversed(created):
            folder.rmdir()
    return path


def _fresh_run(dataset: Dataset, model: str, settings: dict, batch_norm: bool) -> Run:
    model_fn, init_model = get_model(model)
    init_options = {"in_channels": 1, "num_classes": dataset.classes,
                    "image_size": dataset.image_size}
    if batch_norm:
        if "batch_norm" not in inspect.signature(init_model).parameters:
            raise ValueError(f"--batch-norm: the {model} model has no batch-norm variant; "
                             "use --model vgg")
        init_options["batch_norm"] = True
    params = init_model(np.random.default_rng(settings["seed"]), **init_options)
    opt = OPTIMIZERS[settings["optimizer"]](params, settings["lr"])
    return Run(settings, init_options, model_fn, params, opt,
               np.random.default_rng(settings["seed"]), [])


DEFAULT_EPOCHS = {"digits": 30, "mnist-t10k": 8, "mnist": 5, "fashion-mnist": 5}


def _check_options(epochs: int | None, batch_size: int | None, lr: float | None,
                   seed: int | None, optimizer: str | None, dataset: str | None,
                   max_steps: int | None) -> None:
    """ValueError naming the first option that no run could use."""
    for name, value, least in (("epochs", epochs, 1), ("batch_size", batch_size, 1),
                               ("seed", seed, 0), ("max_steps", max_steps, 1)):
        if value is not None and (not isinstance(value, (int, np.integer)) or value < least):
            raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    if lr is not None and not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr >= 0):
        raise ValueError(f"lr must be a finite number >= 0, got {lr!r}")
    if optimizer is not None and optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose {', '.join(OPTIMIZERS)}")
    if dataset is not None and dataset not in DATASET_NAMES:
        raise ValueError(f"unknown dataset {dataset!r}; choose {', '.join(DATASET_NAMES)}")


def run(dataset: str | None = None, model: str | None = None, epochs: int | None = None,
        batch_size: int | None = None, lr: float | None = None, optimizer: str | None = None,
        seed: int | None = None, out: str | None = None, progress: bool = True,
        max_steps: int | None = None, data_root: str | None = None, batch_norm: bool = False,
        output: str = "table", resume: str | None = None) -> tuple[Path, list[dict]]:
    """Train and write everything to the output directory; returns it and the history.

    Defaults: digits, lenet5, DEFAULT_EPOCHS of the dataset, batch 64, adam, DEFAULT_LR of
    the optimizer, seed 0. `output`: "table" (a line per epoch), "quiet" (the final line
    only) or "json" (a JSON record per epoch and a final one). `resume`: a folder this
    function wrote; training goes on from its last epoch to `epochs` exactly as if it had
    never stopped (the same settings, parameters, optimizer moments and random generator),
    writing there unless `out` says otherwise; options that contradict the run's settings
    raise ValueError. The output folder is created by the first finished epoch.
    """
    _check_options(epochs, batch_size, lr, seed, optimizer, dataset, max_steps)
    if resume is not None:
        given = {"dataset": dataset, "model": model and model_name(model),
                 "batch_size": batch_size, "lr": lr, "optimizer": optimizer, "seed": seed,
                 "batch_norm": batch_norm}
        state, settings = resumed_run(Path(resume), epochs, given), None
        out_dir = prepare_output(out or resume)
    else:
        dataset, optimizer = dataset or "digits", optimizer or "adam"
        settings = {"dataset": dataset, "model": model_name(model or "lenet5"),
                    "epochs": epochs or DEFAULT_EPOCHS[dataset],
                    "batch_size": batch_size or 64, "seed": seed or 0, "optimizer": optimizer,
                    "lr": DEFAULT_LR[optimizer] if lr is None else lr}
        state, out_dir = None, prepare_output(out)
    return out_dir, _train_in(state, settings, out_dir, progress, max_steps, output,
                              data_root, batch_norm)


def _train_in(state: Run | None, settings: dict | None, out_dir: Path, progress: bool,
              max_steps: int | None, output: str, data_root: str | None,
              batch_norm: bool) -> list[dict]:
    settings = state.settings if state else settings
    data = load_dataset(settings["dataset"], settings["seed"], data_root)
    state = state or _fresh_run(data, settings["model"], settings, batch_norm)
    settings.update(train_examples=len(data.x_train), test_examples=len(data.x_test))
    return _train(state, data, out_dir, progress, max_steps, output)


def _train(state: Run, data: Dataset, out_dir: Path, progress: bool, max_steps: int | None,
           output: str) -> list[dict]:
    settings, model_fn = state.settings, state.model
    if output == "table":
        print(f"{settings['model']} on {settings['dataset']}: {len(data.x_train)} training "
              f"and {len(data.x_test)} test images of {data.image_size}x{data.image_size}, "
              f"{settings['optimizer']} lr={settings['lr']}, batch {settings['batch_size']}, "
              f"seed {settings['seed']}" + (f", resumed after epoch {len(state.history)}"
                                            if state.history else ""))

    finished = list(state.history)

    def report(row: dict) -> None:
        finished.append(row)
        save_state(state, finished, out_dir)   # every finished epoch survives an interrupt
        if output == "json":
            print(json_text(row), flush=True)
        elif output == "table":
            print_row(row, header=row["epoch"] == len(state.history) + 1)

    done = state.history[-1]["seconds"] if state.history else 0.0
    try:
        history = state.history + fit(
            model_fn, state.params, data, settings["epochs"], settings["batch_size"],
            state.optimizer, settings["seed"], progress, max_steps, report, rng=state.rng,
            first_epoch=len(state.history) + 1, seconds=done)
    except KeyboardInterrupt:
        raise TrainingInterrupted(out_dir, len(finished)) from None
    _write_run(state, history, data, out_dir, output)
    return history


def _write_run(state: Run, history: list[dict], data: Dataset, out_dir: Path,
               output: str) -> None:
    model_fn = state.model
    write_pictures(model_fn, state.params, history, data, out_dir)
    graph = write_graph(model_fn, state.params, data, out_dir)
    final = history[-1] if history else {"test_accuracy": float("nan"), "seconds": 0.0}
    if output == "json":
        print(json_text({"done": True, "out": str(out_dir), "epochs": len(history),
                         "test_accuracy": final["test_accuracy"]}))
        return
    if output == "quiet":
        print(f"{state.settings['model']} on {state.settings['dataset']}: test accuracy "
              f"{final['test_accuracy']:.4f} after {len(history)} "
              f"epoch{'s' if len(history) != 1 else ''} "
              f"({final['seconds']:.1f} s); wrote {out_dir}/")
        return
    print(f"wrote {out_dir}/: params.npz, optimizer.npz, metrics.json, metrics.csv, "
          f"curves.png, filters.png, feature_maps.png, graph.html, "
          f"{Path(graph).name if Path(graph).exists() else graph}")
