"""How drawings name and group ops: labels from each op's spec, and the folding of long
graphs into blocks (a block starts at a major op: a window, a product, a join) and of
repeated blocks into one "xN" node."""

from __future__ import annotations

from .autograd import Context
from .graph import forward_order
from .ops import spec_of
from .ops.registry import default_label

__all__ = ["op_label", "moves_only", "folded_chains", "block_label", "repeats"]


def op_label(node: Context) -> str:
    """The op's name and its parameters as its spec shows them: `conv2d  5x5 /1 pad=2`,
    `max_pool2d  2x2 /2`, `sum  axis=(1,)  keepdims=False`."""
    spec = spec_of(node)
    text = spec.label(node.params) if spec is not None else default_label(node.params)
    return f"{node.name}  {text}" if text else node.name


def moves_only(node: Context) -> bool:
    """An op of kind "shape" (reshape, transpose, cast...): drawn inside its neighbours'
    blocks and counted at its user by summary."""
    spec = spec_of(node)
    return spec is not None and spec.kind == "shape"


MAJOR_KINDS = ("window", "adjoint", "linalg", "join")   # each starts a block when folding


def _is_major(node: Context) -> bool:
    spec = spec_of(node)
    return spec is not None and spec.kind in MAJOR_KINDS


def folded_chains(nodes: list[Context], max_nodes: int) -> list[list[Context]]:
    """Blocks of nodes: a block starts at a major op (conv, matmul, pooling, concatenation)
    and takes the ops after it whose graph inputs all come from that block. Shape ops on
    parameters (a bias reshaped, a weight transposed) join the block that uses them."""
    plumbing = {id(n) for n in nodes
                if moves_only(n) and all(t.grad_fn is None for t in n.inputs)}
    block_of: dict[int, int] = {}
    blocks: list[list[Context]] = []
    for node in forward_order([n.output for n in nodes]):
        if id(node) in plumbing:
            continue
        producers = [t.grad_fn for t in node.inputs if t.grad_fn is not None]
        sources = {block_of[id(p)] for p in producers if id(p) not in plumbing}
        if _is_major(node) or len(sources) != 1:
            blocks.append([node])
            block_of[id(node)] = len(blocks) - 1
        else:
            (source,) = sources
            blocks[source].append(node)
            block_of[id(node)] = source
        for producer in producers:
            if id(producer) in plumbing and id(producer) not in block_of:
                block_of[id(producer)] = block_of[id(node)]
                blocks[block_of[id(node)]].insert(0, producer)
    return blocks


def _first_named(block: list[Context]) -> Context:
    return next((n for n in block if not moves_only(n)), block[0])


def block_label(block: list[Context], show_attrs: bool) -> str:
    head = _first_named(block)
    first = op_label(head) if show_attrs else head.name
    rest = [n.name for n in block if n is not head and not moves_only(n)]
    return " -> ".join([first] + rest)


def repeats(blocks: list[list[Context]], labels: list[str],
             edges: set[tuple[int, int]]) -> list[list[int]]:
    """Groups of consecutive identical blocks joined by a single edge (a chain of copies)."""
    successors: dict[int, set[int]] = {}
    predecessors: dict[int, set[int]] = {}
    for a, b in edges:
        successors.setdefault(a, set()).add(b)
        predecessors.setdefault(b, set()).add(a)
    groups: list[list[int]] = []
    group_of: dict[int, int] = {}
    for index in range(len(blocks)):
        before = predecessors.get(index, set())
        if len(before) == 1:
            (previous,) = before
            if labels[previous] == labels[index] and successors.get(previous) == {index}:
                groups[group_of[previous]].append(index)
                group_of[index] = group_of[previous]
                continue
        groups.append([index])
        group_of[index] = len(groups) - 1
    return groups
