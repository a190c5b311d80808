"""Kernel paths that only large shapes take, against plain numpy formulas."""

import numpy as np
import pytest

from tinygrad_cnn.kernels import conv
from tinygrad_cnn.kernels.windows import Window, pad_spatial, window_view

rng = np.random.default_rng(0)


@pytest.mark.parametrize("k", [4 * conv.LONG_BLOCK, 7 * conv.LONG_BLOCK + 301, 999])
def test_long_product_cuts_k_into_blocks_exactly(k):
    a, b = rng.standard_normal((2, 5, k)), rng.standard_normal((2, k, 3))
    np.testing.assert_allclose(conv._long_product(a, b), np.matmul(a, b), rtol=1e-10)


@pytest.mark.parametrize("batch", [16, 17])
def test_weight_gradient_of_a_lenet_sized_batch(batch):
    """LeNet's first layer: 25 x (B*28*32) x 6, the blocked product."""
    x, g = rng.standard_normal((batch, 1, 28, 28)), rng.standard_normal((batch, 6, 28, 28))
    window = Window((5, 5), (1, 1), (2, 2, 2, 2))
    windows = window_view(pad_spatial(x, (2, 2, 2, 2)), (5, 5), (1, 1), (1, 1), (28, 28))
    expected = np.einsum("ncijhw,nfhw->fcij", windows, g)
    np.testing.assert_allclose(conv.conv2d_weight_grad(x, g, window, 1), expected,
                               rtol=1e-10, atol=1e-10)
