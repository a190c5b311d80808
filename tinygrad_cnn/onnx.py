"""Export a model to ONNX, for ONNX Runtime, Netron, or PyTorch (needs the `onnx` extra).

`export(f, params, example_input, path)` runs ``f(params, example_input)`` once, recording
the graph, and writes one ONNX node (or a few) per recorded op; the params become
initializers named by their keys (nested keys joined by dots). The exported graph computes
PyTorch's numbers everywhere: pooling pads are explicit (ceil_mode is never used, since
runtimes disagree at the border), average pooling always sets count_include_pad=1 and
rescales by PyTorch's divisors, and batch norm exports its evaluation form. Each op's
lowering is declared beside it in `ops/` (`OpSpec.onnx`); this module walks the graph,
names the values, follows the batch axis and proves the file with ONNX Runtime.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import trace
from .autograd import (
    Context,
    no_grad,
    topological_nodes,
)
from .checking import probe_inputs
from .data import write_atomically
from .ops import REGISTRY, spec_of
from .ops.lowering import NO_BATCH, ExportError
from .recording import copied, record
from .tensor import Buffer, Tensor

__all__ = ["export", "ExportError", "supported_ops", "DEFAULT_OPSET"]

DEFAULT_OPSET = 17


class _Graph:
    """ONNX nodes and initializers under construction, with the names of the values."""

    def __init__(self, names: dict[int, str]) -> None:
        self.names = names            # id(tensor) or data pointer -> value name
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.taken = set(names.values())   # value names in use: fresh names avoid them
        # id(tensor) -> where its batch axis is, for tensors computed from the model's
        # input: an axis, NO_BATCH once an integer index took it away, or None when an op
        # moved it somewhere this exporter does not follow
        self.batch_axis: dict[int, int | None] = {}
        self.derived: dict[int, Any] = {}   # arrays computed from the input (trace)
        self.dtype: Any = None              # the export dtype of floating constants
        self.dynamic = True                 # the batch axis is symbolic ("N")

    def fresh(self, stem: str) -> str:
        name = _unique(stem, self.taken)
        self.taken.add(name)
        return name

    def constant(self, array: Any, stem: str = "const") -> str:
        from onnx import numpy_helper
        name = self.fresh(stem)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def add(self, op: str, inputs: list[str], output: str | None = None, **attrs: Any) -> str:
        from onnx import helper
        output = output or self.fresh(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [output], **attrs))
        return output


def _unique(stem: str, taken: set) -> str:
    """`stem`, or `stem_1`, `stem_2`... whichever is not in `taken` ("value" for "")."""
    stem = stem or "value"
    if stem not in taken:
        return stem
    count = 1
    while f"{stem}_{count}" in taken:
        count += 1
    return f"{stem}_{count}"


def _value(graph: _Graph, tensor: Tensor, node: Context) -> str:
    """The ONNX name of a node input: a param, the model input, an op output, or a new
    initializer for a constant (looked up by data pointer, shape, dtype and strides for
    params passed as views; `p.T` shares the first three with `p`)."""
    name = graph.names.get(id(tensor)) or graph.names.get(_pointer(tensor.data))
    if name is not None:
        return name
    if trace.is_derived(tensor.data, graph.derived):
        raise ExportError(
            f"{node.name} ({node.where}) uses a value computed from the model's input "
            "outside the recorded graph (a comparison, a cast to bool or int, detach() or an "
            "op under no_grad): ONNX would freeze it at the example's value. Compute it "
            "with differentiable ops (for a leaky relu: F.relu(x) - 0.1 * F.relu(-x))")
    data = tensor.data
    if data.dtype.kind == "f" and graph.dtype is not None:
        data = data.astype(graph.dtype)
    name = graph.names[id(tensor)] = graph.constant(data)
    return name


def _pointer(array: np.ndarray) -> tuple[int, tuple[int, ...], str, tuple[int, ...]]:
    return array.__array_interface__["data"][0], array.shape, array.dtype.str, array.strides


def supported_ops() -> list[str]:
    """The registered ops that export, in registry order."""
    return [name for name, spec in REGISTRY.items() if spec.exports]


def _lowering(node: Context) -> Callable:
    spec = spec_of(node)
    if spec is None:
        raise ExportError(f"{node.name} ({node.where or 'unknown line'}) is not a registered op "
                          f"and has no ONNX lowering; the ops that export are: "
                          f"{', '.join(supported_ops())}")
    if not spec.exports:
        raise ExportError(f"{node.name} ({node.where or 'unknown line'}) has no ONNX mapping; "
                          f"the ops that export are: {', '.join(supported_ops())} "
                          f"({node.name}: {spec.onnx})")
    return spec.onnx


def _map_node(graph: _Graph, node: Context) -> None:
    inputs = [_value(graph, t, node) for t in node.inputs]
    lower = _lowering(node)
    for key, value in node.params.items():
        if isinstance(value, np.ndarray) and trace.is_derived(value, graph.derived):
            raise ExportError(f"{node.name} ({node.where}): its {key} was computed from the "
                              "model's input outside the recorded graph (a comparison, a "
                              "cast to bool or int, detach() or an op under no_grad); ONNX "
                              "would freeze it at the example's value")
    graph.names[id(node.output)] = lower(graph, node, inputs)
    batched = [(t, graph.batch_axis[id(t)]) for t in node.inputs if id(t) in graph.batch_axis]
    if batched and id(node.output) not in graph.batch_axis:   # the lowering may have set it
        graph.batch_axis[id(node.output)] = _broadcast_batch_axis(node, batched)


def _broadcast_batch_axis(node: Context, batched: list[tuple[Tensor, int | None]]
                          ) -> int | None:
    """Where the batch axis of an output computed value by value (numpy broadcasting) is."""
    if any(axis is None for _, axis in batched):
        return None
    if all(axis == NO_BATCH for _, axis in batched):
        return NO_BATCH
    out_ndim = node.output.ndim
    moved = {a + out_ndim - t.ndim for t, a in batched if a != NO_BATCH}
    return moved.pop() if len(moved) == 1 else None


# ----------------------------------------------------------------------------- export
def _record(f: Callable, params: Any, example_input: Any, dtype: Any, reserved: set
            ) -> tuple[Tensor, Tensor, list[tuple[str, np.ndarray]], dict, dict]:
    """Run f once (`recording.record`): (output, input Tensor, [(param's ONNX name,
    array)], names, derived: the arrays computed from the input, recorded or not). Every
    param gets a distinct ONNX name, its key where that is free (not in `reserved`)."""
    run = record(f, params, example_input, caller="export", error=ExportError, dtype=dtype)
    names: dict = {}
    arrays = []
    taken = set(reserved)
    for key, leaf in zip(run.keys, run.leaves):
        name = _unique(key, taken)
        taken.add(name)
        array = np.asarray(leaf if isinstance(leaf, Buffer) else leaf.data)
        names[id(leaf)] = names[_pointer(array)] = name
        arrays.append((name, array))
    return run.out, run.x, arrays, names, run.derived


def export(f: Callable, params: Any, example_input: Any, path: str | os.PathLike, *,
           opset: int | None = None, input_names: tuple[str, ...] = ("x",),
           output_names: tuple[str, ...] = ("y",), dynamic_batch: bool = True,
           dtype: Any = np.float32, verify: bool = True) -> Any:
    """Write ``f(params, x)`` as an ONNX model and return the `onnx.ModelProto`.

    The model is checked with ``onnx.checker.check_model(full_check=True)`` and, with
    `verify` (when onnxruntime is installed), run by ONNX Runtime on two new inputs (the
    example's batch size and, with `dynamic_batch`, one more) and compared with ``f``
    (to 1e-5 of the output's largest magnitude) before anything is written (atomically).
    `dynamic_batch` makes the first axis of the input and output symbolic ("N").
    Floating params, constants and the input are exported in `dtype`, float32 by default,
    the type ONNX Runtime's CPU kernels (Conv among them) implement; None keeps theirs.
    Raises ExportError, writing nothing and changing none of the caller's arrays, for an
    op without a mapping, a value computed from the input outside the recorded graph, a
    batch size the model would freeze, or a model ONNX Runtime cannot load or that it
    computes differently.
    """
    try:
        import onnx
        from onnx import helper
    except ImportError:
        raise ImportError("export needs the onnx package: pip install -e \".[onnx]\"") from None
    opset = DEFAULT_OPSET if opset is None else opset
    if not 13 <= opset <= DEFAULT_OPSET:
        raise ValueError(f"export: opset must be between 13 and {DEFAULT_OPSET}, got {opset}")
    if input_names[0] == output_names[0]:
        raise ValueError(f"export: the input and the output are both named {input_names[0]!r}")
    out, x, params_arrays, names, derived = _record(f, params, example_input, dtype,
                                                    {input_names[0], output_names[0]})
    model = _build_model(out, x, params_arrays, names, derived, opset, input_names[0],
                         output_names[0], dynamic_batch, dtype)
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as error:
        raise ExportError(f"export: onnx rejects the model ({error}); nothing was "
                          "written") from None
    payload = model.SerializeToString()
    if verify:
        _verify(payload, f, params, x.data, dynamic_batch, dtype, input_names[0])
    write_atomically(Path(path), lambda file: file.write(payload))
    return helper.make_model(model.graph, producer_name="tinygrad_cnn",
                             opset_imports=list(model.opset_import))


def _build_model(out: Tensor, x: Tensor, params_arrays: list, names: dict, derived: dict,
                 opset: int, input_name: str, output_name: str, dynamic: bool,
                 dtype: Any) -> Any:
    from onnx import helper, numpy_helper
    names[id(x)] = input_name
    graph = _Graph(names)
    graph.taken.add(output_name)
    graph.batch_axis[id(x)] = 0
    graph.derived, graph.dtype, graph.dynamic = derived, dtype, dynamic
    for node in reversed(topological_nodes([out])):
        _map_node(graph, node)
    result = graph.names.get(id(out)) or graph.constant(out.data)
    graph.add("Identity", [result], output_name)
    used = {name for n in graph.nodes for name in n.input}
    initializers = [numpy_helper.from_array(array, key) for key, array in params_arrays
                    if key in used] + graph.initializers
    out_batch = graph.batch_axis.get(id(out), NO_BATCH)

    def value_info(name: str, tensor: Tensor, batch: int | None) -> Any:
        shape: list = list(tensor.shape)
        if dynamic and batch is None:
            shape = [None] * len(shape)     # the exporter lost track of the batch axis
        elif dynamic and batch != NO_BATCH:
            shape[batch] = "N"
        element = tensor.dtype if tensor.dtype.kind != "f" or dtype is None else np.dtype(dtype)
        return helper.make_tensor_value_info(
            name, helper.np_dtype_to_tensor_dtype(element), shape)

    onnx_graph = helper.make_graph(graph.nodes, "tinygrad_cnn",
                                   [value_info(input_name, x, 0 if x.ndim else NO_BATCH)],
                                   [value_info(output_name, out, out_batch)], initializers)
    return helper.make_model(onnx_graph, producer_name="tinygrad_cnn",
                             opset_imports=[helper.make_opsetid("", opset)])


VERIFY_TOLERANCE = 1e-5


def _verify(payload: bytes, f: Callable, params: Any, example: np.ndarray, dynamic: bool,
            dtype: Any, input_name: str) -> None:
    """Run the model in ONNX Runtime on new inputs and compare with f: ExportError if it
    cannot load or computes other numbers."""
    try:
        import onnxruntime
    except ImportError:
        return
    try:
        session = onnxruntime.InferenceSession(payload, providers=["CPUExecutionProvider"])
    except Exception as error:   # onnxruntime raises its own exception types
        raise ExportError(f"export: ONNX Runtime cannot load the exported model ({error}); "
                          "nothing was written (for another runtime, pass verify=False)"
                          ) from None
    for probe in probe_inputs(example, dynamic):
        tree = copied(params, dtype)
        with no_grad():
            want = f(tree, Tensor(probe)).data
        try:
            got = session.run(None, {input_name: probe})[0]
        except Exception as error:   # onnxruntime raises its own exception types
            raise ExportError(f"export: ONNX Runtime cannot run the exported model on a "
                              f"batch of {len(probe)} ({error}); nothing was written") from None
        _compare_outputs(got, want, len(probe))


def _compare_outputs(got: np.ndarray, want: np.ndarray, batch: int) -> None:
    if got.shape != want.shape:
        raise ExportError(f"export: on a new input of batch {batch} ONNX Runtime gives shape "
                          f"{got.shape}, tinygrad_cnn {want.shape}; nothing was written")
    got, want = got.astype(np.float64), want.astype(np.float64)
    finite = want[np.isfinite(want)]
    scale = float(np.abs(finite).max()) if finite.size else 1.0
    close = np.isclose(got, want, rtol=VERIFY_TOLERANCE, atol=VERIFY_TOLERANCE * scale,
                       equal_nan=True)
    if not close.all():
        at = np.unravel_index(int(np.argmin(close)), close.shape) if close.ndim else ()
        raise ExportError(f"export: on a new input of batch {batch} ONNX Runtime computes "
                          f"{got[at]!r} at element {tuple(int(i) for i in at)} where "
                          f"tinygrad_cnn computes {want[at]!r} ({np.count_nonzero(~close)} "
                          "elements differ); the model depends on something the exporter "
                          "froze or cannot map; nothing was written")
