"""Forward + backward time of conv2d and the pools, against PyTorch.

    python benchmarks/bench_ops.py --separate                  # each framework alone: the bars
    python benchmarks/bench_ops.py --separate --dtype float64   # the same in float64
    python benchmarks/bench_ops.py --sweep                     # time per sample vs batch size
    python benchmarks/bench_ops.py            # interleaved in one process (about two minutes)
    python benchmarks/bench_ops.py --quick    # fewer repeats, no textbook loops

The bars (issue 11) hold for the --separate table: each framework alone in its own fresh
processes, 5 alternating rounds, medians; in float32 the LeNet convs at most 1.3x PyTorch,
the 3x3 convs 1.6x (the products alone, bench_conv_routes.py, are their floor), pooling
1.2x; in float64 LeNet-1 1.2x, LeNet-2 1.3x, the rest 1.0x. The interleaved table is kept
for reference and judges no bar; the peak memory of the 3x3 conv (at most PyTorch's) is measured in
fresh processes in that mode.

float32, median of interleaved repeats (ours, then PyTorch's, alternately; PyTorch's idle
OpenMP threads are set to sleep rather than spin, see benchmarks/peer.py); backward uses a
random upstream gradient and returns the gradients of every input (no accumulation). Peak
memory of the 32x64x32x32 conv is measured in fresh processes (peak RSS minus the RSS before
the step, from /proc/self/status, with the peak reset just before). PyTorch is optional:
without it the ratio columns are empty.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
from peer import alone_rounds, import_torch, interleaved_medians  # benchmarks/peer.py

import tinygrad_cnn as tg
import tinygrad_cnn.functional as F
from tinygrad_cnn import reference
from tinygrad_cnn.config import FAST_CORETYPE, blas_info, cpu_has_avx512

torch = None  # imported in main(), never in the subprocess that measures our memory


def _import_torch(passive: bool = True) -> None:
    global torch
    torch = import_torch(passive=passive)

CONV_CASES = [  # name, x shape, weight shape, stride, padding, bars (x PyTorch: float32, 64)
    ("conv LeNet-1", (64, 1, 28, 28), (6, 1, 5, 5), 1, 2, (1.3, 1.2)),
    ("conv LeNet-2", (64, 6, 14, 14), (16, 6, 5, 5), 1, 0, (1.3, 1.3)),
    ("conv 3x3 64ch", (32, 64, 32, 32), (64, 64, 3, 3), 1, 1, (1.6, 1.0)),
    ("conv 3x3 s2", (32, 32, 64, 64), (64, 32, 3, 3), 2, 1, (1.6, 1.0)),
]
POOL_BAR, FLOAT64_BAR = 1.2, 1.0
DTYPE = np.float32   # --dtype
POOL_CASES = [  # name, x shape, kernel, stride, padding
    ("2x2/2", (64, 32, 32, 32), 2, 2, 0),
    ("3x3/2 p1", (32, 64, 56, 56), 3, 2, 1),
]


def conv_flops(x_shape: tuple, w_shape: tuple, out_shape: tuple) -> float:
    """Forward + backward: three products of 2*N*F*OH*OW*C*KH*KW flops each."""
    n, f, oh, ow = out_shape
    return 3 * 2 * n * f * oh * ow * w_shape[1] * w_shape[2] * w_shape[3]


def ours_step(fn, arrays, options):
    tensors = [tg.Tensor(a, requires_grad=True) for a in arrays]
    out = fn(*tensors, **options)
    upstream = np.ones(out.shape, out.dtype)
    return lambda: tg.grad_of(fn(*tensors, **options), tensors, upstream), out.shape


def torch_step(fn, arrays, options):
    tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
    upstream = torch.ones(fn(*tensors, **options).shape, dtype=tensors[0].dtype)
    return lambda: torch.autograd.grad(fn(*tensors, **options), tensors, upstream)


def case_arrays(x_shape: tuple, w_shape: tuple | None = None) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(x_shape).astype(DTYPE)]
    if w_shape is not None:
        arrays += [(rng.standard_normal(w_shape) * 0.1).astype(DTYPE),
                   np.zeros(w_shape[0], DTYPE)]
    return arrays


def measure(repeats: int, frameworks: tuple[str, ...] = ("ours", "torch")) -> list[dict]:
    """Rows of median ms per case, for our ops and PyTorch's (when installed and asked for)."""
    use_torch = torch is not None and "torch" in frameworks
    rows = []
    for name, x_shape, w_shape, stride, padding, bar in CONV_CASES:
        arrays = case_arrays(x_shape, w_shape)
        options = {"stride": stride, "padding": padding}
        ours, out_shape = ours_step(F.conv2d, arrays, options)
        peer = torch_step(torch.nn.functional.conv2d, arrays, options) if use_torch else None
        row = timed_row(name, ours if "ours" in frameworks else None, peer, repeats,
                        bar[0] if DTYPE == np.float32 else bar[1])
        rows.append({**row, "flops": conv_flops(x_shape, w_shape, out_shape)})
    for kind, ours_fn in [("max_pool2d", F.max_pool2d), ("avg_pool2d", F.avg_pool2d)]:
        for name, x_shape, kernel, stride, padding in POOL_CASES:
            options = {"kernel_size": kernel, "stride": stride, "padding": padding}
            arrays = case_arrays(x_shape)
            ours = ours_step(ours_fn, arrays, options)[0] if "ours" in frameworks else None
            peer = torch_step(getattr(torch.nn.functional, kind), arrays, options) \
                if use_torch else None
            rows.append(timed_row(f"{kind} {name}", ours, peer, repeats,
                                  POOL_BAR if DTYPE == np.float32 else FLOAT64_BAR))
    return rows


