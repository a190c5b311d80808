"""Convolution arithmetic by hand, checked against the library and the textbook loops.

    python examples/conv_by_hand.py
"""

import numpy as np

import tinygrad_cnn as tg
import tinygrad_cnn.functional as F
from tinygrad_cnn import reference

IMAGE = np.array([[3, 3, 2, 1, 0], [0, 0, 1, 3, 1], [3, 1, 2, 2, 3], [2, 0, 0, 2, 2],
                  [2, 0, 0, 0, 1]], dtype=float)
KERNEL = np.array([[0, 1, 2], [2, 2, 0], [0, 1, 2]], dtype=float)


def out_size(size: int, kernel: int, padding: int, stride: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def main() -> None:
    by_hand = np.array([[np.sum(IMAGE[i:i + 3, j:j + 3] * KERNEL) for j in range(3)]
                        for i in range(3)])
    library = F.conv2d(IMAGE[None, None], KERNEL[None, None]).numpy()[0, 0]
    loops = reference.conv_forward_naive(IMAGE[None, None], KERNEL[None, None], None, (1, 1),
                                         (0, 0, 0, 0))[0, 0]
    print("5x5 image * 3x3 kernel, no padding, stride 1 -> 3x3:")
    print(by_hand)
    assert np.array_equal(by_hand, library) and np.array_equal(by_hand, loops)
    print("same from F.conv2d and reference.conv_forward_naive")
    size = out_size(5, 3, padding=1, stride=2)
    print(f"output size (5 + 2*1 - 3) // 2 + 1 = {size}:",
          F.conv2d(IMAGE[None, None], KERNEL[None, None], padding=1, stride=2).shape)
    weight = tg.Tensor(np.zeros((20, 3, 8, 8), np.float32), requires_grad=True)
    bias = tg.Tensor(np.zeros(20, np.float32), requires_grad=True)
    rows = tg.summary(lambda x: F.conv2d(x, weight, bias, stride=2, padding=1),
                      np.zeros((1, 3, 32, 32), np.float32))
    print(f"20 filters of 8x8x3 with bias: {rows[-1]['params']:,} parameters, output "
          f"{rows[-1]['output_shape'][1:]} (14x14x20)")


if __name__ == "__main__":
    main()
