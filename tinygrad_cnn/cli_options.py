"""The `tinygrad-cnn` command's options: one parser, option types that refuse values no
command could use (naming the option), and one line per option error."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np

DEMO_GRAPH = "gradcheck_demo.svg"   # where --demo draws its picture without --graph


class _Parser(argparse.ArgumentParser):
    """An option error is one line (the command, the option, what was expected), exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _at_least(least: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < least:
            raise argparse.ArgumentTypeError(f"expected an integer >= {least}, got {text!r}")
        return value
    return parse


def _learning_rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (np.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def _model_name(text: str) -> str:
    from .models import model_name
    try:
        return model_name(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser(runs: dict[str, Callable]) -> argparse.ArgumentParser:
    """The parser; `runs` maps each subcommand to the function that runs it."""
    parser = _Parser(prog="tinygrad-cnn",
                     description="tinygrad_cnn: a numpy autograd framework for CNNs")
    commands = parser.add_subparsers(dest="command", required=True)
    info = commands.add_parser("info", help="BLAS kernels, AVX-512 and what to set")
    info.set_defaults(run=runs["info"])
    gradcheck = commands.add_parser("gradcheck", help="autodiff vs numeric gradients")
    which = gradcheck.add_mutually_exclusive_group()
    which.add_argument("--op", help="one registered op (default: all)")
    which.add_argument("--all", action="store_true", help="every registered op (default)")
    gradcheck.add_argument("--model", type=_model_name,
                           help="also check this model's loss (e.g. lenet5)")
    gradcheck.add_argument("--localize", action="store_true",
                           help="with --model: check every op of the loss on its own inputs")
    gradcheck.add_argument("--demo", action="store_true",
                           help="find a planted bug in a small conv net, op by op")
    gradcheck.add_argument("--graph", help="with --localize or --demo: write the graph "
                           "coloured by the check (.svg, .png or .dot; --demo: "
                           f"{DEMO_GRAPH})")
    gradcheck.add_argument("--html", help="with --localize or --demo: write the interactive "
                           "viewer of the check (.html)")
    gradcheck.set_defaults(run=runs["gradcheck"])
    view = commands.add_parser("view", help="write the interactive viewer of a model (HTML)")
    view.add_argument("--model", default="lenet5", type=_model_name,
                      help="lenet5, vgg, inception or alexnet")
    view.add_argument("--params", help="params.npz written by train")
    view.add_argument("--check", action="store_true",
                      help="colour the graph by the op-by-op gradient check of the loss")
    view.add_argument("-o", "--output", default=None, help="default: MODEL.html")
    view.set_defaults(run=runs["view"])
    graph = commands.add_parser("graph", help="render a model's computation graph")
    graph.add_argument("--model", default="lenet5", type=_model_name,
                       help="lenet5, vgg, inception or alexnet")
    graph.add_argument("--backward", action="store_true",
                       help="draw the graph that backward(create_graph=True) records")
    graph.add_argument("-o", "--output", default="graph.svg", help=".svg, .png, .pdf or .dot")
    graph.add_argument("--max-nodes", type=int, default=None,
                       help="fold the graph into blocks above this many ops")
    graph.add_argument("--rankdir", default="TB", choices=["TB", "LR"])
    graph.set_defaults(run=runs["graph"])
    summary = commands.add_parser("summary", help="a table of a model's ops, params, MACs")
    summary.add_argument("--model", default="lenet5", type=_model_name,
                         help="lenet5, vgg, inception or alexnet")
    summary.add_argument("--params", help="params.npz written by train (checked against "
                         "the model)")
    summary.set_defaults(run=runs["summary"])
    field = commands.add_parser("receptive-field",
                                help="draw each conv stage's receptive field")
    field.add_argument("--model", default="lenet5", type=_model_name,
                       help="lenet5, vgg, inception or alexnet")
    field.add_argument("--params", help="params.npz written by train: add the trained model")
    field.add_argument("-o", "--output", default="receptive_field.png")
    field.set_defaults(run=runs["receptive_field"])
    export = commands.add_parser("export", help="write a model as ONNX or a torch.fx module")
    export.add_argument("--model", type=_model_name, help="lenet5, vgg, inception or alexnet")
    export.add_argument("--params", help="params.npz written by train")
    export.add_argument("--format", choices=["onnx", "torch"], default="onnx",
                        help="onnx (default) or torch: a file torch.load(path, "
                        "weights_only=False) returns as the module")
    export.add_argument("-o", "--output", default=None,
                        help="default: model.onnx, or model.pt with --format torch")
    export.set_defaults(run=runs["export"])
    train = commands.add_parser("train", help="train a CNN and write what it learned")
    train.add_argument("--dataset", choices=["digits", "mnist", "fashion-mnist", "mnist-t10k"],
                       help="default digits; mnist-t10k: MNIST's test file alone, split "
                       "8,000 / 2,000")
    train.add_argument("--model", type=_model_name,
                       help="lenet5 (default), vgg, inception or alexnet")
    train.add_argument("--batch-norm", action="store_true",
                       help="batch normalization after each conv (vgg)")
    train.add_argument("--epochs", type=_at_least(1), default=None,
                       help="default: 30 on digits, 8 on mnist-t10k, 5 on (fashion-)mnist")
    train.add_argument("--batch-size", type=_at_least(1), help="default 64")
    train.add_argument("--lr", type=_learning_rate, help="default: 2e-3 adam, 0.05 sgd")
    train.add_argument("--optimizer", choices=["sgd", "adam"], help="default adam")
    train.add_argument("--seed", type=_at_least(0), help="default 0")
    train.add_argument("--out", default=None, help="output directory (runs/<timestamp>)")
    train.add_argument("--data-root", default=None,
                       help="folder with the IDX files (default: the download cache)")
    train.add_argument("--max-steps", type=_at_least(1), default=None, help=argparse.SUPPRESS)
    train.add_argument("--no-progress", action="store_true", help="no progress bars")
    train.add_argument("--resume", metavar="RUN_DIR",
                       help="continue a run from its folder (to --epochs in all)")
    quiet_or_json = train.add_mutually_exclusive_group()
    quiet_or_json.add_argument("--quiet", action="store_true", help="print the final line only")
    quiet_or_json.add_argument("--json", action="store_true",
                               help="print a JSON record per epoch (and a final one)")
    train.set_defaults(run=runs["train"])
    return parser
