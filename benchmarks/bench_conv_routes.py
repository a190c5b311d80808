"""The convolution routes of issue 11, measured against the kernels in this process.

    python benchmarks/bench_conv_routes.py [--repeats 25]

Each framework's speed bar is measured alone by bench_ops.py; this script only compares
ways of computing our own float32 forward pass (all numpy, one process, best of
`--repeats`), and the floor the BLAS products alone set:

- im2col + product: `kernels.conv.conv2d_forward`, what tinygrad_cnn runs.
- shifted products: no im2col. The padded input is laid out channel-major, one long row
  per channel over a chunk of images; kernel offset (i, j) is that row shifted by
  i*Wp + j, so the forward is a sum over offsets of W[:, :, i, j] @ X_shifted, one BLAS
  product per offset on a strided view, cropped at the row ends.
- row-shifted products: im2col over (C, KW) only (a third of the copies for a 3x3 kernel);
  the KH row offsets are shifts of whole padded rows, one (F, C*KW) product per row
  offset on a strided view of the columns, summed.
- products alone: the three (F, C*KH*KW) x (C*KH*KW, N*OH*OW)-sized products of a forward
  + backward pass on ready-made arrays, in chunks as the kernels cut them: no copy at all.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from numpy.lib.stride_tricks import as_strided

from tinygrad_cnn.kernels import conv
from tinygrad_cnn.kernels.windows import Window

CASES = [  # name, x shape, weight shape, padding (stride 1)
    ("conv LeNet-2", (64, 6, 14, 14), (16, 6, 5, 5), 0),
    ("conv 3x3 64ch", (32, 64, 32, 32), (64, 64, 3, 3), 1),
]


def best_ms(step, repeats: int) -> float:
    for _ in range(3):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return 1e3 * min(times)


def shifted_products_forward(x: np.ndarray, w: np.ndarray, pad: int, images: int
                             ) -> np.ndarray:
    """Stride-1 conv2d as a sum over kernel offsets of (F, C) @ (C, L) products."""
    n, c, h, width = x.shape
    f, _, kh, kw = w.shape
    hp, wp = h + 2 * pad, width + 2 * pad
    oh, ow = hp - kh + 1, wp - kw + 1
    out = np.empty((n, f, oh, ow), x.dtype)
    taps = [np.ascontiguousarray(w[:, :, i, j]) for i in range(kh) for j in range(kw)]
    for start in range(0, n, images):
        b = min(images, n - start)
        length = b * hp * wp
        rows = np.zeros((c, length + kh * wp + kw), x.dtype)   # slack for the last shifts
        rows[:, :length].reshape(c, b, hp, wp)[:, :, pad:pad + h, pad:pad + width] = \
            x[start:start + b].transpose(1, 0, 2, 3)
        total = np.matmul(taps[0], rows[:, :length])
        product = np.empty_like(total)
        for k in range(1, kh * kw):
            shift = (k // kw) * wp + k % kw
            np.matmul(taps[k], rows[:, shift:shift + length], out=product)
            total += product
        out[start:start + b] = total.reshape(f, b, hp, wp)[:, :, :oh, :ow].transpose(1, 0, 2, 3)
    return out


def row_shifted_forward(x: np.ndarray, w: np.ndarray, pad: int, images: int) -> np.ndarray:
    """Stride-1 conv2d from (C*KW, B*Hp*Wp) columns: a sum over the KH row offsets of
    (F, C*KW) @ columns shifted by i*Wp."""
    n, c, h, width = x.shape
    f, _, kh, kw = w.shape
    hp, wp = h + 2 * pad, width + 2 * pad
    oh, ow = hp - kh + 1, wp - kw + 1
    out = np.empty((n, f, oh, ow), x.dtype)
    rows_of_w = [np.ascontiguousarray(w[:, :, i, :].reshape(f, c * kw)) for i in range(kh)]
    padded = np.zeros((images, c, hp + 1, wp), x.dtype)   # a spare row for the last shifts
    for start in range(0, n, images):
        b = min(images, n - start)
        length = b * hp * wp
        padded[:b, :, pad:pad + h, pad:pad + width] = x[start:start + b]
        sb, sc, sh, sw = padded.strides
        columns = np.ascontiguousarray(as_strided(padded, (c, kw, b, hp, wp),
                                                  (sc, sw, sb, sh, sw))).reshape(c * kw, length)
        total = np.matmul(rows_of_w[0], columns)
        product = np.empty_like(total)
        for i in range(1, kh):
            shift = i * wp
            np.matmul(rows_of_w[i], columns[:, shift:], out=product[:, :length - shift])
            total[:, :length - shift] += product[:, :length - shift]
        out[start:start + b] = total.reshape(f, b, hp, wp)[:, :, :oh, :ow].transpose(1, 0, 2, 3)
    return out


def products_alone(x_shape: tuple, w_shape: tuple, pad: int) -> tuple:
    """The three products of forward + backward on arrays of the kernels' shapes."""
    n, c, h, width = x_shape
    f, _, kh, kw = w_shape
    columns_per_image = (h + 2 * pad - kh + 1) * (width + 2 * pad)   # wide columns
    rng = np.random.default_rng(0)
    _, step = conv._chunks(n, c * kh * kw * columns_per_image, 4)
    cols = rng.standard_normal((c * kh * kw, step * columns_per_image)).astype(np.float32)
    weight = rng.standard_normal((f, c * kh * kw)).astype(np.float32)
    grad = rng.standard_normal((f, step * columns_per_image)).astype(np.float32)
    chunks = -(-n // step)

    def step_products() -> None:
        for _ in range(chunks):
            np.matmul(weight, cols)            # forward
            np.matmul(cols, grad.T)            # weight gradient
            np.matmul(weight.T, grad)          # input gradient (column form)
    return step_products


def measure_case(name: str, x_shape: tuple, w_shape: tuple, pad: int, repeats: int) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    geometry = (Window(w.shape[2:], (1, 1), (pad,) * 4), 1)   # the window, groups
    expected = conv.conv2d_forward(x, w, *geometry)
    print(f"{name}:")
    ms = best_ms(lambda: conv.conv2d_forward(x, w, *geometry), repeats)
    print(f"  im2col + product                 {ms:7.2f}")
    for route, label in ((shifted_products_forward, "shifted products"),
                         (row_shifted_forward, "row-shifted products")):
        for images in (2, 8):
            got = route(x, w, pad, images)
            assert np.allclose(got, expected, rtol=1e-4, atol=1e-3), f"{label} disagree"
            ms = best_ms(lambda: route(x, w, pad, images), repeats)  # noqa: B023
            print(f"  {label + ',':22s}{images:2d} images {ms:7.2f}")
    ms = best_ms(products_alone(x_shape, w_shape, pad), repeats)
    print(f"  the 3 products of fwd + bwd alone{ms:7.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=25)
    args = parser.parse_args()
    print(f"float32, best of {args.repeats} runs, ms (forward only, but the last line)")
    for case in CASES:
        measure_case(*case, args.repeats)


if __name__ == "__main__":
    main()
