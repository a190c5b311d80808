"""The `tinygrad-cnn` command: info, gradcheck, graph, summary, receptive-field, export,
train. Each subcommand is a `cmd_*` function; an expected error is a `UsageError` (one
line on stderr, exit code 2). Modules are imported inside the commands, so that `info`
and `--help` start fast."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence

import numpy as np

from . import config
from .cli_options import DEMO_GRAPH, build_parser
from .gradcheck import check_gradients, gradgradcheck
from .ops import REGISTRY
from .tensor import Buffer, Tensor


class UsageError(Exception):
    """An expected error: printed as one line, exit code 2, no traceback."""


def _use_fast_kernels_if_possible(argv: Sequence[str]) -> None:
    """Re-run this command with OpenBLAS's AVX-512 kernels when the CPU has AVX-512 and
    OpenBLAS picked slower ones (OPENBLAS_CORETYPE must be set before numpy loads)."""
    if os.environ.get("OPENBLAS_CORETYPE") or os.environ.get("TINYGRAD_CNN_NO_REEXEC"):
        return
    info = config.blas_info()
    if config.faster_kernels_available(info):
        print(f"tinygrad-cnn: CPU has AVX-512, OpenBLAS chose {info['kernels']}: re-running "
              f"with OPENBLAS_CORETYPE={config.FAST_CORETYPE}", file=sys.stderr)
        env = {**os.environ, "OPENBLAS_CORETYPE": config.FAST_CORETYPE,
               "TINYGRAD_CNN_NO_REEXEC": "1"}
        os.execve(sys.executable, [sys.executable, "-m", "tinygrad_cnn.cli", *argv], env)


# ----------------------------------------------------------------------------- commands
def cmd_info(args: argparse.Namespace) -> int:
    print(config.show_config())
    print(f"{'registered ops':>18}: {len(REGISTRY)}")
    return 0


def _op_reports(names: list[str]) -> list[tuple[str, str, object, bool]]:
    rows = []
    for name in names:
        spec = REGISTRY[name]
        for sample in spec.samples(np.random.default_rng(0)):
            def f(*xs, _sample=sample, _spec=spec):
                return _spec.function.apply(*xs, **_sample.params)
            report = check_gradients(f, list(sample.args))
            second = gradgradcheck(f, list(sample.args), raise_exception=False)
            rows.append((name, sample.label or "default", report, second))
    return rows


def cmd_gradcheck(args: argparse.Namespace) -> int:
    if args.demo or args.localize:
        if args.localize and not args.model:
            raise UsageError("--localize checks a model's loss op by op: add --model NAME")
        return cmd_localize(args)
    if args.op and args.op not in REGISTRY:
        raise UsageError(f"unknown op {args.op!r}; registered ops: {', '.join(REGISTRY)}")
    if args.graph or args.html:
        raise UsageError("--graph and --html draw the per-op check of --demo or --localize")
    names = list(REGISTRY) if args.all or not args.op else [args.op]
    failures = 0
    print(f"{'op':<20} {'sample':<38} {'max abs err':>12} {'max rel err':>12} "
          f"{'1st':>4} {'2nd':>4}")
    for name, label, report, second in _op_reports(names):
        abs_err = max((row.max_abs_error for row in report.inputs), default=0.0)
        rel_err = max((row.max_rel_error for row in report.inputs), default=0.0)
        failures += (not report.passed) + (not second)
        print(f"{name:<20} {label[:38]:<38} {abs_err:>12.2e} {rel_err:>12.2e} "
              f"{'ok' if report.passed else 'FAIL':>4} {'ok' if second else 'FAIL':>4}")
    if args.model:
        failures += _gradcheck_model(args.model)
    print(f"{'all passed' if not failures else f'{failures} failed'}")
    return 1 if failures else 0




def _graph_path(path: str) -> str:
    """`path` if draw_graph can write it, else the UsageError saying why (before any work)."""
    from .viz import graph_format
    try:
        graph_format(path)
    except (ValueError, OSError) as error:
        raise UsageError(str(error)) from None
    return path


def _html_path(path: str) -> str:
    """`path` if a page can be written there, else the UsageError saying why (first)."""
    from pathlib import Path
    if Path(path).suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"cannot write {path}: the viewer is an .html file")
    if not Path(path).parent.is_dir():
        raise UsageError(f"cannot write {path}: the folder {Path(path).parent} does not exist")
    return path


def cmd_view(args: argparse.Namespace) -> int:
    """The interactive viewer of a model and its loss (with --check, the op-by-op check)."""
    from . import trace
    from .view import view
    output = _html_path(args.output or f"{args.model}.html")
    if args.check:
        from .locate import locate_gradient_error
        from .models import get_model
        model, init_model = get_model(args.model)
        rng = np.random.default_rng(0)
        params = {k: v.data.astype(np.float64) for k, v in
                  init_model(rng, image_size=8).items()}
        images, labels, keys = rng.standard_normal((2, 1, 8, 8)), np.array([1, 3]), list(params)
        from . import functional as F
        report = locate_gradient_error(
            lambda *values: F.cross_entropy(model(dict(zip(keys, values)), images), labels),
            [params[k] for k in keys])
        print(report)
        _write_page(view(report.output, check=report,
                         title=f"{args.model}: the gradient check, op by op"), output)
        return 0 if report.passed else 1
    with trace.tracing():
        model, params, images, loss = _example_loss(args.model)
        if args.params:
            from . import functional as F
            params, image = _trained_params(args.model, args.params)
            batch = np.random.default_rng(0).standard_normal((4,) + image.shape[1:])
            loss = F.cross_entropy(model(params, batch.astype(np.float32)), np.arange(4))
    _write_page(view(loss, params=params, title=f"{args.model} and its loss"), output)
    return 0


def _write_check_graph(report: object, path: str) -> None:
    from .viz import RendererNotFound, draw_graph
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            written = draw_graph(report.output, path=path, check=report)
    except RendererNotFound as error:
        raise UsageError(str(error)) from None
    except OSError as error:
        raise UsageError(f"cannot write {path}: {error.strerror or error}") from None
    print(f"wrote the graph coloured by the check to {written}")


def cmd_localize(args: argparse.Namespace) -> int:
    """gradcheck --demo, or --model NAME --localize: the per-op check of a loss."""
    from .locate import locate_gradient_error
    path = _graph_path(args.graph or DEMO_GRAPH) if args.graph or args.demo else None
    if args.html:
        _html_path(args.html)
    if args.demo:
        from .demo import demo_inputs, demo_loss
        params, images, labels = demo_inputs()
        keys = list(params)
        print("a conv net whose hand-written LeakyScale op has a planted bug in its backward")
    else:
        from .models import get_model
        try:
            model, init_model = get_model(args.model)
        except ValueError as error:
            raise UsageError(str(error)) from None
        rng = np.random.default_rng(0)
        params = {k: v.data.astype(np.float64) for k, v in
                  init_model(rng, image_size=8).items()}
        images, labels, keys = rng.standard_normal((2, 1, 8, 8)), np.array([1, 3]), list(params)

        def demo_loss(p: dict, x: np.ndarray, y: np.ndarray) -> object:
            from . import functional as F
            return F.cross_entropy(model(p, x), y)
    report = locate_gradient_error(
        lambda *values: demo_loss(dict(zip(keys, values)), images, labels),
        [params[k] for k in keys])
    print(report)
    if path:
        _write_check_graph(report, path)
    if args.html:
        _write_page(_page_of(report, "the gradient check, op by op"), args.html)
    return 0 if args.demo or report.passed else 1


def _page_of(report: object, title: str) -> object:
    """The viewer of a localisation report's own graph, coloured by the check."""
    from .view import view
    return view(report.output, check=report, title=title)


