"""The engine: `Function`, grad mode, `backward` and `grad_of` (the walk itself is in
`graph.py`; the function transforms in `transforms.py`).

A `Function` runs its forward on raw ndarrays. When grad mode is on and an input requires
grad, `Function.apply` records a `Context` (the node of the graph, `Tensor.grad_fn`) holding
the input Tensors, the op's parameters and whatever the forward saved. The backward of every
op is written with Tensor ops, so running it with grad mode on (``create_graph=True``)
records the backward pass as a graph of its own and higher derivatives follow.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np

from . import trace
from .gradmode import _mode, enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .graph import nodes_leading_to, topological_nodes
from .tensor import Tensor, as_tensor

__all__ = [
    "Context", "Function", "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled",
    "backward", "grad_of", "topological_nodes",
]


# ----------------------------------------------------------------------------- nodes
class Context:
    """A node of the graph: what one op call needs for its backward.

    `inputs` are the input Tensors (use them in a backward that must be differentiable),
    `output` the result Tensor, `saved` the arrays given to `save_for_backward`,
    `params` the op's keyword parameters, `needs_input_grad` one flag per input.
    While tracing (localisation, anomaly mode) `where` is the user's ``file:line`` that
    created the node and `sequence` its place in creation order.
    """

    where: str | None = None
    called: str | None = None
    sequence: int = -1
    backward_of: Context | None = None   # while tracing: the node whose backward made it
    saved: tuple | None = ()
    released = False
    _output: weakref.ref | None = None

    def __init__(self, fn: type[Function], inputs: tuple[Tensor, ...], params: dict,
                 recording: bool) -> None:
        self.fn = fn
        self.inputs = inputs if recording else ()
        self.params = params
        self.recording = recording

    @property
    def name(self) -> str:
        return self.fn.name

    @property
    def needs_input_grad(self) -> tuple[bool, ...]:
        inputs = self.inputs
        if len(inputs) == 2:
            return inputs[0].requires_grad, inputs[1].requires_grad
        return tuple([t.requires_grad for t in inputs])

    @property
    def output(self) -> Tensor:
        tensor = self._output() if self._output is not None else None
        assert tensor is not None, "the output of a node is alive while its backward runs"
        return tensor

    def save_for_backward(self, *arrays: Any) -> None:
        """Keep arrays for the backward; nothing is kept when no graph is recorded."""
        if self.recording:
            self.saved = arrays

    def __repr__(self) -> str:
        return f"<{self.name}>"


class Function:
    """A differentiable op: subclass, write `forward` and `backward`, call `apply`.

    ``forward(ctx, *arrays, **params) -> ndarray`` runs on raw arrays.
    ``backward(ctx, g: Tensor) -> tuple`` returns one gradient (Tensor or None) per input,
    written with Tensor ops so that it is itself differentiable; it may read ``ctx.inputs``,
    ``ctx.output``, ``ctx.saved`` and ``ctx.params``. Broadcasting is undone by the engine:
    a gradient may have the broadcast shape of the output.

    `backward_reads` lists the inputs whose values the backward reads (None: all of them)
    and `backward_reads_output` whether it reads the output; `summary` counts them, with
    `ctx.saved`, as the memory the graph keeps for backward.
    """

    name: str = ""
    backward_reads: tuple[int, ...] | None = None
    backward_reads_output: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = cls.__name__.lower()

    @staticmethod
    def forward(ctx: Context, *arrays: np.ndarray, **params: Any) -> np.ndarray:
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Context, g: Tensor) -> tuple:
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs: Any, **params: Any) -> Tensor:
        # the hot path of every op, kept to plain attribute reads (see bench_overhead.py)
        if len(inputs) == 2 and not params and inputs[0].__class__ is Tensor \
                and inputs[1].__class__ is Tensor:   # a binary op: no loop, no packing
            first, second = inputs
            recording = (first.requires_grad or second.requires_grad) and _mode.enabled
            ctx = Context(cls, inputs, _NO_PARAMS, recording)   # one object fewer for the GC
            out = cls.forward(ctx, first.data, second.data)
        else:
            tensors, requires_grad = [], False
            for tensor in inputs:
                if not isinstance(tensor, Tensor):
                    tensor = as_tensor(tensor)
                requires_grad = requires_grad or tensor.requires_grad
                tensors.append(tensor)
            inputs = tuple(tensors)
            ctx = Context(cls, inputs, params, requires_grad and _mode.enabled)
            recording = ctx.recording
            out = cls.forward(ctx, *[t.data for t in tensors], **params)
        if out.__class__ is not _ndarray and not isinstance(out, _ndarray):
            out = np.asarray(out)
        if _debug.active:
            trace.on_forward(ctx, [t.data for t in inputs], out)
        if recording and out.dtype.kind == "f":
            result = _make_tensor(out, True, ctx)
            ctx._output = _weak(result)
            return result
        return _make_tensor(out, False, None)


_ndarray, _weak, _make_tensor, _debug = np.ndarray, weakref.ref, Tensor._make, trace.state
_NO_PARAMS: Mapping[str, Any] = MappingProxyType({})


def _as_gradient(grad: Any, tensor: Tensor, node: Context) -> Tensor:
    """One gradient returned by a backward, checked: a Tensor (an ndarray is wrapped) whose
    shape is the input's, or broadcasts to it (the engine sums the broadcast axes)."""
    index = next(i for i, t in enumerate(node.inputs) if t is tensor)
    if isinstance(grad, np.ndarray):
        grad = Tensor._make(grad, False, None)
    elif not isinstance(grad, Tensor):
        raise TypeError(f"{node.name}.backward returned a {type(grad).__name__} as the "
                        f"gradient of input {index}; expected a Tensor, an ndarray or None")
    if grad.shape != tensor.shape:
        try:
            reducible = np.broadcast_shapes(grad.shape, tensor.shape) == grad.shape
        except ValueError:
            reducible = False
        if not reducible:
            raise RuntimeError(
                f"{node.name}.backward returned a gradient of shape {grad.shape} for input "
                f"{index} of shape {tensor.shape} (output shape {node.output.shape}); it must "
                "have the input's shape or one that broadcasting the input gives")
        grad = grad.sum_to(tensor.shape)
    if grad.dtype != tensor.dtype:
        grad = grad.astype(tensor.dtype)
    return grad


