"""Training speed and accuracy.

    python benchmarks/bench_train.py --separate   # the step, each framework alone: the bar
    python benchmarks/bench_train.py --profile    # where a step's milliseconds go
    python benchmarks/bench_train.py --end-to-end --mnist-dir ../shared/data/mnist
                                  # 8 epochs of MNIST t10k in each framework, alone
    python benchmarks/bench_train.py                                   # step time + digits
    python benchmarks/bench_train.py --mnist-dir ../shared/data/mnist  # + real MNIST

1. One LeNet-5 training step (forward, backward, Adam update) at batch 64 on 1x28x28,
   against the same step in PyTorch. With --separate each framework runs alone in fresh
   processes, 5 alternating rounds, medians: bar at most 1.3x PyTorch. Without it, the
   median of interleaved repeats in one process (for reference). --profile splits a step's
   milliseconds by kind of work.
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


def our_step(batch: int = 64, dtype: str = "float32"):
    rng = np.random.default_rng(0)
    params = {k: v.astype(dtype) for k, v in models.init_lenet5(rng).items()}
    opt = optim.Adam(params, 1e-3)
    x = rng.standard_normal((batch, 1, 28, 28)).astype(dtype)
    y = rng.integers(0, 10, batch)
    loss_and_grad = value_and_grad(lambda p, x, y: F.cross_entropy(models.lenet5(p, x), y))

    def step() -> None:
        _, grads = loss_and_grad(params, x, y)
        opt.step(grads)
    return step


def torch_lenet5(torch):
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                         nn.Linear(84, 10))


def torch_step(torch, batch: int = 64, dtype: str = "float32"):
    nn = torch.nn
    net = torch_lenet5(torch).to(getattr(torch, dtype))
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    x = torch.randn(batch, 1, 28, 28, dtype=getattr(torch, dtype))
    y = torch.randint(0, 10, (batch,))

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


def separate_step_times(repeats: int, rounds: int = 3, batch: int = 64,
                        dtype: str = "float32") -> None:
    """The step of each framework alone in fresh processes, alternating rounds."""
    outputs = alone_rounds(__file__, {name: ["--step-alone", name, "--repeats", str(repeats),
                                             "--batch", str(batch), "--dtype", dtype]
                                      for name in ("tinygrad_cnn", "torch")}, rounds)
    medians = {name: float(np.median([float(o) for o in runs]))
               for name, runs in outputs.items()}
    bar = 1.3 if batch < 256 else 1.2
    print(f"LeNet-5 training step, batch {batch}, 1x28x28, {dtype}, each framework alone, "
          f"{rounds} rounds of {repeats} repeats:")
    for name, ms in medians.items():
        print(f"  {name:<13} {ms:7.2f} ms")
    ratio = medians["tinygrad_cnn"] / medians["torch"]
    print(f"  ratio {ratio:.2f}x (bar {bar}x: {'met' if ratio <= bar else 'NOT met'})")


def step_alone(framework: str, repeats: int, batch: int = 64, dtype: str = "float32") -> float:
    if framework == "torch":
        torch = import_torch(passive=False)
        step = torch_step(torch, batch, dtype)
    else:
        step = our_step(batch, dtype)
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


def profile(steps: int = 50, batch: int = 64, dtype: str = "float32") -> None:
    """Milliseconds per step by category, from cProfile's own time of each function; a C
    function's time goes to the categories of its callers, in their shares."""
    import cProfile
    import pstats
    step = our_step(batch, dtype)
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
    print(f"LeNet-5 training step, batch {batch}, {dtype}: {wall:.2f} ms under cProfile "
          "(which adds to the Python part)")
    for category, seconds in sorted(totals.items(), key=lambda item: -item[1]):
        print(f"  {category:<32} {seconds / steps * 1e3:6.2f} ms")


def _mnist_t10k(folder: str) -> train.Dataset:
    images, labels = data.load_mnist(folder, "test", download=False)
    return train.from_arrays("mnist-t10k", images[:8000], labels[:8000], images[8000:],
                             labels[8000:])


def train_alone(framework: str, folder: str, epochs: int = 8) -> str:
    """LeNet-5 on MNIST t10k in one framework, the same loop in both: Adam 2e-3, batch 64,
    the same shuffles; returns "seconds accuracy" (training time, held-out accuracy)."""
    dataset = _mnist_t10k(folder)
    if framework == "tinygrad_cnn":
        model, init_model = models.get_model("lenet5")
        params = init_model(np.random.default_rng(0))
        start = time.perf_counter()
        history = train.fit(model, params, dataset, epochs, 64, optim.Adam(params, 2e-3),
                            progress=False)
        return f"{time.perf_counter() - start} {history[-1]['test_accuracy']}"
    torch = import_torch(passive=False)
    torch.manual_seed(0)
    net = torch_lenet5(torch)
    opt = torch.optim.Adam(net.parameters(), 2e-3)
    x, y = torch.from_numpy(dataset.x_train), torch.from_numpy(dataset.y_train)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.from_numpy(rng.permutation(len(x)))
        for first in range(0, len(x), 64):
            batch = order[first:first + 64]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x[batch]), y[batch]).backward()
            opt.step()
    seconds = time.perf_counter() - start
    with torch.no_grad():
        predicted = net(torch.from_numpy(dataset.x_test)).argmax(1).numpy()
    return f"{seconds} {float((predicted == dataset.y_test).mean())}"


def end_to_end(folder: str, rounds: int = 1) -> None:
    outputs = alone_rounds(__file__, {name: ["--train-alone", name, "--mnist-dir", folder]
                                      for name in ("tinygrad_cnn", "torch")}, rounds)
    print("LeNet-5 on MNIST t10k (8,000 train / 2,000 held out), 8 epochs, Adam 2e-3, batch "
          "64, each framework alone in its own process:")
    for name, runs in outputs.items():
        seconds, accuracy = (float(v) for v in runs[-1].split())
        print(f"  {name:<13} {seconds:6.1f} s   held-out accuracy {accuracy:.4f}")


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
    parser.add_argument("--batch", type=int, default=64, help="the step's batch size")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--profile", action="store_true",
                        help="where a step's milliseconds go, by kind of work")
    parser.add_argument("--end-to-end", action="store_true",
                        help="with --mnist-dir: 8 epochs in each framework, alone")
    parser.add_argument("--train-alone", choices=["tinygrad_cnn", "torch"],
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.profile:
        profile(batch=args.batch, dtype=args.dtype)
        return
    if args.train_alone:
        print(train_alone(args.train_alone, args.mnist_dir))
        return
    if args.end_to_end:
        end_to_end(args.mnist_dir)
        return
    if args.step_alone:
        print(step_alone(args.step_alone, args.repeats, args.batch, args.dtype))
        return
    if args.separate:
        separate_step_times(args.repeats, args.rounds, args.batch, args.dtype)
        return
    step_times(args.repeats)
    digits()
    if args.mnist_dir:
        mnist(args.mnist_dir)


if __name__ == "__main__":
    main()
