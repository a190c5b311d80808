"""Training speed and accuracy.

    python benchmarks/bench_train.py --separate   # the step, each framework alone: the bar
    python benchmarks/bench_train.py --profile    # where a step's milliseconds go
    python benchmarks/bench_train.py                                   # step time + digits
    python benchmarks/bench_train.py --mnist-dir ../shared/data/mnist  # + real MNIST

1. One LeNet-5 training step (forward, backward, Adam update) at batch 64 on 1x28x28,
   against the same step in PyTorch. With --separate each framework runs alone in fresh
   processes, 5 alternating rounds, medians: bar at most 1.1x PyTorch. Without it, the
   median of interleaved repeats in one process (for reference).
2. The embedded 8x8 digits: LeNet-5 sized for 8x8, the `tinygrad-cnn train` defaults.
   Bar: at least 97% test accuracy in under 60 seconds.
3. With --mnist-dir: the 10,000 real t10k images, first 8,000 for training and the last
   2,000 held out; LeNet-5 trained until 10 minutes have passed or 97% is reached and held
   for the last epoch. Bar: at least 97% within 10 minutes.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from peer import alone_rounds, import_torch, interleaved_medians  # benchmarks/peer.py

import tinygrad_cnn.functional as F
from tinygrad_cnn import data, models, optim, train
from tinygrad_cnn.transforms import value_and_grad


def our_step(batch: int = 64):
    rng = np.random.default_rng(0)
    params = models.init_lenet5(rng)
    opt = optim.Adam(params, 1e-3)
    x = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, batch)
    loss_and_grad = value_and_grad(lambda p, x, y: F.cross_entropy(models.lenet5(p, x), y))

    def step() -> None:
        _, grads = loss_and_grad(params, x, y)
        opt.step(grads)
    return step


def torch_step(torch, batch: int = 64):
    nn = torch.nn
    net = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                        nn.Linear(84, 10))
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    x, y = torch.randn(batch, 1, 28, 28), torch.randint(0, 10, (batch,))

    def step() -> None:
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    return step


def step_times(repeats: int) -> None:
    torch = import_torch()
    steps = {"tinygrad_cnn": our_step()}
    if torch is not None:
        steps["torch"] = torch_step(torch)
    medians = dict(zip(steps, interleaved_medians(list(steps.values()), repeats, warmup=3)))
    print(f"LeNet-5 training step, batch 64, 1x28x28, median of {repeats} interleaved runs:")
    for name, ms in medians.items():
        print(f"  {name:<13} {ms:7.2f} ms")
    if "torch" in medians:
        ratio = medians["tinygrad_cnn"] / medians["torch"]
        print(f"  ratio {ratio:.2f}x (bar 2.0x: {'met' if ratio <= 2 else 'NOT met'})")


def digits() -> None:
    dataset = train.load_dataset("digits")
    model, init_model = models.get_model("lenet5")
    params = init_model(np.random.default_rng(0), image_size=dataset.image_size)
    start = time.perf_counter()
    history = train.fit(model, params, dataset, 30, 64, optim.Adam(params, 2e-3),
                        progress=False)
    seconds = time.perf_counter() - start
    accuracy = history[-1]["test_accuracy"]
    print(f"\ndigits (1,437 train / 360 test, 8x8), LeNet-5, Adam 2e-3, 30 epochs: test "
          f"accuracy {accuracy:.4f} in {seconds:.1f} s (bar: >= 0.97 in < 60 s: "
          f"{'met' if accuracy >= 0.97 and seconds < 60 else 'NOT met'})")


def mnist(folder: str, budget: float = 600.0) -> None:
    images, labels = data.load_mnist(folder, "test", download=False)
    dataset = train.from_arrays("mnist-t10k", images[:8000], labels[:8000], images[8000:],
                                labels[8000:])
    model, init_model = models.get_model("lenet5")
    params = init_model(np.random.default_rng(0))
    opt = optim.Adam(params, 2e-3)
    print("\nMNIST t10k: first 8,000 train, last 2,000 held out; LeNet-5, Adam 2e-3, "
          "batch 64")
    train.print_header()
    elapsed, epoch, best = 0.0, 0, 0.0
    while elapsed < budget:
        epoch += 1
        start = time.perf_counter()
        (row,) = train.fit(model, params, dataset, 1, 64, opt, seed=epoch, progress=False)
        elapsed += time.perf_counter() - start
        row.update(epoch=epoch, seconds=elapsed)
        train.print_row(row)
        best = max(best, row["test_accuracy"])
        if epoch >= 8 and row["test_accuracy"] >= 0.97:
            break
    final = row["test_accuracy"]
    print(f"held-out accuracy {final:.4f} after {epoch} epochs, {elapsed:.0f} s of training "
          f"(bar: >= 0.97 within 600 s: "
          f"{'met' if final >= 0.97 and elapsed <= 600 else 'NOT met'})")


def separate_step_times(repeats: int, rounds: int = 3) -> None:
    """The step of each framework alone in fresh processes, alternating rounds."""
    outputs = alone_rounds(__file__, {name: ["--step-alone", name, "--repeats", str(repeats)]
                                      for name in ("tinygrad_cnn", "torch")}, rounds)
    medians = {name: float(np.median([float(o) for o in runs]))
               for name, runs in outputs.items()}
    print(f"LeNet-5 training step, batch 64, 1x28x28, each framework alone, {rounds} rounds "
          f"of {repeats} repeats:")
    for name, ms in medians.items():
        print(f"  {name:<13} {ms:7.2f} ms")
    ratio = medians["tinygrad_cnn"] / medians["torch"]
    print(f"  ratio {ratio:.2f}x (bar 1.1x: {'met' if ratio <= 1.1 else 'NOT met'})")


def step_alone(framework: str, repeats: int) -> float:
    if framework == "torch":
        torch = import_torch(passive=False)
        step = torch_step(torch)
    else:
        step = our_step()
    return interleaved_medians([step], repeats, warmup=3)[0]


# where the time of a step goes: (category, test on the function's file and name)
CATEGORIES = [
    ("BLAS products", lambda f, n: n in ("_product", "_long_product") or
     (f.endswith("ops/linalg.py") and n == "forward") or n == "matmul"),
    ("im2col / col2im copies", lambda f, n: f.endswith(("kernels/conv.py", "kernels/windows.py",
                                                         "_stride_tricks_impl.py"))),
    ("pooling", lambda f, n: f.endswith("kernels/pool.py") or "threads.py" in f),
    ("reductions and finite checks", lambda f, n: f.endswith(("ops/reduce.py", "fromnumeric.py",
                                                              "_methods.py", "kernels/__init__.py"))
     or n == "reduce"),
    ("elementwise passes", lambda f, n: f.endswith(("ops/arithmetic.py", "ops/activation.py",
                                                    "ops/select.py")) and n == "forward"),
    ("optimizer (Adam)", lambda f, n: f.endswith("optim.py")),
]


def _category(function: tuple) -> str:
    filename, _, name = function
    for category, test in CATEGORIES:
        if test(filename, name):
            return category
    return "Python: engine, graph, checks"


def profile(steps: int = 50) -> None:
    """Milliseconds per step by category, from cProfile's own time of each function; a C
    function's time goes to the categories of its callers, in their shares."""
    import cProfile
    import pstats
    step = our_step()
    for _ in range(5):
        step()
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    for _ in range(steps):
        step()
    profiler.disable()
    wall = (time.perf_counter() - start) / steps * 1e3
    totals: dict[str, float] = {}
    for function, (_, _, own, _, callers) in pstats.Stats(profiler).stats.items():
        shares = [(caller, entry[2]) for caller, entry in callers.items()] \
            if function[0] == "~" and callers else [(function, own)]
        spread = sum(t for _, t in shares) or 1.0
        for owner, part in shares:
            category = _category(function if function[0] != "~" else owner)
            totals[category] = totals.get(category, 0.0) + own * part / spread
    print(f"LeNet-5 training step, batch 64, float32: {wall:.2f} ms under cProfile "
          "(which adds to the Python part)")
    for category, seconds in sorted(totals.items(), key=lambda item: -item[1]):
        print(f"  {category:<32} {seconds / steps * 1e3:6.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist-dir", help="folder with t10k-images/labels-idx*-ubyte.gz")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5,
                        help="alternating rounds of fresh processes with --separate")
    parser.add_argument("--separate", action="store_true",
                        help="time the step of each framework alone (the bar)")
    parser.add_argument("--step-alone", choices=["tinygrad_cnn", "torch"],
                        help=argparse.SUPPRESS)
    parser.add_argument("--profile", action="store_true",
                        help="where a step's milliseconds go, by kind of work")
    args = parser.parse_args()
    if args.profile:
        profile()
        return
    if args.step_alone:
        print(step_alone(args.step_alone, args.repeats))
        return
    if args.separate:
        separate_step_times(args.repeats, args.rounds)
        return
    step_times(args.repeats)
    digits()
    if args.mnist_dir:
        mnist(args.mnist_dir)


if __name__ == "__main__":
    main()
