"""Export a model to ONNX, for ONNX Runtime, Netron, or PyTorch (needs the `onnx` extra).

`export(f, params, example_input, path)` runs ``f(params, example_input)`` once, recording
the graph, and writes one ONNX node (or a few) per recorded op; the params become
initializers named by their keys (nested keys joined by dots). The exported graph computes
PyTorch's numbers everywhere: pooling pads are explicit (ceil_mode is never used, since
runtimes disagree at the border), average pooling always sets count_include_pad=1 and
rescales by PyTorch's divisors, and batch norm exports its evaluation form.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import trace
from .autograd import Context, enable_grad, topological_nodes, tree_flatten
from .data import write_atomically
from .tensor import Buffer, Tensor

__all__ = ["export", "ExportError", "SUPPORTED_OPS", "DEFAULT_OPSET"]

DEFAULT_OPSET = 17
ELEMENTWISE = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "pow": "Pow",
               "maximum": "Max", "neg": "Neg", "exp": "Exp", "log": "Log", "sqrt": "Sqrt",
               "tanh": "Tanh", "sigmoid": "Sigmoid", "softplus": "Softplus", "relu": "Relu",
               "abs": "Abs", "identity": "Identity"}


class ExportError(ValueError):
    """An op of the graph has no ONNX mapping (or not with these parameters)."""


class _Graph:
    """ONNX nodes and initializers under construction, with the names of the values."""

    def __init__(self, names: dict[int, str]) -> None:
        self.names = names            # id(tensor) or data pointer -> value name
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.count = 0
        self.batched: set[int] = set()  # ids of tensors computed from the model's input

    def fresh(self, stem: str) -> str:
        self.count += 1
        return f"{stem}_{self.count}"

    def constant(self, array: Any, stem: str = "const") -> str:
        from onnx import numpy_helper
        name = self.fresh(stem)
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def add(self, op: str, inputs: list[str], output: str | None = None, **attrs: Any) -> str:
        from onnx import helper
        output = output or self.fresh(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [output], **attrs))
        return output


def _value(graph: _Graph, tensor: Tensor) -> str:
    """The ONNX name of a node input: a param, the model input, an op output, or a new
    initializer for a constant (looked up by data pointer for views of params)."""
    name = graph.names.get(id(tensor)) or graph.names.get(_pointer(tensor.data))
    if name is None:
        name = graph.names[id(tensor)] = graph.constant(tensor.data)
    return name


def _pointer(array: np.ndarray) -> tuple[int, tuple[int, ...], str]:
    return array.__array_interface__["data"][0], array.shape, array.dtype.str


# ----------------------------------------------------------------------------- op mappings
def _pads(padding: tuple[int, int, int, int]) -> list[int]:
    top, bottom, left, right = padding
    return [top, left, bottom, right]


def _conv(graph: _Graph, node: Context, inputs: list[str]) -> str:
    p = node.params
    return graph.add("Conv", inputs, kernel_shape=list(node.inputs[1].shape[2:]),
                     strides=list(p["stride"]), pads=_pads(p["padding"]),
                     dilations=list(p["dilation"]), group=p["groups"])


def _conv_transpose(graph: _Graph, node: Context, inputs: list[str]) -> str:
    p = node.params
    x, w = node.inputs
    top, bottom, left, right = p["padding"]
    reach = [(n - 1) * s + (k - 1) * d + 1 for n, s, k, d in
             zip(x.shape[2:], p["stride"], w.shape[2:], p["dilation"])]
    extra = [out - r + before + after for out, r, before, after in
             zip(p["input_hw"], reach, (top, left), (bottom, right))]
    return graph.add("ConvTranspose", inputs, kernel_shape=list(w.shape[2:]),
                     strides=list(p["stride"]), pads=_pads(p["padding"]),
                     dilations=list(p["dilation"]), group=p["groups"],
                     output_padding=extra)


def _max_pool(graph: _Graph, node: Context, inputs: list[str]) -> str:
    p = node.params
    return graph.add("MaxPool", inputs, kernel_shape=list(p["kernel"]),
                     strides=list(p["stride"]), pads=_pads(p["padding"]),
                     dilations=list(p["dilation"]), ceil_mode=0)


def _avg_pool(graph: _Graph, node: Context, inputs: list[str]) -> str:
    """AveragePool divides every window by KH*KW (pads counted as zeros); PyTorch's divisor
    per output position then rescales: out = pooled * KH*KW / divisor."""
    p = node.params
    pooled = graph.add("AveragePool", inputs, kernel_shape=list(p["kernel"]),
                       strides=list(p["stride"]), pads=_pads(p["padding"]),
                       count_include_pad=1, ceil_mode=0)
    area = p["kernel"][0] * p["kernel"][1]
    divisor = np.asarray(p["divisor"], dtype=node.output.dtype)
    if divisor.ndim == 0 and divisor == area:
        return pooled
    return graph.add("Mul", [pooled, graph.constant((area / divisor).astype(divisor.dtype))])


def _reduce(graph: _Graph, node: Context, inputs: list[str], dynamic: bool) -> str:
    axis = node.params["axis"]
    axes = list(range(node.inputs[0].ndim)) if axis is None else list(axis)
    if dynamic and 0 in axes and id(node.inputs[0]) in graph.batched:
        raise ExportError(f"{node.name} ({node.where}) reduces over the batch axis: a mean "
                          "there would divide by the example's batch size; export with "
                          "dynamic_batch=False")
    keep = int(node.params["keepdims"])
    if node.name == "sum":
        return graph.add("ReduceSum", inputs + [graph.constant(np.array(axes, np.int64))],
                         keepdims=keep)
    op = "ReduceMax" if node.name == "max" else "ReduceMin"
    return graph.add(op, inputs, axes=axes, keepdims=keep)


def _reshape(graph: _Graph, node: Context, inputs: list[str], dynamic: bool) -> str:
    before, after = node.inputs[0].shape, node.output.shape
    shape = list(after)
    if dynamic and len(shape) and len(before) and shape[0] == before[0]:
        shape[0] = 0                        # ONNX: copy the (symbolic) batch size
    elif dynamic and id(node.inputs[0]) in graph.batched:
        raise ExportError(f"reshape {before} -> {after} ({node.where}) changes the batch axis; "
                          "export with dynamic_batch=False")
    return graph.add("Reshape", inputs + [graph.constant(np.array(shape, np.int64))])


def _getitem(graph: _Graph, node: Context, inputs: list[str]) -> str:
    """Basic indexing: integers and slices (Slice, then Reshape to drop integer axes)."""
    index = node.params["index"]
    x = node.inputs[0]
    if any(isinstance(i, np.ndarray) or i is None for i in index) or \
            sum(i is Ellipsis for i in index) > 1:
        raise ExportError(f"getitem ({node.where}): only integers and slices export, got "
                          f"index {index}")
    if Ellipsis in index:
        at = index.index(Ellipsis)
        index = index[:at] + (slice(None),) * (x.ndim - len(index) + 1) + index[at + 1:]
    starts, ends, axes, steps = [], [], [], []
    far = 2 ** 62   # "to the end", whatever the (symbolic) size; ONNX clamps it
    for axis, item in enumerate(index):
        if isinstance(item, slice):
            if item == slice(None):
                continue
            step = 1 if item.step is None else item.step
            start = item.start if item.start is not None else (0 if step > 0 else -1)
            stop = item.stop if item.stop is not None else (far if step > 0 else -far)
        else:
            start = int(item) % x.shape[axis]
            stop, step = start + 1, 1
        starts.append(start)
        ends.append(stop)
        axes.append(axis)
        steps.append(step)
    arrays = [np.array(v, np.int64) for v in (starts, ends, axes, steps)]
    sliced = graph.add("Slice", inputs + [graph.constant(a) for a in arrays]) if axes \
        else graph.add("Identity", inputs)
    shape = [0 if axis == 0 else n for axis, n in enumerate(node.output.shape)]
    if len(node.output.shape) != x.ndim:
        if node.output.shape and x.shape and node.output.shape[0] != x.shape[0]:
            shape = list(node.output.shape)
        return graph.add("Reshape", [sliced, graph.constant(np.array(shape, np.int64))])
    return sliced


def _local_response_norm(graph: _Graph, node: Context, inputs: list[str]) -> str:
    p = node.params
    size = p["size"]
    if size % 2:
        return graph.add("LRN", inputs, size=size, alpha=p["alpha"], beta=p["beta"],
                         bias=p["k"])
    # an even window is placed differently in ONNX's LRN: sum the squares with a Conv
    x = node.inputs[0]
    channels, rest = x.shape[1], list(x.shape[2:])
    squares = graph.add("Mul", [inputs[0], inputs[0]])
    stacked = graph.add("Reshape", [squares, graph.constant(np.array([0, 1, channels, -1],
                                                                     np.int64))])
    ones = graph.constant(np.ones((1, 1, size, 1), x.dtype))
    window = graph.add("Conv", [stacked, ones], kernel_shape=[size, 1],
                       pads=[size // 2, 0, (size - 1) // 2, 0])
    window = graph.add("Reshape", [window, graph.constant(np.array([0, channels] + rest,
                                                                   np.int64))])
    scaled = graph.add("Mul", [window, graph.constant(np.array(p["alpha"] / size, x.dtype))])
    shifted = graph.add("Add", [scaled, graph.constant(np.array(p["k"], x.dtype))])
    power = graph.add("Pow", [shifted, graph.constant(np.array(p["beta"], x.dtype))])
    return graph.add("Div", [inputs[0], power])


def _batch_norm(graph: _Graph, node: Context, inputs: list[str]) -> str:
    if node.params["training"]:
        raise ExportError(f"batch_norm ({node.where}) in training mode: export the model in "
                          "evaluation mode (train=False)")
    return graph.add("BatchNormalization", inputs, epsilon=node.params["eps"])


def _other(graph: _Graph, node: Context, inputs: list[str], dynamic: bool) -> str:
    name, p = node.name, node.params
    if name in ELEMENTWISE:
        return graph.add(ELEMENTWISE[name], inputs)
    if name == "matmul":
        return graph.add("MatMul", inputs)
    if name == "transpose":
        return graph.add("Transpose", inputs, perm=list(p["axes"]))
    if name == "concatenate":
        return graph.add("Concat", inputs, axis=p["axis"])
    if name == "log_softmax":
        return graph.add("LogSoftmax", inputs, axis=p["axis"])
    if name == "clip":
        bounds = [graph.constant(np.array(b, node.output.dtype)) if b is not None else ""
                  for b in (p["low"], p["high"])]
        return graph.add("Clip", inputs + bounds)
    if name == "where":
        return graph.add("Where", [graph.constant(p["condition"])] + inputs)
    if name == "cast":
        from onnx import helper
        return graph.add("Cast", inputs, to=helper.np_dtype_to_tensor_dtype(p["dtype"]))
    if name == "pad":
        begins, ends = zip(*p["pad_width"])
        return graph.add("Pad", inputs + [graph.constant(np.array(begins + ends, np.int64)),
                                          graph.constant(np.array(p["value"],
                                                                  node.output.dtype))])
    if name == "broadcast_to":
        before, after = node.inputs[0].shape, p["shape"]
        padded = (1,) * (len(after) - len(before)) + tuple(before)
        shape = [1 if b == a else a for b, a in zip(padded, after)]
        return graph.add("Expand", inputs + [graph.constant(np.array(shape, np.int64))])
    raise KeyError(name)


MAPPINGS: dict[str, Callable] = {
    "conv2d": _conv, "conv2d_input_grad": _conv_transpose, "max_pool2d": _max_pool,
    "avg_pool2d": _avg_pool, "getitem": _getitem, "local_response_norm": _local_response_norm,
    "batch_norm": _batch_norm}
SUPPORTED_OPS = sorted(set(MAPPINGS) | set(ELEMENTWISE) | {
    "sum", "max", "min", "reshape", "matmul", "transpose", "concatenate", "log_softmax",
    "clip", "where", "cast", "pad", "broadcast_to"})


def _map_node(graph: _Graph, node: Context, dynamic: bool) -> None:
    inputs = [_value(graph, t) for t in node.inputs]
    if node.name not in SUPPORTED_OPS:
        raise ExportError(f"{node.name} ({node.where or 'unknown line'}) has no ONNX mapping; "
                          f"the ops that export are: {', '.join(SUPPORTED_OPS)}")
    if node.name == "reshape":
        name = _reshape(graph, node, inputs, dynamic)
    elif node.name in ("sum", "max", "min"):
        name = _reduce(graph, node, inputs, dynamic)
    elif node.name in MAPPINGS:
        name = MAPPINGS[node.name](graph, node, inputs)
    else:
        name = _other(graph, node, inputs, dynamic)
    graph.names[id(node.output)] = name
    if any(id(t) in graph.batched for t in node.inputs):
        graph.batched.add(id(node.output))


# ----------------------------------------------------------------------------- export
def _as_dtype(array: np.ndarray, dtype: Any) -> np.ndarray:
    """Floating arrays in `dtype` (None keeps them); Buffers stay Buffers."""
    if dtype is None or array.dtype.kind != "f" or array.dtype == dtype:
        return array
    converted = array.astype(dtype)
    return converted.view(Buffer) if isinstance(array, Buffer) else converted


def _record(f: Callable, params: Any, example_input: Any, dtype: Any
            ) -> tuple[Tensor, Tensor, list[tuple[str, np.ndarray]], dict]:
    """Run f once, tracing: (output, input Tensor, [(param name, array)], names)."""
    leaves, spec = tree_flatten(params)
    keys = _leaf_keys(params)
    from .autograd import tree_unflatten
    tensors = [_as_dtype(leaf, dtype) if isinstance(leaf, Buffer) else
               Tensor(_as_dtype(leaf.data if isinstance(leaf, Tensor) else np.asarray(leaf),
                                dtype), requires_grad=True) for leaf in leaves]
    example = example_input.data if isinstance(example_input, Tensor) else \
        np.asarray(example_input)
    x = Tensor(_as_dtype(example, dtype), requires_grad=True)
    with enable_grad(), trace.tracing():
        out = f(tree_unflatten(spec, tensors), x)
    if not isinstance(out, Tensor):
        raise TypeError(f"export: the model must return a Tensor, got {type(out).__name__}")
    names: dict = {}
    arrays = []
    for key, tensor in zip(keys, tensors):
        array = tensor if isinstance(tensor, Buffer) else tensor.data
        names[id(tensor)] = names[_pointer(np.asarray(array))] = key
        arrays.append((key, np.asarray(array)))
    return out, x, arrays, names


def _leaf_keys(tree: Any, prefix: str = "") -> list[str]:
    if isinstance(tree, dict):
        return [k for key, value in tree.items() for k in _leaf_keys(value, f"{prefix}{key}.")]
    if isinstance(tree, (list, tuple)):
        return [k for i, value in enumerate(tree) for k in _leaf_keys(value, f"{prefix}{i}.")]
    return [prefix[:-1]]


def export(f: Callable, params: Any, example_input: Any, path: str | os.PathLike, *,
           opset: int | None = None, input_names: tuple[str, ...] = ("x",),
           output_names: tuple[str, ...] = ("y",), dynamic_batch: bool = True,
           dtype: Any = np.float32) -> Any:
    """Write ``f(params, x)`` as an ONNX model and return the `onnx.ModelProto`.

    The model is checked with ``onnx.checker.check_model(full_check=True)`` before anything
    is written (atomically). `dynamic_batch` makes the first axis of the input and output
    symbolic ("N"). Floating params and the input are exported in `dtype`, float32 by
    default, the type ONNX Runtime's CPU kernels (Conv among them) implement; None keeps
    theirs. Raises ExportError, writing nothing, for an op without a mapping.
    """
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError:
        raise ImportError("export needs the onnx package: pip install -e \".[onnx]\"") from None
    opset = DEFAULT_OPSET if opset is None else opset
    if not 13 <= opset <= DEFAULT_OPSET:
        raise ValueError(f"export: opset must be between 13 and {DEFAULT_OPSET}, got {opset}")
    out, x, params_arrays, names = _record(f, params, example_input, dtype)
    names[id(x)] = input_names[0]
    graph = _Graph(names)
    graph.batched.add(id(x))
    for node in reversed(topological_nodes([out])):
        _map_node(graph, node, dynamic_batch)
    graph.add("Identity", [_value(graph, out)], output_names[0])
    used = {name for n in graph.nodes for name in n.input}
    initializers = [numpy_helper.from_array(array, key) for key, array in params_arrays
                    if key in used] + graph.initializers

    def value_info(name: str, tensor: Tensor) -> Any:
        shape = list(tensor.shape)
        if dynamic_batch and shape:
            shape[0] = "N"
        return helper.make_tensor_value_info(
            name, helper.np_dtype_to_tensor_dtype(tensor.dtype), shape)

    onnx_graph = helper.make_graph(graph.nodes, "tinygrad_cnn",
                                   [value_info(input_names[0], x)],
                                   [value_info(output_names[0], out)], initializers)
    model = helper.make_model(onnx_graph, producer_name="tinygrad_cnn",
                              opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model, full_check=True)
    payload = model.SerializeToString()
    write_atomically(Path(path), lambda file: file.write(payload))
    return model
