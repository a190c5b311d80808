"""How long `locate_gradient_error` takes on LeNet-5's forward + loss.

    python benchmarks/bench_locate.py [--batch 8] [--repeats 3]

LeNet-5 on 28x28 images, cross-entropy, every parameter differentiated (float64), order 1
and order 2: the median wall time of a few runs, with the number of op nodes checked.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import tinygrad_cnn as tg
import tinygrad_cnn.functional as F
from tinygrad_cnn.models import init_lenet5, lenet5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    params = {k: v.data.astype(np.float64) for k, v in init_lenet5(rng).items()}
    keys = list(params)
    images = rng.standard_normal((args.batch, 1, 28, 28))
    labels = rng.integers(0, 10, args.batch)

    def loss(*values: tg.Tensor) -> tg.Tensor:
        return F.cross_entropy(lenet5(dict(zip(keys, values)), images), labels)

    print(f"LeNet-5, batch {args.batch}, 28x28, median of {args.repeats} runs")
    for order in (1, 2):
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            report = tg.locate_gradient_error(loss, [params[k] for k in keys], order=order)
            times.append(time.perf_counter() - start)
        verdict = "every op passed" if report.passed else f"culprit {report.culprit.op}"
        print(f"  order {order}: {statistics.median(times):6.2f} s for {len(report.nodes)} "
              f"op nodes ({verdict})")


if __name__ == "__main__":
    main()
