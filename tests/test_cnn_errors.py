"""Every promised error of the CNN functions, with the shapes and the arithmetic."""

import numpy as np
import pytest

import tinygrad_cnn.functional as F


def x4(*shape):
    return np.ones(shape)


@pytest.mark.parametrize("call,error,pattern", [
    (lambda: F.conv2d(x4(5, 5), x4(1, 1, 3, 3)), ValueError,
     r"x must be 4-D \(N, C, H, W\) or 3-D \(C, H, W\), got shape \(5, 5\)"),
    (lambda: F.conv2d(x4(1, 1, 5, 5), x4(1, 3, 3)), ValueError,
     r"weight must be 4-D \(F, C/groups, KH, KW\), got shape \(1, 3, 3\)"),
    (lambda: F.conv2d(x4(8, 3, 32, 32), x4(16, 4, 3, 3)), ValueError,
     r"x has 3 channels but weight expects 4 .*x \(8, 3, 32, 32\), weight \(16, 4, 3, 3\)"),
    (lambda: F.conv2d(x4(1, 3, 5, 5), x4(4, 1, 3, 3), groups=2), ValueError,
     r"channels \(3\) and filters \(4\) must both be divisible by groups=2"),
    (lambda: F.conv2d(x4(1, 4, 5, 5), x4(3, 2, 3, 3), groups=2), ValueError,
     r"filters \(3\) must both be divisible by groups=2"),
    (lambda: F.conv2d(x4(1, 1, 5, 5), x4(2, 1, 3, 3), bias=np.ones(3)), ValueError,
     r"bias must have shape \(2,\) \(one per filter\), got \(3,\)"),
    (lambda: F.conv2d(x4(1, 1, 5, 5), x4(1, 1, 3, 3), stride=0), ValueError,
     r"stride must be positive, got 0"),
    (lambda: F.conv2d(x4(1, 1, 5, 5), x4(1, 1, 3, 3), dilation=(1, -1)), ValueError,
     r"dilation must be positive"),
    (lambda: F.conv2d(x4(1, 1, 5, 5), x4(1, 1, 3, 3), padding=-1), ValueError,
     r"padding must be non-negative, got -1"),
    (lambda: F.conv2d(x4(1, 1, 5, 5), x4(1, 1, 3, 3), padding="same", stride=2), ValueError,
     r"padding='same' needs stride 1"),
    (lambda: F.conv2d(x4(1, 1, 5, 5), x4(1, 1, 3, 3), padding="full"), ValueError,
     r"'valid' or 'same', got 'full'"),
    (lambda: F.conv2d(x4(1, 1, 5, 5), x4(1, 1, 7, 7)), ValueError,
     r"output height would be floor\(\(5 \+ 2\*0 - 1\*\(7-1\) - 1\)/1\) \+ 1 = -1; the 7x7 "
     r"kernel does not fit the padded 5x5 input"),
    (lambda: F.conv2d(x4(1, 1, 9, 4), x4(1, 1, 3, 3), padding=(0, 1), dilation=3), ValueError,
     r"output width would be floor\(\(4 \+ 2\*1 - 3\*\(3-1\) - 1\)/1\) \+ 1 = 0; the 3x3 "
     r"kernel \(dilation 3x3\) does not fit the padded 9x6 input"),
    (lambda: F.conv2d(x4(1, 1, 5, 5), x4(1, 1, 3, 3), stride=1.5), ValueError,
     r"stride must be whole numbers, got 1.5"),
    (lambda: F.conv2d(x4(1, 1, 5, 5), x4(1, 1, 3, 3), stride="2"), TypeError,
     r"stride must be an int or an \(h, w\) pair of ints"),
    (lambda: F.conv2d(np.array([["a"]]), x4(1, 1, 3, 3)), TypeError, r"expected numeric data"),
    (lambda: F.conv2d(np.ones((1, 1, 5, 5), int), x4(1, 1, 3, 3)), TypeError,
     r"x must be floating point, got dtype int64"),
    (lambda: F.conv2d("x", x4(1, 1, 3, 3)), TypeError, r"x must be a Tensor or an array"),
    (lambda: F.max_pool2d(x4(1, 1, 4, 4), 3, padding=2), ValueError,
     r"padding \(2, 2\) must be at most half the kernel size \(3, 3\)"),
    (lambda: F.avg_pool2d(x4(1, 1, 4, 4), 2, padding=(0, 2)), ValueError,
     r"must be at most half the kernel size"),
    (lambda: F.max_pool2d(x4(1, 1, 2, 2), 3), ValueError,
     r"max_pool2d: output height would be floor\(\(2 \+ 2\*0 - 1\*\(3-1\) - 1\)/3\) \+ 1 = 0"),
    (lambda: F.max_pool2d(x4(1, 1, 4, 4), 0), ValueError, r"kernel_size must be positive"),
    (lambda: F.max_pool2d(x4(1, 1, 4, 4), 2.5), ValueError, r"kernel_size must be whole"),
    (lambda: F.max_pool2d(x4(4, 4), 2), ValueError, r"x must be 4-D"),
    (lambda: F.avg_pool2d(x4(1, 1, 4, 4), 2, divisor_override=0), ValueError,
     r"divisor_override must be positive"),
    (lambda: F.conv_transpose2d(x4(1, 2, 3, 3), x4(3, 1, 3, 3)), ValueError,
     r"weight must be 4-D \(C_in=2"),
    (lambda: F.conv_transpose2d(x4(1, 2, 3, 3), x4(2, 1, 3, 3), output_padding=1), ValueError,
     r"output_padding \(1, 1\) must be smaller than the stride \(1, 1\)"),
    (lambda: F.unfold(x4(1, 1, 2, 2), 3), ValueError, r"unfold: output height would be"),
    (lambda: F.fold(x4(1, 4, 5), (3, 3), 2), ValueError,
     r"fold: x must be \(N, C\*4, 4\) for output_size \(3, 3\)"),
    (lambda: F.linear(x4(2, 3), x4(4, 5)), ValueError,
     r"linear: x \(2, 3\) needs weight of shape \(out_features, 3\), got \(4, 5\)"),
    (lambda: F.dropout(x4(2), p=1.5), ValueError, r"p must be a probability in \[0, 1\]"),
])
def test_bad_calls_raise_clear_errors(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


def test_three_d_input_is_a_batch_of_one():
    x = np.random.default_rng(0).standard_normal((2, 5, 5))
    w = np.ones((3, 2, 3, 3))
    np.testing.assert_allclose(F.conv2d(x, w).data, F.conv2d(x[None], w).data[0])
    assert F.max_pool2d(x, 2).shape == (2, 2, 2)


def test_dtype_follows_the_input():
    for dtype in (np.float32, np.float64):
        x = np.ones((1, 1, 6, 6), dtype)
        w = np.ones((2, 1, 3, 3), dtype)
        assert F.conv2d(x, w, np.zeros(2, dtype)).dtype == dtype
        assert F.max_pool2d(x, 2).dtype == dtype and F.avg_pool2d(x, 2).dtype == dtype


def test_dropout_is_inverted_and_reproducible():
    x = np.ones((200, 50))
    kept = F.dropout(x, 0.3, True, np.random.default_rng(0)).data
    assert set(np.unique(kept)) == {0.0, 1 / 0.7}
    assert abs((kept == 0).mean() - 0.3) < 0.02 and abs(kept.mean() - 1) < 0.03
    again = F.dropout(x, 0.3, True, np.random.default_rng(0)).data
    np.testing.assert_array_equal(kept, again)
    np.testing.assert_array_equal(F.dropout(x, 0.3, training=False).data, x)
    assert F.dropout(x, 1.0).data.sum() == 0


def test_tensor_methods_call_the_functional_ops():
    from tinygrad_cnn import Tensor
    x = Tensor(np.ones((1, 2, 6, 6)), requires_grad=True)
    w = np.ones((3, 2, 3, 3))
    np.testing.assert_array_equal(x.conv2d(w, padding=1).data, F.conv2d(x, w, padding=1).data)
    assert x.max_pool2d(2).shape == (1, 2, 3, 3) and x.avg_pool2d(3, stride=3).shape == (
        1, 2, 2, 2)
