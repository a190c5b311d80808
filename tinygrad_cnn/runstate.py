"""A training run's state on disk: `save_state` writes every finished epoch (one atomic
checkpoint, then the files a user reads), and `resumed_run` reads it back for --resume,
checking that the folder holds one consistent epoch and that the options given agree
with the run's settings."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import checkpoint, optim
from .models import get_model
from .tensor import Buffer, Tensor

__all__ = ["Run", "OPTIMIZERS", "DEFAULT_LR", "CHECKPOINT", "TrainingInterrupted",
           "save_state", "resumed_run", "write_metrics", "json_text"]

OPTIMIZERS = {"sgd": lambda params, lr: optim.SGD(params, lr, momentum=0.9),
              "adam": lambda params, lr: optim.Adam(params, lr)}
DEFAULT_LR = {"sgd": 0.05, "adam": 2e-3}



@dataclass
class Run:
    """What a training run needs, fresh or resumed from its output directory."""

    settings: dict
    init_options: dict
    model: Callable          # the zoo's model function, looked up once per run
    params: dict
    optimizer: optim.Optimizer
    rng: np.random.Generator
    history: list


CHECKPOINT = "checkpoint.npz"   # one archive per finished epoch: what --resume reads


class TrainingInterrupted(Exception):
    """Ctrl-C during training: `saved` epochs are in `out` (0: nothing was saved)."""

    def __init__(self, out: Path, saved: int) -> None:
        super().__init__(f"interrupted; {saved} finished epoch(s) saved in {out}")
        self.out, self.saved = out, saved


def save_state(state: Run, history: list[dict], out_dir: Path) -> None:
    """Everything a finished epoch leaves: first `checkpoint.npz`, one atomic archive with
    the params, the optimizer state, the generator, the settings and the history, which is
    all --resume reads; then params.npz, optimizer.npz and the metrics for the user."""
    rng_state = state.rng.bit_generator.state
    out_dir.mkdir(parents=True, exist_ok=True)   # made when there is something to write
    checkpoint.save({"params": state.params, "optimizer": state.optimizer.state_dict()},
                  out_dir / CHECKPOINT,
                  meta={"epoch": len(history), "rng": rng_state, "settings": state.settings,
                        "init": state.init_options, "history": history})
    checkpoint.save(state.params, out_dir / "params.npz",
                  meta={"model": state.settings["model"], "init": state.init_options,
                        "epoch": len(history)})
    checkpoint.save(state.optimizer.state_dict(), out_dir / "optimizer.npz",
                  meta={"epoch": len(history), "rng": rng_state})
    write_metrics(history, out_dir, state.settings)


def _as_run(settings: dict, init_options: dict, params: dict, saved: Any, rng_state: dict,
            history: list) -> Run:
    params = {key: value if isinstance(value, Buffer) else
              Tensor(value, requires_grad=True, name=key) for key, value in params.items()}
    opt = OPTIMIZERS[settings["optimizer"]](params, settings["lr"])
    opt.load_state_dict(saved)
    rng = np.random.default_rng()
    rng.bit_generator.state = rng_state
    return Run(settings, init_options, get_model(settings["model"])[0], params, opt, rng,
               history)


SETTINGS = ("dataset", "model", "epochs", "batch_size", "seed", "optimizer", "lr")


def _saved_settings(settings: Any, source: Path) -> dict:
    if not isinstance(settings, dict) or not set(SETTINGS) <= settings.keys():
        raise ValueError(f"--resume: {source} holds no training settings (expected "
                         f"{', '.join(SETTINGS)}); resume a folder written by tinygrad-cnn "
                         "train")
    return dict(settings)


def _from_checkpoint(path: Path) -> Run:
    tree, meta = checkpoint.load(path), checkpoint.read_meta(path)
    missing = [key for key in ("settings", "init", "rng", "history") if key not in meta]
    if missing or not isinstance(tree, dict) or not {"params", "optimizer"} <= tree.keys():
        raise ValueError(f"--resume: {path} is not a training checkpoint (it lacks "
                         f"{', '.join(missing) or 'params and optimizer state'})")
    settings = _saved_settings(meta["settings"], path)
    checkpoint.check_model_params(tree["params"], settings["model"], meta["init"], str(path))
    return _as_run(settings, meta["init"], tree["params"], tree["optimizer"], meta["rng"],
                   meta["history"])


def _from_legacy_files(folder: Path) -> Run:
    """A folder written before checkpoints: its three files, all of the same epoch."""
    for name in ("metrics.json", "params.npz", "optimizer.npz"):
        if not (folder / name).is_file():
            raise ValueError(f"--resume {folder}: {name} is missing; resume a folder "
                             "written by tinygrad-cnn train")
    try:
        record = json.loads((folder / "metrics.json").read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"--resume: {folder / 'metrics.json'} is not valid JSON "
                         f"({error})") from None
    if not isinstance(record, dict) or not isinstance(record.get("epochs"), list):
        raise ValueError(f"--resume: {folder / 'metrics.json'} holds no list of epochs")
    settings = _saved_settings(record.get("settings"), folder / "metrics.json")
    params = checkpoint.load(folder / "params.npz", model=settings["model"])
    params_meta = checkpoint.read_meta(folder / "params.npz")
    saved, meta = checkpoint.load(folder / "optimizer.npz"), checkpoint.read_meta(
        folder / "optimizer.npz")
    epochs_of = {"metrics.json": len(record["epochs"]), "optimizer.npz": meta.get("epoch"),
                 "params.npz": params_meta.get("epoch", meta.get("epoch"))}
    if len(set(epochs_of.values())) != 1 or "rng" not in meta:
        raise ValueError(f"--resume {folder}: its files are of different epochs (" +
                         ", ".join(f"{name} {epoch}" for name, epoch in epochs_of.items()) +
                         "): a write was interrupted; nothing consistent to resume from")
    return _as_run(settings, params_meta.get("init", {}), params, saved, meta["rng"],
                   record["epochs"])


def resumed_run(folder: Path, epochs: int | None, given: dict) -> Run:
    """The state a run saved (params, optimizer, generator, history) to go on from, its
    checkpoint or, for a folder written before checkpoints, its three files. `given`
    options must agree with the run's settings: they cannot change in the middle of it."""
    if not folder.is_dir():
        raise ValueError(f"--resume {folder}: " + ("not a folder; resume the folder a run "
                         "wrote" if folder.exists() else "does not exist"))
    state = _from_checkpoint(folder / CHECKPOINT) if (folder / CHECKPOINT).exists() \
        else _from_legacy_files(folder)
    contradictions = [f"{key}={value!r} (the run has {state.settings[key]!r})"
                      for key, value in given.items()
                      if key in SETTINGS and value not in (None, state.settings[key])]
    if given.get("batch_norm") and not state.init_options.get("batch_norm"):
        contradictions.append("batch_norm=True (the run has no batch norm)")
    if contradictions:
        raise ValueError(f"--resume {folder}: " + "; ".join(contradictions) + " contradict "
                         "the run being resumed; leave them out to resume it, or start a "
                         "new run")
    state.settings["epochs"] = epochs or state.settings["epochs"]
    return state


def json_text(value: Any, indent: int | None = None) -> str:
    """Strict JSON (RFC 8259): a non-finite float, which it cannot hold, becomes null."""
    def finite(item: Any) -> Any:
        if isinstance(item, float) and not np.isfinite(item):
            return None
        if isinstance(item, dict):
            return {key: finite(child) for key, child in item.items()}
        if isinstance(item, (list, tuple)):
            return [finite(child) for child in item]
        return item
    return json.dumps(finite(value), indent=indent, allow_nan=False)


def write_metrics(history: list[dict], out: Path, settings: dict) -> None:
    """metrics.json (strict JSON: a NaN loss is null) and metrics.csv, written atomically."""
    text = json_text({"settings": settings, "epochs": history}, indent=2).encode()
    checkpoint.write_atomically(out / "metrics.json", lambda file: file.write(text))
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=list(history[0]))
    writer.writeheader()
    writer.writerows(history)
    rows = table.getvalue().encode()
    checkpoint.write_atomically(out / "metrics.csv", lambda file: file.write(rows))
