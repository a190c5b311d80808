"""The scaling sweep of bench_ops.py --sweep: time per sample against batch size.

Each point is measured in a fresh process per framework (alternating), for the LeNet-5
training step and the 3x3 64-channel conv (forward + backward), at batch 1, 8, 32, 128 and
512; the table is printed and a log-log plot written to docs/images/scaling.png.
"""

from __future__ import annotations

import os

import numpy as np

BATCHES = (1, 8, 32, 128, 512)
CASES = ("lenet5 step", "conv 3x3 64ch")
PLOT = os.path.join(os.path.dirname(__file__), "..", "docs", "images", "scaling.png")


def step_for(case: str, batch: int, framework: str, torch):
    """A callable running one step of `case` at `batch` in `framework`."""
    rng = np.random.default_rng(0)
    if case == "lenet5 step":
        import bench_train  # benchmarks/bench_train.py
        return bench_train.our_step(batch) if framework == "ours" else \
            bench_train.torch_step(torch, batch)
    x = rng.standard_normal((batch, 64, 32, 32)).astype(np.float32)
    w = (rng.standard_normal((64, 64, 3, 3)) * 0.1).astype(np.float32)
    if framework == "ours":
        import tinygrad_cnn as tg
        import tinygrad_cnn.functional as F
        tensors = [tg.Tensor(x, requires_grad=True), tg.Tensor(w, requires_grad=True)]
        upstream = np.ones((batch, 64, 32, 32), np.float32)
        return lambda: tg.grad_of(F.conv2d(*tensors, padding=1), tensors, upstream)
    tensors = [torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)]
    upstream = torch.ones((batch, 64, 32, 32))
    return lambda: torch.autograd.grad(torch.nn.functional.conv2d(*tensors, padding=1),
                                       tensors, upstream)


def run_sweep(in_subprocess, rounds: int = 3) -> None:
    table = {}
    for case in CASES:
        for batch in BATCHES:
            times = {"ours": [], "torch": []}
            for _ in range(rounds):
                for framework in times:
                    times[framework].append(float(in_subprocess(
                        "--sweep-point", case, str(batch), framework)))
            table[case, batch] = {f: float(np.median(t)) / batch for f, t in times.items()}
    print("time per sample (ms), each framework alone, medians of "
          f"{rounds} alternating rounds")
    print(f"{'case':<16} {'batch':>6} {'ours':>9} {'torch':>9} {'ratio':>6}")
    for (case, batch), row in table.items():
        print(f"{case:<16} {batch:>6} {row['ours']:>9.3f} {row['torch']:>9.3f} "
              f"{row['ours'] / row['torch']:>6.2f}")
    _plot(table)


def _plot(table: dict) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(1, len(CASES), figsize=(10, 3.8))
    for ax, case in zip(axes, CASES):
        for framework, style in (("ours", "o-"), ("torch", "s--")):
            ax.plot(BATCHES, [table[case, b][framework] for b in BATCHES], style,
                    label="tinygrad_cnn" if framework == "ours" else "PyTorch")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size")
        ax.set_ylabel("ms per sample")
        ax.set_title(case)
        ax.legend()
    figure.tight_layout()
    figure.savefig(PLOT, dpi=100)
    print(f"wrote {os.path.normpath(PLOT)}")
