"""Train, export to ONNX, run in ONNX Runtime, and load the weights into PyTorch.

    python examples/export_onnx.py                                  # digits, a few seconds
    python examples/export_onnx.py --mnist-dir ../shared/data/mnist  # MNIST t10k, 8 epochs

Prints the accuracy of tinygrad_cnn, of ONNX Runtime on the exported file, and of a
torch.nn LeNet-5 holding the exported initializers (when PyTorch is installed), on the
same held-out images.
"""

from __future__ import annotations

import argparse

import numpy as np

from tinygrad_cnn import models, optim, train


def torch_lenet5(state: dict, kernel: int, features: int):
    """A torch.nn LeNet-5 with the same parameter names, loaded from `state`."""
    import torch
    nn = torch.nn
    padding = kernel // 2
    net = nn.Sequential()
    net.add_module("conv1", nn.Conv2d(1, 6, kernel, padding=padding))
    net.add_module("act1", nn.ReLU())
    net.add_module("pool1", nn.MaxPool2d(2))
    net.add_module("conv2", nn.Conv2d(6, 16, kernel, padding=0 if kernel == 5 else 1))
    net.add_module("act2", nn.ReLU())
    net.add_module("pool2", nn.MaxPool2d(2))
    net.add_module("flatten", nn.Flatten())
    for index, (inputs, outputs) in enumerate(((features, 120), (120, 84), (84, 10)), 1):
        net.add_module(f"fc{index}", nn.Linear(inputs, outputs))
        if index < 3:
            net.add_module(f"act_fc{index}", nn.ReLU())
    net.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in state.items()})
    return net.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist-dir", help="folder with MNIST's t10k files")
    parser.add_argument("--out", default="lenet5.onnx")
    args = parser.parse_args()
    try:
        import onnx
        import onnxruntime
    except ImportError:
        print("this example needs onnx and onnxruntime: pip install -e \".[onnx]\"")
        return
    from tinygrad_cnn.onnx import export

    name = "mnist-t10k" if args.mnist_dir else "digits"
    dataset = train.load_dataset(name, root=args.mnist_dir)
    params = models.init_lenet5(np.random.default_rng(0), image_size=dataset.image_size)
    train.fit(models.lenet5, params, dataset, 8 if args.mnist_dir else 5, 64,
              optim.Adam(params, 2e-3), progress=False)
    ours = models.lenet5(params, dataset.x_test).data

    proto = export(models.lenet5, params, dataset.x_test[:1], args.out)
    session = onnxruntime.InferenceSession(args.out)
    exported = session.run(None, {"x": dataset.x_test})[0]
    print(f"{name}: {len(dataset.x_test)} held-out images, LeNet-5 exported to {args.out} "
          f"({len(proto.graph.node)} ONNX nodes)")
    print(f"  tinygrad_cnn accuracy  {(ours.argmax(1) == dataset.y_test).mean():.4f}")
    print(f"  ONNX Runtime accuracy  {(exported.argmax(1) == dataset.y_test).mean():.4f}  "
          f"(max |logit difference| {np.abs(exported - ours).max():.2e}, same predictions: "
          f"{bool((exported.argmax(1) == ours.argmax(1)).all())})")
    try:
        import torch
    except ImportError:
        return
    state = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer
             if i.name in params}
    kernel = state["conv1.weight"].shape[-1]
    net = torch_lenet5(state, kernel, state["fc1.weight"].shape[1])
    with torch.no_grad():
        theirs = net(torch.from_numpy(dataset.x_test)).numpy()
    print(f"  PyTorch accuracy       {(theirs.argmax(1) == dataset.y_test).mean():.4f}  "
          f"(max |logit difference| {np.abs(theirs - ours).max():.2e})")


if __name__ == "__main__":
    main()
