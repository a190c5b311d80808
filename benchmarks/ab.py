"""Is a change faster? The LeNet-5 training step of two source trees, each alone in fresh
processes, alternating rounds, medians (the way `--separate` times frameworks).

    git worktree add /tmp/before HEAD~1
    python benchmarks/ab.py /tmp/before .          # before, after
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import numpy as np


def step_ms(tree: str, repeats: int, batch: int) -> float:
    script = os.path.join(os.path.abspath(tree), "benchmarks", "bench_train.py")
    env = {**os.environ, "PYTHONPATH": os.path.abspath(tree)}
    done = subprocess.run([sys.executable, script, "--step-alone", "tinygrad_cnn",
                           "--repeats", str(repeats), "--batch", str(batch)],
                          capture_output=True, text=True,
                          check=True, env=env)
    return float(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"before": [], "after": []}
    for _ in range(args.rounds):
        times["before"].append(step_ms(args.before, args.repeats, args.batch))
        times["after"].append(step_ms(args.after, args.repeats, args.batch))
    before, after = (float(np.median(times[k])) for k in ("before", "after"))
    wins = sum(a < b for a, b in zip(times["after"], times["before"]))
    print(f"before {before:.2f} ms, after {after:.2f} ms: {after / before:.3f}x "
          f"(after faster in {wins} of {args.rounds} rounds)")


if __name__ == "__main__":
    main()
