"""Pooling split over threads (kernels.threads) gives exactly the single-thread results."""

import numpy as np
import pytest

import tinygrad_cnn.functional as F
from tinygrad_cnn import Tensor, reference
from tinygrad_cnn.kernels import threads


@pytest.fixture
def always_threaded(monkeypatch):
    """Threads for any size, and slices of a few planes, so every path is cut up."""
    monkeypatch.setattr(threads, "MIN_BYTES", 0)
    monkeypatch.setattr(threads, "SLICE_BYTES", 300)
    monkeypatch.setenv("TINYGRAD_CNN_THREADS", "3")


def _forward_backward(pool, x, **options):
    tensor = Tensor(x, requires_grad=True)
    out = pool(tensor, **options)
    upstream = np.random.default_rng(1).standard_normal(out.shape)
    out.backward(upstream)
    return out.data, tensor.grad.data, upstream


@pytest.mark.parametrize("options", [dict(kernel_size=3, stride=2, padding=1),
                                     dict(kernel_size=2, ceil_mode=True),
                                     dict(kernel_size=2)])     # windows tiling the input
def test_threaded_pools_match_the_loops(always_threaded, options):
    x = np.random.default_rng(0).integers(0, 4, (5, 2, 7, 6)).astype(float)  # ties too
    geometry = (options["kernel_size"],) * 2, (options.get("stride", 2),) * 2, \
        (options.get("padding", 0),) * 2
    out, grad, upstream = _forward_backward(F.max_pool2d, x, **options)
    np.testing.assert_array_equal(out, reference.max_pool_forward_naive(
        x, *geometry, (1, 1), options.get("ceil_mode", False))[0])
    np.testing.assert_allclose(grad, reference.max_pool_backward_naive(
        upstream, x, *geometry, (1, 1), options.get("ceil_mode", False)), atol=1e-12)
    out, grad, upstream = _forward_backward(F.avg_pool2d, x, **options)
    np.testing.assert_allclose(out, reference.avg_pool_forward_naive(
        x, *geometry, ceil_mode=options.get("ceil_mode", False)), atol=1e-12)


def test_one_thread_and_many_agree_exactly(monkeypatch):
    x = np.random.default_rng(0).standard_normal((16, 8, 40, 40)).astype(np.float32)
    results = []
    for count, slice_bytes in (("1", 1 << 30), ("2", 3 * 40 * 40 * 4)):
        monkeypatch.setenv("TINYGRAD_CNN_THREADS", count)
        monkeypatch.setattr(threads, "MIN_BYTES", 0)
        monkeypatch.setattr(threads, "SLICE_BYTES", slice_bytes)
        results.append(_forward_backward(F.max_pool2d, x, kernel_size=3, stride=2,
                                         padding=1)[:2] +
                       _forward_backward(F.avg_pool2d, x, kernel_size=2)[:2])
    for single, threaded in zip(*results):
        np.testing.assert_array_equal(single, threaded)


def test_pooling_in_a_forked_child_after_the_parent_used_the_pool(always_threaded):
    import multiprocessing
    x = np.random.default_rng(0).standard_normal((4, 2, 8, 8))
    expected = F.max_pool2d(x, 2).data              # the parent's pool now exists
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        result = pool.apply_async(_child_pool, (x,)).get(timeout=60)
    np.testing.assert_array_equal(result, expected)


def _child_pool(x):
    threads.MIN_BYTES, threads.SLICE_BYTES = 0, 300
    return F.max_pool2d(x, 2).data


def test_slices_cover_every_item_once(monkeypatch):
    monkeypatch.setenv("TINYGRAD_CNN_THREADS", "2")
    monkeypatch.setattr(threads, "MIN_BYTES", 0)
    monkeypatch.setattr(threads, "SLICE_BYTES", 30)
    seen = np.zeros(23, int)

    def work(start, stop):
        seen[start:stop] += 1
    threads.parallel_batches(work, 23, 8)     # 3 items of 8 bytes per slice
    np.testing.assert_array_equal(seen, 1)


def test_a_failing_slice_raises_in_the_caller(monkeypatch):
    monkeypatch.setenv("TINYGRAD_CNN_THREADS", "2")
    monkeypatch.setattr(threads, "MIN_BYTES", 0)
    monkeypatch.setattr(threads, "SLICE_BYTES", 8)

    def work(start, stop):
        if start == 5:
            raise ValueError("slice 5")
    with pytest.raises(ValueError, match="slice 5"):
        threads.parallel_batches(work, 10, 8)