def _run_backward(nodes: list[Context], roots: Sequence[Tensor],
                  root_grads: Sequence[Tensor], *, retain_graph: bool, create_graph: bool,
                  owned: _OwnedGradients, targets: set[int] | None = None
                  ) -> tuple[dict[int, Tensor], dict[int, Tensor]]:
    """Propagate gradients from `roots` through `nodes` (topologically ordered: all of the
    graph, or the part that leads to the requested tensors).

    Returns ({id(tensor): grad} for the leaves reached and the `targets`, {id: leaf}). A
    target's gradient is complete when its node is reached, since the walk is
    topological, so it is full even when another target lies between it and the roots.
    """
    grads: dict[int, Tensor] = {}
    for root, root_grad in zip(roots, root_grads):
        _accumulate(grads, id(root), root_grad)
    found: dict[int, Tensor] = {}
    leaves: dict[int, Tensor] = {id(r): r for r in roots if r.grad_fn is None}
    anomaly = trace.state.anomaly
    traced = trace.state.active      # tracing: each formula's ops remember their node
    with set_grad_enabled(create_graph):
        for node in nodes:
            output = node._output()
            g = grads.pop(id(output), None)
            if g is None:
                continue
            if targets is not None and id(output) in targets:
                found[id(output)] = g
            if output.retains_grad:
                kept = owned.take(g, create_graph)
                output.grad = kept if output.grad is None else output.grad + kept
            if traced or node.released:
                input_grads = _node_backward(node, g, anomaly)
            else:   # the common case inline: a call fewer per node
                input_grads = node.fn.backward(node, g)
                if input_grads.__class__ is not tuple or len(input_grads) != len(node.inputs):
                    _check_input_grads(node, input_grads)
            if not retain_graph:
                node.saved, node.released = None, True   # freed: no second backward
            for index, (tensor, input_grad) in enumerate(zip(node.inputs, input_grads)):
                if input_grad is None or not tensor.requires_grad:
                    continue
                if input_grad.__class__ is not Tensor or \
                        input_grad.data.shape != tensor.data.shape or \
                        input_grad.data.dtype is not tensor.data.dtype:
                    input_grad = _as_gradient(input_grad, tensor, node)
                key = id(tensor)
                previous = grads.get(key)
                if previous is None:
                    grads[key] = input_grad
                    if tensor.grad_fn is None:
                        leaves[key] = tensor
                elif anomaly:
                    with trace.backward_formula():
                        grads[key] = previous + input_grad
                    trace.on_accumulate(node, index, (previous, input_grad), grads[key])
                else:
                    grads[key] = previous + input_grad
    found.update(grads)
    return found, leaves


def _node_backward(node: Context, g: Tensor, anomaly: bool) -> tuple:
    """The node's backward formula, its result checked (and in anomaly mode, watched)."""
    if node.released:
        raise RuntimeError(f"backward through {node.name} a second time: its saved arrays "
                           "were freed by the first backward; pass retain_graph=True to the "
                           "first one")
    if not _debug.active:
        input_grads = node.fn.backward(node, g)
        _check_input_grads(node, input_grads)
        return input_grads
    with trace.formula_of(node):
        if anomaly:
            with trace.backward_formula():
                input_grads = node.fn.backward(node, g)
        else:
            input_grads = node.fn.backward(node, g)
    _check_input_grads(node, input_grads)
    if anomaly:
        trace.on_backward(node, g, input_grads)
    return input_grads


