"""Every differentiable primitive, registered in `REGISTRY` with its gradcheck samples and
its facts (kind, MACs, window, receptive field, ONNX lowering, label).

  registry.py    OpSpec, defop, REGISTRY, the vocabulary of kinds
  samples.py     gradcheck inputs shared by the op files
  lowering.py    what the ONNX lowerings share (ExportError, the batch axis)
  select.py      constant, masked, where
  arithmetic.py  add sub mul div neg pow exp log sqrt
  activation.py  tanh sigmoid softplus relu abs maximum clip
  shape.py       reshape transpose broadcast_to sum_to cast identity
  indexing.py    getitem index_add pad concatenate
  reduce.py      sum max min log_softmax
  linalg.py      matmul
  conv.py        conv2d and its two adjoints, unfold, fold
  pool.py        max and average pooling with their adjoints
  local_conv.py  the locally connected layer
  norm.py        local response norm, batch norm
"""

from . import conv, local_conv, norm, pool  # noqa: F401  (registers these modules' ops)
from .activation import Abs, Clip, Maximum, ReLU, Sigmoid, Softplus, Tanh, clip
from .arithmetic import Add, Div, Exp, Log, Mul, Neg, Pow, Sqrt, Sub
from .indexing import Concatenate, GetItem, IndexAdd, Pad, concatenate, getitem, pad, stack
from .linalg import MatMul
from .reduce import Max, Min, Sum, mean, reduce_max, reduce_min, reduce_sum
from .registry import KINDS, REGISTRY, OpSpec, Sample, defop, is_convolution, spec_of
from .select import Where, constant, where
from .shape import (
    BroadcastTo,
    Cast,
    Identity,
    Reshape,
    SumTo,
    Transpose,
    broadcast_to,
    flatten,
    reshape,
    sum_to,
    transpose,
)

__all__ = [
    "REGISTRY", "OpSpec", "Sample", "defop", "spec_of", "is_convolution", "KINDS", "constant",
    "Add", "Sub", "Mul", "Div", "Neg", "Pow", "Exp", "Log", "Sqrt", "Tanh", "Sigmoid", "ReLU",
    "Softplus", "Abs", "Maximum", "Clip", "Cast", "Identity", "Where", "where", "Sum", "Max",
    "Min", "Reshape", "Transpose",
    "BroadcastTo", "SumTo", "GetItem", "IndexAdd", "Pad", "Concatenate", "MatMul",
    "clip", "mean", "reduce_sum", "reduce_max", "reduce_min", "reshape", "transpose",
    "flatten", "broadcast_to", "sum_to", "getitem", "pad", "concatenate", "stack",
]
