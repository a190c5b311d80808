"""The model as a `torch.fx.GraphModule`, to train it with PyTorch (its optimizers,
`DistributedDataParallel`, `torch.compile`, GPUs), and back (needs the `torch` extra).

    module = to_torch(f, params, example_input)   # f(params, x) recorded once
    y = module(x)                                 # any batch size
    params = from_torch(module)                   # numpy arrays, the same keys

Every op lowers through its `OpSpec.torch` entry (declared beside the op in `ops/`): a
function `(builder, node, args) -> fx value`. Params become `nn.Parameter`s and Buffers
registered buffers, under their keys (dotted keys are the submodule hierarchy, so
`module.named_parameters()` yields the params' keys); batch norm becomes an
`nn.BatchNorm1d/2d` holding its weight, bias and running statistics, dropout an
`nn.Dropout`, so `module.train()` and `module.eval()` switch them as in PyTorch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import trace
from .autograd import Context
from .checking import probe_inputs
from .graph import forward_order
from .ops import spec_of
from .recording import record
from .tensor import Buffer, Tensor

__all__ = ["to_torch", "from_torch", "BridgeError"]

PARAM_KEYS = "tinygrad_params"   # the GraphModule attribute listing the params' keys


class BridgeError(ValueError):
    """A recorded op has no PyTorch lowering, or a param key no module can hold."""


def _torch() -> Any:
    try:
        import torch
        import torch.fx  # noqa: F401
    except ImportError:
        raise ImportError("to_torch needs PyTorch: pip install -e \".[torch]\" (on a machine "
                          "without a GPU, pip install torch==2.13.0 installs the CPU "
                          "build)") from None
    return torch


class Builder:
    """What a lowering uses to add to the fx graph: `call(fn, *args, **kwargs)`,
    `method(name, *args)`, `constant(array)` (a buffer: follows `module.double()`),
    `submodule(name, module, *args)`, `key(tensor)` (a param's key) and `batched(tensor)`
    (whether a tensor's first axis is the batch), plus `torch` and `F`."""

    def __init__(self, torch: Any, root: Any, keys: dict[int, str]) -> None:
        self.torch, self.F, self.root = torch, torch.nn.functional, root
        self.graph = torch.fx.Graph()
        self.keys = keys                      # id(tensor) -> param key
        self.values: dict[int, Any] = {}      # id(tensor) -> fx node
        self.batch: set[int] = set()          # ids of tensors that carry the batch axis
        self.count = 0
        self.derived: dict[int, Any] = {}     # arrays computed from the input (trace)

    def call(self, fn: Callable, *args: Any, **kwargs: Any) -> Any:
        return self.graph.call_function(fn, args, kwargs)

    def method(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self.graph.call_method(name, args, kwargs)

    def constant(self, array: np.ndarray) -> Any:
        self.count += 1
        name = f"_constant_{self.count}"
        self.root.register_buffer(name, self.torch.from_numpy(np.ascontiguousarray(array)))
        return self.graph.get_attr(name)

    def submodule(self, name: str, module: Any, *args: Any) -> Any:
        _set_module(self.root, name, module)
        return self.graph.call_module(name, args)

    def key(self, tensor: Tensor) -> str | None:
        return self.keys.get(id(tensor))

    def batched(self, tensor: Tensor) -> bool:
        return id(tensor) in self.batch


def _set_module(root: Any, name: str, module: Any) -> None:
    *parents, leaf = name.split(".")
    owner = root
    for part in parents:
        owner = getattr(owner, part)
    if leaf in owner._parameters:            # its tensors move into the module
        del owner._parameters[leaf]
    owner.add_module(leaf, module)


def _holder(torch: Any, root: Any, key: str) -> tuple[Any, str]:
    """The submodule that holds `key` (created along its dotted path) and the leaf name."""
    *parents, leaf = key.split(".")
    if not leaf or any(not part for part in parents):
        raise BridgeError(f"to_torch: param key {key!r} cannot name a module attribute (an "
                          "empty part); rename it")
    owner = root
    for part in parents:
        if not hasattr(owner, part):
            owner.add_module(part, torch.nn.Module())
        owner = getattr(owner, part)
    return owner, leaf


def _register(torch: Any, root: Any, key: str, array: np.ndarray, buffer: bool) -> None:
    owner, leaf = _holder(torch, root, key)
    value = torch.from_numpy(np.array(array))
    if buffer:
        owner.register_buffer(leaf, value)
    else:
        owner.register_parameter(leaf, torch.nn.Parameter(value))


def _lower(builder: Builder, node: Context) -> Any:
    spec = spec_of(node)
    where = node.where or "unknown line"
    if spec is None:
        raise BridgeError(f"to_torch: {node.fn.__name__} ({where}) is not a registered op "
                          "and has no PyTorch lowering; write the model with registered ops")
    if not callable(spec.torch):
        raise BridgeError(f"to_torch: {node.name} ({where}) has no PyTorch lowering"
                          + (f": {spec.torch}" if spec.torch else ""))
    frozen = [key for key, value in node.params.items() if isinstance(value, np.ndarray)
              and trace.is_derived(value, builder.derived)] + \
        ["an input" for t in node.inputs if t.grad_fn is None and id(t) not in builder.values
         and builder.key(t) is None and trace.is_derived(t.data, builder.derived)]
    if frozen:
        raise BridgeError(f"to_torch: {node.name} ({where}) uses {frozen[0]} computed from the "
                          "model's input outside the recorded graph (a comparison, a cast to "
                          "bool or int, detach() or an op under no_grad): the module would "
                          "freeze it at the example's value. Compute it with recorded ops")
    args = [_value(builder, tensor) for tensor in node.inputs]
    if any(builder.batched(t) for t in node.inputs):
        builder.batch.add(id(node.output))
    return spec.torch(builder, node, args)


def _value(builder: Builder, tensor: Tensor) -> Any:
    """The fx node of a node input: the input, a param, an op output, or a new constant."""
    found = builder.values.get(id(tensor))
    if found is None:
        key = builder.key(tensor)
        found = builder.graph.get_attr(key) if key is not None else \
            builder.constant(tensor.data)
        builder.values[id(tensor)] = found
    return found


def to_torch(f: Callable, params: Any, example_input: Any, *, train: bool = False,
             seed: int = 0, verify: bool = True) -> Any:
    """`f(params, x)` as a `torch.fx.GraphModule` computing the same numbers in PyTorch.

    The graph is recorded once on `example_input` (N, ...), in training mode with
    `train=True` (the model is called as ``f(params, x, train=True, rng=...)``, as the
    zoo's models are); no batch size is baked in. With `verify`, the module (in eval mode)
    is run on two new inputs, at the example's batch size and one more, against
    ``f(params, x)``: a model that depends on something the recording froze (a value
    computed from the input outside the graph, the batch size) raises BridgeError. Raises
    BridgeError too for an op without a PyTorch lowering, naming it and where it was
    called. The module is returned in training mode with `train=True`, else in eval mode.
    """
    torch = _torch()
    options = {"train": True, "rng": np.random.default_rng(seed)} if train else {}
    run = record(f, params, example_input, caller="to_torch", error=BridgeError,
                 options=options)
    out, x, keys, tensors, before, derived = run.out, run.x, run.keys, run.leaves, \
        run.initial, run.derived
    root = torch.nn.Module()
    for key, tensor, array in zip(keys, tensors, before):
        _register(torch, root, key, array, isinstance(tensor, Buffer))
    ids = {id(t): key for key, t in zip(keys, tensors) if not isinstance(t, Buffer)}
    builder = Builder(torch, root, ids)
    builder.derived = derived
    builder.keys.update(_buffer_ids(out, keys, tensors))
    builder.values[id(x)] = builder.graph.placeholder("x")
    builder.batch.add(id(x))
    for key, tensor in zip(keys, tensors):   # the module holds them in the params' order
        if not isinstance(tensor, Buffer):
            builder.values[id(tensor)] = builder.graph.get_attr(key)
    for node in forward_order([out]):
        builder.values[id(node.output)] = _lower(builder, node)
    builder.graph.output(_value(builder, out))
    module = torch.fx.GraphModule(root, builder.graph)
    module.graph.eliminate_dead_code()   # param reads that a module call replaced
    module.recompile()
    setattr(module, PARAM_KEYS, [(key, isinstance(t, Buffer)) for key, t in zip(keys, tensors)])
    if verify:
        _verify(torch, module.eval(), f, params, x.data)
    return module.train(train)


VERIFY_TOLERANCE = {np.dtype(np.float64): 1e-9, np.dtype(np.float32): 1e-4}


def _verify(torch: Any, module: Any, f: Callable, params: Any, example: np.ndarray) -> None:
    """The module against f on new inputs; BridgeError naming the first difference."""
    for probe in probe_inputs(example, True):
        want = np.asarray(f(params, Tensor(probe)).data)
        try:
            with torch.no_grad():
                got = module(torch.from_numpy(probe)).numpy()
        except RuntimeError as error:
            raise BridgeError(f"to_torch: the module fails on a new input of batch "
                              f"{len(probe)} ({str(error).splitlines()[0]}); the model "
                              "depends on something the recording froze (the batch size, or "
                              "a value computed from the input outside the graph)") from None
        tolerance = VERIFY_TOLERANCE.get(want.dtype, 1e-4)
        scale = float(np.abs(want[np.isfinite(want)]).max(initial=1.0))
        close = got.shape == want.shape and np.isclose(
            got, want, rtol=tolerance, atol=tolerance * scale, equal_nan=True)
        if close is False or not np.all(close):
            detail = f"shape {got.shape} where f gives {want.shape}" if close is False else \
                f"{np.count_nonzero(~close)} elements differ from f"
            raise BridgeError(f"to_torch: on a new input of batch {len(probe)} the module "
                              f"computes {detail}; the model depends on something the "
                              "recording froze (a value computed from the input outside "
                              "the graph, such as a comparison, or the batch size)")


def _buffer_ids(out: Tensor, keys: list[str], tensors: list[Any]) -> dict[int, str]:
    """id(constant Tensor) -> key for the graph's constants that are a Buffer param's
    array (ops wrap a Buffer in a constant Tensor sharing its memory)."""
    pointers = {np.asarray(t).__array_interface__["data"][0]: key
                for key, t in zip(keys, tensors) if isinstance(t, Buffer)}
    found = {}
    for node in forward_order([out]):
        for tensor in node.inputs:
            pointer = tensor.data.__array_interface__["data"][0]
            if tensor.grad_fn is None and pointer in pointers:
                found[id(tensor)] = pointers[pointer]
    return found


def from_torch(module: Any) -> dict[str, Any]:
    """The params of a module `to_torch` made, as numpy arrays under their original keys
    (buffers as `tg.Buffer`), after whatever PyTorch trained them to."""
    entries = getattr(module, PARAM_KEYS, None)
    if entries is None:
        raise BridgeError("from_torch: the module was not made by to_torch (it has no "
                          f"{PARAM_KEYS} attribute)")
    state = module.state_dict()
    params: dict[str, Any] = {}
    for key, is_buffer in entries:
        array = state[key].detach().cpu().numpy().copy()
        params[key] = array.view(Buffer) if is_buffer else array
    return params
