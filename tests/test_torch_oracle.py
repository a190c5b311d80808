"""Forward and backward against torch.nn.functional (skipped when PyTorch is absent)."""

import numpy as np
import pytest

import tinygrad_cnn.functional as F
from tinygrad_cnn import Tensor

torch = pytest.importorskip("torch")


def _compare(ours, theirs, arrays, **options):
    tensors = [Tensor(a, requires_grad=True) for a in arrays]
    torch_tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = ours(*tensors, **options)
    expected = theirs(*torch_tensors, **options)
    np.testing.assert_allclose(out.data, expected.detach().numpy(), atol=1e-10)
    upstream = np.random.default_rng(3).standard_normal(out.shape)
    out.backward(gradient=upstream)
    expected.backward(torch.tensor(upstream))
    for mine, reference in zip(tensors, torch_tensors):
        np.testing.assert_allclose(mine.grad.data, reference.grad.numpy(), atol=1e-10)


rng = np.random.default_rng(0)
X = rng.standard_normal((2, 4, 9, 8))


@pytest.mark.parametrize("options", [
    dict(stride=2, padding=1), dict(padding="same", dilation=(2, 1)), dict(padding="valid"),
    dict(stride=(1, 3), padding=(2, 0), groups=2), dict(groups=4, padding=1)])
def test_conv2d(options):
    groups = options.get("groups", 1)
    w = rng.standard_normal((4, 4 // groups, 3, 2))
    _compare(F.conv2d, torch.nn.functional.conv2d, [X, w, rng.standard_normal(4)], **options)


@pytest.mark.parametrize("options", [dict(stride=2, padding=1, output_padding=1),
                                     dict(stride=(1, 2), dilation=2, groups=2)])
def test_conv_transpose2d(options):
    w = rng.standard_normal((4, 3, 3, 2))
    _compare(F.conv_transpose2d, torch.nn.functional.conv_transpose2d,
             [X, w, rng.standard_normal(3 * options.get("groups", 1))], **options)


@pytest.mark.parametrize("options", [
    dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=(3, 2), stride=(2, 3), padding=(1, 1), dilation=(2, 1), ceil_mode=True)])
def test_max_pool2d(options):
    _compare(F.max_pool2d, torch.nn.functional.max_pool2d, [X], **options)
    ours = F.max_pool2d(X, return_indices=True, **options)[1]
    theirs = torch.nn.functional.max_pool2d(torch.tensor(X), return_indices=True, **options)[1]
    np.testing.assert_array_equal(ours.data, theirs.numpy())


@pytest.mark.parametrize("options", [
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
    dict(kernel_size=(2, 3), stride=(3, 2), padding=(1, 1), divisor_override=5)])
def test_avg_pool2d(options):
    _compare(F.avg_pool2d, torch.nn.functional.avg_pool2d, [X], **options)


@pytest.mark.parametrize("size", [(4, 3), 1, (9, 8), (5, None)])
def test_adaptive_avg_pool2d(size):
    _compare(F.adaptive_avg_pool2d, torch.nn.functional.adaptive_avg_pool2d, [X],
             output_size=size)


def test_unfold_and_fold():
    options = dict(kernel_size=(2, 3), dilation=(1, 2), padding=1, stride=(2, 1))
    _compare(F.unfold, torch.nn.functional.unfold, [X], **options)
    cols = rng.standard_normal(torch.nn.functional.unfold(torch.tensor(X), **options).shape)
    _compare(F.fold, torch.nn.functional.fold, [cols], output_size=(9, 8), **options)


def test_linear():
    _compare(F.linear, torch.nn.functional.linear,
             [rng.standard_normal((5, 3)), rng.standard_normal((2, 3)), rng.standard_normal(2)])
