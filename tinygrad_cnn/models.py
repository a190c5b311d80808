"""The model zoo: each model is a plain function `model(params, x, train=False, rng=None)`
of a params dict, with `init_<model>(rng, ...)` returning that dict (float32 Tensors that
require grad, and `Buffer`s for state that is not trained, such as batch norm's running
statistics).

x is (N, C, H, W); the models return logits (N, num_classes). `train=True` turns on what
only training does: dropout (drawn from `rng`) and batch statistics in batch norm (which
also updates the running statistics in place).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import functional as F
from . import init
from .gradcheck import check_gradients
from .ops import concatenate
from .tensor import Buffer, Tensor, buffer

__all__ = ["lenet5", "init_lenet5", "vgg", "init_vgg", "inception", "init_inception",
           "alexnet", "init_alexnet", "MODELS", "count_params"]

Params = dict[str, Tensor | Buffer]


def _conv(rng: np.random.Generator, out_channels: int, in_channels: int,
          kernel: int) -> tuple[Tensor, Tensor]:
    shape = (out_channels, in_channels, kernel, kernel)
    bound = 1 / np.sqrt(in_channels * kernel * kernel)  # PyTorch's default bias init
    return (Tensor(init.kaiming_normal(shape, rng), requires_grad=True),
            Tensor(rng.uniform(-bound, bound, out_channels).astype(np.float32),
                   requires_grad=True))


def _linear(rng: np.random.Generator, out_features: int,
            in_features: int) -> tuple[Tensor, Tensor]:
    bound = 1 / np.sqrt(in_features)
    return (Tensor(init.kaiming_uniform((out_features, in_features), rng, a=np.sqrt(5)),
                   requires_grad=True),
            Tensor(rng.uniform(-bound, bound, out_features).astype(np.float32),
                   requires_grad=True))


def _batch_norm_params(params: dict, key: str, channels: int) -> None:
    """A batch norm's scale and shift (trained) and running statistics (buffers)."""
    params[f"{key}.weight"] = Tensor(np.ones(channels, np.float32), requires_grad=True)
    params[f"{key}.bias"] = Tensor(np.zeros(channels, np.float32), requires_grad=True)
    params[f"{key}.running_mean"] = buffer(np.zeros(channels))
    params[f"{key}.running_var"] = buffer(np.ones(channels))


def _batch_norm(params: Params, key: str, x: Tensor, train: bool) -> Tensor:
    return F.batch_norm(x, params[f"{key}.running_mean"], params[f"{key}.running_var"],
                        params[f"{key}.weight"], params[f"{key}.bias"], training=train)


def _named(params: dict) -> Params:
    for key, tensor in params.items():
        if isinstance(tensor, Tensor):
            tensor.name = key
    return params


def count_params(params: Params) -> int:
    """Trained parameters (Tensors), not buffers."""
    return sum(t.size for t in params.values() if isinstance(t, Tensor))


# ----------------------------------------------------------------------------- LeNet-5
def init_lenet5(rng: np.random.Generator, in_channels: int = 1, num_classes: int = 10,
                image_size: int = 28) -> Params:
    """LeNet-5: 5x5 kernels for 28x28 inputs; for small inputs (under 20 pixels, such as
    the 8x8 digits) 3x3 kernels padded to keep the size."""
    kernel = 5 if image_size >= 20 else 3
    size = image_size // 2                      # conv1 keeps the size, then 2x2 pooling
    size = (size - (kernel - 1) if kernel == 5 else size) // 2
    params = {}
    params["conv1.weight"], params["conv1.bias"] = _conv(rng, 6, in_channels, kernel)
    params["conv2.weight"], params["conv2.bias"] = _conv(rng, 16, 6, kernel)
    params["fc1.weight"], params["fc1.bias"] = _linear(rng, 120, 16 * size * size)
    params["fc2.weight"], params["fc2.bias"] = _linear(rng, 84, 120)
    params["fc3.weight"], params["fc3.bias"] = _linear(rng, num_classes, 84)
    return _named(params)