def timed_row(case: str, ours, peer, repeats: int, bar: float) -> dict:
    """Interleaved medians of the steps given (None: not measured)."""
    steps = [step for step in (ours, peer) if step is not None]
    times = iter(interleaved_medians(steps, repeats))
    return {"case": case, "ms": next(times) if ours else None,
            "torch_ms": next(times) if peer else None, "flops": None, "bar": bar}


def separate_processes(repeats: int, rounds: int) -> list[dict]:
    """Each framework alone in fresh processes, `rounds` times alternately; per case the
    median over rounds of each process's median."""
    outputs = alone_rounds(__file__, {
        name: ["--json", "--repeats", str(repeats), "--framework", name, "--dtype",
               np.dtype(DTYPE).name] for name in ("ours", "torch")}, rounds)
    runs = {name: [json.loads(out) for out in texts] for name, texts in outputs.items()}
    rows = runs["ours"][0]
    for k, row in enumerate(rows):
        row["ms"] = float(np.median([run[k]["ms"] for run in runs["ours"]]))
        torch_ms = [run[k]["torch_ms"] for run in runs["torch"]]
        row["torch_ms"] = None if None in torch_ms else float(np.median(torch_ms))
    return rows


def sweep_point(case: str, batch: str, framework: str) -> float:
    """Median ms of one forward + backward (conv) or training step (lenet5) at `batch`."""
    if framework == "torch":
        _import_torch(passive=False)
    from sweep import step_for  # benchmarks/sweep.py
    step = step_for(case, int(batch), framework, torch)
    return interleaved_medians([step], 7 if int(batch) >= 128 else 15, warmup=2)[0]


def textbook_ms() -> dict:
    """One forward + backward of the loop implementations on the LeNet shapes."""
    result = {}
    for name, x_shape, w_shape, stride, padding, _ in CONV_CASES[:2]:
        x, w, b = case_arrays(x_shape, w_shape)
        geometry = ((stride, stride), (padding,) * 4)
        start = time.perf_counter()
        out = reference.conv_forward_naive(x, w, b, *geometry)
        reference.conv_backward_naive(np.ones_like(out), x, w, *geometry)
        result[name] = 1e3 * (time.perf_counter() - start)
    return result


def peak_memory_mb(framework: str) -> float:
    """Run one forward+backward of the 32x64x32x32 conv in this process; peak RSS growth."""
    _, x_shape, w_shape, stride, padding, _ = CONV_CASES[2]
    arrays = case_arrays(x_shape, w_shape)
    options = {"stride": stride, "padding": padding}
    if framework == "torch":
        step = torch_step(torch.nn.functional.conv2d, [a[:1] for a in arrays[:1]] + arrays[1:],
                          options)
        step()  # load the kernels on a small input first
        step = torch_step(torch.nn.functional.conv2d, arrays, options)
    else:
        ours_step(F.conv2d, [a[:1] for a in arrays[:1]] + arrays[1:], options)[0]()
        step = ours_step(F.conv2d, arrays, options)[0]
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # reset this process's peak RSS (VmHWM) to its current RSS
    before = _status_mb("VmRSS")
    step()
    return _status_mb("VmHWM") - before


def _status_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak of this program: unlike ru_maxrss it does not carry the
    parent's peak over fork and exec)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return float("nan")


