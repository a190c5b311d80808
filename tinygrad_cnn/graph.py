"""Graph queries on what the engine recorded: the iterative topological walk that backward
runs, the forward order, a deterministic walk of tensors and nodes (for drawings that are
the same bytes every time) and what kind of leaf a tensor is."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .autograd import Context
    from .tensor import Tensor

__all__ = ["topological_nodes", "nodes_leading_to", "forward_order", "walk", "leaf_kind"]


def topological_nodes(roots: Iterable[Tensor]) -> list[Context]:
    """Nodes reachable from `roots`, each before the nodes that made its inputs.

    Iterative depth-first post-order (no recursion, so graphs of any depth work).
    """
    post_order: list[Context] = []
    visited: set[Context] = set()
    # a node is pushed to be expanded; once expanded it is pushed again under a None
    # marker, and popped from there after everything above it, i.e. its inputs' nodes
    stack: list[Context | None] = [r.grad_fn for r in roots if r.grad_fn is not None]
    while stack:
        node = stack.pop()
        if node is None:
            post_order.append(stack.pop())
            continue
        if node in visited:
            continue
        visited.add(node)
        stack.append(node)
        stack.append(None)
        for tensor in node.inputs:
            parent = tensor.grad_fn
            if parent is not None and parent not in visited:
                stack.append(parent)
    post_order.reverse()
    return post_order


def nodes_leading_to(nodes: list[Context], targets: set[int]) -> list[Context]:
    """The nodes of `nodes` (topologically ordered) from which some target can be reached."""
    needed: set[int] = set()
    for node in reversed(nodes):
        if any(id(t) in targets or id(t.grad_fn) in needed for t in node.inputs):
            needed.add(id(node))
    return [node for node in nodes if id(node) in needed]



def forward_order(roots: list[Tensor]) -> list[Context]:
    """The nodes behind `roots`, each after the nodes that made its inputs."""
    return list(reversed(topological_nodes(roots)))


def walk(outputs: Sequence[Tensor]) -> tuple[list[Tensor], list[Context]]:
    """Tensors and nodes reachable from `outputs`, in a deterministic depth-first order."""
    tensors: dict[int, Tensor] = {}
    nodes: dict[int, Context] = {}
    stack = list(reversed(outputs))
    while stack:
        tensor = stack.pop()
        if id(tensor) in tensors:
            continue
        tensors[id(tensor)] = tensor
        node = tensor.grad_fn
        if node is not None and id(node) not in nodes:
            nodes[id(node)] = node
            stack.extend(reversed(node.inputs))
    return list(tensors.values()), list(nodes.values())


def leaf_kind(tensor: Tensor) -> str:
    """How a tensor is drawn and counted: "tensor" (made by an op), "parameter" (a leaf
    that requires grad), "constant" (bool, or an unnamed scalar) or "input"."""
    if tensor.grad_fn is not None:
        return "tensor"
    if tensor.requires_grad:
        return "parameter"
    if tensor.dtype == bool or tensor.size == 1 and tensor.name is None:
        return "constant"
    return "input"
