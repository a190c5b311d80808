"""The whole training loop on one page: a model function, value_and_grad, Adam, batches.

    python examples/train_lenet.py      (needs scikit-learn for the embedded 8x8 digits)
"""

import numpy as np

import tinygrad_cnn as tg
import tinygrad_cnn.functional as F
from tinygrad_cnn import data, init, optim


def init_params(rng):
    """LeNet-style for 8x8 digits: conv 3x3 (6) -> pool -> conv 3x3 (16) -> pool -> 2 linear."""
    arrays = {"w1": init.kaiming_normal((6, 1, 3, 3), rng), "b1": init.zeros((6,)),
              "w2": init.kaiming_normal((16, 6, 3, 3), rng), "b2": init.zeros((16,)),
              "w3": init.kaiming_uniform((64, 64), rng), "b3": init.zeros((64,)),
              "w4": init.kaiming_uniform((10, 64), rng), "b4": init.zeros((10,))}
    return {name: tg.Tensor(array, requires_grad=True) for name, array in arrays.items()}


def model(p, x):
    x = F.max_pool2d(F.relu(F.conv2d(x, p["w1"], p["b1"], padding=1)), 2)   # (N, 6, 4, 4)
    x = F.max_pool2d(F.relu(F.conv2d(x, p["w2"], p["b2"], padding=1)), 2)   # (N, 16, 2, 2)
    x = F.relu(F.linear(x.flatten(1), p["w3"], p["b3"]))
    return F.linear(x, p["w4"], p["b4"])


def loss_fn(p, x, y):
    return F.cross_entropy(model(p, x), y)


def main(epochs: int = 8) -> None:
    rng = np.random.default_rng(0)
    images, labels = data.load_digits()
    order = rng.permutation(len(images))
    test, train = order[:360], order[360:]
    params = init_params(rng)
    opt = optim.Adam(params, lr=3e-3)
    step = tg.value_and_grad(loss_fn)
    for epoch in range(1, epochs + 1):
        losses = []
        for x, y in data.batches(images[train], labels[train], 32, shuffle=True, rng=rng):
            loss, grads = step(params, x, y)
            opt.step(grads)
            losses.append(loss.item())
        with tg.no_grad():
            accuracy = (model(params, images[test]).numpy().argmax(1) == labels[test]).mean()
        print(f"epoch {epoch}: train loss {np.mean(losses):.3f}, test accuracy {accuracy:.3f}")


if __name__ == "__main__":
    main()
