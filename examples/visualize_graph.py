"""Draw the graph of a small CNN's loss, before and after backward(create_graph=True).

    python examples/visualize_graph.py   # writes graph.svg and graph_backward.svg here
"""

import numpy as np

import tinygrad_cnn as tg
import tinygrad_cnn.functional as F
from tinygrad_cnn.viz import RendererNotFound


def main() -> None:
    rng = np.random.default_rng(0)
    params = {"w": tg.Tensor(rng.normal(0, 0.5, (4, 1, 3, 3)), requires_grad=True),
              "b": tg.Tensor(np.zeros(4), requires_grad=True)}
    x, y = rng.normal(size=(2, 1, 6, 6)), np.array([1, 3])
    logits = F.max_pool2d(F.relu(F.conv2d(x, params["w"], params["b"])), 2).flatten(1)
    loss = F.cross_entropy(logits[:, :4], y)
    print(f"the forward graph has {tg.to_dot(loss).source.count('->')} edges")
    loss.backward(create_graph=True)
    for path, backward in [("graph.svg", False), ("graph_backward.svg", True)]:
        try:
            written = tg.draw_graph(loss, path=path, params=params, backward=backward,
                                    show_grads=True)
            print(f"wrote {written}")
        except RendererNotFound as error:
            print(f"wrote {path[:-4]}.dot only: {error}")


if __name__ == "__main__":
    main()
