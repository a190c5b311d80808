"""A model as a function of a params dict: its loss, its gradients, and a gradient check.

    python examples/quickstart.py
"""

import numpy as np

import tinygrad_cnn as tg
import tinygrad_cnn.functional as F


def model(params, x):
    """conv 5x5 (4 filters) -> relu -> 2x2 max-pool -> linear to 3 classes."""
    x = F.max_pool2d(F.relu(F.conv2d(x, params["w1"], params["b1"], padding=2)), 2)
    return F.linear(x.flatten(1), params["w2"], params["b2"])


def loss_fn(params, x, y):
    logits = model(params, x)
    shifted = logits - logits.max(axis=1, keepdims=True).detach()
    log_probs = shifted - shifted.exp().sum(axis=1, keepdims=True).log()
    return -log_probs[np.arange(len(y)), y].mean()


def main() -> None:
    rng = np.random.default_rng(0)
    params = {"w1": rng.normal(0, 0.3, (4, 1, 5, 5)), "b1": np.zeros(4),
              "w2": rng.normal(0, 0.3, (3, 4 * 4 * 4)), "b2": np.zeros(3)}
    x, y = rng.normal(size=(6, 1, 8, 8)), rng.integers(0, 3, 6)
    loss, grads = tg.value_and_grad(loss_fn)(params, x, y)
    print(f"loss {loss.item():.4f}")
    for name, g in grads.items():
        print(f"  d loss / d {name:<3} shape {str(g.shape):<14} norm {np.linalg.norm(g.data):.4f}")
    report = tg.check_gradients(lambda w: loss_fn({**params, "w1": w}, x, y), [params["w1"]])
    print("gradient check of w1 (autodiff vs central differences):")
    print(report)
    print("passed" if report.passed else "FAILED")


if __name__ == "__main__":
    main()