class _OwnedGradients:
    """Makes every gradient handed to the user an array of its own: writable, aliasing no
    other gradient handed out, no root gradient (the caller's seed) and no leaf's data.

    Backwards pass arrays along without copying (`Add` returns g for both inputs, reshapes
    return views), so a copy is made only where such an alias would escape.
    """

    def __init__(self, arrays: Iterable[np.ndarray]) -> None:
        self.taken = {id(a) for a in arrays}

    def forbid(self, arrays: Iterable[np.ndarray]) -> None:
        """Arrays no gradient handed out may be (leaves' data, for one)."""
        self.taken.update(id(a) for a in arrays)

    def take(self, grad: Tensor, create_graph: bool) -> Tensor:
        data = grad.data
        if not (data.flags.owndata and data.flags.writeable) or id(data) in self.taken:
            grad = grad * 1 if create_graph else Tensor._make(data.copy(), False, None)
        elif not create_graph:
            grad = grad.detach()
        self.taken.add(id(grad.data))
        return grad


def _check_input_grads(node: Context, input_grads: Any) -> None:
    if not isinstance(input_grads, tuple) or len(input_grads) != len(node.inputs):
        raise RuntimeError(f"{node.name}.backward must return a tuple of {len(node.inputs)} "
                           f"gradients (one per input), got {input_grads!r}")


def _accumulate(grads: dict[int, Tensor], key: int, grad: Tensor) -> None:
    previous = grads.get(key)
    grads[key] = grad if previous is None else previous + grad


def _root_gradient(tensor: Tensor, gradient: Any) -> Tensor:
    if gradient is None:
        if tensor.size != 1:
            raise RuntimeError(f"backward() on a non-scalar output of shape {tensor.shape}: "
                               "pass gradient= (an array of that shape) or reduce first "
                               "(e.g. .sum())")
        return Tensor._make(np.ones(tensor.shape, tensor.dtype), False, None)
    gradient = as_tensor(gradient, dtype=tensor.dtype)
    if gradient.shape != tensor.shape:
        raise ValueError(f"backward(): gradient has shape {gradient.shape} but the output "
                         f"has shape {tensor.shape}")
    return gradient


def backward(tensor: Tensor, gradient: Any = None, retain_graph: bool | None = None,
             create_graph: bool = False) -> None:
    """Accumulate d tensor / d leaf into ``leaf.grad`` for every leaf that requires grad."""
    if not tensor.requires_grad:
        raise RuntimeError("backward() on a tensor that does not require grad and has no "
                           "grad_fn: no input of its graph had requires_grad=True")
    retain = create_graph if retain_graph is None else retain_graph
    root_grad = _root_gradient(tensor, gradient)
    owned = _OwnedGradients([root_grad.data])
    grads, leaves = _run_backward(topological_nodes([tensor]), [tensor], [root_grad],
                                  retain_graph=retain, create_graph=create_graph, owned=owned)
    owned.forbid(leaf.data for leaf in leaves.values())
    for key, leaf in leaves.items():
        grad = grads.get(key)
        if grad is None:
            continue
        grad = owned.take(grad, create_graph)
        leaf.grad = grad if leaf.grad is None else leaf.grad + grad


def grad_of(outputs: Tensor | Sequence[Tensor], inputs: Sequence[Tensor],
            grad_outputs: Any = None, retain_graph: bool | None = None,
            create_graph: bool = False, allow_unused: bool = False) -> list[Tensor | None]:
    """d outputs / d inputs without touching ``.grad`` (PyTorch's ``torch.autograd.grad``).

    `inputs` may be any tensors of the graph, leaves or not, and may depend on each other:
    each gets its full gradient. An input the outputs do not depend on is an error, or gets
    None with ``allow_unused=True``.
    """
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    inputs = list(inputs)
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif isinstance(grad_outputs, (Tensor, np.ndarray)):
        grad_outputs = [grad_outputs]
    for position, output in enumerate(outputs):
        if not output.requires_grad:
            raise RuntimeError(f"grad_of: output {position} (shape {output.shape}) does not "
                               "require grad and has no grad_fn: nothing it was computed "
                               "from requires grad")
    for position, tensor in enumerate(inputs):
        if not isinstance(tensor, Tensor):
            raise TypeError(f"grad_of: input {position} is a {type(tensor).__name__}, not a "
                            "Tensor of the graph")
        if not tensor.requires_grad:
            raise RuntimeError(f"grad_of: input {position} does not require grad; "
                               "differentiate only with respect to tensors with "
                               "requires_grad=True (or results computed from them)")
    root_grads = [_root_gradient(t, g) for t, g in zip(outputs, grad_outputs)]
    retain = create_graph if retain_graph is None else retain_graph
    owned = _OwnedGradients([g.data for g in root_grads] + [t.data for t in inputs])
    targets = {id(t) for t in inputs}
    nodes = nodes_leading_to(topological_nodes(outputs), targets)
    grads, _ = _run_backward(nodes, outputs, root_grads, retain_graph=retain,
                             create_graph=create_graph, owned=owned, targets=targets)
    result = []
    for position, tensor in enumerate(inputs):
        grad = grads.get(id(tensor))
        if grad is None and not allow_unused:
            raise RuntimeError(f"grad_of: input {position} (shape {tensor.shape}) was not "
                               "used to compute the outputs; pass allow_unused=True to get "
                               "None for it")
        result.append(None if grad is None else owned.take(grad, create_graph))
    return result
