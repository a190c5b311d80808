"""Work buffers (kernels.scratch): results never alias them, and reusing them across
shapes, dtypes and threads gives the same numbers as the textbook loops."""

import threading

import numpy as np
import pytest

import tinygrad_cnn as tg
import tinygrad_cnn.functional as F
from tinygrad_cnn import reference
from tinygrad_cnn.kernels import scratch

CASES = [  # x shape, w shape, stride, padding: stride 1 with F > C takes the overlap-add path
    ((2, 3, 9, 8), (5, 3, 3, 3), 1, 1),
    ((3, 2, 6, 7), (4, 2, 2, 3), 2, 0),
    ((1, 4, 12, 12), (2, 4, 5, 5), 1, 2),
]


def conv_and_grads(x: np.ndarray, w: np.ndarray, stride: int, padding: int, g_seed: int):
    xt, wt = tg.Tensor(x, requires_grad=True), tg.Tensor(w, requires_grad=True)
    out = F.conv2d(xt, wt, stride=stride, padding=padding)
    g = np.random.default_rng(g_seed).standard_normal(out.shape).astype(x.dtype)
    grad_x, grad_w = tg.grad_of(out, [xt, wt], g)
    return out.data, grad_x.data, grad_w.data, g


def loops(x: np.ndarray, w: np.ndarray, stride: int, padding: int, g: np.ndarray):
    geometry = ((stride, stride), (padding,) * 4)
    out = reference.conv_forward_naive(x, w, None, *geometry)
    grad_x, grad_w, _ = reference.conv_backward_naive(g, x, w, *geometry)
    return out, grad_x, grad_w


def case_arrays(k: int, dtype=np.float64, seed: int = 0):
    x_shape, w_shape, stride, padding = CASES[k]
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(x_shape).astype(dtype), rng.standard_normal(w_shape).astype(dtype),
            stride, padding)


def test_results_do_not_alias_work_buffers():
    first = conv_and_grads(*case_arrays(0), g_seed=1)
    kept = [a.copy() for a in first]
    for k in (1, 2, 0):  # other shapes, then the same shape with other data
        conv_and_grads(*case_arrays(k, seed=k + 5), g_seed=k)
    for now, before in zip(first, kept):
        np.testing.assert_array_equal(now, before)


@pytest.mark.parametrize("order", [(2, 0, 1), (0, 2, 1), (1, 2, 0)])
def test_reuse_across_shapes_and_dtypes_matches_the_loops(order):
    for k in order:
        for dtype in (np.float64, np.float32):
            x, w, stride, padding = case_arrays(k, dtype)
            out, grad_x, grad_w, g = conv_and_grads(x, w, stride, padding, g_seed=k)
            tolerance = 1e-10 if dtype == np.float64 else 1e-4
            for ours, expected in zip((out, grad_x, grad_w),
                                      loops(*case_arrays(k), g.astype(np.float64))):
                np.testing.assert_allclose(ours, expected, rtol=tolerance, atol=tolerance)


def test_threads_get_their_own_buffers():
    jobs = [(k, seed) for seed in range(6) for k in range(len(CASES))]
    serial = {job: conv_and_grads(*case_arrays(job[0], seed=job[1]), g_seed=job[1])
              for job in jobs}
    parallel, barrier = {}, threading.Barrier(2)

    def work(part: list) -> None:
        barrier.wait()
        for _ in range(3):
            for job in part:
                parallel[job] = conv_and_grads(*case_arrays(job[0], seed=job[1]),
                                               g_seed=job[1])

    threads = [threading.Thread(target=work, args=(jobs[k::2],)) for k in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for job in jobs:
        for ours, expected in zip(parallel[job], serial[job]):
            np.testing.assert_array_equal(ours, expected)


def test_clear_frees_the_buffers_and_they_come_back():
    args = case_arrays(2)
    before = conv_and_grads(*args, g_seed=0)
    assert scratch.held_bytes() > 0
    scratch.clear()
    assert scratch.held_bytes() == 0
    for ours, expected in zip(conv_and_grads(*args, g_seed=0), before):
        np.testing.assert_array_equal(ours, expected)


@pytest.mark.parametrize("k", range(len(CASES)))
def test_batch_chunks_give_the_textbook_numbers(k, monkeypatch):
    """Batches whose columns pass WHOLE_BATCH_BYTES go through im2col in chunks (and the
    weight gradient recomputes their columns): forced here with tiny limits."""
    from tinygrad_cnn.kernels import conv
    monkeypatch.setattr(conv, "WHOLE_BATCH_BYTES", 64)
    monkeypatch.setattr(conv, "CHUNK_BYTES", 2048)
    x, w, stride, padding = case_arrays(k)
    x = np.concatenate([x] * 3)     # several chunks of images
    out, grad_x, grad_w, g = conv_and_grads(x, w, stride, padding, g_seed=1)
    for ours, theirs in zip((out, grad_x, grad_w), loops(x, w, stride, padding, g)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-10)