def lenet5(params: Params, x: Tensor, train: bool = False,
           rng: np.random.Generator | None = None) -> Tensor:
    """conv-relu-maxpool, conv-relu-maxpool, linear-relu, linear-relu, linear."""
    kernel = params["conv1.weight"].shape[-1]
    x = F.conv2d(x, params["conv1.weight"], params["conv1.bias"], padding=kernel // 2)
    x = F.max_pool2d(F.relu(x), 2)
    x = F.conv2d(x, params["conv2.weight"], params["conv2.bias"],
                 padding=0 if kernel == 5 else 1)
    x = F.max_pool2d(F.relu(x), 2).flatten(1)
    x = F.relu(F.linear(x, params["fc1.weight"], params["fc1.bias"]))
    x = F.relu(F.linear(x, params["fc2.weight"], params["fc2.bias"]))
    return F.linear(x, params["fc3.weight"], params["fc3.bias"])


# ----------------------------------------------------------------------------- VGG-style
VGG_WIDTHS = (16, 32)


def init_vgg(rng: np.random.Generator, in_channels: int = 1, num_classes: int = 10,
             image_size: int = 28, batch_norm: bool = False) -> Params:
    """Two blocks of two 3x3 convs and a 2x2 max-pool, then a 1x1 conv to the classes and
    global average pooling (an all-convolutional head, no linear layer). With
    `batch_norm`, each 3x3 conv is followed by batch normalization (before its ReLU)."""
    params, channels = {}, in_channels
    for block, width in enumerate(VGG_WIDTHS):
        for layer in range(2):
            key = f"block{block}.conv{layer}"
            params[f"{key}.weight"], params[f"{key}.bias"] = _conv(rng, width, channels, 3)
            if batch_norm:
                _batch_norm_params(params, f"block{block}.bn{layer}", width)
            channels = width
    params["head.weight"], params["head.bias"] = _conv(rng, num_classes, channels, 1)
    return _named(params)


def vgg(params: Params, x: Tensor, train: bool = False,
        rng: np.random.Generator | None = None) -> Tensor:
    for block in range(len(VGG_WIDTHS)):
        for layer in range(2):
            key = f"block{block}.conv{layer}"
            x = F.conv2d(x, params[f"{key}.weight"], params[f"{key}.bias"], padding=1)
            if f"block{block}.bn{layer}.weight" in params:
                x = _batch_norm(params, f"block{block}.bn{layer}", x, train)
            x = F.relu(x)
        x = F.max_pool2d(x, 2)
    x = F.conv2d(x, params["head.weight"], params["head.bias"])
    return F.global_avg_pool2d(x)


# ----------------------------------------------------------------------------- Inception
BRANCHES = {"b1x1": 8, "b3x3_reduce": 8, "b3x3": 8, "b5x5_reduce": 4, "b5x5": 4, "pool_proj": 4}


def init_inception(rng: np.random.Generator, in_channels: int = 1, num_classes: int = 10,
                   image_size: int = 28) -> Params:
    """A 3x3 stem and one Inception block: parallel 1x1, 1x1-3x3, 1x1-5x5 and
    maxpool-1x1 branches concatenated on channels, then global pooling and a linear layer.
    The 1x1 convolutions cut the channels before the larger kernels."""
    stem = 16
    params = {}
    params["stem.weight"], params["stem.bias"] = _conv(rng, stem, in_channels, 3)
    shapes = {"b1x1": (stem, 1), "b3x3_reduce": (stem, 1), "b3x3": (8, 3),
              "b5x5_reduce": (stem, 1), "b5x5": (4, 5), "pool_proj": (stem, 1)}
    for name, (channels, kernel) in shapes.items():
        params[f"{name}.weight"], params[f"{name}.bias"] = _conv(rng, BRANCHES[name], channels,
                                                                 kernel)
    out_channels = BRANCHES["b1x1"] + BRANCHES["b3x3"] + BRANCHES["b5x5"] + BRANCHES["pool_proj"]
    params["fc.weight"], params["fc.bias"] = _linear(rng, num_classes, out_channels)
    return _named(params)


def inception(params: Params, x: Tensor, train: bool = False,
              rng: np.random.Generator | None = None) -> Tensor:
    def conv(name: str, t: Tensor, padding: int = 0) -> Tensor:
        return F.relu(F.conv2d(t, params[f"{name}.weight"], params[f"{name}.bias"],
                               padding=padding))

    x = F.max_pool2d(conv("stem", x, 1), 2)
    branches = [conv("b1x1", x),
                conv("b3x3", conv("b3x3_reduce", x), 1),
                conv("b5x5", conv("b5x5_reduce", x), 2),
                conv("pool_proj", F.max_pool2d(x, 3, stride=1, padding=1))]
    x = F.max_pool2d(concatenate(branches, axis=1), 2)
    return F.linear(F.global_avg_pool2d(x), params["fc.weight"], params["fc.bias"])


# ----------------------------------------------------------------------------- AlexNet-style
ALEXNET_WIDTHS = (32, 64, 96, 96, 64)
ALEXNET_HIDDEN = 256
LRN = {"size": 5, "alpha": 1e-4, "beta": 0.75, "k": 2.0}   # AlexNet's constants


def init_alexnet(rng: np.random.Generator, in_channels: int = 1, num_classes: int = 10,
                 image_size: int = 28) -> Params:
    """AlexNet scaled down for 28x28 (or 8x8) digits: five convs (ReLU; LRN after the
    first two), overlapping 3x3/2 max-pools after the first, second and fifth, and a
    classifier of three linear layers with dropout before the first two."""
    params, channels = {}, in_channels
    for index, width in enumerate(ALEXNET_WIDTHS, 1):
        kernel = 5 if index == 1 and image_size >= 20 else 3
        params[f"conv{index}.weight"], params[f"conv{index}.bias"] = _conv(rng, width, channels,
                                                                           kernel)
        channels = width
    size = image_size
    for _ in range(3):   # 3x3 pooling, stride 2, padding 1
        size = (size - 1) // 2 + 1
    features = channels * size * size
    params["fc1.weight"], params["fc1.bias"] = _linear(rng, ALEXNET_HIDDEN, features)
    params["fc2.weight"], params["fc2.bias"] = _linear(rng, ALEXNET_HIDDEN, ALEXNET_HIDDEN)
    params["fc3.weight"], params["fc3.bias"] = _linear(rng, num_classes, ALEXNET_HIDDEN)
    return _named(params)


def alexnet(params: Params, x: Tensor, train: bool = False,
            rng: np.random.Generator | None = None) -> Tensor:
    def conv(index: int, t: Tensor) -> Tensor:
        weight = params[f"conv{index}.weight"]
        return F.relu(F.conv2d(t, weight, params[f"conv{index}.bias"],
                               padding=weight.shape[-1] // 2))

    def pool(t: Tensor) -> Tensor:
        return F.max_pool2d(t, 3, stride=2, padding=1)

    x = pool(F.local_response_norm(conv(1, x), **LRN))
    x = pool(F.local_response_norm(conv(2, x), **LRN))
    x = pool(conv(5, conv(4, conv(3, x)))).flatten(1)
    x = F.relu(F.linear(F.dropout(x, 0.5, train, rng), params["fc1.weight"], params["fc1.bias"]))
    x = F.relu(F.linear(F.dropout(x, 0.5, train, rng), params["fc2.weight"], params["fc2.bias"]))
    return F.linear(x, params["fc3.weight"], params["fc3.bias"])


MODELS: dict[str, tuple[Callable, Callable]] = {
    "lenet5": (lenet5, init_lenet5), "vgg": (vgg, init_vgg),
    "inception": (inception, init_inception), "alexnet": (alexnet, init_alexnet)}


ALIASES = {"lenet": "lenet5"}


def model_name(name: str) -> str:
    """The zoo's name for `name` (aliases resolved); ValueError for an unknown model."""
    name = ALIASES.get(name, name)
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return name


def get_model(name: str) -> tuple[Callable, Callable]:
    """(model, init_model) of the zoo's model `name`."""
    return MODELS[model_name(name)]


def check_params(params: Any, model: str, options: dict, source: str) -> None:
    """Raise ValueError naming every key, shape and dtype of `params` that does not fit
    the model `model` built with `options`."""
    _, init_model = get_model(model)
    expected = init_model(np.random.default_rng(0), **options)
    if not isinstance(params, dict):
        raise ValueError(f"{source}: expected a dict of {model} parameters, got a "
                         f"{type(params).__name__}")
    problems = [f"missing {key!r} {expected[key].shape}" for key in expected
                if key not in params]
    problems += [f"unexpected {key!r}" for key in params if key not in expected]
    for key in expected.keys() & params.keys():
        array = params[key]
        if not isinstance(array, np.ndarray):
            problems.append(f"{key!r} is a {type(array).__name__}, not an array")
        elif array.shape != expected[key].shape:
            problems.append(f"{key!r} has shape {array.shape}, expected {expected[key].shape}")
        elif array.dtype.kind != "f":
            problems.append(f"{key!r} has dtype {array.dtype}, expected a float dtype")
    if problems:
        options_text = ", ".join(f"{k}={v}" for k, v in options.items()) or "defaults"
        raise ValueError(f"{source} does not hold {model} parameters ({options_text}): " +
                         "; ".join(sorted(problems)))


def model_loss_gradcheck(name: str, seed: int = 0, elements: int = 24):
    """check_gradients of a model's cross-entropy loss on two 8x8 images, in float64, with
    respect to every parameter (finite differences on `elements` random entries of each;
    the analytic gradient is computed in full)."""
    model, init_model = get_model(name)
    rng = np.random.default_rng(seed)
    params = init_model(rng, image_size=8)
    buffers = {k: v.astype(np.float64) for k, v in params.items() if isinstance(v, Buffer)}
    keys = [k for k in params if k not in buffers]
    x = rng.standard_normal((2, 1, 8, 8))
    y = np.array([1, 3])

    def loss(*values: Tensor) -> Tensor:
        return F.cross_entropy(model({**dict(zip(keys, values)), **buffers}, x), y)

    named = [Tensor(params[k].data.astype(np.float64), requires_grad=True, name=k)
             for k in keys]
    return check_gradients(loss, named, elements=elements)