def _write_page(page: object, path: str) -> None:
    try:
        written = page.save(path)
    except OSError as error:
        raise UsageError(f"cannot write {path}: {error.strerror or error}") from None
    print(f"wrote {written}: open it in a browser (one file, no network)")


def _gradcheck_model(name: str) -> int:
    from .models import model_loss_gradcheck
    report = model_loss_gradcheck(name)
    print(f"\nmodel {name}: loss with respect to every parameter (float64)")
    print(report)
    return 0 if report.passed else 1


def _example_loss(name: str, batch: int = 4):
    """A model's params, a batch of random images (N, 1, 28, 28) and the cross-entropy loss."""
    from . import functional as F
    from .models import get_model
    try:
        model, init_model = get_model(name)
    except ValueError as error:
        raise UsageError(str(error)) from None
    rng = np.random.default_rng(0)
    params = init_model(rng)
    images = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
    labels = rng.integers(0, 10, batch)
    return model, params, images, F.cross_entropy(model(params, images), labels)


def cmd_graph(args: argparse.Namespace) -> int:
    from .viz import RendererNotFound, draw_graph
    _graph_path(args.output)
    _, params, _, loss = _example_loss(args.model)
    if args.backward:
        loss.backward(create_graph=True)
    try:
        with warnings.catch_warnings(record=True) as notes:
            warnings.simplefilter("always")
            path = draw_graph(loss, path=args.output, params=params, backward=args.backward,
                              max_nodes=args.max_nodes, rankdir=args.rankdir)
    except RendererNotFound as error:
        raise UsageError(str(error)) from None
    except OSError as error:
        raise UsageError(f"cannot write {args.output}: {error.strerror or error}") from None
    kind = "backward (create_graph=True)" if args.backward else "forward + loss"
    for note in notes:
        print(str(note.message))
    print(f"wrote the {kind} graph of {args.model} to {path}")
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from .summary import summary
    model, params, images, _ = _example_loss(args.model, batch=1)
    if args.params:
        params, images = _trained_params(args.model, args.params)
    print(f"{args.model} on one {'x'.join(map(str, images.shape[1:]))} image")
    print(summary(model, params, images))
    return 0


