"""Losses: gradchecked (first and second order), stable for huge logits, PyTorch's values."""

import numpy as np
import pytest

import tinygrad_cnn as tg
import tinygrad_cnn.functional as F

rng = np.random.default_rng(0)
LOGITS = rng.standard_normal((4, 5))
LABELS = np.array([0, 3, 4, 3])
TARGETS = rng.uniform(0, 1, (4, 5))

LOSSES = {
    "softmax": (lambda x: F.softmax(x, axis=1), [LOGITS]),
    "log_softmax": (lambda x: F.log_softmax(x, axis=0), [LOGITS]),
    "cross_entropy": (lambda x: F.cross_entropy(x, LABELS), [LOGITS]),
    "cross_entropy smoothing": (lambda x: F.cross_entropy(x, LABELS, "sum", 0.1), [LOGITS]),
    "cross_entropy none": (lambda x: F.cross_entropy(x, LABELS, "none"), [LOGITS]),
    "nll_loss": (lambda x: F.nll_loss(F.log_softmax(x), LABELS), [LOGITS]),
    "mse_loss": (lambda x, t: F.mse_loss(x, t), [LOGITS, TARGETS]),
    "bce_with_logits": (lambda x, t: F.binary_cross_entropy_with_logits(x, t), [LOGITS, TARGETS]),
}


@pytest.mark.parametrize("name", LOSSES)
def test_losses_are_gradchecked(name):
    f, inputs = LOSSES[name]
    assert tg.gradcheck(f, inputs)
    assert tg.gradgradcheck(f, inputs)


def test_stable_for_logits_of_magnitude_1e4():
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4]])
    labels = np.array([0, 1])
    x = tg.Tensor(logits, requires_grad=True)
    loss = F.cross_entropy(x, labels, reduction="none")
    np.testing.assert_allclose(loss.data, [0.0, 2e4])
    loss.sum().backward()
    assert np.all(np.isfinite(x.grad.data))
    np.testing.assert_allclose(x.grad.data, [[0, 0, 0], [0, -1, 1]], atol=1e-12)
    assert np.all(np.isfinite(F.softmax(logits).data))
    bce = F.binary_cross_entropy_with_logits(logits, np.ones_like(logits), reduction="none")
    np.testing.assert_allclose(bce.data, [[0, 1e4, np.log(2)], [1e4, 1e4, 0]])


def test_against_pytorch():
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    t_logits, t_labels = torch.tensor(LOGITS), torch.tensor(LABELS)
    cases = [(F.cross_entropy(LOGITS, LABELS, "mean", 0.2),
              tf.cross_entropy(t_logits, t_labels, label_smoothing=0.2)),
             (F.nll_loss(F.log_softmax(LOGITS), LABELS, "sum"),
              tf.nll_loss(tf.log_softmax(t_logits, 1), t_labels, reduction="sum")),
             (F.binary_cross_entropy_with_logits(LOGITS, TARGETS),
              tf.binary_cross_entropy_with_logits(t_logits, torch.tensor(TARGETS))),
             (F.mse_loss(LOGITS, TARGETS), tf.mse_loss(t_logits, torch.tensor(TARGETS)))]
    for ours, theirs in cases:
        np.testing.assert_allclose(ours.data, theirs.numpy(), rtol=1e-12)


@pytest.mark.parametrize("call,error,pattern", [
    (lambda: F.cross_entropy(LOGITS, np.array([0, 1, 5, 2])), ValueError,
     r"target labels must be in \[0, 5\) for 5 classes, got \[5\]"),
    (lambda: F.cross_entropy(LOGITS, np.array([0, -1, 2, 2])), ValueError, r"got \[-1\]"),
    (lambda: F.cross_entropy(LOGITS, np.array([0, 1, 2])), ValueError,
     r"target has shape \(3,\) but the scores have batch size 4"),
    (lambda: F.cross_entropy(LOGITS, np.array([0.0, 1, 2, 3])), TypeError, "integer class"),
    (lambda: F.cross_entropy(LOGITS, LABELS, reduction="avg"), ValueError, "reduction must"),
    (lambda: F.cross_entropy(LOGITS, LABELS, label_smoothing=2), ValueError, "in \\[0, 1\\]"),
    (lambda: F.mse_loss(LOGITS, TARGETS[:2]), ValueError, r"input has shape \(4, 5\) but"),
])
def test_bad_targets(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()
