"""Pytrees: nested dicts, lists and tuples of leaves (Tensors, arrays), as JAX has them.

`tree_flatten` gives the leaves in order (dicts in key order) and a spec that
`tree_unflatten` rebuilds the structure from; `tree_keys` names each leaf by its path,
dotted (``{"conv": {"w": ...}, "b": [...]}`` -> ``conv.w``, ``b.0``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .tensor import Tensor

__all__ = ["tree_flatten", "tree_unflatten", "tree_keys", "tensor_keys"]


def tree_flatten(tree: Any) -> tuple[list[Any], Any]:
    """Leaves of nested dicts/lists/tuples (dicts in key order) and a spec to rebuild it."""
    if isinstance(tree, dict):
        keys = list(tree)
        parts = [tree_flatten(tree[k]) for k in keys]
        return [leaf for leaves, _ in parts for leaf in leaves], (dict, keys, [s for _, s in parts])
    if isinstance(tree, (list, tuple)):
        parts = [tree_flatten(item) for item in tree]
        return [leaf for leaves, _ in parts for leaf in leaves], (type(tree), None,
                                                                   [s for _, s in parts])
    return [tree], None


def tree_unflatten(spec: Any, leaves: Iterable[Any]) -> Any:
    """The structure `spec` describes, with `leaves` in flattening order."""
    leaves = iter(leaves)

    def build(node_spec: Any) -> Any:
        if node_spec is None:
            return next(leaves)
        kind, keys, children = node_spec
        values = [build(child) for child in children]
        return dict(zip(keys, values)) if kind is dict else kind(values)

    return build(spec)


def tree_keys(tree: Any) -> list[str]:
    """The dotted path of every leaf, in flattening order ("" for a bare leaf)."""
    def paths(node: Any, prefix: str) -> list[str]:
        if isinstance(node, dict):
            return [k for key, value in node.items() for k in paths(value, f"{prefix}{key}.")]
        if isinstance(node, (list, tuple)):
            return [k for i, value in enumerate(node) for k in paths(value, f"{prefix}{i}.")]
        return [prefix[:-1]]
    return paths(tree, "")


def tensor_keys(tree: Any) -> dict[int, str]:
    """id(Tensor) -> its dotted key, for the Tensor leaves of a tree (None: no tree)."""
    if tree is None:
        return {}
    return {id(leaf): key for leaf, key in zip(tree_flatten(tree)[0], tree_keys(tree))
            if isinstance(leaf, Tensor)}
