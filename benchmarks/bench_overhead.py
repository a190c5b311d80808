"""Per-op cost of recording and walking the graph, on tensors of one element.

    python benchmarks/bench_overhead.py --separate   # each framework alone: bar 1.0x
    python benchmarks/bench_overhead.py              # interleaved in one process

A chain of 2,000 elementwise ops (alternating mul and add) on a 1-element float32 tensor,
forward then backward, in microseconds per op: the median of interleaved repeats, with
PyTorch's time for the same chain in the same run when it is installed. Bar: at most 2x
PyTorch's per-op time.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from peer import alone_rounds, import_torch  # benchmarks/peer.py

import tinygrad_cnn as tg

CHAIN = 2000


def ours_chain() -> tuple[float, float]:
    x = tg.Tensor(np.ones(1, np.float32), requires_grad=True)
    scale = tg.Tensor(np.full(1, 1.0001, np.float32))
    shift = tg.Tensor(np.full(1, 0.001, np.float32))
    start = time.perf_counter()
    y = x
    for _ in range(CHAIN // 2):
        y = y * scale
        y = y + shift
    middle = time.perf_counter()
    y.sum().backward()
    return middle - start, time.perf_counter() - middle


def torch_chain(torch) -> tuple[float, float]:
    x = torch.ones(1, requires_grad=True)
    scale, shift = torch.full((1,), 1.0001), torch.full((1,), 0.001)
    start = time.perf_counter()
    y = x
    for _ in range(CHAIN // 2):
        y = y * scale
        y = y + shift
    middle = time.perf_counter()
    y.sum().backward()
    return middle - start, time.perf_counter() - middle


def alone(framework: str, repeats: int) -> list[tuple[float, float]]:
    """(forward, backward) seconds of each run of one framework, this process alone."""
    torch = import_torch(passive=False) if framework == "torch" else None
    chain = (lambda: torch_chain(torch)) if torch is not None else ours_chain
    return [chain() for _ in range(repeats + 1)]   # the first run warms up and is dropped


def separate_runs(repeats: int, rounds: int = 3) -> dict:
    """Each framework alone in fresh processes, alternating rounds."""
    outputs = alone_rounds(__file__, {name: ["--alone", name, "--repeats", str(repeats)]
                                      for name in ("tinygrad_cnn", "torch")}, rounds)
    return {name: [(0.0, 0.0)] + [tuple(s) for out in runs for s in json.loads(out)[1:]]
            for name, runs in outputs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--rounds", type=int, default=5,
                        help="alternating rounds of fresh processes with --separate")
    parser.add_argument("--separate", action="store_true",
                        help="each framework alone in fresh processes (the bar)")
    parser.add_argument("--alone", choices=["tinygrad_cnn", "torch"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.alone:
        print(json.dumps(alone(args.alone, args.repeats)))
        return
    if args.separate:
        runs = separate_runs(args.repeats, args.rounds)
        how = f"each framework alone, {args.rounds} rounds of {args.repeats} runs"
    else:
        torch = import_torch()
        runs = {"tinygrad_cnn": [], "torch": []}
        for _ in range(args.repeats + 1):  # the first round warms up and is dropped
            runs["tinygrad_cnn"].append(ours_chain())
            if torch is not None:
                runs["torch"].append(torch_chain(torch))
        how = f"{args.repeats} interleaved runs"
    print(f"chain of {CHAIN} ops (mul, add) on a 1-element float32 tensor, median of "
          f"{how}, microseconds per op")
    print(f"{'':<14} {'forward':>8} {'backward':>9} {'total':>8}")
    totals = {}
    for name, samples in runs.items():
        if not samples:
            continue
        forward, backward = (1e6 * float(np.median([s[k] for s in samples[1:]])) / CHAIN
                             for k in (0, 1))
        totals[name] = forward + backward
        print(f"{name:<14} {forward:>8.2f} {backward:>9.2f} {forward + backward:>8.2f}")
    if "torch" in totals:
        ratio = totals["tinygrad_cnn"] / totals["torch"]
        bar = 1.0 if args.separate else 2.0
        print(f"ratio to PyTorch: {ratio:.2f}x (bar {bar}x: "
              f"{'met' if ratio <= bar else 'NOT met'})")


if __name__ == "__main__":
    main()