def in_subprocess(*args: str, env: dict | None = None) -> str:
    command = [sys.executable, os.path.abspath(__file__), *args]
    return subprocess.run(command, capture_output=True, text=True, check=True,
                          env={**os.environ, **(env or {})}).stdout


def print_table(rows: list[dict], fast_rows: list[dict] | None, bars: bool = True) -> None:
    """The table; `bars` judges each ratio against its bar (only for runs alone)."""
    header = f"{'case':<22} {'ours ms':>9} {'GFLOP/s':>8} {'torch ms':>9} {'ratio':>6}"
    if bars:
        header += f" {'bar':>5} {'ok':>3}"
    if fast_rows:
        header += f" {'ours ' + FAST_CORETYPE:>16}"
    print(header)
    print("-" * len(header))

    def number(value: float | None, digits: int) -> str:
        return "" if value is None else f"{value:.{digits}f}"

    for k, row in enumerate(rows):
        ratio = row["ms"] / row["torch_ms"] if row["torch_ms"] else None
        verdict = "" if ratio is None else ("yes" if ratio <= row["bar"] else "NO")
        gflops = row["flops"] / row["ms"] / 1e6 if row["flops"] else None
        line = (f"{row['case']:<22} {row['ms']:>9.2f} {number(gflops, 1):>8} "
                f"{number(row['torch_ms'], 2):>9} {number(ratio, 2):>6}")
        if bars:
            line += f" {row['bar']:>5.1f} {verdict:>3}"
        if fast_rows:
            line += f" {fast_rows[k]['ms']:>13.2f} ms"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, no loops")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=5,
                        help="alternating rounds of fresh processes with --separate")
    parser.add_argument("--separate", action="store_true",
                        help="time each framework alone in its own processes (no interleaving)")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--framework", choices=["ours", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--memory", choices=["ours", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--sweep", action="store_true",
                        help="time per sample against batch size, each framework alone")
    parser.add_argument("--sweep-point", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    global DTYPE
    DTYPE = np.dtype(args.dtype).type
    repeats = 5 if args.quick else args.repeats
    if args.sweep_point:
        print(sweep_point(*args.sweep_point))
        return
    if args.sweep:
        from sweep import run_sweep  # benchmarks/sweep.py
        run_sweep(in_subprocess)
        return
    if args.separate:  # PyTorch alone keeps its default OpenMP wait policy
        rows = separate_processes(repeats, rounds=args.rounds)
        print(f"{args.dtype}, each framework alone in its own process, {args.rounds} rounds of "
              f"{repeats} repeats:")
        print_table(rows, None)
        return
    if args.memory != "ours" and args.framework != "ours":
        _import_torch(passive=args.framework != "torch")
    if args.memory:
        print(peak_memory_mb(args.memory))
        return
    rows = measure(repeats, (args.framework,) if args.framework else ("ours", "torch"))
    if args.json:
        print(json.dumps(rows))
        return
    info = blas_info()
    print(f"numpy {info['numpy']}, {info['blas']} {info['blas_version']}, kernels "
          f"{info['kernels']}, AVX-512: {info['avx512']}; torch "
          f"{torch.__version__ if torch else 'not installed'}; {repeats} interleaved repeats")
    fast_rows = None
    if cpu_has_avx512() and (info["kernels"] or "").lower() != FAST_CORETYPE.lower():
        fast_rows = json.loads(in_subprocess("--json", "--repeats", str(repeats),
                                             env={"OPENBLAS_CORETYPE": FAST_CORETYPE}))
    elif cpu_has_avx512():
        print(f"(OpenBLAS already runs its {FAST_CORETYPE} kernels here: no second column)")
    print("(interleaved in one process: both frameworks' timings are distorted, so no bar "
          "is judged here; the bars are for --separate)")
    print_table(rows, fast_rows, bars=False)
    ours_mb = float(in_subprocess("--memory", "ours"))
    line = f"\npeak memory, conv 3x3 64ch forward+backward: ours {ours_mb:.0f} MB"
    if torch:
        torch_mb = float(in_subprocess("--memory", "torch"))
        line += (f", torch {torch_mb:.0f} MB, ratio {ours_mb / torch_mb:.2f} (bar 1.0: at most "
                 "PyTorch's)")
    print(line)
    if not args.quick:
        print("\ntextbook loops (reference.py), one forward+backward:")
        fast = {row["case"]: row["ms"] for row in rows}
        for name, ms in textbook_ms().items():
            print(f"  {name:<14} {ms:>9.0f} ms  ({ms / fast[name]:.0f}x the im2col version)")


if __name__ == "__main__":
    main()