def _trained_params(model: str, path: str) -> tuple[dict, np.ndarray]:
    """Params saved by `train` for `model` (checked against it) and one image of the size
    they were trained on."""
    from . import data
    try:
        params = data.load(path, model=model)
        options = data.read_meta(path).get("init", {})
    except (OSError, ValueError, data.DatasetError) as error:
        raise UsageError(str(error)) from None
    size = options.get("image_size", 28)
    params = {key: array if isinstance(array, Buffer) else
              Tensor(array, requires_grad=True, name=key) for key, array in params.items()}
    return params, np.zeros((1, options.get("in_channels", 1), size, size), np.float32)


def cmd_receptive_field(args: argparse.Namespace) -> int:
    from .models import get_model
    from .plots import plot_conv_stage_fields
    from .receptive import conv_stage_fields
    try:
        model, init_model = get_model(args.model)
    except ValueError as error:
        raise UsageError(str(error)) from None
    _picture_path(args.output)
    size, trained = 28, None
    if args.params:
        trained, image = _trained_params(args.model, args.params)
        size = image.shape[-1]
    rng = np.random.default_rng(0)
    images = rng.standard_normal((16, 1, size, size)).astype(np.float32)
    columns = [("untrained", conv_stage_fields(model, init_model(rng, image_size=size),
                                                images))]
    if trained is not None:
        columns.append(("trained", conv_stage_fields(model, trained, images)))
    for title, stages in columns:
        for label, _, _, box in stages:
            print(f"{title:>9}  {label}; theoretical box (top, left, bottom, right) {box}")
    try:
        plot_conv_stage_fields(columns, args.output)
    except ImportError:
        raise UsageError("drawing needs matplotlib: pip install -e \".[examples]\"") from None
    except OSError as error:
        raise UsageError(f"cannot write {args.output}: {error}") from None
    print(f"wrote {args.output}")
    return 0


def _picture_path(path: str) -> None:
    """UsageError, before any work, for a picture matplotlib cannot write to `path`."""
    from pathlib import Path
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise UsageError("drawing needs matplotlib: pip install -e \".[examples]\"") from None
    formats = Figure().canvas.get_supported_filetypes()
    suffix = Path(path).suffix.lstrip(".").lower()
    if suffix not in formats:
        raise UsageError(f"cannot write {path}: unsupported picture format {suffix!r}; use "
                         f"{', '.join(sorted(formats))}")
    if not Path(path).parent.is_dir():
        raise UsageError(f"cannot write {path}: the folder {Path(path).parent} does not exist")


def cmd_export(args: argparse.Namespace) -> int:
    from .models import MODELS, get_model
    if not args.model:
        raise UsageError("--model is needed to know the network the params belong to; "
                         f"choose one of {', '.join(MODELS)}")
    output = args.output or ("model.pt" if args.format == "torch" else "model.onnx")
    model, init_model = get_model(args.model)
    if args.params:
        params, image = _trained_params(args.model, args.params)
    else:
        params = init_model(np.random.default_rng(0))
        image = np.zeros((1, 1, 28, 28), np.float32)
        print("no --params: exporting the untrained model")
    writer = _write_torch if args.format == "torch" else _write_onnx
    writer(model, params, np.repeat(image, 2, axis=0), output)
    print(f"wrote {output}: {args.model}, input x (N, {', '.join(map(str, image.shape[1:]))})"
          ", output y (N, classes)")
    return 0


def _write_onnx(model: object, params: dict, image: np.ndarray, path: str) -> None:
    try:
        from .onnx import ExportError, export
        export(model, params, image, path)
    except (ExportError, ImportError, OSError) as error:
        raise UsageError(str(error)) from None


def _write_torch(model: object, params: dict, image: np.ndarray, path: str) -> None:
    """The torch.fx module, pickled whole (torch.load(path, weights_only=False))."""
    from pathlib import Path

    from .data import write_atomically
    try:
        import torch

        from .torch import BridgeError, to_torch
        module = to_torch(model, params, image)
        write_atomically(Path(path), lambda file: torch.save(module, file))
    except (BridgeError, ImportError, OSError) as error:
        raise UsageError(str(error)) from None


def cmd_train(args: argparse.Namespace) -> int:
    from .data import DatasetError
    from .train import TrainingInterrupted, run
    output = "json" if args.json else "quiet" if args.quiet else "table"
    # a bar redrawn per batch only on a terminal; logs and pipes get a line per epoch
    progress = not args.no_progress and output == "table" and sys.stdout.isatty()
    try:
        run(args.dataset, args.model, args.epochs, args.batch_size, args.lr, args.optimizer,
            args.seed, args.out, progress=progress, max_steps=args.max_steps,
            data_root=args.data_root, batch_norm=args.batch_norm, output=output,
            resume=args.resume)
    except (ValueError, OSError, DatasetError) as error:
        raise UsageError(str(error)) from None
    except TrainingInterrupted as stop:
        if stop.saved:
            print(f"\ninterrupted: {stop.saved} finished epoch(s) are saved in {stop.out}; "
                  f"continue with: tinygrad-cnn train --resume {stop.out}", file=sys.stderr)
        else:
            print("\ninterrupted before the first epoch finished: nothing was saved",
                  file=sys.stderr)
        return 130
    return 0


COMMANDS = {"info": cmd_info, "gradcheck": cmd_gradcheck, "graph": cmd_graph, "view": cmd_view,
            "summary": cmd_summary, "receptive_field": cmd_receptive_field,
            "export": cmd_export, "train": cmd_train}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "train":
        _use_fast_kernels_if_possible(argv)
    try:
        args = build_parser(COMMANDS).parse_args(argv)
    except SystemExit as stop:   # --help, or an option error already printed
        return int(stop.code or 0)
    try:
        return args.run(args)
    except UsageError as error:
        print(f"tinygrad-cnn {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
